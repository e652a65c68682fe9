/**
 * The overlay over real TCP (docs/PROTOCOL.md, flows A–D): registration and referral under each
 * policy, a full peer redirecting the newcomer one level deeper, 5 and 50
 * peers forming one tree with no node over max-children, 20 concurrent joins,
 * a duplicate id refused, the join timeline, and five peers on 127.0.0.2..6
 * sharing one port number with the metaserver on 127.0.0.1.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Metaserver, metaStatus, Peer, PROTOCOL_VERSION, request, tcpTransport, type Policy } from '../../core/index.ts';
import { cluster, tmpDir, until, type Cluster } from '../helpers.ts';
import { checkTree } from '../../testnet/tree.ts';
import { copyDemoShare, demoFile } from '../../testnet/demo-shares.ts';

async function open(t: ExecutionContext, o: Parameters<typeof cluster>[0] = {}): Promise<Cluster> {
  const c = await cluster(o);
  t.teardown(() => c.close());
  return c;
}

/** Waits until the metaserver has every peer as joined (their announces landed). */
function settled(c: Cluster, n = c.peers.length): Promise<unknown> {
  return until(() => {
    const l = c.meta.registryList();
    return l.length === n && l.every((e) => e.state === 'joined');
  }, { what: `${n} peers joined at the metaserver` });
}

/** Checks the live tree from the peers' own state: one tree, links agree both ways, degree bound, depths. */
function checkLiveTree(t: ExecutionContext, peers: Peer[], maxChildren: number): void {
  const byId = new Map(peers.map((p) => [p.id, p.state()]));
  const nodes = [...byId.values()].map((s) => ({ id: s.id, parent: s.parent?.id ?? null }));
  const one = checkTree(nodes);
  t.true(one.ok, one.why);
  for (const s of byId.values()) {
    t.true(s.children.length <= maxChildren, `${s.id} has ${s.children.length} children`);
    if (s.parent) {
      const p = byId.get(s.parent.id)!;
      t.true(p.children.some((c) => c.id === s.id), `${s.parent.id} lists ${s.id} as a child`);
      t.is(s.depth, p.depth + 1, `${s.id} depth`);
      t.deepEqual({ host: s.parent.host, port: s.parent.port }, p.address, `${s.id} knows its parent's address`);
    } else t.is(s.depth, 0);
    for (const c of s.children) t.is(byId.get(c.id)?.parent?.id, s.id, `${c.id} has ${s.id} as its parent`);
  }
}

test('register: the first peer gets no referral, the next the root; status lists both', async (t) => {
  const c = await open(t);
  const tr = tcpTransport();
  const reg = (id: string, port: number) => request(tr, c.meta.address, { t: 'register', v: PROTOCOL_VERSION, id, host: '127.0.0.1', port, maxChildren: 2 }, ['registered']);
  const { token: tok1, ...r1 } = await reg('A', 40001);
  t.deepEqual(r1, { t: 'registered', id: 'A', referral: null, peers: 1 });
  const { token: tok2, ...r2 } = await reg('B', 40002);
  t.deepEqual(r2, { t: 'registered', id: 'B', referral: { id: 'A', host: '127.0.0.1', port: 40001 }, peers: 2 });
  // Each peer gets its own secret token (never listed in status).
  t.regex(tok1, /^[0-9a-f]{64}$/); // a keyed token (issue time, salt, HMAC)
  t.not(tok1, tok2);
  const st = await metaStatus(tr, c.meta.address);
  t.deepEqual(st.map((e) => [e.id, e.host, e.port, e.state]), [['A', '127.0.0.1', 40001, 'joined'], ['B', '127.0.0.1', 40002, 'joining']]);
  t.true(st.every((e) => typeof e.joinedAt === 'number' && e.joinedAt > 0));
  t.false(JSON.stringify(st).includes(tok1));
});

for (const policy of ['root', 'random', 'least-loaded'] as Policy[]) {
  test(`referral policy ${policy}: peers are referred as the policy says and form one tree`, async (t) => {
    // random with a fixed rng: always the last attached candidate.
    const c = await open(t, { meta: { policy, rng: () => 0.999 } });
    t.is(c.meta.policy, policy);
    const referrals = new Map<string, string | null>();
    c.meta.on('register', (r) => referrals.set(r.id, r.referral?.id ?? null));
    const ids = ['P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7'];
    for (const id of ids) {
      const p = await c.add(id);
      t.is(p.timeline?.referral?.id ?? null, referrals.get(id) ?? null, `${id}'s timeline records its referral`);
      await settled(c);
    }
    t.is(referrals.get('P1'), null);
    const redirects = c.peers.map((p) => p.timeline!.redirects.length);
    if (policy === 'root') {
      for (const id of ids.slice(1)) t.is(referrals.get(id), 'P1', `${id} referred to the root`);
      t.true(redirects.slice(3).every((r) => r >= 1), 'past the root\'s two slots, newcomers are redirected');
    }
    if (policy === 'least-loaded') {
      t.deepEqual(redirects, [0, 0, 0, 0, 0, 0, 0], 'always referred to a free slot: no redirects');
      t.deepEqual(ids.slice(1).map((id) => referrals.get(id)), ['P1', 'P1', 'P2', 'P2', 'P3', 'P3'], 'shallowest, then oldest');
    }
    if (policy === 'random') {
      // rng 0.999 picks the last attached peer in registry order: the previous newcomer.
      for (let i = 1; i < ids.length; i++) t.is(referrals.get(ids[i]!), ids[i - 1], `${ids[i]} referred to ${ids[i - 1]}`);
    }
    checkLiveTree(t, c.peers, 2);
  });
}

test('a full peer redirects the newcomer to its smallest child: accepted one level deeper', async (t) => {
  const c = await open(t, { meta: { policy: 'root' } });
  const s1 = await c.add('S1');
  await c.add('S2');
  await c.add('S3');
  await settled(c);
  const s4 = new Peer({ id: 'S4', host: '127.0.0.1', port: 0, share: fs.mkdtempSync(path.join(c.dir, 's4-')), meta: c.meta.address });
  c.peers.push(s4);
  const events: string[] = [];
  s4.on('redirect', (r) => events.push(`${r.from.id}->${r.to.id}`));
  const tl = await s4.join();
  t.is(tl.referral?.id, 'S1');
  t.is(tl.redirects.length, 1);
  t.is(tl.redirects[0]!.from.id, 'S1');
  t.is(tl.redirects[0]!.to.id, 'S2', 'ties go to the first child');
  t.deepEqual(events, ['S1->S2']);
  t.is(tl.parent?.id, 'S2');
  t.is(tl.depth, 2);
  t.is(s4.state().depth, 2);
  t.deepEqual(s1.state().children.map((x) => x.id).sort(), ['S2', 'S3'], 'S1 stayed at max children');
  // The next one goes under S3 (S2's subtree is now bigger).
  await until(() => s1.state().children.find((x) => x.id === 'S2')?.subtree === 2, { what: 'S2 reporting its subtree size' });
  const s5 = await c.add('S5');
  t.is(s5.timeline?.redirects[0]?.to.id, 'S3');
  t.is(s5.state().parent?.id, 'S3');
  checkLiveTree(t, c.peers, 2);
});

test('past the redirect bound a join fails with a clear error', async (t) => {
  const c = await open(t, { meta: { policy: 'root' }, peer: { maxChildren: 1 } });
  await c.add('A');
  await c.add('B');
  await settled(c);
  const err = await t.throwsAsync(c.add('C', { maxRedirects: 0 }));
  t.is((err as { code?: string }).code, 'too-many-redirects');
  t.regex(err!.message, /redirects/);
  // With the default bound the same newcomer joins one level deeper.
  const d = await c.add('D');
  t.is(d.state().parent?.id, 'B');
});

test('join timeline: register, referral, redirects and acceptance are timestamped in order', async (t) => {
  const c = await open(t, { meta: { policy: 'root' }, peer: { maxChildren: 1 } });
  await c.add('A');
  await c.add('B');
  await settled(c);
  const p = await c.add('C');
  const tl = p.timeline!;
  t.true(tl.registerSentAt <= tl.referralAt);
  t.true(tl.referralAt <= tl.redirects[0]!.at);
  t.true(tl.redirects[0]!.at <= tl.acceptedAt);
  t.is(tl.depth, 2);
  t.true(tl.metaRttMs >= 0 && tl.finalConnectMs >= 0);
  t.true(Math.abs(tl.totalMs - (tl.acceptedAt - tl.registerSentAt)) < 1e-6);
  t.true(tl.totalMs >= tl.metaRttMs + tl.finalConnectMs - 1e-6);
  t.is(c.peer('A').timeline?.parent, null, 'the root has no parent');
});

for (const [n, maxChildren] of [[5, 2], [50, 2], [50, 3]] as const) {
  test(`${n} peers (max ${maxChildren} children) form one connected tree with no node over max-children`, async (t) => {
    const c = await open(t, { peer: { maxChildren } });
    for (let i = 0; i < n; i++) await c.add(`N${i}`);
    checkLiveTree(t, c.peers, maxChildren);
    await settled(c);
    const reg = c.meta.registryList();
    t.true(checkTree(reg).ok, 'the metaserver sees the same one tree');
    for (const e of reg) t.is(e.parent, c.peer(e.id).state().parent?.id ?? null);
    // Bounded degree keeps it shallow: within one level of a complete tree.
    const height = Math.max(...c.peers.map((p) => p.depth));
    t.true(height <= Math.ceil(Math.log(n * (maxChildren - 1) + 1) / Math.log(maxChildren)), `height ${height}`);
  });
}

for (const policy of ['least-loaded', 'root'] as Policy[]) {
  test(`20 peers registering at once (${policy}) still respect max-children and form one tree`, async (t) => {
    const c = await open(t, { meta: { policy } });
    await c.add('R');
    await settled(c);
    const joined = await Promise.all(Array.from({ length: 20 }, (_, i) => c.add(`C${i}`)));
    t.is(joined.length, 20);
    t.true(joined.every((p) => p.joined));
    checkLiveTree(t, c.peers, 2);
    await settled(c, 21);
    t.true(checkTree(c.meta.registryList()).ok);
  });
}

test('a second live peer with the same id is refused; the first keeps its place', async (t) => {
  const c = await open(t);
  const a = await c.add('S1');
  await c.add('S2');
  const err = await t.throwsAsync(c.add('S1'));
  t.is((err as { code?: string }).code, 'duplicate-id');
  t.regex(err!.message, /S1/);
  const reg = c.meta.registryList().find((e) => e.id === 'S1');
  t.is(reg?.port, a.address.port, 'the registry still has the first S1');
  t.deepEqual(a.state().children.map((x) => x.id), ['S2']);
});

test('an id whose holder is gone can be taken over', async (t) => {
  const c = await open(t);
  const a = await c.add('S1');
  await a.stop();
  const b = await c.add('S1');
  t.not(b.address.port, a.address.port);
  t.is(c.meta.registryList().find((e) => e.id === 'S1')?.port, b.address.port);
});

/** A port number that is free on 127.0.0.2 (found by binding port 0 there). */
async function freePortOn(host: string): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('five peers on 127.0.0.2..127.0.0.6 with the same port number and a metaserver on 127.0.0.1 form one tree', async (t) => {
  const meta = new Metaserver({ host: '127.0.0.1', port: 0 });
  const ma = await meta.start();
  const dir = tmpDir();
  const peers: Peer[] = [];
  t.teardown(async () => {
    await Promise.allSettled(peers.map((p) => p.stop()));
    await meta.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const port = await freePortOn('127.0.0.2');
  const remotes: string[] = [];
  meta.on('register', (r) => remotes.push(`${r.host}:${r.port}`));
  for (let i = 1; i <= 5; i++) {
    const share = path.join(dir, `S${i}`);
    copyDemoShare(`S${i}`, share);
    const p = new Peer({ id: `S${i}`, host: `127.0.0.${i + 1}`, port, share, meta: { host: '127.0.0.1', port: ma.port } });
    peers.push(p);
    const a = await p.start();
    t.deepEqual(a, { host: `127.0.0.${i + 1}`, port });
    await p.join();
  }
  t.deepEqual(remotes, [2, 3, 4, 5, 6].map((i) => `127.0.0.${i}:${port}`));
  checkLiveTree(t, peers, 2);
  // Parents are known by host:port, never by port alone.
  for (const p of peers.slice(1)) t.regex(`${p.state().parent!.host}`, /^127\.0\.0\.[2-6]$/);
  await until(() => meta.registryList().every((e) => e.state === 'joined') && meta.registryList().length === 5, { what: 'announces' });
  t.deepEqual(new Set(meta.registryList().map((e) => `${e.host}:${e.port}`)).size, 5);
  t.true(checkTree(meta.registryList()).ok);
  // The tree works across the addresses: topo sees all five, S1 downloads pwd1.txt from S3 at 127.0.0.4.
  const topo = await peers[0]!.topo();
  t.true(topo.complete);
  t.deepEqual(topo.nodes.map((n) => `${n.id}@${n.host}:${n.port}`).sort(), [1, 2, 3, 4, 5].map((i) => `S${i}@127.0.0.${i + 1}:${port}`));
  const d = await peers[0]!.download('pwd1.txt');
  t.deepEqual(d.holder, { id: 'S3', host: '127.0.0.4', port });
  t.deepEqual(fs.readFileSync(path.join(dir, 'S1', 'pwd1.txt')), demoFile('S3', 'pwd1.txt'));
});
