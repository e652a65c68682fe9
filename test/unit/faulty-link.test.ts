/**
 * FaultyLink (scenarios/lib/fault-plane.ts) over a memory pair on simulated
 * time: holding and releasing each direction in order, backpressure both
 * ways (write() false past the high-water mark; the sender's window filling
 * while incoming bytes are held), shaped latency to the simulated ms, jitter
 * that never reorders, the end queued behind held bytes, and a reset.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { SimClock } from '../../core/clock.ts';
import { memoryPair, mulberry32 } from '../../core/index.ts';
import type { MemoryLink } from '../../core/transport/memory.ts';
import { FaultyLink, HIGH_WATER } from '../../scenarios/lib/fault-plane.ts';
import { FUZZ_SEED, FUZZ_SERVER_RUNS } from '../fuzz-config.ts';

function setup(o: { windowBytes?: number; seed?: number } = {}) {
  const clock = new SimClock();
  const [a, b] = memoryPair({ clock, windowBytes: o.windowBytes });
  const f = new FaultyLink(a, { clock, rng: mulberry32(o.seed ?? 1) }, 'A', 'B');
  const atB: Buffer[] = [];
  const atF: Buffer[] = [];
  b.on('data', (x) => atB.push(x));
  f.on('data', (x) => atF.push(x));
  const text = (bs: Buffer[]) => Buffer.concat(bs).toString();
  return { clock, a, b, f, atB, atF, text };
}

test('a held link delivers nothing either way, then everything in order once released', async (t) => {
  const { clock, b, f, atB, atF, text } = setup();
  f.write(Buffer.from('early '));
  await clock.advance(1);
  t.is(text(atB), 'early ');
  f.setRule(true, true, undefined, undefined);
  f.write(Buffer.from('x1 '));
  f.write(Buffer.from('x2'));
  b.write(Buffer.from('y1 '));
  b.write(Buffer.from('y2'));
  await clock.advance(10_000);
  t.is(text(atB), 'early ', 'nothing crossed A → B while held');
  t.is(text(atF), '', 'nothing crossed B → A while held');
  // Only one direction released: the other stays held.
  f.setRule(false, true, undefined, undefined);
  await clock.advance(1);
  t.is(text(atB), 'early x1 x2');
  t.is(text(atF), '');
  f.setRule(false, false, undefined, undefined);
  await clock.advance(1);
  t.is(text(atF), 'y1 y2');
});

/**
 * Writes `chunk` until `w` says false; then checks `w` was full at exactly `full` bytes, that no
 * 'drain' comes while `f` holds the bytes (nothing reaches `got`), and that after the release
 * 'drain' comes and `got` holds all `full` bytes.
 */
async function backpressure(t: ExecutionContext, clock: SimClock, f: FaultyLink, w: FaultyLink | MemoryLink, chunk: Buffer, full: number, got: Buffer[]): Promise<void> {
  let n = 1;
  while (w.write(chunk)) n++;
  t.is(n * chunk.length, full, 'write() said false exactly when full');
  t.is(w.writableLength, full);
  let drained = false;
  w.on('drain', () => (drained = true));
  await clock.advance(5000);
  t.false(drained);
  t.is(got.length, 0);
  f.setRule(false, false, undefined, undefined);
  await clock.run({ until: () => drained });
  t.true(drained);
  t.is(Buffer.concat(got).length, full);
}

test('outgoing backpressure: write() says false at the high-water mark while held, and drain follows the release', async (t) => {
  const { clock, f, atB } = setup();
  f.setRule(true, false, undefined, undefined);
  await backpressure(t, clock, f, f, Buffer.alloc(64 * 1024, 7), HIGH_WATER, atB);
});

test("incoming bytes held are not read: the sender's window fills (its write says false) and drains after the release", async (t) => {
  const { clock, b, f, atF } = setup({ windowBytes: 16 * 1024 });
  f.setRule(false, true, undefined, undefined);
  // Nothing is read at A: the sender's window fills.
  await backpressure(t, clock, f, b, Buffer.alloc(4096, 1), 16 * 1024, atF);
});

test('an end written while held follows the held bytes; the far end sees data then end', async (t) => {
  const { clock, b, f, atB, text } = setup();
  let ended = false;
  b.on('end', () => {
    ended = true;
    t.is(text(atB), 'last words', 'end after the data');
  });
  f.setRule(true, true, undefined, undefined);
  f.write(Buffer.from('last '));
  f.write(Buffer.from('words'));
  f.end();
  await clock.advance(1000);
  t.false(ended);
  f.setRule(false, false, undefined, undefined);
  await clock.run({ until: () => ended });
  t.true(ended);
});

test('shaped latency: each direction is delayed by latencyMs simulated, and bandwidth serialises', async (t) => {
  const { clock, b, f } = setup();
  f.setRule(false, false, { latencyMs: 40, bandwidthBytesPerSec: 1000 }, { latencyMs: 25 });
  const seenB: number[] = [];
  const seenF: number[] = [];
  b.on('data', () => seenB.push(clock.now()));
  f.on('data', () => seenF.push(clock.now()));
  const t0 = clock.now();
  f.write(Buffer.alloc(100)); // 100 ms at 1000 B/s, then 40 ms
  f.write(Buffer.alloc(100)); // 100 ms more
  b.write(Buffer.alloc(10));
  await clock.advance(1000);
  t.deepEqual(
    seenB.map((x) => x - t0),
    [140, 240],
  );
  t.deepEqual(
    seenF.map((x) => x - t0),
    [25],
  );
});

test('a reset closes this end with ECONNRESET and the far end without a clean end', async (t) => {
  const { clock, b, f } = setup();
  let err: (Error & { code?: string }) | undefined;
  let fClosed = false;
  let bEnded = false;
  let bClosed = false;
  f.on('error', (e) => (err = e));
  f.on('close', () => (fClosed = true));
  b.on('end', () => (bEnded = true));
  b.on('close', () => (bClosed = true));
  f.setRule(true, true, undefined, undefined);
  f.write(Buffer.from('held, never delivered'));
  f.reset();
  await clock.run({ until: () => fClosed && bClosed });
  t.is(err?.code, 'ECONNRESET');
  t.true(fClosed);
  t.true(bClosed);
  t.false(bEnded, 'the far end saw a reset, not an end');
});

test('jitter never reorders a link: whatever the chunks, jitter and pauses, the bytes arrive complete and in order both ways', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ len: fc.integer({ min: 1, max: 3000 }), gapMs: fc.integer({ min: 0, max: 30 }), back: fc.boolean() }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 0, max: 50 }),
      fc.integer({ min: 1, max: 80 }),
      fc.integer({ min: 0, max: 2 ** 31 }),
      async (chunks, latencyMs, jitterMs, seed) => {
        const { clock, b, f, atB, atF } = setup({ seed });
        const spec = { latencyMs, jitterMs };
        f.setRule(false, false, spec, spec);
        const sentA: Buffer[] = [];
        const sentB: Buffer[] = [];
        let k = 0;
        for (const c of chunks) {
          const data = Buffer.alloc(c.len);
          for (let i = 0; i < c.len; i++) data[i] = (k + i) & 0xff;
          k += c.len;
          if (c.back) {
            sentB.push(data);
            b.write(data);
          } else {
            sentA.push(data);
            f.write(data);
          }
          if (c.gapMs) await clock.advance(c.gapMs);
        }
        await clock.advance(latencyMs + jitterMs + 10);
        return Buffer.concat(atB).equals(Buffer.concat(sentA)) && Buffer.concat(atF).equals(Buffer.concat(sentB));
      },
    ),
    { numRuns: FUZZ_SERVER_RUNS, seed: FUZZ_SEED },
  );
  t.pass();
});
