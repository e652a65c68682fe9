/**
 * Issue 22 defects 2 and 9: a holder's upload slots. Requesters that take a
 * slot and then ask for nothing or read nothing lose it (real silent sockets);
 * requesters above --max-uploads wait for a slot instead of failing.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PROTOCOL_VERSION } from '../../core/index.ts';
import { nextEvent, until } from '../helpers.ts';
import { sha, swarmNet } from './swarm-net.ts';
import { fakeChild, RawClient, RawServer } from './wire.ts';

test('16 silent swarm-opens take every slot; a real swarm download still succeeds and every slot comes back', async (t) => {
  t.timeout(60_000);
  const body = randomBytes(512 * 1024);
  const { c, holders } = await swarmNet(t, 1, body, { maxUploads: 16, transferIdleTimeoutMs: 10_000 });
  const h = holders[0]!;
  const silent: RawClient[] = [];
  for (let i = 0; i < 16; i++) {
    const raw = await RawClient.open(t, h.address.port);
    raw.send({ t: 'swarm-open', v: PROTOCOL_VERSION, from: { id: `X${i}`, host: '127.0.0.1', port: 1 }, name: 'f.bin', sha256: null });
    await raw.next((f) => f.t === 'manifest', { what: 'the manifest' });
    silent.push(raw);
  }
  t.is(h.swarmUploads.count, 16);
  // Never a want: after the grace every one of them is idle, and a newcomer may take its slot.
  await until(() => h.swarmUploads.idle === 16, { what: '16 idle links', timeoutMs: 10_000 });
  const r = await c.add('R', { swarm: 'always' });
  const res = await r.download('f.bin');
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
  t.deepEqual(res.swarm?.sources.map((s) => s.id), ['H1']);
  // The rest are closed by the idle timeout: every slot is free again.
  await Promise.all(silent.map((s) => s.closedP));
  const codes = silent.map((s) => s.frames.find((f) => f.t === 'error')?.code);
  t.true(codes.every((x) => x === 'busy' || x === 'timeout'), JSON.stringify(codes));
  t.true(codes.includes('timeout'));
  await until(() => h.swarmUploads.count === 0, { what: 'every upload slot free', timeoutMs: 20_000 });
});

test('offer path: a requester that acks and then reads nothing is dropped after the idle timeout, freeing the slot', async (t) => {
  t.timeout(60_000);
  const body = randomBytes(16 * 1024 * 1024); // far more than the socket buffers take
  const { c, holders } = await swarmNet(t, 1, body, { maxUploads: 1, transferIdleTimeoutMs: 1500 });
  const h = holders[0]!;
  const origin = await RawServer.open(t);
  const child = await fakeChild(t, h.address, { id: 'Z', port: origin.port });
  const failed = nextEvent<[{ message: string }]>(h, 'log', (l) => /upload of f\.bin to Z failed: .*read nothing/.test(l.message), 30_000);
  child.send({ t: 'query', qid: 'Z:1', name: 'f.bin', origin: { id: 'Z', host: '127.0.0.1', port: origin.port }, ttl: 8, hops: 0, budget: 5000, want: 'download' });
  const conn = await origin.accepted(0);
  await conn.next((f) => f.t === 'offer', { what: 'the offer' });
  conn.sock.pause(); // acks, then never reads
  conn.send({ t: 'ack' });
  await failed;
  conn.sock.resume();
  await conn.closedP;
  child.sock.destroy(); // the fake child answers no floods: out of the tree
  // Its one upload slot is free again: a real requester gets the file.
  const r = await c.add('R', { swarm: false });
  await r.download('f.bin');
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
});

test('offer path: 200 concurrent 4 KiB downloads from one holder with --max-uploads 16 all succeed (the rest wait for a slot)', async (t) => {
  t.timeout(120_000);
  const files = Array.from({ length: 200 }, (_, i) => ({ name: `f${i}.bin`, body: randomBytes(4096) }));
  const { c, holders } = await swarmNet(t, 1, Buffer.alloc(1), { maxUploads: 16 });
  for (const f of files) fs.writeFileSync(path.join(holders[0]!.opts.share, f.name), f.body);
  const r = await c.add('R', { swarm: false });
  const results = await Promise.allSettled(files.map((f) => r.download(f.name)));
  const failed = results.flatMap((x, i) => (x.status === 'rejected' ? [`${files[i]!.name}: ${String(x.reason)}`] : []));
  t.deepEqual(failed, []);
  for (const f of files) t.is(sha(fs.readFileSync(path.join(r.opts.share, f.name))), sha(f.body));
});

test('a swarm requester that leaves while the holder hashes frees its slot at once; the hashing goes on for the next', async (t) => {
  t.timeout(120_000);
  const { holders } = await swarmNet(t, 1, Buffer.alloc(1), { maxUploads: 1, preparingIntervalMs: 20 });
  const h = holders[0]!;
  // 2 GiB, sparse: seconds of hashing, no disk.
  fs.truncateSync(path.join(h.opts.share, 'f.bin'), 2 * 1024 ** 3);
  const open = { t: 'swarm-open', v: PROTOCOL_VERSION, from: { id: 'X', host: '127.0.0.1', port: 1 }, name: 'f.bin', sha256: null };
  const first = await RawClient.open(t, h.address.port);
  first.send(open);
  await first.next((f) => f.t === 'hashing', { what: 'hashing progress' });
  t.is(h.swarmUploads.count, 1);
  first.sock.destroy();
  await until(() => h.swarmUploads.count === 0, { what: 'the slot freed', timeoutMs: 10_000 });
  // The one slot is free while the file is still being hashed: the next requester is served and sees the progress.
  const second = await RawClient.open(t, h.address.port);
  second.send(open);
  const f = await second.next((x) => x.t === 'hashing' || x.t === 'manifest' || x.t === 'error', { what: 'an answer' });
  t.is(f.t, 'hashing', 'the slot came back only once the hashing had ended');
  const m = await second.next((x) => x.t === 'manifest', { what: 'the manifest', timeoutMs: 100_000 });
  t.is(m.size, 2 * 1024 ** 3);
});
