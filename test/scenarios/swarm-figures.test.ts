/**
 * scenarios/swarm.ts: what the machine's core count decides is a figure, not
 * a check. The unshaped "several sources against one" comparison is reported
 * with the CPU per MB on each side and the cores the run had; the checks are
 * what the swarm's own logic decides (speedups over capped links, bytes
 * fetched twice, the resume point, files verified).
 */
import test from 'ava';
import os from 'node:os';
import { swarm } from '../../scenarios/swarm.ts';
import { run } from '../../scenarios/lib/index.ts';

test('swarm: the unshaped multi-source comparison is a reported figure with CPU per MB and cores, not a check', async (t) => {
  // Small and in one process; 64 KiB pieces so that the corrupting holder gets pieces to spoil.
  const res = await run(swarm, ['--inproc', '--holders', '2', '--size', '4', '--piece-kib', '64', '--bandwidth', '50M', '--seed', '1', '--quiet'], { write: false });
  t.false(res.records.checks.some((c) => /unshaped.*(slower|sources)/.test(c.what)), res.records.checks.map((c) => c.what).join('\n'));
  const u = res.summary.unshaped as { multiVsOne: { ratio: number; sources: number; cores: number; cpuMsPerMB: { one: { requester: number }; multi: { requester: number } } } };
  t.is(u.multiVsOne.cores, os.availableParallelism());
  t.is(u.multiVsOne.sources, 2);
  t.true(u.multiVsOne.ratio > 0);
  t.true(u.multiVsOne.cpuMsPerMB.one.requester > 0 && u.multiVsOne.cpuMsPerMB.multi.requester > 0);
  // What the swarm itself decides stays checked.
  for (const what of [/k=2: file verified/, /corrupting holder dropped/, /holder killed: bytes fetched twice/, /kill -9 at ~50%/]) t.true(res.records.checks.some((c) => what.test(c.what)), String(what));
  t.true(res.ok, res.failures.join('\n'));
});
