/**
 * Topology and search floods over real TCP (docs/PROTOCOL.md, flows E–H): topo equals the real
 * tree; search from every peer finds pwd1.txt at S3 and the download's bytes
 * equal the original; exact-name matching; a definite not-found that counts
 * the peers searched; exactly N−1 query messages (2(N−1) in all) on an
 * N-peer tree, counted on the wire; and a query delivered twice handled once.
 */
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { NotFoundError, PROTOCOL_VERSION, renderTree, treeFromNodes, type Peer, type TopoNode } from '../../core/index.ts';
import { cluster, demoCluster, until, type Cluster } from '../helpers.ts';
import { checkTree } from '../../testnet/tree.ts';
import { countingTransport, RawClient } from './wire.ts';
import { demoFile } from '../../testnet/demo-shares.ts';

const ORIGINAL = demoFile('S3', 'pwd1.txt');

async function demo(t: ExecutionContext, o: Parameters<typeof demoCluster>[0] = {}): Promise<Cluster> {
  const c = await demoCluster(o);
  t.teardown(() => c.close());
  return c;
}

/** The topology result must equal the tree the peers themselves hold. */
function sameAsRealTree(t: ExecutionContext, nodes: TopoNode[], peers: Peer[]): void {
  t.is(nodes.length, peers.length);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const p of peers) {
    const s = p.state();
    const n = byId.get(p.id);
    t.truthy(n, `${p.id} in topo`);
    if (!n) continue;
    t.deepEqual({ host: n.host, port: n.port }, s.address, `${p.id} address`);
    t.is(n.parent, s.parent?.id ?? null, `${p.id} parent`);
    t.deepEqual([...n.children].sort(), s.children.map((c) => c.id).sort(), `${p.id} children`);
    t.is(n.depth, s.depth, `${p.id} depth`);
  }
  t.true(checkTree(nodes).ok);
}

test('topo of the five demo peers equals the real tree, from every peer; renders as an indented tree', async (t) => {
  const c = await demo(t);
  for (const p of c.peers) {
    const topo = await p.topo();
    t.true(topo.complete, `from ${p.id}`);
    t.deepEqual(topo.missing, []);
    t.is(topo.reached, 5);
    t.is(topo.messages, 8, '2(N-1) messages');
    t.is(topo.duplicates, 0);
    t.true(topo.completionMs >= 0 && topo.firstHitMs !== null && topo.firstHitMs <= topo.completionMs);
    sameAsRealTree(t, topo.nodes, c.peers);
  }
  const topo = await c.peer('S1').topo();
  t.deepEqual(topo.nodes.find((n) => n.id === 'S3')?.files, 2, 'S3 shares 2 files');
  // Rendering: one line per peer, the root first at no indent, children indented below.
  const text = renderTree(topo.nodes);
  const lines = text.split('\n');
  t.is(lines.length, 5);
  t.regex(lines[0]!, /^S1 {2}127\.0\.0\.1:\d+ {2}depth 0 {2}2 files$/);
  for (const p of c.peers.filter((x) => x.id !== 'S1')) {
    const l = lines.find((x) => x.includes(`${p.id}  `))!;
    t.regex(l, new RegExp(`[├└]─ ${p.id}  127\\.0\\.0\\.1:${p.address.port}  depth ${p.depth} `));
  }
  const view = treeFromNodes(topo.nodes);
  t.is(view.length, 1);
  t.is(view[0]!.id, 'S1');
  t.is(JSON.parse(JSON.stringify(view))[0].children.length, c.peer('S1').state().children.length, 'JSON-ready nesting');
});

test('topo of 50 peers equals the real tree and a search sends exactly N−1 query messages (counted on the wire)', async (t) => {
  const wire = countingTransport();
  const c = await cluster({ transport: wire.transport });
  t.teardown(() => c.close());
  const N = 50;
  for (let i = 0; i < N; i++) await c.add(`N${i}`);
  fs.writeFileSync(path.join(c.dir, 'N37', 'needle.txt'), 'found me\n');
  const topo = await c.peer('N20').topo();
  t.true(topo.complete);
  t.is(topo.reached, N);
  t.is(topo.messages, 2 * (N - 1));
  sameAsRealTree(t, topo.nodes, c.peers);

  // Frames counted at the transport (every Connection counts what it writes and reads, by type).
  const peerSums = (dir: 'sent' | 'received', t: 'query' | 'query-reply') => c.peers.reduce((n, p) => n + (p.wireFrames()[dir][t] ?? 0), 0);
  for (const from of ['N0', 'N20', 'N49']) {
    wire.reset();
    const before = { q: peerSums('sent', 'query'), r: peerSums('sent', 'query-reply'), qIn: peerSums('received', 'query'), rIn: peerSums('received', 'query-reply') };
    const r = await c.peer(from).search('needle.txt');
    t.is(wire.count('query'), N - 1, `${from}: queries on the wire`);
    t.is(wire.count('query-reply'), N - 1, `${from}: replies on the wire`);
    t.is(peerSums('sent', 'query') - before.q, N - 1, 'queries written, summed over the peers');
    t.is(peerSums('sent', 'query-reply') - before.r, N - 1, 'replies written, summed over the peers');
    t.is(peerSums('received', 'query') - before.qIn, N - 1, 'queries read');
    t.is(peerSums('received', 'query-reply') - before.rIn, N - 1, 'replies read');
    t.is(r.messages, 2 * (N - 1), 'the counters agree with the wire');
    t.is(r.reached, N);
    t.is(r.duplicates, 0);
    t.deepEqual(r.missing, []);
    t.deepEqual(r.hits.map((h) => h.id), ['N37']);
    t.deepEqual({ host: r.hits[0]!.host, port: r.hits[0]!.port }, c.peer('N37').address);
    t.true(r.maxHops >= 1 && r.maxHops <= 2 * Math.max(...c.peers.map((p) => p.depth)));
    t.true(r.firstHitMs !== null && r.firstHitMs <= r.completionMs);
  }
});

test('search from every peer finds pwd1.txt at S3; downloads from every other peer equal the original', async (t) => {
  const c = await demo(t);
  const s3 = c.peer('S3');
  for (const p of c.peers) {
    const r = await p.search('pwd1.txt');
    t.deepEqual(r.hits.map((h) => h.id), ['S3'], `from ${p.id}`);
    t.deepEqual({ host: r.hits[0]!.host, port: r.hits[0]!.port }, s3.address);
    t.is(r.hits[0]!.size, ORIGINAL.length);
    t.is(r.reached, 5);
    t.is(r.messages, 8);
    if (p === s3) t.is(r.hits[0]!.hops, 0);
  }
  const others = c.peers.filter((p) => p !== s3);
  const results = await Promise.all(others.map((p) => p.download('pwd1.txt')));
  for (const [i, d] of results.entries()) {
    const p = others[i]!;
    t.true(d.verified);
    t.is(d.bytes, ORIGINAL.length);
    t.deepEqual(fs.readFileSync(path.join(p.opts.share, 'pwd1.txt')), ORIGINAL, `${p.id}'s copy`);
    // Concurrent: each got it from S3 or from a peer that already finished it.
    t.true(['S3', ...others.map((o) => o.id)].includes(d.holder.id) && d.holder.id !== p.id);
  }
  t.true(results.some((d) => d.holder.id === 'S3'));
  // The downloaded file is shared: a new search finds every copy.
  const r = await c.peer('S1').search('pwd1.txt');
  t.deepEqual(r.hits.map((h) => h.id).sort(), ['S1', 'S2', 'S3', 'S4', 'S5']);
});

test('names match whole and exactly: pwd1 does not find pwd1.txt', async (t) => {
  const c = await demo(t);
  const s1 = c.peer('S1');
  for (const name of ['pwd1', 'PWD1.TXT', 'pwd1.tx', 'wd1.txt', 'pwd1.txt.bak', 'pwd']) {
    const r = await s1.search(name);
    t.deepEqual(r.hits, [], name);
    t.is(r.reached, 5, `${name}: a definite answer from all peers`);
  }
  t.deepEqual((await s1.search('pwd1.txt')).hits.map((h) => h.id), ['S3']);
  const err = await t.throwsAsync(s1.download('pwd1'), { instanceOf: NotFoundError });
  t.is(err!.searched, 5);
  t.false(fs.existsSync(path.join(s1.opts.share, 'pwd1')));
  // A name with surrounding space is not the same name either: refused before searching.
  t.is((await t.throwsAsync(s1.search('pwd1.txt ')) as { code?: string }).code, 'bad-name');
});

test('a not-found answer is definite and counts the peers searched', async (t) => {
  const c = await demo(t);
  for (const p of c.peers) {
    const r = await p.search('nope.txt');
    t.deepEqual(r.hits, []);
    t.is(r.reached, 5);
    t.deepEqual(r.missing, [], 'every subtree answered');
    t.is(r.firstHitMs, null);
  }
  const err = await t.throwsAsync(c.peer('S4').download('nope.txt'), { instanceOf: NotFoundError });
  t.is(err!.code, 'not-found');
  t.is(err!.searched, 5);
  t.is(err!.message, 'no peer has "nope.txt" (searched 5 peers)');
  // A lone peer: searched 1 peer.
  const solo = await cluster();
  t.teardown(() => solo.close());
  const a = await solo.add('A');
  const e1 = await t.throwsAsync(a.download('x.txt'), { instanceOf: NotFoundError });
  t.is(e1!.message, 'no peer has "x.txt" (searched 1 peer)');
});

test('a search whose subtree stops answering still ends, naming the missing peer', async (t) => {
  const c = await cluster({ peer: { floodTimeoutMs: 800 } });
  t.teardown(() => c.close());
  const a = await c.add('A');
  // A fake child that joins A and never answers floods.
  const raw = await RawClient.open(t, a.address.port);
  raw.send({ t: 'join', v: PROTOCOL_VERSION, id: 'MUTE', host: '127.0.0.1', port: 4000, subtree: 1 });
  t.is((await raw.next()).t, 'accept');
  await c.add('B');
  const r = await a.search('nothing.txt');
  t.deepEqual(r.missing, ['MUTE']);
  t.is(r.reached, 2);
  t.true(r.completionMs < 5000);
  t.is((await raw.next((f) => f.t === 'query')).name, 'nothing.txt');
});

test('a query delivered twice is handled once: one real answer, one duplicate answer', async (t) => {
  const c = await demo(t);
  // Join a fake child at a peer with a free slot, speaking the wire protocol over a raw socket.
  const parent = c.peers.find((p) => p.state().children.length < p.opts.maxChildren)!;
  const raw = await RawClient.open(t, parent.address.port);
  raw.send({ t: 'join', v: PROTOCOL_VERSION, id: 'FAKE', host: '127.0.0.1', port: 4000, subtree: 1 });
  const acc = await raw.next();
  t.is(acc.t, 'accept');
  t.is(acc.id, parent.id);
  await until(() => parent.state().children.some((x) => x.id === 'FAKE'), { what: 'FAKE joined' });
  const hits: string[] = [];
  for (const p of c.peers) p.on('hit', (h) => hits.push(`${p.id}:${h.holder.id}`));
  const q = { t: 'query', qid: 'FAKE:dup-1', name: 'pwd1.txt', origin: { id: 'FAKE', host: '127.0.0.1', port: 4000 }, ttl: 255, hops: 0, budget: 5000, want: 'search' };
  // Both copies in one write: the second reaches the peer while the first is still in flight.
  await raw.write(JSON.stringify(q) + '\n' + JSON.stringify(q) + '\n');
  const first = await raw.next((f) => f.t === 'query-reply' && f.qid === q.qid);
  const second = await raw.next((f) => f.t === 'query-reply' && f.qid === q.qid && f !== first);
  const [real, dup] = (first.duplicates === 1 ? [second, first] : [first, second]) as Record<string, unknown>[];
  t.is(dup!.duplicates, 1);
  t.is(dup!.reached, 0);
  t.deepEqual(dup!.hits, []);
  t.is(real!.duplicates, 0);
  t.is(real!.reached, 5, 'every real peer handled it once');
  t.deepEqual((real!.hits as { id: string }[]).map((h) => h.id), ['S3'], 'one hit, not two');
  t.is(real!.messages, 2 * 4 + 1, 'the subtree below FAKE: 4 queries, 4 replies, plus this reply');
  t.deepEqual(real!.missing, []);
  // No peer forwarded the query back to FAKE, and nothing else arrived.
  t.false(raw.frames.some((f) => f.t === 'query'));
  t.is(raw.frames.filter((f) => f.t === 'query-reply').length, 2);
  // A third copy later is a duplicate too.
  const n = raw.frames.length;
  raw.send(q);
  const third = await raw.next((f) => f.t === 'query-reply', { from: n });
  t.is(third.duplicates, 1);
  t.deepEqual(hits, [], 'no local search saw it');
});

test('forwarders never change the requester\'s address, and hop counts grow by one per hop', async (t) => {
  const c = await demo(t);
  // A fake leaf under the deepest peer sees the query of S1 as forwarded by the tree.
  const leafParent = [...c.peers].sort((a, b) => b.depth - a.depth).find((p) => p.state().children.length < p.opts.maxChildren)!;
  const raw = await RawClient.open(t, leafParent.address.port);
  raw.send({ t: 'join', v: PROTOCOL_VERSION, id: 'SPY', host: '127.0.0.1', port: 4001, subtree: 1 });
  t.is((await raw.next()).t, 'accept');
  await until(() => leafParent.state().children.some((x) => x.id === 'SPY'), { what: 'SPY joined' });
  const s1 = c.peer('S1');
  const search = s1.search('song.txt');
  const q = await raw.next((f) => f.t === 'query');
  t.deepEqual(q.origin, s1.ref);
  t.is(q.hops, leafParent.depth + 1 - s1.depth);
  t.true((q.budget as number) < s1.opts.floodTimeoutMs);
  raw.send({ t: 'query-reply', qid: q.qid, hits: [], missing: [], reached: 1, messages: 1, duplicates: 0, maxHops: q.hops });
  const r = await search;
  t.deepEqual(r.hits.map((h) => h.id), ['S5']);
  t.is(r.reached, 6);
});
