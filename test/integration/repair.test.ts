/**
 * Leave and repair (issue 4), in-process peers over real TCP sockets on
 * port 0: graceful leaves (leaf, inner, root, two at once), floods and
 * downloads caught by a leave, stale offers, metaserver loss and restart,
 * and the repair-time figures for leave and crash in a 15-peer tree.
 * Process-level failures (kill -9, SIGSTOP) are in repair-process.test.ts.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection, errorCode, Metaserver, Peer, PROTOCOL_VERSION, tcpTransport, type RepairRecord } from '../../core/index.ts';
import { nextEvent, tmpDir, until } from '../helpers.ts';
import { addPeers, assertOneTree, eventMs, fmt, IDS, makeCluster, repairedAll, stats, subtreeOf } from './repair-kit.ts';

const without = (ids: readonly string[], ...gone: string[]) => ids.filter((id) => !gone.includes(id));

test.serial('graceful leave of a leaf: one tree of the other 14', async (t) => {
  const c = await makeCluster(t);
  const peers = await addPeers(c, IDS);
  const before = await peers[0]!.topo();
  const leaf = before.nodes.find((n) => n.children.length === 0 && n.depth === 3)!;
  t.truthy(leaf, 'the 15-peer tree has a leaf at depth 3');
  const victim = c.peer(leaf.id);
  const parent = c.peer(leaf.parent!);
  const childLeft = nextEvent<[{ id: string; reason: string }]>(parent, 'child-left', (e) => e.id === victim.id);
  const left = nextEvent(victim, 'left');
  await victim.leave();
  await left;
  const [ev] = await childLeft;
  t.is(ev.reason, 'left');
  t.false(victim.state().joined);
  const rest = without(IDS, victim.id);
  await assertOneTree(t, c.peer('P01'), rest, c.meta, without(rest, 'P01').at(-1));
  t.deepEqual(peers.filter((p) => p !== victim).flatMap((p) => p.repairs), [], 'no peer needed a repair');
});

test.serial('graceful leave of an inner node: its children reattach with their subtrees', async (t) => {
  const c = await makeCluster(t);
  await addPeers(c, IDS);
  const victim = c.peer('P02');
  const before = await c.peer('P01').topo();
  const kids = before.nodes.find((n) => n.id === 'P02')!.children;
  t.is(kids.length, 2, 'P02 is an inner node with two children');
  const subtrees = new Map(kids.map((k) => [k, subtreeOf(before.nodes, k)]));
  const recs = repairedAll(kids.map((k) => c.peer(k)));
  await victim.leave();
  const rs = await recs;
  for (const r of rs) {
    t.is(r.cause, 'parent-left');
    t.is(r.lost, 'P02');
    t.truthy(r.newParent);
    t.true((r.ms ?? -1) >= 0);
  }
  t.log(`inner leave repaired in ${fmt(eventMs(rs))} (${rs.map((r) => `${r.newParent?.id}←${kids[rs.indexOf(r)]}`).join(', ')})`);
  const rest = without(IDS, 'P02');
  const after = await assertOneTree(t, c.peer('P15'), rest, c.meta, 'P01');
  for (const [k, sub] of subtrees) {
    const now = subtreeOf(after, k);
    t.deepEqual(sub.filter((id) => !now.includes(id)), [], `${k} kept its whole subtree (now ${now.join(',')})`);
  }
});

test.serial('graceful leave of the root: the largest child becomes root, the other rejoins through it', async (t) => {
  const c = await makeCluster(t);
  await addPeers(c, IDS);
  const root = c.peer('P01');
  const kids = root.state().children.map((k) => k.id);
  t.is(kids.length, 2);
  const recs = repairedAll(kids.map((k) => c.peer(k)));
  await root.leave();
  const rs = await recs;
  const roots = kids.filter((k) => c.peer(k).state().parent === null);
  t.is(roots.length, 1, 'exactly one former child is the new root');
  t.is(rs.find((r) => r.newParent === null) !== undefined, true, 'one repair record says "reattached as the root"');
  t.log(`root leave repaired in ${fmt(eventMs(rs))}`);
  const rest = without(IDS, 'P01');
  const nodes = await assertOneTree(t, c.peer('P15'), rest, c.meta, 'P08');
  t.is(nodes.find((n) => n.parent === null)?.id, roots[0]);
  t.is(c.meta.registryList().find((e) => e.parent === null)?.id, roots[0], 'the registry names the new root');
  // The tree is still joinable: a newcomer gets a referral and lands in it.
  await addPeers(c, ['N1']);
  await assertOneTree(t, c.peer('N1'), [...rest, 'N1'], c.meta, 'P15');
});

test.serial('a search and a topology running during a leave complete and name the subtree that did not answer', async (t) => {
  const c = await makeCluster(t, { peer: { floodTimeoutMs: 8000 } });
  // P04 (a child of P02) answers slowly, so the floods are still waiting on P02's subtree when P02 leaves.
  await addPeers(c, IDS.slice(0, 3));
  const slow = await c.add('P04', { transport: tcpTransport({ shape: { latencyMs: 400 } }) });
  fs.writeFileSync(path.join(c.dir, 'P04', 'P04.txt'), 'x\n');
  await addPeers(c, IDS.slice(4));
  const before = await c.peer('P01').topo();
  t.is(before.nodes.find((n) => n.id === 'P04')?.parent, 'P02');
  const lost = subtreeOf(before.nodes, 'P02');
  const seen0 = slow.flood.seen.size;
  const topo = c.peer('P01').topo();
  const search = c.peer('P01').search('P09.txt');
  await until(() => slow.flood.seen.size >= seen0 + 2, { what: 'both floods to reach P04' });
  await c.peer('P02').leave();
  const [tr, sr] = await Promise.all([topo, search]);
  t.false(tr.complete, 'the topology says it is incomplete');
  t.deepEqual(tr.missing, ['P02'], 'and names the subtree that did not answer');
  t.true(tr.completionMs < 8000, `it ended on the leave (${tr.completionMs.toFixed(0)} ms), not on the flood deadline`);
  const absent = IDS.filter((id) => !tr.nodes.some((n) => n.id === id));
  t.deepEqual(absent.filter((id) => !lost.includes(id)), [], 'every peer absent from the answer is in the named subtree');
  t.deepEqual(sr.missing, ['P02']);
  t.is(sr.reached, IDS.length - lost.length);
  t.true(sr.completionMs < 8000);
  await assertOneTree(t, c.peer('P01'), without(IDS, 'P02'), c.meta, 'P09');
});

const twoLeaves = test.macro(async (t, pair: [string, string]) => {
  const c = await makeCluster(t);
  await addPeers(c, IDS);
  const [a, b] = pair.map((id) => c.peer(id)) as [Peer, Peer];
  const recs: RepairRecord[] = [];
  for (const p of c.peers) p.on('repaired', (r) => recs.push(r));
  await Promise.all([a.leave(), b.leave()]);
  const rest = without(IDS, ...pair);
  await assertOneTree(t, c.peer(rest.at(-1)!), rest, c.meta, rest[0]);
  t.true(recs.length > 0);
  t.log(`${pair.join(' and ')} left together; ${recs.length} repairs, last one ${fmt(Math.max(...recs.map((r) => r.reattachedAt!)) - Math.min(...recs.map((r) => r.detectedAt)))} after the first detection`);
});
test.serial('two leaves at the same moment: a parent and its child', twoLeaves, ['P02', 'P04']);
test.serial('two leaves at the same moment: the root and its successor', twoLeaves, ['P01', 'P02']);
test.serial('two leaves at the same moment: two inner peers in different branches', twoLeaves, ['P02', 'P03']);

test.serial('a download whose holder leaves fails with no partial file; a retry from a second holder succeeds', async (t) => {
  const c = await makeCluster(t);
  await addPeers(c, IDS.slice(0, 13));
  const holder = await c.add('H1', { transport: tcpTransport({ shape: { bandwidthBytesPerSec: 4_000_000 } }) });
  const second = await c.add('H2');
  const data = randomBytes(16 * 1024 * 1024);
  const sha = createHash('sha256').update(data).digest('hex');
  fs.writeFileSync(path.join(c.dir, 'H1', 'big.bin'), data);
  const requester = c.peer('P01');
  const share = path.join(c.dir, 'P01');
  const started = nextEvent<[{ bytes: number }]>(requester, 'progress', (p) => p.bytes >= 1_000_000);
  const first = requester.download('big.bin');
  first.catch(() => undefined);
  await started;
  // A second holder appears only now, so the first offer certainly came from H1.
  fs.copyFileSync(path.join(c.dir, 'H1', 'big.bin'), path.join(c.dir, 'H2', 'big.bin'));
  const cut = nextEvent<[{ message: string }]>(holder, 'log', (l) => /upload of big\.bin to P01 failed/.test(l.message));
  const t0 = performance.now();
  let failMs = -1;
  first.catch(() => (failMs = performance.now() - t0));
  await holder.leave();
  const leaveMs = performance.now() - t0;
  const err = await t.throwsAsync(first);
  t.is(errorCode(err), 'truncated', String(err?.message));
  t.regex(String(err?.message), /H1/, 'the error names the holder');
  t.regex((await cut)[0].message, /aborted/, 'the leaving holder cancelled its upload');
  t.log(`download failed ${fmt(failMs)} after the holder's leave began (leave took ${fmt(leaveMs)}): ${err?.message}`);
  t.deepEqual(fs.readdirSync(share).filter((f) => f === 'big.bin' || f.startsWith('.treeshare-')), [], 'no partial or temporary file');
  // Shares are listed through a short cache: wait until H2 sees its new file.
  await until(() => second.transfers.localHas('big.bin'), { what: 'H2 to list big.bin' });
  const d = await requester.download('big.bin');
  t.is(d.holder.id, 'H2');
  t.true(d.verified);
  t.is(d.sha256, sha);
  t.is(createHash('sha256').update(fs.readFileSync(path.join(share, 'big.bin'))).digest('hex'), sha);
  await assertOneTree(t, requester, [...IDS.slice(0, 13), 'H2'], c.meta, 'P13');
});

/** A port with nothing listening on it. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test.serial('an offer for a requester that has gone fails cleanly on the holder side', async (t) => {
  const c = await makeCluster(t);
  await addPeers(c, IDS.slice(0, 14));
  const holder = await c.add('P15', { maxUploads: 1 });
  fs.writeFileSync(path.join(c.dir, 'P15', 'P15.txt'), 'file of P15\n');
  fs.writeFileSync(path.join(c.dir, 'P15', 'wanted.txt'), 'wanted\n');
  // A requester that has gone: its query is still in the overlay, its address answers nothing.
  const gone = await deadPort();
  const conn: Connection = await tcpTransport().connect(holder.address);
  t.teardown(() => conn.destroy());
  const msgs: { t: string }[] = [];
  conn.on('message', (m) => msgs.push(m));
  conn.send({ t: 'join', v: PROTOCOL_VERSION, id: 'Z', host: '127.0.0.1', port: gone, subtree: 1 });
  await until(() => msgs.some((m) => m.t === 'accept'), { what: 'accept' });
  const failed = nextEvent<[{ level: string; message: string }]>(holder, 'log', (l) => /upload of wanted\.txt to Z failed/.test(l.message));
  conn.send({ t: 'query', qid: 'Z:1', name: 'wanted.txt', origin: { id: 'Z', host: '127.0.0.1', port: gone }, ttl: 255, hops: 0, budget: 3000, want: 'download' });
  const [log] = await failed;
  t.is(log.level, 'warn');
  t.regex(log.message, /refused|cannot connect/);
  const reply = await until(() => msgs.find((m): m is { t: 'query-reply'; hits: { id: string }[] } & { t: string } => m.t === 'query-reply'), { what: 'query-reply' });
  t.deepEqual(reply.hits.map((h) => h.id), ['P15'], 'the hit is still reported to the (departed) requester side');
  // A requester that is alive but no longer wants the file declines; nothing is written there.
  const declinedBefore = fs.readdirSync(path.join(c.dir, 'P01'));
  conn.send({ t: 'query', qid: 'Z:2', name: 'wanted.txt', origin: c.peer('P01').ref, ttl: 0, hops: 0, budget: 3000, want: 'download' });
  await until(() => msgs.filter((m) => m.t === 'query-reply').length >= 2, { what: 'second query-reply' });
  conn.destroy();
  // The single upload slot was given back both times: a real download from the holder works.
  const d = await c.peer('P08').download('wanted.txt');
  t.is(d.holder.id, 'P15');
  t.true(d.verified);
  t.deepEqual(fs.readdirSync(path.join(c.dir, 'P01')), declinedBefore, 'the declining requester wrote nothing');
  await assertOneTree(t, c.peer('P01'), IDS, c.meta, 'P15');
});

test.serial('metaserver stopped: search, topology and transfer go on; restarted on the same port it rebuilds its registry and a newcomer joins', async (t) => {
  const c = await makeCluster(t, { peer: { announceMs: 200 } });
  await addPeers(c, IDS);
  const port = c.meta.address.port;
  const warned = nextEvent<[{ message: string }]>(c.peer('P05'), 'log', (l) => /cannot announce/.test(l.message));
  await c.meta.stop();
  const [w] = await warned;
  t.regex(w.message, new RegExp(`metaserver|${port}`));
  const s = await c.peer('P08').search('P15.txt');
  t.is(s.reached, 15);
  t.deepEqual(s.hits.map((h) => h.id), ['P15']);
  const topo = await c.peer('P15').topo();
  t.true(topo.complete);
  t.is(topo.nodes.length, 15);
  const d = await c.peer('P08').download('P15.txt');
  t.true(d.verified);
  t.is(d.holder.id, 'P15');

  const back = nextEvent<[{ message: string }]>(c.peer('P05'), 'log', (l) => /reachable again/.test(l.message));
  const meta2 = new Metaserver({ host: '127.0.0.1', port });
  t.teardown(() => meta2.stop());
  await meta2.start();
  await back;
  await assertOneTree(t, c.peer('P01'), IDS, meta2, 'P14');
  const n = await addPeers(c, ['N1']);
  t.not(n[0]!.state().parent, null, 'the newcomer was referred into the tree, not made a second root');
  await assertOneTree(t, c.peer('N1'), [...IDS, 'N1'], meta2, 'P01');
});

test.serial('a crash while the metaserver is down: orphans retry with backoff and a clear log line, and reattach once it is back', async (t) => {
  const c = await makeCluster(t, { peer: { announceMs: 200 } });
  await addPeers(c, IDS);
  const port = c.meta.address.port;
  await c.meta.stop();
  const orphans = ['P04', 'P05'].map((id) => c.peer(id));
  const attempts: { at: number; message: string }[] = [];
  orphans[0]!.on('log', (l) => {
    if (/reattach attempt/.test(l.message)) attempts.push({ at: performance.now(), message: l.message });
  });
  const recs = repairedAll(orphans, 30_000);
  await c.peer('P02').stop(); // crash: sockets closed without goodbyes
  await until(() => attempts.length >= 4, { what: 'four failed reattach attempts' });
  t.regex(attempts[0]!.message, /metaserver/, `clear log line: ${attempts[0]!.message}`);
  const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
  t.true(gaps[2]! > gaps[0]!, `retries back off (${gaps.map((g) => g.toFixed(0)).join(', ')} ms)`);
  const meta2 = new Metaserver({ host: '127.0.0.1', port });
  t.teardown(() => meta2.stop());
  await meta2.start();
  const rs = await recs;
  t.true(rs.every((r) => r.cause === 'parent-crashed'));
  t.log(`orphans reattached under ${rs.map((r) => r.newParent?.id ?? '(root)').join(', ')} after ${attempts.length}+ failed attempts`);
  await assertOneTree(t, c.peer('P15'), without(IDS, 'P02'), meta2, 'P09');
});

test.serial('a newcomer made root by a restarted metaserver that has not rebuilt its registry yet merges into the tree', async (t) => {
  // No periodic announces: the test announces for the peers, so the order is certain.
  const c = await makeCluster(t, { peer: { announceMs: 0 } });
  await addPeers(c, IDS);
  const port = c.meta.address.port;
  await c.meta.stop();
  const meta2 = new Metaserver({ host: '127.0.0.1', port });
  t.teardown(() => meta2.stop());
  await meta2.start();
  const [n] = await addPeers(c, ['N1']);
  t.is(n!.state().parent, null, 'with an empty registry the newcomer became a root: a second tree');
  await Promise.all(IDS.map((id) => c.peer(id).announce()));
  t.is(meta2.registryList().length, 16);
  const told = nextEvent<[{ id: string; rival: string }]>(meta2, 'second-root', (e) => e.id === 'N1');
  const merged = nextEvent<[RepairRecord]>(n!, 'repaired');
  await n!.announce();
  const [[ev], [rec]] = await Promise.all([told, merged]);
  t.is(ev.rival, 'P01');
  t.is(rec.cause, 'merged');
  t.truthy(rec.newParent);
  await assertOneTree(t, c.peer('P15'), [...IDS, 'N1'], meta2, 'N1');
});

test.serial('an orphan that leaves while it is still reattaching sends its children to the metaserver, not into a second tree', async (t) => {
  const c = await makeCluster(t, { peer: { announceMs: 200 } });
  await addPeers(c, IDS);
  const port = c.meta.address.port;
  await c.meta.stop();
  const failed = nextEvent(c.peer('P04'), 'log', (l: { message: string }) => /reattach attempt/.test(l.message));
  await c.peer('P02').stop(); // crash while the metaserver is down: P04 and P05 are orphans, retrying
  await failed;
  const recs = repairedAll(['P05', 'P08', 'P09'].map((id) => c.peer(id)), 30_000);
  await c.peer('P04').leave();
  const meta2 = new Metaserver({ host: '127.0.0.1', port });
  t.teardown(() => meta2.stop());
  await meta2.start();
  const rs = await recs;
  t.deepEqual(rs.map((r) => r.cause), ['parent-crashed', 'parent-left', 'parent-left']);
  t.true(rs.every((r) => r.newParent !== null), 'every orphan reattached under a parent; none became a root');
  await assertOneTree(t, c.peer('P15'), without(IDS, 'P02', 'P04'), meta2, 'P09');
});

test.serial('a peer that cannot reach the metaserver gets a clear error at join', async (t) => {
  const dir = tmpDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await deadPort();
  const p = new Peer({ id: 'lonely', host: '127.0.0.1', port: 0, share: dir, meta: { host: '127.0.0.1', port } });
  t.teardown(() => p.stop());
  const err = await t.throwsAsync(p.join());
  t.is(errorCode(err), 'unreachable');
  t.regex(String(err?.message), new RegExp(`metaserver.*127\\.0\\.0\\.1:${port}`));
  t.false(p.state().joined);
});

test.serial('the parent of a crashed leaf reports it: the metaserver drops it long before its sweep would', async (t) => {
  const c = await makeCluster(t); // sweep after the default 30 s
  await addPeers(c, IDS);
  const leaf = c.peer('P15');
  const parentId = leaf.state().parent!.id;
  const left = nextEvent<[{ id: string; reason: string }]>(c.peer(parentId), 'child-left', (e) => e.id === 'P15');
  // A report is checked by the metaserver's own probe, then the entry is dropped.
  const reported = nextEvent<[{ id: string; reason: string }]>(c.meta, 'drop', (e) => e.id === 'P15', 10_000);
  const t0 = performance.now();
  await leaf.stop(); // crash: no goodbyes
  const [ev] = await left;
  t.is(ev.reason, 'connection lost');
  await reported;
  t.false(c.meta.registryList().some((e) => e.id === 'P15'));
  t.log(`crashed leaf dropped from the registry ${fmt(performance.now() - t0)} after its crash`);
  // Its free slots are not offered any more: newcomers land in the live tree, none is referred to it.
  const fresh = await addPeers(c, ['N1', 'N2', 'N3']);
  for (const n of fresh) t.not(n.timeline?.referral?.id, 'P15');
  await assertOneTree(t, c.peer('P01'), [...without(IDS, 'P15'), 'N1', 'N2', 'N3'], c.meta, 'N3');
});

test.serial('the registry sweep drops a peer that stops announcing and keeps those that announce', async (t) => {
  const c = await makeCluster(t, { meta: { peerTimeoutMs: 800 }, peer: { announceMs: 150 } });
  await addPeers(c, IDS.slice(0, 14));
  // A peer that stops announcing (it froze, or lost its way) is swept.
  const quiet = await c.add('Q1', { announceMs: 0 });
  const swept = await nextEvent<[{ id: string; reason: string }]>(c.meta, 'drop', (e) => e.id === 'Q1', 10_000);
  t.regex(swept[0].reason, /not heard from/);
  t.true(quiet.state().joined);
  t.true(IDS.slice(0, 13).every((id) => c.meta.registryList().some((e) => e.id === id)), 'announcing peers are kept');
});

test.serial('a stall of our own longer than deadAfterMs does not make peers declare live neighbours dead', async (t) => {
  const c = await makeCluster(t, { peer: { heartbeatMs: 200, deadAfterMs: 1000, announceMs: 300 } });
  await addPeers(c, IDS);
  const before = (await c.peer('P01').topo()).nodes.map((n) => `${n.id}<${n.parent}`).sort();
  const dead: string[] = [];
  for (const p of c.peers) p.on('log', (l) => /declaring it dead/.test(l.message) && dead.push(`${p.id}: ${l.message}`));
  const stallEnd = performance.now() + 1500;
  while (performance.now() < stallEnd) {
    /* the whole process (all 15 peers) is stuck, as in a long GC pause */
  }
  // Every peer announces twice more after the stall: several heartbeat ticks have run meanwhile.
  const counts = new Map<string, number>();
  await new Promise<void>((resolve) => {
    const on = (e: { id: string }) => {
      counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
      if (IDS.every((id) => (counts.get(id) ?? 0) >= 2)) {
        c.meta.off('announce', on);
        resolve();
      }
    };
    c.meta.on('announce', on);
  });
  t.deepEqual(dead, [], 'no live neighbour was declared dead');
  t.deepEqual(c.peers.flatMap((p) => p.repairs), []);
  const after = (await c.peer('P01').topo()).nodes.map((n) => `${n.id}<${n.parent}`).sort();
  t.deepEqual(after, before, 'the tree is untouched');
});

test.serial('repair times for leave and crash in a 15-peer tree', async (t) => {
  const c = await makeCluster(t);
  await addPeers(c, IDS);
  let live = [...IDS];
  const times: Record<'leave' | 'crash', number[]> = { leave: [], crash: [] };
  const per: Record<'leave' | 'crash', number[]> = { leave: [], crash: [] };
  const depths = [0, 1, 2];
  let fresh = 0;
  for (let i = 0; i < 20; i++) {
    const kind = i % 2 === 0 ? 'leave' : 'crash';
    const topo = await c.peer(live[live.length - 1]!).topo();
    const depth = depths[Math.floor(i / 2) % depths.length]!;
    const victimNode = topo.nodes.filter((n) => n.depth === depth && n.children.length > 0).sort((a, b) => (a.id < b.id ? -1 : 1))[0]!;
    t.truthy(victimNode, `an inner peer at depth ${depth}`);
    const victim = c.peer(victimNode.id);
    const orphans = victimNode.children.map((id) => c.peer(id));
    const recs = repairedAll(orphans);
    if (kind === 'leave') await victim.leave();
    else await victim.stop();
    const rs = await recs;
    t.true(rs.every((r) => r.cause === (kind === 'leave' ? 'parent-left' : 'parent-crashed') && r.lost === victim.id));
    times[kind].push(eventMs(rs));
    per[kind].push(...rs.map((r) => r.ms!));
    live = without(live, victim.id);
    await assertOneTree(t, c.peer(live[0]!), live, c.meta, live[live.length - 1]);
    const id = `R${++fresh}`;
    await addPeers(c, [id]);
    live.push(id);
  }
  for (const kind of ['leave', 'crash'] as const) {
    const e = stats(times[kind]);
    const r = stats(per[kind]);
    t.log(`${kind}: per event (detected → last orphan reattached) n=${e.n} median ${fmt(e.median)} max ${fmt(e.max)}; per orphan n=${r.n} median ${fmt(r.median)} max ${fmt(r.max)}`);
    t.is(e.n, 10);
  }
});
