/**
 * The link faults of the in-process runners (scenarios/lib/fault-plane.ts):
 * partition (both ways and one way), heal, stall, reset, shape (pairs and
 * regions), isolate and connects across a fault, each on the memory network
 * (simulated time: exact ms) and on loopback TCP (real time: within a
 * tolerance); then through a Cluster: a partitioned overlay answers searches
 * with the other side missing and is one tree again after the heal, and two
 * runs of one seed with jittered links give the same simDigest.
 */
import test, { type ExecutionContext } from 'ava';
import { realClock, SimClock, type Clock } from '../../core/clock.ts';
import { MemoryNetwork, mulberry32, PROTOCOL_VERSION, tcpTransport, type Connection, type Message, type Transport } from '../../core/index.ts';
import { FaultPlane } from '../../scenarios/lib/fault-plane.ts';
import { LocalRunner } from '../../scenarios/lib/runner-local.ts';
import { META } from '../../scenarios/lib/faults.ts';
import { parseOptions, runScenario, type ScenarioDef } from '../../scenarios/lib/index.ts';
import type { TopoNode } from '../../core/index.ts';

type Kind = 'memory' | 'inproc';

interface Env {
  kind: Kind;
  clock: Clock;
  plane: FaultPlane;
  transport(id: string): Transport;
  /** Allowed error of a measured time, ms (0 on simulated time). */
  slack: number;
}

function env(t: ExecutionContext, kind: Kind, tcpShape?: { latencyMs: number }): Env {
  if (kind === 'memory') {
    const clock = new SimClock();
    clock.start();
    const net = new MemoryNetwork({}, { clock });
    const plane = new FaultPlane(clock, mulberry32(1));
    t.teardown(() => {
      plane.close();
      clock.stop();
    });
    return { kind, clock, plane, transport: (id) => plane.transportFor(id, net.transport()), slack: 0 };
  }
  const plane = new FaultPlane(realClock, mulberry32(1));
  t.teardown(() => plane.close());
  return { kind, clock: realClock, plane, transport: (id) => plane.transportFor(id, tcpTransport({ shape: tcpShape })), slack: 60 };
}

/** A message as it arrived, with the clock's time. */
interface Got {
  m: Message;
  at: number;
}

/** Node B listens, node A connects to it and opens with a ping; both ends record what arrives. */
async function pair(t: ExecutionContext, e: Env, from = 'A', to = 'B') {
  const atA: Got[] = [];
  const atB: Got[] = [];
  let bConn!: Connection;
  let accepted!: () => void;
  const gotB = new Promise<void>((r) => (accepted = r));
  const ln = await e.transport(to).listen({
    host: '127.0.0.1',
    port: 0,
    onConnection: (c) => {
      bConn = c;
      c.on('message', (m) => {
        atB.push({ m, at: e.clock.now() });
        if (m.t === 'ping' && m.n === 0) accepted();
        // Answers every ping with a pong of the same number (a round trip).
        if (m.t === 'ping') c.send({ t: 'pong', n: m.n });
      });
    },
  });
  const a = await e.transport(from).connect(ln.address);
  a.on('message', (m) => atA.push({ m, at: e.clock.now() }));
  a.send({ t: 'ping', v: PROTOCOL_VERSION, n: 0 });
  await gotB;
  t.teardown(async () => {
    a.destroy();
    bConn?.destroy();
    await ln.close();
  });
  return { a, b: () => bConn, atA, atB, address: ln.address };
}

/** Resolves with the first message `conn` receives that satisfies `pred`, and its time. */
function next(e: Env, conn: Connection, pred: (m: Message) => boolean): Promise<Got> {
  return new Promise((resolve) => {
    const f = (m: Message) => {
      if (!pred(m)) return;
      conn.off('message', f);
      resolve({ m, at: e.clock.now() });
    };
    conn.on('message', f);
  });
}

/** Resolves once `conn` closes, with its error. */
function closed(conn: Connection): Promise<Error | undefined> {
  return new Promise((resolve) => (conn.closed ? resolve(undefined) : conn.once('close', resolve)));
}

/** Waits `ms` on the env's clock (simulated or real). */
function wait(e: Env, ms: number): Promise<void> {
  return e.clock.sleep(ms);
}

const ping = (n: number): Message => ({ t: 'ping', n });
const nums = (gs: Got[], t: string) => gs.filter((g) => g.m.t === t).map((g) => (g.m as { n: number }).n);

for (const kind of ['memory', 'inproc'] as const) {
  test(`${kind}: a partition holds an established link both ways, and heal delivers everything held, in order`, async (t) => {
    const e = env(t, kind);
    const { a, b, atA, atB } = await pair(t, e);
    e.plane.partition([['A'], ['B']]);
    for (let n = 1; n <= 3; n++) a.send(ping(n));
    b().send(ping(100));
    await wait(e, 300);
    t.deepEqual(nums(atB, 'ping'), [0], 'nothing from A reached B');
    t.deepEqual(nums(atA, 'ping'), [], 'nothing from B reached A');
    const last = next(e, a, (m) => m.t === 'pong' && m.n === 3);
    e.plane.heal();
    await last;
    t.deepEqual(nums(atB, 'ping'), [0, 1, 2, 3]);
    t.deepEqual(nums(atA, 'pong'), [0, 1, 2, 3]);
    t.deepEqual(nums(atA, 'ping'), [100]);
  });

  test(`${kind}: a one-way partition holds only earlier group → later group`, async (t) => {
    const e = env(t, kind);
    const { a, b, atA, atB } = await pair(t, e);
    e.plane.partition([['A'], ['B']], { oneWay: true });
    const back = next(e, a, (m) => m.t === 'ping' && m.n === 7);
    b().send(ping(7));
    a.send(ping(1));
    await back;
    await wait(e, 200);
    t.deepEqual(nums(atA, 'ping'), [7], 'B → A flows');
    t.deepEqual(nums(atB, 'ping'), [0], 'A → B is held');
    // The other order: B earlier than A holds B → A only.
    e.plane.partition([['B'], ['A']], { oneWay: true });
    const one = next(e, b(), (m) => m.t === 'ping' && m.n === 1);
    b().send(ping(8));
    await one;
    t.deepEqual(nums(atB, 'ping'), [0, 1], 'A → B released by the new partition');
    await wait(e, 200);
    t.deepEqual(nums(atA, 'ping'), [7], 'B → A now held');
    t.deepEqual(nums(atA, 'pong'), [0], "B's pong to ping 1 is held too");
    const eight = next(e, a, (m) => m.t === 'ping' && m.n === 8);
    e.plane.heal();
    await eight;
    t.deepEqual(nums(atA, 'pong'), [0, 1], 'held in order: the pong before ping 8');
    t.deepEqual(nums(atA, 'ping'), [7, 8]);
  });

  test(`${kind}: a connect across a partition does not complete: it times out with the caller's deadline, and one still waiting goes through after the heal`, async (t) => {
    const e = env(t, kind);
    const ln = await e.transport('B').listen({ host: '127.0.0.1', port: 0, onConnection: () => undefined });
    t.teardown(() => ln.close());
    e.plane.partition([['A', 'C'], ['B']]);
    const t0 = e.clock.now();
    const err = await t.throwsAsync(e.transport('A').connect(ln.address, { signal: e.clock.timeoutSignal(400) }));
    t.is((err as { code?: string }).code, 'timeout');
    t.regex(err!.message, /timed out waiting for a connection to 127\.0\.0\.1:\d+/);
    const took = e.clock.now() - t0;
    t.true(took >= 400 - (e.slack ? 5 : 0) && took <= 400 + e.slack, `timed out after ${took} ms`);
    // Not listed: unaffected.
    const d = await e.transport('D').connect(ln.address);
    d.destroy();
    let done = false;
    const waiting = e.transport('C').connect(ln.address).then((c) => {
      done = true;
      return c;
    });
    await wait(e, 300);
    t.false(done, 'still waiting while partitioned');
    e.plane.heal();
    const c = await waiting;
    c.destroy();
    t.true(done);
  });

  test(`${kind}: a stall holds bytes between a and b for its ms, then delivers them in order`, async (t) => {
    const e = env(t, kind);
    const { a, atB } = await pair(t, e);
    const t0 = e.clock.now();
    e.plane.stall('A', 'B', 250);
    const last = next(e, a, (m) => m.t === 'pong' && m.n === 5);
    for (let n = 1; n <= 5; n++) a.send(ping(n));
    await last;
    const got = atB.filter((g) => g.m.t === 'ping' && g.m.n > 0);
    t.deepEqual(
      got.map((g) => (g.m as { n: number }).n),
      [1, 2, 3, 4, 5],
    );
    for (const g of got) t.true(g.at - t0 >= 250 - (e.slack ? 5 : 0) && g.at - t0 <= 250 + e.slack, `delivered ${g.at - t0} ms after the stall began`);
  });

  test(`${kind}: a reset kills every connection between a and b at both ends, as ECONNRESET, and leaves others alone`, async (t) => {
    const e = env(t, kind);
    const p = await pair(t, e);
    const other = await pair(t, e, 'A', 'C');
    const link = (c: Connection) => (c as unknown as { link: { on(ev: 'end', f: () => void): void } }).link;
    let farEnded = false;
    link(p.b()).on('end', () => (farEnded = true));
    const aClosed = closed(p.a);
    const bClosed = closed(p.b());
    e.plane.reset('B', 'A');
    const aErr = await aClosed;
    await bClosed;
    t.is((aErr as { code?: string } | undefined)?.code, 'ECONNRESET', 'the connector saw ECONNRESET');
    t.false(farEnded, 'the far end saw a reset, not a clean end');
    if (kind === 'inproc') {
      const bErr = await bClosed;
      t.is((bErr as { code?: string } | undefined)?.code, 'ECONNRESET', 'the accepting socket got an RST');
    }
    t.is(e.plane.openLinks, 1, 'the reset links are forgotten (A–C is left)');
    t.false(other.a.closed, 'a connection between other nodes is untouched');
  });

  test(`${kind}: shape adds its one-way latency to each direction (a round trip is twice it), and null restores the default`, async (t) => {
    const e = env(t, kind);
    const { a, address } = await pair(t, e);
    const rtt = async (n: number) => {
      const p = next(e, a, (m) => m.t === 'pong' && m.n === n);
      const t0 = e.clock.now();
      a.send(ping(n));
      return (await p).at - t0;
    };
    e.plane.shape('A', 'B', { latencyMs: 40 });
    const shapedRtt = await rtt(1);
    t.true(shapedRtt >= 80 - (e.slack ? 5 : 0) && shapedRtt <= 80 + e.slack, `round trip ${shapedRtt} ms at 40 ms one way`);
    if (kind === 'memory') t.is(shapedRtt, 80);
    // A new connection between them takes a round trip (SYN, SYN-ACK) before it exists.
    const c0 = e.clock.now();
    const again = await e.transport('A').connect(address);
    const connectMs = e.clock.now() - c0;
    again.destroy();
    t.true(connectMs >= 80 - (e.slack ? 5 : 0) && connectMs <= 80 + e.slack, `connect took ${connectMs} ms at 40 ms one way`);
    if (kind === 'memory') t.is(connectMs, 80);
    e.plane.shape('A', 'B', null);
    const plain = await rtt(2);
    t.true(plain <= (kind === 'memory' ? 0 : e.slack), `round trip ${plain} ms unshaped`);
    // Regions: A in eu, B in us, 30 ms one way from eu to us and 10 ms back.
    e.plane.shapeRegions(new Map([['A', 'eu'], ['B', 'us']]), { regions: ['eu', 'us'], links: { eu: { us: { latencyMs: 30 } }, us: { eu: { latencyMs: 10 } } } });
    const regional = await rtt(3);
    t.true(regional >= 40 - (e.slack ? 5 : 0) && regional <= 40 + e.slack, `round trip ${regional} ms between regions (30 + 10)`);
    if (kind === 'memory') t.is(regional, 40);
    t.throws(() => e.plane.shape('A', 'B', { latencyMs: -1 }), { message: /latencyMs must be a finite number ≥ 0/ });
    t.throws(() => e.plane.shapeRegions(new Map([['A', 'mars']]), { regions: ['eu'], links: {} }), { message: /unknown region mars/ });
  });

  test(`${kind}: isolate holds everything into and out of a node, connects included, until it is off`, async (t) => {
    const e = env(t, kind);
    const { a, atB, address } = await pair(t, e);
    e.plane.isolate('B', true);
    a.send(ping(1));
    const err = await t.throwsAsync(e.transport('C').connect(address, { signal: e.clock.timeoutSignal(100) }));
    t.is((err as { code?: string }).code, 'timeout');
    await wait(e, 200);
    t.deepEqual(nums(atB, 'ping'), [0]);
    const pong = next(e, a, (m) => m.t === 'pong' && m.n === 1);
    e.plane.isolate('B', false);
    await pong;
    t.deepEqual(nums(atB, 'ping'), [0, 1]);
  });
}

test('inproc with --latency (shaped TCP links): a reset still reaches the far end as an RST', async (t) => {
  const e = env(t, 'inproc', { latencyMs: 5 });
  const p = await pair(t, e);
  const bClosed = closed(p.b());
  const aClosed = closed(p.a);
  e.plane.reset('A', 'B');
  t.is(((await aClosed) as { code?: string } | undefined)?.code, 'ECONNRESET');
  t.is(((await bClosed) as { code?: string } | undefined)?.code, 'ECONNRESET', 'the accepting socket got an RST through the shaped link');
});

// ---- through a Cluster: the overlay under a partition ----

/** Node ids of the subtree under `id` (itself included). */
function subtree(nodes: readonly TopoNode[], id: string): string[] {
  const n = nodes.find((x) => x.id === id)!;
  return [id, ...n.children.flatMap((c) => subtree(nodes, c))];
}

function partitionScenario(runner: Kind, splitMs: number, seen: { missing: string[]; hits: string[]; side: string[]; after: string[] }): ScenarioDef {
  return {
    name: 'faults-net-partition',
    summary: 'test',
    defaults: { runner, peers: 7, maxChildren: 2 },
    async run(s) {
      const c = await s.cluster({ floodTimeoutMs: 1000 });
      const ids = s.ids('P', 7);
      await c.addPeers(ids.map((id) => (id === 'P7' ? { id, files: [{ name: 'far.txt', bytes: 100 }] } : id)), { settle: true });
      const { nodes } = await c.topo('P1', { expectWhole: true });
      const root = nodes.find((n) => n.parent === null)!;
      // The side without the metaserver: the subtree holding P7, under one of the root's children.
      const top = root.children.find((k) => subtree(nodes, k).includes('P7'))!;
      const side = subtree(nodes, top);
      seen.side = side;
      await c.partition([[META, ...ids.filter((i) => !side.includes(i))], side]);
      const r = await c.search(root.id, 'far.txt');
      seen.missing = r.missing;
      seen.hits = r.hits;
      if (splitMs) await s.sleep(splitMs);
      await c.heal();
      const whole = await c.waitWhole({ by: root.id, timeoutMs: 30_000 });
      seen.after = whole.map((n) => n.id).sort();
      await c.search(root.id, 'far.txt', { expectFrom: 'P7' });
    },
  };
}

for (const runner of ['memory', 'inproc'] as const) {
  test.serial(`${runner}: during a partition a search from one side answers with the other side missing; after the heal the tree is whole and finds it`, async (t) => {
    const seen = { missing: [] as string[], hits: [] as string[], side: [] as string[], after: [] as string[] };
    const def = partitionScenario(runner, 0, seen);
    const { result } = await runScenario(def, parseOptions(['--quiet', '--seed', '3'], def.defaults));
    t.true(result.ok, result.failures.join('\n'));
    t.deepEqual(seen.hits, [], 'the holder behind the partition is not found');
    t.true(seen.missing.length > 0 && seen.missing.every((m) => seen.side.includes(m)), `missing ${seen.missing.join(', ')} of side ${seen.side.join(', ')}`);
    t.deepEqual(seen.after, ['P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7']);
    const rows = result.records.faults.map((f) => [f.kind, f.until !== null]);
    t.deepEqual(rows, [
      ['partition', true],
      ['heal', true],
    ]);
  });
}

// A split longer than deadAfterMs: both sides repair around the other, and the orphaned top of
// the far side is referred to its lost parent after the heal (it failed until repair stopped
// shunning a lost parent for ever: core/peer/repair.ts SHUN_DEAD_AFTERS).
test('memory: a split longer than deadAfterMs (both sides repair around the other) heals into one tree', async (t) => {
  const seen = { missing: [] as string[], hits: [] as string[], side: [] as string[], after: [] as string[] };
  const def = partitionScenario('memory', 20_000, seen);
  const { result } = await runScenario(def, parseOptions(['--quiet', '--seed', '3'], def.defaults));
  t.true(result.ok, result.failures.join('\n'));
  t.deepEqual(seen.after, ['P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7']);
});

test.serial('memory: two runs of one seed with jittered links give the same simDigest', async (t) => {
  const def: ScenarioDef = {
    name: 'faults-net-jitter',
    summary: 'test',
    defaults: { runner: 'memory', peers: 8, maxChildren: 2 },
    async run(s) {
      const c = await s.cluster();
      const ids = s.ids('J', 8);
      await c.addPeers(ids.map((id) => (id === 'J8' ? { id, files: [{ name: 'j.txt', bytes: 64 }] } : id)), { settle: true });
      const { nodes } = await c.topo('J1', { expectWhole: true });
      for (const n of nodes) if (n.parent) await c.shape(n.id, n.parent, { latencyMs: 5, jitterMs: 20 });
      for (const by of ['J1', 'J2', 'J3', 'J4']) await c.search(by, 'j.txt', { expectFrom: 'J8' });
    },
  };
  const digests: string[] = [];
  const times: number[][] = [];
  for (let i = 0; i < 2; i++) {
    const { result } = await runScenario(def, parseOptions(['--quiet', '--seed', '11'], def.defaults));
    t.true(result.ok, result.failures.join('\n'));
    digests.push(result.simDigest!);
    times.push(result.records.floods.filter((f) => f.kind === 'search').map((f) => f.completionMs));
  }
  t.is(digests[0], digests[1]);
  t.deepEqual(times[0], times[1]);
  // The jitter really shaped the searches: not every one took the same whole number of 10 ms.
  t.true(times[0]!.some((ms) => ms % 10 !== 0), `search times ${times[0]!.join(', ')}`);
});

test('the in-process runners apply every fault; linkFaults: false runs without a plane and refuses the link faults and pause (its network half), not skew and disk', async (t) => {
  const on = new LocalRunner('memory');
  const off = new LocalRunner('memory', { linkFaults: false });
  t.teardown(() => Promise.all([on.close(), off.close()]));
  for (const k of ['partition', 'heal', 'shape', 'stall', 'reset'] as const) {
    t.is(on.faults.unsupported(k), null, k);
    t.regex(off.faults.unsupported(k) ?? '', /without link faults/, k);
  }
  for (const k of ['pause', 'resume', 'skew', 'disk'] as const) t.is(on.faults.unsupported(k), null, k);
  for (const k of ['pause', 'resume'] as const) t.regex(off.faults.unsupported(k) ?? '', /without link faults/, k);
  for (const k of ['skew', 'disk'] as const) t.is(off.faults.unsupported(k), null, k);
  t.truthy(on.plane);
  t.is(off.plane, undefined);
  await t.throwsAsync(off.faults.partition([['a'], ['b']]), { message: /without link faults/ });
  t.throws(() => off.isolate('a', true), { message: /without link faults/ });
});
