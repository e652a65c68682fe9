/**
 * Simulated links with no latency take no simulated time (issue 23, 2a): a
 * chart whose times are all 0 ms is refused in words instead of collapsing
 * onto one axis value, and a transfer over 0 simulated ms has no rate
 * ("— (no simulated time)"), never a huge MB/s.
 */
import test from 'ava';
import { lineChart, renderChart, zeroTimeAxis } from '../../scenarios/lib/charts.ts';
import { NO_SIMULATED_TIME, standardTables, transferRateCell } from '../../scenarios/lib/output.ts';
import type { Records } from '../../scenarios/lib/records.ts';

const chart = (ys: number[]) => lineChart('join', { data: ys.map((y, i) => ({ depth: i, ms: y })), x: 'depth', y: 'ms', xTitle: 'depth', yTitle: 'join ms' });

test('a chart of times that are all 0 ms is refused in words; one with any time is drawn', async (t) => {
  t.is(zeroTimeAxis(chart([0, 0, 0])), 'join ms');
  const svg = await renderChart(chart([0, 0, 0]));
  t.regex(svg, /not charted: every "join ms" value is 0 \(no simulated time passed/);
  t.is(zeroTimeAxis(chart([0, 1.5, 3])), null);
  t.notRegex(await renderChart(chart([0, 1.5, 3])), /not charted/);
  // Counts that are all zero are not times: drawn.
  t.is(zeroTimeAxis(lineChart('x', { data: [{ a: 1, n: 0 }], x: 'a', y: 'n', xTitle: 'a', yTitle: 'repairs' })), null);
});

test('a transfer over 0 simulated ms prints no rate', (t) => {
  t.is(transferRateCell(211_968_000, 0), NO_SIMULATED_TIME);
  t.is(transferRateCell(10_000_000, 1000), '10.0');
  const records = {
    joins: [], floods: [], repairs: [], steps: [], checks: [], memory: [], phases: [], faults: [],
    transfers: [{ round: '', file: 'f', from: 'A', to: 'B', label: 'download', at: 0, bytes: 211_968_000, ttfbMs: 0, durationMs: 0, ok: true, verified: true }],
  } as unknown as Records;
  for (const mode of ['rows', 'summary'] as const) {
    const [tb] = standardTables({ standard: { transfers: mode } }, records, null);
    const col = tb!.head.findIndex((h) => /MB\/s/.test(h));
    t.is(tb!.rows[0]![col], NO_SIMULATED_TIME, mode);
  }
});
