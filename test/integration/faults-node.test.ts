/**
 * Node faults on the in-process runners (scenarios/lib/fault-node.ts, wired in
 * runner-local.ts), on the unchanged peer: each disk fault makes the matching
 * peer operation fail with the file system's coded error and leaves no
 * partial file, and the peer goes on once the disk is healthy; `slow` adds
 * its time; a clock 30 s ahead (or twice as fast) still joins and keeps its
 * heartbeats; a paused peer's timers stop and start again. Memory runner on
 * simulated time (exact), inproc once per kind.
 */
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { SimClock } from '../../core/clock.ts';
import type { Peer } from '../../core/index.ts';
import { META } from '../../scenarios/lib/faults.ts';
import { LocalRunner } from '../../scenarios/lib/runner-local.ts';
import type { PeerHandle } from '../../scenarios/lib/runner.ts';
import { tmpDir, until } from '../helpers.ts';

const MiB = 1024 * 1024;
type Kind = 'memory' | 'inproc';

/** A runner of `kind` with a metaserver; `add` starts and joins a peer holding `files` (name → bytes). */
async function net(t: ExecutionContext, kind: Kind) {
  const dir = tmpDir('treeshare-faults-node-');
  const runner = new LocalRunner(kind, { metaSeed: 7, ...(kind === 'memory' ? { simSeed: 1 } : {}) });
  t.teardown(async () => {
    await runner.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const meta = await runner.startMetaserver({ policy: 'least-loaded' });
  const add = async (id: string, files: Record<string, number> = {}, o: { join?: boolean; heartbeatMs?: number } = {}): Promise<PeerHandle> => {
    const share = path.join(dir, id);
    fs.mkdirSync(share);
    if (kind === 'inproc') for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(path.join(share, name), Buffer.alloc(bytes, id));
    const memFiles = Object.entries(files).map(([name, bytes], i) => ({ name, bytes, seed: i + 1 }));
    const h = await runner.startPeer({ id, share, maxChildren: 2, memFiles, heartbeatMs: o.heartbeatMs }, meta.address);
    if (o.join !== false) await h.join();
    return h;
  };
  const sim = kind === 'memory' ? (runner.clock as SimClock) : undefined;
  /** Memory runner: `ms` of simulated time (the runner drives its SimClock). */
  const wait = (ms: number) => new Promise<void>((r) => sim!.setTimeout(r, ms));
  return { runner, add, sim, wait };
}

/** What a download left in the requester's share: temporaries being written (memory) or hidden files (folder). */
function leftovers(h: PeerHandle): number {
  return h.openTemps!() + fs.readdirSync(h.share).length;
}

const peerOf = (h: PeerHandle) => (h as unknown as { peer: Peer }).peer;
const sent = (h: PeerHandle) => peerOf(h).wireFrames().sent;

for (const kind of ['memory', 'inproc'] as const) {
  test(`${kind}: a download into a peer whose disk is full after 1 MiB fails with ENOSPC (io) and leaves nothing; healthy again, it succeeds`, async (t) => {
    const { runner, add } = await net(t, kind);
    await add('H', { 'big.bin': 3 * MiB });
    const r = await add('R');
    await runner.faults.disk('R', { kind: 'enospc', afterBytes: MiB });
    const e = await t.throwsAsync(r.download('big.bin'));
    t.is((e as Error & { code: string }).code, 'io');
    t.regex(e!.message, /ENOSPC: no space left on device, write/);
    t.is(leftovers(r), 0, 'no partial file');
    t.deepEqual(await r.files(), []);
    await runner.faults.disk('R', null);
    const ok = await r.download('big.bin');
    t.is(ok.bytes, 3 * MiB);
    t.true(ok.verified);
  });

  test(`${kind}: a holder whose disk fails reads (EIO) after 1 MiB cuts the transfer; the requester keeps nothing; the holder's log names EIO`, async (t) => {
    const { runner, add } = await net(t, kind);
    const h = await add('H', { 'big.bin': 3 * MiB });
    // Its hash known (as after an earlier upload): the offer needs no read.
    const f = await peerOf(h).store.open('big.bin');
    await f.sha256();
    await f.close();
    const logs: string[] = [];
    peerOf(h).on('log', (l: { message: string }) => logs.push(l.message));
    await runner.faults.disk('H', { kind: 'eio-read', afterBytes: MiB });
    const r = await add('R');
    const e = await t.throwsAsync(r.download('big.bin'));
    t.is((e as Error & { code: string }).code, 'truncated', e!.message);
    // At most the 1 MiB read before the fault (the holder's close may drop what it had not flushed).
    const got = Number(/after (\d+) of 3145728 bytes/.exec(e!.message)?.[1]);
    t.true(got <= MiB, e!.message);
    t.is(leftovers(r), 0);
    await until(() => logs.some((m) => /EIO: i\/o error, read/.test(m)), { what: 'the holder logging the EIO', timeoutMs: 10_000 });
    t.pass();
  });

  test(`${kind}: fsync fails: the download fails with EIO (io) before the file is visible, and leaves nothing`, async (t) => {
    const { runner, add } = await net(t, kind);
    await add('H', { 'f.bin': 100_000 });
    const r = await add('R');
    await runner.faults.disk('R', { kind: 'fsync-fails' });
    const e = await t.throwsAsync(r.download('f.bin'));
    t.is((e as Error & { code: string }).code, 'io');
    t.regex(e!.message, /EIO: i\/o error, fsync/);
    t.is(leftovers(r), 0);
    t.deepEqual(await r.files(), []);
  });

  test(`${kind}: a slow disk adds its time to each operation (a listing)`, async (t) => {
    const { runner, add, sim } = await net(t, kind);
    const h = await add('H', { 'f.bin': 10 });
    const clock = sim ?? { now: () => performance.now() };
    await runner.faults.disk('H', { kind: 'slow', ms: 300 });
    const t0 = clock.now();
    t.deepEqual(await h.files(), [{ name: 'f.bin', size: 10 }]);
    const took = clock.now() - t0;
    if (sim) t.is(took, 300, 'exactly the fault’s time, simulated');
    else t.true(took >= 300, `${took} ms`);
  });
}

// The offset is set before the join: on a running node it is a step of its clock, which a monotonic
// clock (performance.now) never makes; a step forward past deadAfterMs / 2 makes the peer judge its
// links' silence one tick later and can drop a live parent (a finding of the harness, not of TCP peers).
test('memory: a peer whose clock is 30 s ahead (then twice as fast) joins, keeps its parent and its heartbeats; nobody is declared dead', async (t) => {
  const { runner, add, wait } = await net(t, 'memory');
  const p1 = await add('P1');
  const p2 = await add('P2', {}, { join: false });
  await runner.faults.skew('P2', { offsetMs: 30_000 });
  await p2.join();
  const events: string[] = [];
  for (const h of [p1, p2]) for (const e of ['repaired', 'parent-lost', 'child-left'] as const) h.on(e, () => events.push(`${h.id} ${e}`));
  const pings = (sent(p2).ping ?? 0);
  await wait(20_000);
  t.true((sent(p2).ping ?? 0) - pings >= 15, 'P2 keeps pinging (heartbeat 1 s)');
  // Twice as fast from here on (no step: the same offset at the switch).
  await runner.faults.skew('P2', { offsetMs: 30_000, driftPpm: 1_000_000 });
  await wait(20_000);
  t.deepEqual(events, []);
  t.is((await p2.status()).parent?.id, 'P1');
  t.deepEqual((await p1.status()).children.map((c) => c.id), ['P2']);
});

test('memory: peers whose clocks read past 1e9 ms (a process up 11.6 days) or below 0 keep their links (their pings were refused as bad-message)', async (t) => {
  const { runner, add, wait } = await net(t, 'memory');
  const p1 = await add('P1');
  const skewed = [];
  for (const [id, offsetMs] of [['P2', 1e9], ['P3', -30_000]] as const) {
    const h = await add(id, {}, { join: false });
    await runner.faults.skew(id, { offsetMs });
    await h.join();
    skewed.push(h);
  }
  const events: string[] = [];
  for (const h of [p1, ...skewed]) for (const e of ['repaired', 'parent-lost', 'child-left'] as const) h.on(e, () => events.push(`${h.id} ${e}`));
  const pings = skewed.map((h) => sent(h).ping ?? 0);
  await wait(10_000);
  skewed.forEach((h, i) => t.true((sent(h).ping ?? 0) - pings[i]! >= 5, `${h.id} pings`));
  t.deepEqual(events, []);
  for (const h of skewed) t.is((await h.status()).parent?.id, 'P1');
});

test('inproc: a peer whose clock is 30 s ahead joins and its heartbeats flow', async (t) => {
  const { runner, add } = await net(t, 'inproc');
  const p1 = await add('P1', {}, { heartbeatMs: 50 });
  const p2 = await add('P2', {}, { join: false, heartbeatMs: 50 });
  await runner.faults.skew('P2', { offsetMs: 30_000 });
  await p2.join();
  const lost: string[] = [];
  p2.on('parent-lost', (e) => lost.push(e.reason));
  const p0 = sent(p2).ping ?? 0;
  const q0 = sent(p1).ping ?? 0;
  await until(() => (sent(p2).ping ?? 0) - p0 >= 5 && (sent(p1).ping ?? 0) - q0 >= 5, { what: 'five heartbeats each way', timeoutMs: 10_000 });
  t.deepEqual(lost, []);
  t.is((await p2.status()).parent?.id, 'P1');
});

for (const kind of ['memory', 'inproc'] as const) {
  test(`${kind}: a paused peer's timers stop (no heartbeat of its own) and start again on resume`, async (t) => {
    const { runner, add, sim, wait } = await net(t, kind);
    const hb = kind === 'memory' ? 1000 : 50;
    // P1 (the root) sends no heartbeat: its children ping it on every tick of theirs.
    await add('P1', {}, { heartbeatMs: 0 });
    const p2 = await add('P2', {}, { heartbeatMs: hb });
    const p3 = await add('P3', {}, { heartbeatMs: hb });
    t.is((await p3.status()).parent?.id, 'P1');
    const pings = (h: PeerHandle) => sent(h).ping ?? 0;
    await runner.faults.pause('P2');
    const before = pings(p2);
    // The world goes on meanwhile: P3's ten heartbeats (P1 answers P2's pings still: the network half is not here).
    const p3From = pings(p3);
    if (sim) await wait(10 * hb);
    else await until(() => pings(p3) >= p3From + 10, { what: 'ten heartbeats of P3', timeoutMs: 10_000 });
    t.true(pings(p3) >= p3From + 10);
    t.is(pings(p2), before, 'no heartbeat while paused');
    await runner.faults.resume('P2');
    if (sim) {
      await wait(1);
      t.is(pings(p2), before + 1, 'the heartbeat that came due fires once at the resume');
      // Then on its period (a tick that sent the parent something else since the last one sends no ping).
      await wait(3 * hb);
      t.true(pings(p2) >= before + 3, `${pings(p2) - before} pings after the resume`);
    } else await until(() => pings(p2) >= before + 3, { what: 'heartbeats again', timeoutMs: 10_000 });
  });
}

test('the runner refuses what it cannot do: disk on the metaserver, unknown nodes', async (t) => {
  const { runner } = await net(t, 'memory');
  for (const k of ['pause', 'resume', 'skew', 'disk'] as const) t.is(runner.faults.unsupported(k), null);
  await t.notThrowsAsync(runner.faults.skew(META, { offsetMs: 1000 }));
  await t.throwsAsync(runner.faults.disk(META, { kind: 'enospc' }), { message: /metaserver has no share store/ });
  await t.throwsAsync(runner.faults.pause('NOPE'), { message: /no node NOPE/ });
});
