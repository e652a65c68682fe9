/**
 * Backpressure is not failure (issue 11 item 1): a flood frame queued behind a
 * full send buffer is still delivered, so the neighbour is waited on and its
 * answer counts. Only a link that closes (or the deadline) makes a subtree
 * `missing`; the queue stays bounded, because a neighbour that does not read
 * gets its link closed once more than `maxBufferedBytes` wait for it.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { MemoryNetwork, PROTOCOL_VERSION, type Message, type SearchResult } from '../../core/index.ts';
import { cluster, nextEvent } from '../helpers.ts';
import { RawClient } from './wire.ts';

test('thousands of concurrent searches over a link with latency: frames queued behind backpressure are delivered, every answer has the hit and nothing missing', async (t) => {
  // 100 ms each way: everything A sends within 100 ms waits in the link, past its 1 MiB high-water mark.
  const net = new MemoryNetwork({ latencyMs: 100 });
  const c = await cluster({ transport: net.transport(), peer: { heartbeatMs: 0, announceMs: 0, floodTimeoutMs: 60_000 } });
  t.teardown(() => c.close());
  const a = await c.add('A');
  // B's per-neighbour flood rate limit lifted, as in the reported reproduction.
  const b = await c.add('B', { queryRatePerSec: 1e9, queryBurst: 1e9 });
  const name = `${'long-name-'.repeat(20)}.bin`;
  fs.writeFileSync(path.join(b.opts.share, name), 'x');
  const link = a.links.children.get('B')!;
  t.truthy(link, 'B is A\'s child');
  // Watch A's side of the link: the test must really run into backpressure.
  let refused = 0;
  let peak = 0;
  const watch = (t: Message['t'], ok: boolean) => {
    if (!ok && t === 'query') refused++;
    peak = Math.max(peak, link.conn.writableLength);
    return ok;
  };
  const send = link.conn.send.bind(link.conn);
  link.conn.send = (m: Message) => watch(m.t, send(m));
  // Forwarded floods are encoded once and sent as frames.
  const sendFrame = link.conn.sendFrame.bind(link.conn);
  link.conn.sendFrame = (f) => watch(f.t, sendFrame(f));
  const N = 4000;
  const results: SearchResult[] = await Promise.all(Array.from({ length: N }, () => a.search(name)));
  t.true(refused > 0, `send() reported backpressure (${refused} queries queued behind a full buffer, peak ${peak} bytes)`);
  const bad = results.filter((r) => r.missing.length > 0 || r.hits.length !== 1 || r.hits[0]!.id !== 'B');
  t.is(bad.length, 0, `answers without the hit or with missing: ${JSON.stringify(bad.slice(0, 3).map((r) => ({ hits: r.hits.map((h) => h.id), missing: r.missing })))}`);
  t.true(results.every((r) => r.reached === 2 && r.messages === 2));
  // The wire agrees: every query A wrote reached B, and B answered each one.
  t.is(b.wireFrames().received.query, N);
  t.is(b.wireFrames().sent['query-reply'], N);
  t.is(a.wireFrames().received['query-reply'], N);
});

test('a neighbour that never reads: its link is closed once the queue passes its bound, and only then is its subtree missing', async (t) => {
  const bound = 256 * 1024;
  const c = await cluster({ peer: { heartbeatMs: 0, announceMs: 0, floodTimeoutMs: 120_000, connection: { maxBufferedBytes: bound } } });
  t.teardown(() => c.close());
  const a = await c.add('A');
  // A fake child that joins and then never reads another byte.
  const mute = await RawClient.open(t, a.address.port);
  mute.send({ t: 'join', v: PROTOCOL_VERSION, id: 'MUTE', host: '127.0.0.1', port: 4000, subtree: 1 });
  t.is((await mute.next()).t, 'accept');
  mute.sock.pause();
  const overflow = nextEvent<[{ code: string; message: string }]>(a, 'protocol-error', (e) => e.code === 'buffer-overflow', 60_000);
  const gone = nextEvent<[{ id: string }]>(a, 'child-left', (e) => e.id === 'MUTE', 60_000);
  let closedAt = Infinity;
  void gone.then(() => (closedAt = performance.now()));
  const link = a.links.children.get('MUTE')!;
  const name = 'n'.repeat(250);
  const searches: Promise<{ r: SearchResult; at: number }>[] = [];
  // Search in batches until A gives up on MUTE: the kernel's socket buffers fill first, then A's queue.
  let closed = false;
  void gone.then(() => (closed = true));
  for (let batch = 0; batch < 200 && !closed && !link.conn.closed; batch++) {
    for (let i = 0; i < 500; i++) searches.push(a.search(name).then((r) => ({ r, at: performance.now() })));
    await new Promise((r) => setImmediate(r));
  }
  const [err] = await overflow;
  t.regex(err.message, /not reading/);
  await gone;
  const done = await Promise.all(searches);
  t.true(done.length > 0);
  // Nobody was declared missing while the frames were merely queued: every search ended after the close.
  t.true(done.every((d) => d.at >= closedAt), 'no search completed before the link closed');
  t.true(done.every((d) => d.r.missing.length === 1 && d.r.missing[0] === 'MUTE'));
  t.true(done.every((d) => d.r.reached === 1));
  t.false(a.links.children.has('MUTE'));
  // A kept serving: a search after the close is answered by A alone, nothing missing.
  const after = await a.search(name);
  t.deepEqual(after.missing, []);
});
