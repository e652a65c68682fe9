/**
 * Swarm parts without an overlay: the piece size rule, the per-peer upload cap
 * (more connections gain nothing), the partial sweep, and swarmDownload
 * against fake holders that stall, send too much, send a bad manifest or
 * leave: each leaves nothing under the final name and a clear error.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { errorCode, tcpTransport, type Connection, type Message } from '../../core/index.ts';
import { realClock } from '../../core/clock.ts';
import { pieceSizeFor, UploadBucket } from '../../core/transfer/manifest.ts';
import { linkDepth, sweepPartials, swarmDownload } from '../../core/transfer/swarm.ts';
import { tmpDir } from '../helpers.ts';

const MiB = 1024 * 1024;

test('piece size: 1 MiB up to 512 MiB, doubled beyond so a file never has more than 512 pieces', (t) => {
  t.is(pieceSizeFor(0), MiB);
  t.is(pieceSizeFor(512 * MiB), MiB);
  t.is(pieceSizeFor(512 * MiB + 1), 2 * MiB);
  t.is(pieceSizeFor(64 * 1024 * MiB), 128 * MiB);
  t.is(pieceSizeFor(10 * MiB, 64 * 1024), 64 * 1024);
});

test('the upload cap is per peer: two connections together take as long as one alone', async (t) => {
  // A clock that jumps forward on sleep: the schedule alone decides the time.
  const fake = { t: 0, now: () => fake.t, sleep: async (ms: number) => void (fake.t += ms) };
  const send = async (bucket: UploadBucket, bytes: number) => {
    for (let sent = 0; sent < bytes; sent += 64 * 1024) await bucket.take(64 * 1024);
  };
  const one = new UploadBucket(1_000_000, fake);
  await send(one, 1_000_000 - (1_000_000 % 65536) + 65536);
  const alone = fake.t;
  fake.t = 0;
  const shared = new UploadBucket(1_000_000, fake);
  const half = (1_000_000 - (1_000_000 % 65536) + 65536) / 2;
  await Promise.all([send(shared, half), send(shared, half)]);
  // 16 chunks of 64 KiB at 1 MB/s: each leaves once paid for (1049 ms), less the 10 ms slack.
  t.true(alone >= 1030, `one connection: ${alone} ms for 1 MiB at 1 MB/s`);
  t.true(fake.t >= alone - 1, `two connections: ${fake.t} ms, not faster than one (${alone} ms)`);
});

test('the upload cap is never exceeded: bytes granted by time t ≤ rate × (t + slack), over several connections and slice sizes', async (t) => {
  const fake = { t: 0, now: () => fake.t, sleep: async (ms: number) => void (fake.t += ms + 0.7) }; // timers fire late
  const rate = 20_000_000;
  const bucket = new UploadBucket(rate, fake);
  t.is(bucket.sliceBytes(), 6 * 64 * 1024, 'about 1/50 s at 20 MB/s, in 64 KiB units');
  t.is(new UploadBucket(100_000_000, fake).sliceBytes(), 1024 * 1024);
  t.is(new UploadBucket(1000, fake).sliceBytes(), 64 * 1024);
  t.is(new UploadBucket(0, fake).sliceBytes(), Number.POSITIVE_INFINITY);
  let granted = 0;
  let worst = 0;
  const conn = async (slice: number, count: number) => {
    for (let i = 0; i < count; i++) {
      await bucket.take(slice);
      granted += slice;
      worst = Math.max(worst, granted - (rate * (fake.t + 10)) / 1000);
    }
  };
  await Promise.all([conn(bucket.sliceBytes(), 40), conn(64 * 1024, 100), conn(1024 * 1024, 10)]);
  t.true(worst <= 0, `at most rate × (t + 10 ms) granted (worst excess ${worst} bytes)`);
  // And late timers cost little: the whole lot at ≥ 97% of the rate.
  t.true(granted / (fake.t / 1000) >= 0.97 * rate, `${(granted / (fake.t / 1000) / 1e6).toFixed(2)} MB/s of 20`);
});

test('the partial sweep removes stale pairs and lone halves of this peer only', async (t) => {
  const dir = tmpDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const put = (n: string) => fs.writeFileSync(path.join(dir, n), 'x');
  const a = '0123456789abcdef';
  const b = 'fedcba9876543210';
  const c = 'aaaaaaaaaaaaaaaa';
  for (const n of [`.treeshare-P-${a}.swarm.part`, `.treeshare-P-${a}.swarm.json`, `.treeshare-P-${b}.swarm.part`, `.treeshare-P-${b}.swarm.json`, `.treeshare-P-${c}.swarm.part`, `.treeshare-Q-${a}.swarm.json`, 'keep.txt']) put(n);
  const old = new Date(Date.now() - 10 * 24 * 3600_000);
  fs.utimesSync(path.join(dir, `.treeshare-P-${a}.swarm.json`), old, old);
  const removed = await sweepPartials(dir, 'P', 7 * 24 * 3600_000);
  t.deepEqual(removed.sort(), [`.treeshare-P-${a}.swarm.json`, `.treeshare-P-${a}.swarm.part`, `.treeshare-P-${c}.swarm.part`].sort());
  t.deepEqual(fs.readdirSync(dir).sort(), [`.treeshare-P-${b}.swarm.json`, `.treeshare-P-${b}.swarm.part`, `.treeshare-Q-${a}.swarm.json`, 'keep.txt'].sort());
});

type Mode = 'stall' | 'too-long' | 'bad-manifest' | 'leave';

/** A fake holder speaking protocol 2 for `body` (pieces of 64 KiB), misbehaving as `mode` says. */
async function fakeHolder(t: import('ava').ExecutionContext, body: Buffer, mode: Mode) {
  const pieceSize = 64 * 1024;
  const pieces: string[] = [];
  for (let o = 0; o < body.length; o += pieceSize) pieces.push(createHash('sha256').update(body.subarray(o, o + pieceSize)).digest('hex'));
  const sha256 = createHash('sha256').update(body).digest('hex');
  const listener = await tcpTransport().listen({
    host: '127.0.0.1', port: 0,
    onConnection: (conn: Connection) => {
      conn.once('message', (m: Message) => {
        if (m.t !== 'swarm-open') return conn.destroy();
        conn.send({ t: 'manifest', name: m.name, size: body.length, sha256, pieceSize, pieces: mode === 'bad-manifest' ? pieces.slice(1) : pieces });
        let served = 0;
        conn.on('message', (w: Message) => {
          if (w.t !== 'want') return;
          for (const i of w.pieces) {
            if (mode === 'stall') return;
            if (mode === 'leave' && served === 2) return conn.destroy();
            conn.write(body.subarray(i * pieceSize, (i + 1) * pieceSize));
            if (mode === 'too-long') conn.write(Buffer.alloc(pieceSize + 1, 7));
            served++;
          }
        });
      });
    },
  });
  t.teardown(() => listener.close());
  return listener.address;
}

for (const [mode, code, reason] of [
  ['stall', 'all-holders-gone', /stalled/],
  ['too-long', 'all-holders-gone', /too-long|bad-piece/],
  ['bad-manifest', 'all-holders-gone', /bad-manifest/],
  ['leave', 'all-holders-gone', /connection closed/],
] as const) {
  test(`a fake holder that does "${mode}" leaves nothing under the final name; the error says why`, async (t) => {
    const share = tmpDir();
    t.teardown(() => fs.rmSync(share, { recursive: true, force: true }));
    const body = randomBytes(8 * 64 * 1024);
    const addr = await fakeHolder(t, body, mode);
    const err = await t.throwsAsync(swarmDownload({
      transport: tcpTransport(), clock: realClock, shareDir: share, self: { id: 'R', host: '127.0.0.1', port: 1 }, name: 'f.bin',
      hits: [{ id: 'FAKE', host: addr.host, port: addr.port, size: body.length, hops: 1 }], idleTimeoutMs: 300, tmpTag: 'R', fsync: false,
    }));
    t.is(errorCode(err), code, err?.message);
    t.regex(err!.message, reason);
    t.false(fs.existsSync(path.join(share, 'f.bin')));
    // Whatever is kept is hidden and holds only verified pieces (listed in the resume file).
    for (const n of fs.readdirSync(share)) t.regex(n, /^\.treeshare-R-[0-9a-f]{16}\.swarm\.(part|json)$/);
  });
}

test('default pipeline depth covers the bandwidth-delay product of a 100 MB/s link, at least 2, at most 16', (t) => {
  t.is(linkDepth(0.2, 1024 * 1024), 2, 'loopback: one piece in service, one queued');
  t.is(linkDepth(0, 1024 * 1024), 2);
  t.is(linkDepth(50, 1024 * 1024), 1 + 5, '50 ms at 100 MB/s is 5 MB in flight');
  t.is(linkDepth(50, 4 * 1024 * 1024), 1 + 2);
  t.is(linkDepth(10_000, 1024 * 1024), 16);
});
