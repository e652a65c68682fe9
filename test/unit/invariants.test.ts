/**
 * The invariant checker (scenarios/lib/invariants.ts) against deliberately
 * broken states: a cycle of parent links, a peer over its fan-out, two roots
 * once quiet, a registry that disagrees, an unanswered request, a corrupted
 * file and a leftover temporary (memory store and folder); and a healthy run
 * of a real scenario, which checks many times and finds nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { InvariantChecker, REGISTRY_SETTLE_MS, SETTLE_MS, type CheckedCluster, type CheckedPeer, type InvariantSink, type Violation } from '../../scenarios/lib/invariants.ts';
import type { FloodRow, TransferRow } from '../../scenarios/lib/metrics.ts';
import type { FaultRow } from '../../scenarios/lib/faults.ts';
import { SimClock } from '../../core/clock.ts';
import { fivePeers } from '../../scenarios/five-peers.ts';
import { run } from '../../scenarios/lib/index.ts';
import { tmpDir } from '../helpers.ts';

interface Fake extends CheckedPeer {
  parent: string | null;
  children: string[];
  hash?: string | null;
  temps?: number;
  alive: boolean;
}

function world(o: { peers: Record<string, { parent: string | null; children?: string[]; hash?: string | null; temps?: number; share?: string }>; memory?: boolean; registry?: string[] | 'hangs'; max?: number; sim?: SimClock }) {
  let t = 0;
  const records = { floods: [] as FloodRow[], transfers: [] as TransferRow[], faults: [] as FaultRow[] };
  const peers = new Map<string, Fake>();
  for (const [id, p] of Object.entries(o.peers)) {
    const f: Fake = {
      id, alive: true, share: p.share ?? `memory:${id}`, parent: p.parent, children: p.children ?? [], hash: p.hash, temps: p.temps ?? 0,
      status: async () => ({ parent: f.parent ? { id: f.parent, host: '127.0.0.1', port: 1 } : null, children: f.children.map((c) => ({ id: c, host: '127.0.0.1', port: 1, subtree: 1 })) }),
      storedSha256: async () => f.hash ?? null,
      openTemps: () => f.temps ?? 0,
    };
    peers.set(id, f);
  }
  const cluster: CheckedCluster = {
    round: '',
    peers,
    alive: () => [...peers.values()].filter((p) => p.alive).map((p) => p.id),
    maxChildrenOf: () => o.max ?? 2,
    registry: o.registry === 'hangs' ? () => new Promise(() => undefined) : async () => ((o.registry as string[] | undefined) ?? [...peers.keys()]).map((id) => ({ id })),
    memoryStores: o.memory ?? true,
  };
  const violations: Violation[] = [];
  const sink: InvariantSink = { checks: 0, violations, violated: (v) => violations.push(v) };
  const host = { now: () => (o.sim ? o.sim.now() : t), records, simClock: () => o.sim };
  const inv = new InvariantChecker(cluster, host, sink);
  return { inv, sink, violations, records, peers, setNow: (ms: number) => (t = ms) };
}

const transfer = (to: string, file: string, sha256: string, bytes = 3): TransferRow => ({
  round: '', file, from: 'X', to, label: 'download', at: 0, doneAt: 1, bytes, ttfbMs: 1, durationMs: 1, mbps: null, sha256, verified: true, diskSha256Ok: true, ok: true, errorCode: null, error: null,
} as unknown as TransferRow);

test('tree: a cycle of parent links is a violation naming the peers on it', async (t) => {
  const w = world({ peers: { A: { parent: null, children: ['B'] }, B: { parent: 'C' }, C: { parent: 'D' }, D: { parent: 'B' } } });
  w.inv.event('repaired', ['B', 'C', 'D']);
  await w.inv.check();
  const v = w.violations.find((x) => x.invariant === 'tree');
  t.truthy(v, 'no violation');
  t.regex(v!.detail, /cycle/);
  t.deepEqual([...v!.peers].sort(), ['B', 'C', 'D']);
  t.true(v!.lastEvents.some((e) => e.includes('repaired B C D')), v!.lastEvents.join('\n'));
  await w.inv.close();
});

test('tree: a peer with more children than it accepts is a violation; a healthy forest is not', async (t) => {
  const w = world({ peers: { A: { parent: null, children: ['B', 'C', 'D'] }, B: { parent: 'A' }, C: { parent: 'A' }, D: { parent: 'A' } } });
  w.inv.event('child-joined', ['B', 'C']);
  await w.inv.check();
  t.is(w.violations.length, 0, 'B and C are fine');
  w.inv.event('child-joined', ['A', 'D']);
  await w.inv.check();
  t.is(w.violations.length, 1);
  t.regex(w.violations[0]!.detail, /A has 3 children, over its limit of 2/);
  t.true(w.sink.checks >= 2);
  await w.inv.close();
});

test('tree: once quiet past SETTLE_MS with no fault in force, two roots are a violation; while a fault is in force they are not', async (t) => {
  const w = world({ peers: { A: { parent: null }, B: { parent: null } } });
  w.inv.event('joined', ['A', 'B']);
  w.setNow(SETTLE_MS - 1);
  await w.inv.check();
  t.is(w.violations.length, 0, 'not quiet long enough yet');
  w.records.faults.push({ round: '', at: 10, kind: 'partition', targets: ['A', 'B'], until: null, detail: 'both ways' });
  w.setNow(SETTLE_MS + 5);
  await w.inv.check();
  t.is(w.violations.length, 0, 'a partition is in force');
  w.records.faults[0]!.until = 20;
  await w.inv.check();
  t.is(w.violations.length, 1);
  t.regex(w.violations[0]!.detail, /2 roots among 2 live peers/);
  await w.inv.close();
});

test('tree: once quiet past REGISTRY_SETTLE_MS, a registry that lists a departed peer is a violation', async (t) => {
  const w = world({ peers: { A: { parent: null, children: ['B'] }, B: { parent: 'A' } }, registry: ['A', 'B', 'GONE'] });
  w.inv.event('joined', ['A', 'B']);
  w.setNow(SETTLE_MS + 1);
  await w.inv.check();
  t.is(w.violations.length, 0, 'one tree; the registry is not due yet');
  w.setNow(REGISTRY_SETTLE_MS + 1);
  await w.inv.check();
  t.is(w.violations.length, 1);
  t.regex(w.violations[0]!.detail, /lists departed GONE/);
  await w.inv.check();
  t.is(w.violations.length, 1, 'reported once per quiet period');
  await w.inv.close();
});

test('the last check (close) asks nothing over the network: a registry that never answers (a stopped simulated clock) does not hang it', async (t) => {
  t.timeout(10_000);
  const w = world({ peers: { A: { parent: null } }, registry: 'hangs' });
  w.inv.event('joined', ['A']);
  w.setNow(REGISTRY_SETTLE_MS + 1);
  await w.inv.close();
  t.true(w.sink.checks >= 1);
  t.is(w.violations.length, 0);
});

test('requests: a request without a definite answer is a violation; answered ones (also with missing subtrees) are not', async (t) => {
  const w = world({ peers: { A: { parent: null } } });
  const row = (answered: boolean, missing: string[] = []) => ({ round: '', kind: 'search', by: 'A', name: 'x.dat', label: 'search', at: 5, treeSize: 1, hits: [], hitHops: [], reached: 1, messages: 0, duplicates: 0, maxHops: 0, missing, firstHitMs: null, completionMs: 60_000, answered, ...(answered ? {} : { error: 'timed out [timeout]' }) }) as unknown as FloodRow;
  w.records.floods.push(row(true), row(true, ['B']));
  await w.inv.check();
  t.is(w.violations.length, 0);
  w.records.floods.push(row(false));
  await w.inv.check();
  t.is(w.violations.length, 1);
  t.is(w.violations[0]!.invariant, 'requests');
  t.regex(w.violations[0]!.detail, /search by A for x\.dat .* without a definite answer .*timed out/);
  await w.inv.close();
});

test('data (memory stores): a finished file whose SHA-256 differs, and a temporary left once the requester is idle, are violations', async (t) => {
  const w = world({ peers: { A: { parent: null, hash: 'b'.repeat(64), temps: 1 } } });
  w.inv.downloads('A', 1);
  w.inv.downloads('A', 1);
  w.records.transfers.push(transfer('A', 'x.dat', 'a'.repeat(64)));
  w.inv.downloads('A', -1);
  await w.inv.check();
  t.deepEqual(w.violations.map((v) => v.invariant), ['data'], 'the corrupted file; the temporary belongs to the download still in flight');
  t.regex(w.violations[0]!.detail, /x\.dat: SHA-256 bbbbbbbbbbbb, offered aaaaaaaaaaaa/);
  w.inv.downloads('A', -1);
  await w.inv.check();
  t.is(w.violations.length, 2);
  t.regex(w.violations[1]!.detail, /no download in flight but keeps 1 open temporary/);
  await w.inv.close();
});

test('data (folders): a final file of the wrong size or content, and a leftover .part, are violations; a whole file is not', async (t) => {
  const dir = tmpDir('treeshare-inv-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'ok.txt'), 'abc');
  fs.writeFileSync(path.join(dir, 'bad.txt'), 'abd');
  fs.writeFileSync(path.join(dir, 'short.txt'), 'ab');
  const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
  const w = world({ peers: { A: { parent: null, share: dir } }, memory: false });
  w.records.transfers.push(transfer('A', 'ok.txt', abc));
  await w.inv.check();
  t.is(w.violations.length, 0, w.violations.map((v) => v.detail).join('\n'));
  w.records.transfers.push(transfer('A', 'bad.txt', abc), transfer('A', 'short.txt', abc));
  fs.writeFileSync(path.join(dir, '.treeshare-1234.part'), 'x');
  await w.inv.check();
  const details = w.violations.map((v) => v.detail);
  t.is(details.length, 3, details.join('\n'));
  t.true(details.some((d) => /bad\.txt: SHA-256/.test(d)));
  t.true(details.some((d) => /short\.txt: 2 bytes, offered 3/.test(d)));
  t.true(details.some((d) => /keeps \.treeshare-1234\.part/.test(d)));
  await w.inv.close();
});

test('on simulated time the checker runs every simulated second without any event', async (t) => {
  const sim = new SimClock();
  const w = world({ peers: { A: { parent: null } }, sim });
  await sim.advance(5_000);
  t.true(w.sink.checks >= 5, `${w.sink.checks} checks in 5 simulated s`);
  await w.inv.close();
  const n = w.sink.checks;
  await sim.advance(5_000);
  t.is(w.sink.checks, n, 'no check after close');
});

test('a healthy run of a real scenario (five-peers, memory runner) checks many times and reports 0 violations; --no-invariants leaves them out', async (t) => {
  const r = await run(fivePeers, ['--runner', 'memory', '--seed', '7', '--quiet'], { write: false });
  t.true(r.ok, r.failures.join('\n'));
  const inv = r.summary.invariants as { checks: number; violations: number; list: unknown[] };
  t.true(inv.checks > 0, `${inv.checks} checks`);
  t.is(inv.violations, 0);
  t.deepEqual(inv.list, []);
  const off = await run(fivePeers, ['--runner', 'memory', '--seed', '7', '--quiet', '--no-invariants'], { write: false });
  t.is(off.summary.invariants, undefined);
  t.is(off.simDigest, r.simDigest, 'the checker does not change the simulation');
});

test('a violation fails the run with its detail; --stop-on-violation ends the run at the first one', async (t) => {
  const { parseOptions, runScenario } = await import('../../scenarios/lib/index.ts');
  let reachedEnd = false;
  const def = {
    name: 'broken', summary: '', defaults: {},
    async run(s: import('../../scenarios/lib/index.ts').Scenario) {
      const c = await s.cluster();
      await c.addPeers(['A', 'B']);
      // A request that never got its answer, as a broken flood would leave it.
      s.records.floods.push({ round: '', kind: 'search', by: 'A', name: 'lost.dat', label: 'search', at: s.now(), treeSize: 2, hits: [], hitHops: [], reached: 0, messages: 0, duplicates: 0, maxHops: 0, missing: [], firstHitMs: null, completionMs: 60_000, answered: false, error: 'timed out [timeout]' });
      await s.sleep(30_000);
      reachedEnd = true;
    },
  };
  const opts = (extra: string[]) => parseOptions(['--runner', 'memory', '--seed', '1', '--quiet', ...extra], {});
  const full = await runScenario(def, opts([]));
  t.true(reachedEnd);
  t.false(full.result.ok);
  t.true(full.result.failures.some((f) => /invariant "requests" .*search by A for lost\.dat/.test(f)), full.result.failures.join('\n'));
  const inv = full.result.summary.invariants as { violations: number; list: Violation[] };
  t.is(inv.violations, 1);
  t.true(inv.list[0]!.lastEvents.some((e) => /joined A/.test(e)), inv.list[0]!.lastEvents.join('\n'));
  reachedEnd = false;
  const stopped = await runScenario(def, opts(['--stop-on-violation']));
  t.false(reachedEnd, 'stopped before the end of the script');
  t.true(stopped.result.durationMs < 30_000, `${stopped.result.durationMs} ms`);
  t.true(stopped.result.failures.some((f) => f.includes('stopped at the first invariant violation (--stop-on-violation): requests')), stopped.result.failures.join('\n'));
});

test('tree: a paused peer is not asked (a stopped process would hold the check for a whole timeout) and is read once it resumes', async (t) => {
  const w = world({ peers: { A: { parent: null, children: ['B'] }, B: { parent: 'A', children: ['C', 'D', 'E'] } } });
  let paused = true;
  const cluster = (w.inv as unknown as { c: CheckedCluster }).c;
  cluster.isPaused = (id) => paused && id === 'B';
  const b = w.peers.get('B')!;
  const answer = b.status;
  let asked = 0;
  b.status = () => (asked++, paused ? new Promise(() => undefined) : answer());
  w.inv.event('fault pause', ['B']);
  await w.inv.check();
  t.is(asked, 0, 'not asked while paused');
  t.is(w.violations.length, 0);
  paused = false;
  w.inv.event('fault resume', ['B']);
  await w.inv.check();
  t.is(asked, 1, 'read once resumed');
  t.regex(w.violations[0]?.detail ?? '', /B has 3 children/);
  await w.inv.close();
});
