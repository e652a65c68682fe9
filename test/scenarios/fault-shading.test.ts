/**
 * Faults in the report: time charts shade the intervals a fault was in force
 * (a band, until null = to the end) and draw instant ones as a dashed line,
 * with a "fault" legend; the "Faults applied" table lists them; results
 * written before records.faults existed still render and load.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { htmlReport } from '../../scenarios/lib/report.ts';
import { renderChart, shadeFaults } from '../../scenarios/lib/charts.ts';
import { standardCharts } from '../../scenarios/lib/report.ts';
import { standardTables } from '../../scenarios/lib/output.ts';
import { load } from '../../scenarios/compare.ts';
import type { ScenarioResult } from '../../scenarios/lib/records.ts';
import type { FaultRow } from '../../scenarios/lib/faults.ts';
import { tmpDir } from '../helpers.ts';

function result(faults: FaultRow[] | undefined): ScenarioResult {
  const floods = Array.from({ length: 12 }, (_, i) => ({
    round: '', kind: i % 3 ? 'search' : 'topo', by: `S${1 + (i % 4)}`, name: i % 3 ? 'x.dat' : '', label: 'search', at: i * 5000, treeSize: 5, hits: [], hitHops: [], reached: 5,
    messages: 8, duplicates: 0, maxHops: 2, missing: [], firstHitMs: null, completionMs: 20 + i * 3, answered: true,
  }));
  return {
    scenario: 'synthetic', ok: true, failures: [], seed: 1, options: { peers: 5, runner: 'memory', maxChildren: 2, policy: 'least-loaded', latency: 10, bandwidth: 0, extra: {} },
    command: 'npx tsx scenarios/synthetic.ts', startedAt: new Date(0).toISOString(), clock: 'simulated', durationMs: 60_000, simMs: 60_000, wallMs: 100,
    records: { joins: [], floods, transfers: [], repairs: [], steps: [], checks: [], memory: [], phases: [], ...(faults ? { faults } : {}) },
    tree: null, summary: {}, tables: [], trees: [], charts: [], files: {},
  } as unknown as ScenarioResult;
}

const FAULTS: FaultRow[] = [
  { round: '', at: 10_000, kind: 'partition', targets: ['S1,S2', 'S3,S4,S5'], until: 25_000, detail: 'both ways' },
  { round: '', at: 30_000, kind: 'reset', targets: ['S1', 'S2'], until: 30_000, detail: '' },
  { round: '', at: 40_000, kind: 'pause', targets: ['S3'], until: null, detail: '' },
];

const requestsChart = (r: ScenarioResult) => standardCharts(r).charts.find((c) => c.title === 'Requests along the run')!;

test('a time chart with faults: a band per interval in force (open ones to the end), a dashed line per instant fault, a "fault" legend', async (t) => {
  const c = requestsChart(result(FAULTS));
  t.truthy(c, 'the requests-along-the-run chart is drawn');
  t.is(c.timeX, 'at');
  const shaded = shadeFaults(c, FAULTS, 60_000);
  const layers = ((shaded.lite!.layer as { layer: { mark: { type: string }; data: { values: { from: number; to: number; fault: string }[] } }[] }[])[0]!).layer;
  t.deepEqual(layers.map((l) => l.mark.type), ['rect', 'rule']);
  t.deepEqual(layers[0]!.data.values.map((v) => [v.fault, v.from, v.to]), [['partition', 10_000, 25_000], ['pause', 40_000, 60_000]]);
  t.deepEqual(layers[1]!.data.values.map((v) => [v.fault, v.from]), [['reset', 30_000]]);
  const svg = await renderChart(shaded);
  t.regex(svg, /mark-rect/);
  t.regex(svg, /mark-rule/);
  t.regex(svg, />fault<\/text>/, 'legend titled "fault"');
  for (const k of ['partition', 'reset', 'pause']) t.regex(svg, new RegExp(`>${k}</text>`), `legend entry ${k}`);
  const plain = await renderChart(c);
  t.notRegex(plain, /mark-rect/, 'no faults: no shading');
});

test('the HTML report shades the time charts and lists the faults applied; a result without records.faults still renders and loads', async (t) => {
  const html = await htmlReport(result(FAULTS));
  const fig = /<figure class="chart"><figcaption>Requests along the run<\/figcaption>([\s\S]*?)<\/figure>/.exec(html);
  t.truthy(fig);
  t.regex(fig![1]!, /mark-rect/);
  t.regex(fig![1]!, /Shaded: the faults in force/);
  const table = standardTables({}, result(FAULTS).records, null).find((x) => x.title === 'Faults applied');
  t.deepEqual(table?.head, ['at ms', 'kind', 'targets', 'until ms', 'detail']);
  t.deepEqual(table?.rows[0], ['10,000', 'partition', 'S1,S2 S3,S4,S5', '25,000', 'both ways']);
  t.is(table?.rows[2]![3], 'end');

  const old = result(undefined);
  const oldHtml = await htmlReport(old);
  t.notRegex(oldHtml, /could not be drawn/);
  t.notRegex(/<figure class="chart"><figcaption>Requests along the run<\/figcaption>([\s\S]*?)<\/figure>/.exec(oldHtml)![1]!, /mark-rect/);
  t.false(standardTables({}, old.records, null).some((x) => x.title === 'Faults applied'));
  const dir = tmpDir('treeshare-shading-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'old.json');
  fs.writeFileSync(f, JSON.stringify(old));
  const loaded = load(f);
  t.is(loaded.kind, 'scenario');
  t.deepEqual((loaded.run as ScenarioResult).records.faults, []);
});
