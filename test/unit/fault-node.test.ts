/**
 * The node half of the faults (scenarios/lib/fault-node.ts) on a SimClock,
 * exact: a paused node's timers, intervals, defers, sleeps and held work
 * wait and fire after the resume in the order they came due; a skewed
 * clock's now() and timer delays; the disk faults of its store wrapper
 * (errors shaped as the file system's, bytes let through before them, the
 * time `slow` adds).
 */
import test from 'ava';
import { SimClock } from '../../core/clock.ts';
import { MemoryShares } from '../../core/index.ts';
import { FaultyStore, NodeFaults } from '../../scenarios/lib/fault-node.ts';

function node(): { sim: SimClock; n: NodeFaults } {
  const sim = new SimClock();
  return { sim, n: new NodeFaults('A', sim) };
}

test('paused: no timer, interval, defer, sleep or held result fires; after the resume they do, in the order they came due, then run on', async (t) => {
  const { sim, n } = node();
  const c = n.clock;
  const fired: string[] = [];
  const at = (what: string) => () => fired.push(`${what}@${c.now()}`);
  c.setTimeout(at('t20'), 20);
  c.setTimeout(at('t10'), 10);
  const iv = c.setInterval(at('i15'), 15);
  const gone = c.setTimeout(at('cleared'), 12);
  await sim.advance(5);
  n.setPaused(true);
  c.defer(at('defer'));
  void c.sleep(8).then(at('sleep8'));
  void c.hold(Promise.resolve()).then(at('held'));
  await sim.advance(35); // true time 40: everything above came due meanwhile
  c.clearTimeout(gone); // cleared while waiting: never fires
  t.deepEqual(fired, [], 'nothing of a paused node runs');
  t.is(c.now(), 40, 'its now() keeps the world’s time');
  n.setPaused(false);
  await sim.advance(0);
  // Callbacks in the order they came due (the interval once); promise continuations (sleep, hold)
  // run after the batch, as microtasks after a SimClock instant do.
  t.deepEqual(fired.slice(0, 4), ['defer@40', 't10@40', 'i15@40', 't20@40'], 'late, in the order they came due; the interval once');
  t.deepEqual(fired.slice(4).sort(), ['held@40', 'sleep8@40']);
  fired.length = 0;
  await sim.advance(5); // the interval's next period on the runner's clock: 45
  t.deepEqual(fired, ['i15@45']);
  c.clearInterval(iv);
  await sim.advance(100);
  t.deepEqual(fired, ['i15@45']);
  t.is(sim.pending, 0, 'nothing left on the runner’s clock');
});

test('paused again while the late ones are released: the rest wait for the next resume, in order', async (t) => {
  const { sim, n } = node();
  const c = n.clock;
  const fired: number[] = [];
  for (const ms of [3, 1, 2]) c.setTimeout(() => {
    fired.push(ms);
    if (ms === 1) n.setPaused(true);
  }, ms);
  n.setPaused(true);
  await sim.advance(10);
  n.setPaused(false);
  await sim.advance(0);
  t.deepEqual(fired, [1]);
  n.setPaused(false);
  await sim.advance(0);
  t.deepEqual(fired, [1, 2, 3]);
});

test('a held result that fails while paused is delivered (as a rejection) after the resume', async (t) => {
  const { sim, n } = node();
  n.setPaused(true);
  let seen: unknown;
  const p = n.clock.hold(Promise.reject(new Error('boom'))).catch((e: Error) => (seen = e.message));
  await sim.advance(10);
  t.is(seen, undefined);
  n.setPaused(false);
  await sim.advance(0);
  await p;
  t.is(seen, 'boom');
});

test('skew: offset moves now() only; drift runs the clock fast or slow and timers measure their delay on it; an empty spec is the true clock again', async (t) => {
  const { sim, n } = node();
  const c = n.clock;
  await sim.advance(100);
  n.setSkew({ offsetMs: 30_000 });
  t.is(c.now(), 30_100);
  let firedAt = -1;
  c.setTimeout(() => (firedAt = sim.now()), 50);
  await sim.advance(60);
  t.is(firedAt, 150, 'an offset moves no timer');
  // Twice as fast from t=160: 100 true ms are 200 on the node.
  n.setSkew({ offsetMs: 1000, driftPpm: 1_000_000 });
  await sim.advance(100);
  t.is(c.now(), 260 + 1000 + 100);
  c.setTimeout(() => (firedAt = sim.now()), 1000);
  await sim.advance(600);
  t.is(firedAt, 260 + 500, 'a 1,000 ms timer on a clock twice as fast fires after 500 true ms');
  // Half as fast.
  n.setSkew({ driftPpm: -500_000 });
  const from = sim.now();
  c.setTimeout(() => (firedAt = sim.now()), 100);
  await sim.advance(300);
  t.is(firedAt, from + 200);
  t.is(c.now(), sim.now() - 150);
  n.setSkew({});
  t.is(c.now(), sim.now(), 'back on the true clock (now() jumps back)');
  t.throws(() => n.setSkew({ driftPpm: -1_000_000 }), { instanceOf: RangeError });
  t.throws(() => n.setSkew({ offsetMs: Number.NaN }), { instanceOf: RangeError });
});

test('timeoutSignal and sleep run on the node’s clock', async (t) => {
  const { sim, n } = node();
  n.setSkew({ driftPpm: 1_000_000 });
  const s = n.clock.timeoutSignal(100);
  await sim.advance(49);
  t.false(s.aborted);
  await sim.advance(1);
  t.true(s.aborted);
  t.is((s.reason as Error).name, 'TimeoutError');
});

// ---- store

const world = new MemoryShares();
const MiB = 1024 * 1024;

function store(files: { name: string; size: number }[] = []) {
  const { sim, n } = node();
  const inner = world.store('A', files.map((f, i) => ({ name: f.name, content: world.content(f.size, i + 1) })));
  return { sim, n, s: n.wrapStore(inner) as FaultyStore, inner };
}

test('enospc / eio-write: a temporary file takes afterBytes, then the write fails as the file system fails it', async (t) => {
  for (const [kind, code, errno] of [['enospc', 'ENOSPC', -28], ['eio-write', 'EIO', -5]] as const) {
    const { n, s } = store();
    n.setDisk({ kind, afterBytes: MiB });
    const tmp = await s.createTemp({ fsync: true });
    tmp.write(Buffer.alloc(MiB - 10));
    const e = t.throws(() => tmp.write(Buffer.alloc(20))) as NodeJS.ErrnoException;
    t.is(e.code, code);
    t.is(e.errno, errno);
    t.is(e.syscall, 'write');
    t.regex(e.message, new RegExp(`^${code}: .*, write$`));
    t.throws(() => tmp.write(Buffer.alloc(1)), { code });
    await tmp.discard();
  }
  // Default: from the first byte.
  const { n, s, inner } = store();
  n.setDisk({ kind: 'enospc' });
  const tmp = await s.createTemp({ fsync: false });
  t.throws(() => tmp.write(Buffer.alloc(1)), { code: 'ENOSPC' });
  await tmp.discard();
  t.is(inner.temps, 0);
  n.setDisk(null);
  const ok = await s.createTemp({ fsync: false });
  t.notThrows(() => ok.write(Buffer.alloc(MiB)), 'a healthy disk again');
  await ok.discard();
});

test('eio-read: a served file reads afterBytes, then EIO; hashing it fails unless its hash is known', async (t) => {
  const { n, s } = store([{ name: 'a.bin', size: 3 * MiB }]);
  n.setDisk({ kind: 'eio-read', afterBytes: MiB + 5 });
  const f = await s.open('a.bin');
  const buf = Buffer.alloc(MiB);
  t.is((await f.read(buf, 0, MiB, 0)).bytesRead, MiB);
  t.is((await f.read(buf, 0, MiB, MiB)).bytesRead, 5, 'up to the fault');
  await t.throwsAsync(f.read(buf, 0, MiB, MiB + 5), { code: 'EIO', message: 'EIO: i/o error, read' });
  await t.throwsAsync(f.sha256(), { code: 'EIO' });
  n.setDisk(null);
  const sha = await f.sha256();
  n.setDisk({ kind: 'eio-read' });
  t.is(await f.sha256(), sha, 'a known hash needs no read');
  await t.throwsAsync((await s.open('a.bin')).read(buf, 0, 1, 0), { code: 'EIO' });
});

test('fsync-fails: a durable temporary file fails its fsync (seal) and its commit; one without fsync is not touched', async (t) => {
  const { n, s } = store();
  n.setDisk({ kind: 'fsync-fails' });
  const tmp = await s.createTemp({ fsync: true });
  tmp.write(Buffer.alloc(10));
  await t.throwsAsync(tmp.seal(), { code: 'EIO', message: 'EIO: i/o error, fsync' });
  await t.throwsAsync(tmp.commit('x.bin', '0'.repeat(64)), { code: 'EIO' });
  await tmp.discard();
  const plain = await s.createTemp({ fsync: false });
  await t.notThrowsAsync(plain.seal());
  await plain.discard();
});

test('slow: every operation takes ms more on the node’s clock, held work included (no stall on a SimClock)', async (t) => {
  const { sim, n, s } = store([{ name: 'a.bin', size: 10 }]);
  n.setDisk({ kind: 'slow', ms: 250 });
  t.is(s.statNow('a.bin'), undefined, 'nothing answered at once');
  const t0 = sim.now();
  const st = await sim.drive(n.clock.hold(s.stat('a.bin')));
  t.deepEqual(st, { size: 10 });
  t.is(sim.now() - t0, 250);
  const f = await sim.drive(s.open('a.bin'));
  t.is(sim.now() - t0, 500);
  await sim.drive(f.read(Buffer.alloc(10), 0, 10, 0));
  t.is(sim.now() - t0, 750);
  n.setDisk(null);
  await sim.drive(n.clock.hold(s.list()));
  t.is(sim.now() - t0, 750, 'healthy: no time');
  t.deepEqual(s.statNow('a.bin'), { size: 10 });
});
