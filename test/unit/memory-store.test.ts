/**
 * The memory share store (simulation): seeded content readable by range,
 * hashed once per content, and a download between two peers over the memory
 * transport that lands in the requester's store as the same content, with no
 * folder anywhere.
 */
import { createHash } from 'node:crypto';
import test from 'ava';
import { MemoryNetwork, MemoryShares, Metaserver, Peer } from '../../core/index.ts';

test('content is deterministic, any range reads the same bytes as the whole, and the hash is computed once', async (t) => {
  const w = new MemoryShares();
  const a = w.content(100_003, 42);
  const b = w.content(100_003, 42);
  const whole = Buffer.alloc(a.size);
  t.is(a.fill(whole, 0, whole.length, 0), a.size);
  const again = Buffer.alloc(b.size);
  b.fill(again, 0, again.length, 0);
  t.true(whole.equals(again), 'same seed, same bytes');
  const other = Buffer.alloc(a.size);
  w.content(100_003, 43).fill(other, 0, other.length, 0);
  t.false(whole.equals(other), 'another seed, other bytes');
  // Unaligned ranges, at the end too.
  for (const [pos, len] of [[0, 1], [1, 7], [3, 4096], [99_999, 10], [50_001, 33]] as const) {
    const part = Buffer.alloc(len);
    const n = a.fill(part, 0, len, pos);
    t.is(n, Math.min(len, a.size - pos));
    t.true(part.subarray(0, n).equals(whole.subarray(pos, pos + n)), `range ${pos}+${len}`);
  }
  const store = w.store('A', [{ name: 'x.bin', content: a }]);
  const f = await store.open('x.bin');
  t.is(await f.knownSha256(), undefined);
  const sha = await f.sha256();
  t.is(sha, createHash('sha256').update(whole).digest('hex'));
  t.is(await f.knownSha256(), sha);
  t.is(w.hashedBytes, a.size);
  await f.sha256();
  t.is(w.hashedBytes, a.size, 'hashed once');
  t.deepEqual(await store.list(), [{ name: 'x.bin', size: a.size }]);
  t.deepEqual(await store.stat('x.bin'), { size: a.size });
  t.is(await store.stat('../x.bin'), null);
  await t.throwsAsync(store.open('nope.bin'), { message: /not in the share/ });
  await t.throwsAsync(store.open('../etc'), { message: /refused file name/ });
});

test('a download between memory-store peers moves the bytes over the memory link and lands as the same content', async (t) => {
  const net = new MemoryNetwork({ bandwidthBytesPerSec: 50e6 });
  const transport = net.transport();
  const w = new MemoryShares();
  const ms = new Metaserver({ host: '127.0.0.1', port: 0, transport });
  const meta = await ms.start();
  const content = w.content(3 * 1024 * 1024 + 5, 7);
  const holder = new Peer({ id: 'H', port: 0, meta, transport, store: w.store('H', [{ name: 'big.bin', content }]), heartbeatMs: 0, announceMs: 0 });
  const reqStore = w.store('R');
  const req = new Peer({ id: 'R', port: 0, meta, transport, store: reqStore, heartbeatMs: 0, announceMs: 0 });
  t.teardown(async () => {
    await Promise.all([holder.stop(), req.stop()]);
    await ms.stop();
  });
  await holder.join();
  await req.join();
  const d = await req.download('big.bin');
  t.true(d.verified);
  t.is(d.bytes, content.size);
  t.is(d.readPath, 'stream');
  t.is(d.sha256, await content.hash(w));
  t.is(await reqStore.sha256('big.bin'), d.sha256);
  t.deepEqual(await req.files(), [{ name: 'big.bin', size: content.size }]);
  t.is(reqStore.temps, 0, 'no temporary left');
  // At 50 MB/s the 3 MiB body takes at least ~63 ms on the link.
  t.true(d.durationMs >= 60, `duration ${d.durationMs} ms`);
  await t.throwsAsync(req.download('big.bin'), { message: /already exists/ });
});
