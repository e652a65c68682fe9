/**
 * Simulation at scale (issue 13 items 4–6), small enough for npm test:
 * a 2,000-peer scale run on the memory runner (SimClock, memory stores, no
 * folders) ends as one whole tree after 1% crashed and 1% left; and churn
 * with 1,000 peers is a function of its seed: two runs, one simDigest.
 * (The 100,000-peer run is not part of npm test: see the notes/README.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { churn } from '../scenarios/churn.ts';
import { scale } from '../scenarios/scale.ts';
import { run } from '../scenarios/lib/index.ts';

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-sim-scale-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

test.serial('2,000 simulated peers: one whole tree, repair after 1% crash and 1% leave', async (t) => {
  const res = await run(scale, ['--runner', 'memory', '--peers', '2000', '--seed', '3', '--quiet', '--no-html', '--out', tmp(t)], { write: false });
  t.true(res.ok, res.failures.join('\n'));
  t.is(res.clock, 'simulated');
  t.regex(res.simDigest ?? '', /^[0-9a-f]{64}$/);
  const checks = new Map(res.records.checks.map((c) => [c.what, c.ok]));
  t.true(checks.get('[N=2000 memory] one tree of 2000 peers'), 'whole tree after the joins');
  t.true(checks.get('[N=2000 memory] every orphan reattached'), 'every orphan reattached');
  t.true(checks.get('[N=2000 memory] one whole tree of the 1960 live peers'), 'one whole tree of the live peers at the end');
  // 20 crashed and 20 left: their children reattached, each recorded with how long it took.
  t.true(res.records.repairs.length > 0);
  t.true(res.records.repairs.every((r) => r.ms !== null && r.newParent !== null));
  const last = res.records.floods.filter((f) => f.kind === 'topo').at(-1)!;
  t.is(last.reached, 1960);
  t.deepEqual(last.missing, []);
});

test.serial('churn with 1,000 simulated peers repeats exactly: same seed, same simDigest', async (t) => {
  const args = ['--runner', 'memory', '--peers', '1000', '--duration', '6s', '--rate', '100', '--think', '500', '--seed', '17', '--quiet', '--no-html'];
  const a = await run(churn, args, { write: false });
  const b = await run(churn, args, { write: false });
  t.true(a.ok, a.failures.join('\n'));
  t.true(b.ok, b.failures.join('\n'));
  t.regex(a.simDigest ?? '', /^[0-9a-f]{64}$/);
  t.is(a.simDigest, b.simDigest);
  // The runs did real work that the digest covers: events, repairs, searches, downloads.
  const load = a.summary.load as { events: number; searches: number; downloads: number };
  t.true(load.events >= 9 && load.searches > 0 && load.downloads > 0, JSON.stringify(load));
  t.true(a.records.repairs.length > 0);
  t.deepEqual(a.records.floods.map((f) => [f.by, f.name, f.completionMs]), b.records.floods.map((f) => [f.by, f.name, f.completionMs]));
  // Another seed is another run.
  const c = await run(churn, ['--runner', 'memory', '--peers', '40', '--duration', '20s', '--rate', '30', '--think', '500', '--seed', '18', '--quiet', '--no-html'], { write: false });
  t.not(c.simDigest, a.simDigest);
});
