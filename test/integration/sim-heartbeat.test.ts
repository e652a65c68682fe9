/**
 * The memory runner on simulated time (issue 13 item 3): heartbeats,
 * announces and the metaserver's sweep run on its SimClock, so a peer that
 * is paused (runner.faults.pause: its links and timers stop, nothing closes) is found by silence
 * after deadAfterMs of simulated time, and its subtree is repaired around it.
 * Every assertion on time is on simulated ms; wall time is only a safety net.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import type { SimClock } from '../../core/clock.ts';
import type { RepairRecord } from '../../core/index.ts';
import { LocalRunner } from '../../scenarios/lib/runner-local.ts';
import type { PeerHandle } from '../../scenarios/lib/runner.ts';
import { nextEvent, tmpDir } from '../helpers.ts';

const HEARTBEAT = 1000;
const DEAD_AFTER = 4000;

/** A memory runner on a SimClock and a scratch folder, both removed when the test ends. */
function simRunner(t: ExecutionContext): { dir: string; runner: LocalRunner; clock: SimClock } {
  const dir = tmpDir('treeshare-sim-');
  const runner = new LocalRunner('memory', { metaSeed: 7 });
  t.teardown(async () => {
    await runner.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, runner, clock: runner.clock as SimClock };
}

/** Starts peer `id` (share folder under `dir`, max 2 children) with heartbeats every `heartbeatMs` and joins it. */
async function joined(runner: LocalRunner, dir: string, meta: Parameters<LocalRunner['startPeer']>[1], id: string, heartbeatMs: number): Promise<PeerHandle> {
  const share = path.join(dir, id);
  fs.mkdirSync(share);
  const h = await runner.startPeer({ id, share, maxChildren: 2, heartbeatMs }, meta);
  await h.join();
  return h;
}

/** Frames a peer of the in-process runner sent, by type (its own transport counters). */
const sent = (h: PeerHandle) => (h as unknown as { peer: { wireFrames(): { sent: Record<string, number> } } }).peer.wireFrames().sent;

test('memory runner: a frozen inner peer is declared dead after deadAfterMs simulated, and its children reattach', async (t) => {
  const { dir, runner, clock } = simRunner(t);
  t.is(clock.kind, 'sim');
  const meta = await runner.startMetaserver({ policy: 'least-loaded' });
  const ids = ['P01', 'P02', 'P03', 'P04', 'P05', 'P06', 'P07'];
  const handles: PeerHandle[] = [];
  for (const id of ids) {
    const share = path.join(dir, id);
    fs.mkdirSync(share);
    const h = await runner.startPeer({ id, share, maxChildren: 2 }, meta.address);
    await h.join();
    handles.push(h);
  }
  // An inner node: it has a parent and at least one child.
  const states = await Promise.all(handles.map((h) => h.status()));
  const inner = states.find((s) => s.parent && s.children.length > 0);
  t.truthy(inner, 'the 7-peer tree has an inner node');
  const victim = handles.find((h) => h.id === inner!.id)!;
  const parent = handles.find((h) => h.id === inner!.parent!.id)!;
  const kids = inner!.children.map((c) => handles.find((h) => h.id === c.id)!);

  // Let the tree live a while on simulated time: heartbeats flow, nobody is declared dead.
  const settledAt = clock.now();
  const quiet: RepairRecord[] = [];
  for (const h of handles) h.on('repaired', (r) => quiet.push(r));
  await new Promise<void>((resolve) => clock.setTimeout(() => resolve(), 3 * DEAD_AFTER));
  t.true(clock.now() - settledAt >= 3 * DEAD_AFTER, 'simulated time ran on');
  t.deepEqual(quiet, [], 'live peers exchanging heartbeats are never declared dead');

  const childLeft = nextEvent<[{ id: string; reason: string }]>(parent, 'child-left', (e) => e.id === victim.id, 60_000);
  const repaired = kids.map((k) => nextEvent<[RepairRecord]>(k, 'repaired', (r) => r.lost === victim.id, 60_000));
  const frozenAt = clock.now();
  const wall0 = performance.now();
  await runner.faults.pause(victim.id);

  const [left] = await childLeft;
  const parentNoticed = clock.now() - frozenAt;
  const recs = (await Promise.all(repaired)).map(([r]) => r);
  t.log(`frozen ${victim.id}: parent noticed after ${parentNoticed} ms simulated; children detected after ${recs.map((r) => r.detectedAt - frozenAt).join(', ')} ms, reattached after ${recs.map((r) => r.reattachedAt! - frozenAt).join(', ')} ms simulated (${(performance.now() - wall0).toFixed(0)} ms wall)`);
  t.is(left.reason, 'connection lost');
  // Silence is judged on heartbeat ticks: after deadAfterMs since the last frame heard
  // (up to one heartbeat before the freeze), on the next tick.
  t.true(parentNoticed >= DEAD_AFTER - HEARTBEAT && parentNoticed <= DEAD_AFTER + 2 * HEARTBEAT, `parent noticed after ${parentNoticed} ms simulated`);
  for (const r of recs) {
    t.is(r.cause, 'parent-crashed');
    const detected = r.detectedAt - frozenAt;
    t.true(detected >= DEAD_AFTER - HEARTBEAT && detected <= DEAD_AFTER + 2 * HEARTBEAT, `child detected after ${detected} ms simulated`);
    t.not(r.newParent?.id, victim.id, 'reattached elsewhere');
  }
  // One tree of the six live peers, without the frozen one.
  const live = handles.filter((h) => h !== victim);
  let last = '';
  const whole = async () => {
    const topo = await live[0]!.topo({ timeoutMs: 20_000 });
    last = `complete ${topo.complete}, nodes ${topo.nodes.map((n) => `${n.id}<${n.parent}`).join(' ')}, missing ${topo.missing.join(',')}`;
    return topo.complete && topo.nodes.length === live.length && !topo.nodes.some((n) => n.id === victim.id);
  };
  let ok = await whole();
  for (let i = 0; i < 20 && !ok; i++) {
    await new Promise<void>((resolve) => clock.setTimeout(() => resolve(), HEARTBEAT));
    ok = await whole();
  }
  t.true(ok, `the six live peers form one tree (last topo: ${last})`);
});

test('memory runner: both ends ping, so links carry no pongs; a neighbour whose own heartbeats are off answers every ping and stays alive', async (t) => {
  const { dir, runner, clock } = simRunner(t);
  const meta = await runner.startMetaserver({ policy: 'least-loaded' });
  const start = (id: string, heartbeatMs: number) => joined(runner, dir, meta.address, id, heartbeatMs);
  const a = await start('A', HEARTBEAT);
  const b = await start('B', HEARTBEAT);
  const repairs: RepairRecord[] = [];
  for (const h of [a, b]) h.on('repaired', (r) => repairs.push(r));
  await new Promise<void>((resolve) => clock.setTimeout(() => resolve(), 10 * HEARTBEAT));
  t.true((sent(a).ping ?? 0) >= 9 && (sent(b).ping ?? 0) >= 9, `both ends ping (A ${sent(a).ping}, B ${sent(b).ping})`);
  t.true((sent(a).pong ?? 0) + (sent(b).pong ?? 0) <= 2, `at most the first ping of each end is answered (pongs: A ${sent(a).pong ?? 0}, B ${sent(b).pong ?? 0})`);

  // C runs without heartbeats (heartbeatMs 0): it sends nothing on its own, so it answers every ping
  // of its parent, and the parent, which judges silence, never declares it dead.
  const c = await start('C', 0);
  const parentId = (await c.status()).parent?.id;
  t.true(parentId === 'A' || parentId === 'B', `C joined under A or B (${parentId})`);
  const before = sent(c).pong ?? 0;
  const left: string[] = [];
  for (const h of [a, b]) h.on('child-left', (e: { id: string }) => left.push(e.id));
  await new Promise<void>((resolve) => clock.setTimeout(() => resolve(), 3 * DEAD_AFTER));
  // One ping per tick of the parent, less the first tick after C joined (the parent had just sent
  // it the JOIN's accept and its depth: that tick's ping was not needed).
  t.true((sent(c).pong ?? 0) - before >= (3 * DEAD_AFTER) / HEARTBEAT - 2, `C answered its parent's pings (${(sent(c).pong ?? 0) - before} pongs)`);
  t.deepEqual(left, [], 'the parent never declared C dead');
  t.deepEqual(repairs, [], 'nobody was declared dead');
});

test('memory runner: a link that carries other frames every tick carries no pings; once idle it is pinged again, and a frozen neighbour is still found by silence', async (t) => {
  const { dir, runner, clock } = simRunner(t);
  const meta = await runner.startMetaserver({ policy: 'least-loaded' });
  const start = (id: string) => joined(runner, dir, meta.address, id, HEARTBEAT);
  const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(() => resolve(), ms));
  const a = await start('A');
  const b = await start('B');
  const c = await start('C');
  await sleep(2 * HEARTBEAT);
  // Busy: a search from A every half tick crosses every link both ways (query down, reply up).
  const pings0 = (sent(a).ping ?? 0) + (sent(b).ping ?? 0) + (sent(c).ping ?? 0);
  for (let i = 0; i < 20; i++) {
    await a.search('nothing-here.txt');
    await sleep(HEARTBEAT / 2);
  }
  const busyPings = (sent(a).ping ?? 0) + (sent(b).ping ?? 0) + (sent(c).ping ?? 0) - pings0;
  t.true(busyPings <= 4, `10 ticks of a busy tree: at most the first tick's pings on its 2 links, both ends (${busyPings})`);
  // Idle again: every end pings every tick.
  const pings1 = (sent(a).ping ?? 0) + (sent(b).ping ?? 0) + (sent(c).ping ?? 0);
  await sleep(10 * HEARTBEAT);
  const idlePings = (sent(a).ping ?? 0) + (sent(b).ping ?? 0) + (sent(c).ping ?? 0) - pings1;
  t.true(idlePings >= 2 * 2 * 9, `10 idle ticks: both ends of both links ping (${idlePings})`);
  // A peer that stops answering right after a busy spell (it closes nothing) is still found by
  // silence, after deadAfterMs, on a tick.
  for (let i = 0; i < 4; i++) await a.search('nothing-here.txt');
  const victim = (await a.status()).children.map((x) => x.id).includes('B') ? b : c;
  const t0 = clock.now();
  const lost = nextEvent<[{ id: string }]>(a, 'child-left', (e) => e.id === victim.id, 60_000);
  await runner.faults.pause(victim.id);
  await lost;
  const noticed = clock.now() - t0;
  t.true(noticed >= DEAD_AFTER - HEARTBEAT && noticed <= DEAD_AFTER + 2 * HEARTBEAT, `the frozen child is dropped after ${noticed} simulated ms of silence`);
});
