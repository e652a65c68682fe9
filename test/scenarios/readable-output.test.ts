/**
 * What people read: compare.ts labels summary figures in words (not
 * `fromHead[0].L`), and the scale scenario's own tables fit a terminal
 * (the one Scale table was ~300 columns wide; the JSON keeps every figure).
 */
import test from 'ava';
import { figureLabel, scenarioFigures } from '../../scenarios/compare.ts';
import { run, type ScenarioResult } from '../../scenarios/lib/index.ts';
import { renderTable } from '../../scenarios/lib/output.ts';
import { scale } from '../../scenarios/scale.ts';

test('compare labels summary figures in words; ids stay the JSON paths', (t) => {
  const result = { durationMs: 1000, failures: [], records: { joins: [], floods: [], transfers: [], repairs: [] }, summary: { fromHead: [{ L: 0, D: 5, done: 0 }, { L: 20, D: 5, done: 200 }], searchPerLevelMs: { 20: 40 }, sizes: [{ N: 100, joinP95Ms: 3 }] } };
  const figs = scenarioFigures(result as unknown as ScenarioResult).filter((f) => f.id.startsWith('summary.'));
  for (const f of figs) t.notRegex(f.label, /[[\].]|[a-z][A-Z]/, `${f.id} → ${f.label}`);
  const byId = new Map(figs.map((f) => [f.id, f]));
  t.is(byId.get('summary.fromHead[L=20].D')?.label, 'from head, latency 20: tree depth');
  t.is(byId.get('summary.searchPerLevelMs.20')?.label, 'search per level: 20');
  t.is(byId.get('summary.searchPerLevelMs.20')?.unit, 'ms');
  t.is(byId.get('summary.sizes[N=100].joinP95Ms')?.label, 'sizes, peers 100: join p95');
  t.is(figureLabel('cpuMsPerMB'), 'CPU ms per MB');
});

test('the scale scenario\'s tables fit a 120-column terminal', async (t) => {
  const res = await run(scale, ['--runner', 'memory', '--sizes', '100', '--searches', '2', '--latency', '5', '--seed', '1', '--quiet'], { write: false });
  t.true(res.ok, res.failures.join('\n'));
  const mine = res.tables.filter((x) => x.title.startsWith('Scale'));
  t.true(mine.length >= 3);
  for (const table of mine) {
    const width = Math.max(...renderTable({ ...table, note: undefined }).split('\n').map((l) => [...l].length));
    t.true(width <= 120, `${table.title}: ${width} columns`);
  }
  // Every figure is still in the JSON.
  for (const key of ['joinAllMs', 'searchRatio', 'searchHopRatio', 'rootSearchRatio', 'notFoundMs', 'peakRssBytes']) t.true(JSON.stringify(res.summary).includes(`"${key}"`), key);
});
