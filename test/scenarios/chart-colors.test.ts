/**
 * Chart legends with numbers sort by the numbers (not as text: 0, 20, 5, 50 ms),
 * and a value keeps one colour across the charts of a report.
 */
import test from 'ava';
import { harmonizeColors, labelOrder, lineChart, renderChart } from '../../scenarios/lib/charts.ts';

test('legends in numeric order, one colour per value across a report', async (t) => {
  t.deepEqual(['50 ms', '0 ms', '20 ms', '5 ms'].sort(labelOrder), ['0 ms', '5 ms', '20 ms', '50 ms']);
  t.deepEqual(['N=1000', 'N=100', 'N=20'].sort(labelOrder), ['N=20', 'N=100', 'N=1000']);
  const rows = (ls: string[]) => ls.flatMap((l) => [{ x: 1, y: 2, latency: l }, { x: 2, y: 3, latency: l }]);
  const a = lineChart('a', { data: rows(['0 ms', '20 ms', '5 ms', '50 ms']), x: 'x', y: 'y', xTitle: 'x', yTitle: 'y', color: 'latency' });
  const b = lineChart('b', { data: rows(['50 ms', '5 ms']), x: 'x', y: 'y', xTitle: 'x', yTitle: 'y', color: 'latency' });
  const [ha, hb] = harmonizeColors([a, b]);
  type Scale = { domain: string[]; range: string[] };
  const scaleOf = (c: typeof ha) => ((c!.lite!.encoding as { color: { scale: Scale } }).color.scale);
  t.deepEqual(scaleOf(ha).domain, ['0 ms', '5 ms', '20 ms', '50 ms']);
  t.deepEqual(scaleOf(hb).domain, ['5 ms', '50 ms']);
  const colourIn = (s: Scale, v: string) => s.range[s.domain.indexOf(v)];
  for (const v of ['5 ms', '50 ms']) t.is(colourIn(scaleOf(hb), v), colourIn(scaleOf(ha), v), `${v}: one colour in both charts`);
  t.is(new Set(scaleOf(ha).range).size, 4);
  // Still a chart Vega draws, its legend in that order.
  const svg = await renderChart(ha!);
  const order = ['0 ms', '5 ms', '20 ms', '50 ms'].map((l) => svg.indexOf(`>${l}<`));
  t.true(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)), `legend order in the SVG: ${order.join(', ')}`);
});
