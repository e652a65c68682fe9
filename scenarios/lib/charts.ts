/**
 * Charts for the HTML reports, drawn by Vega / Vega-Lite: a chart is a plain
 * JSON spec (kept in the run's JSON so a report can be re-rendered), compiled
 * and rendered to SVG headless in Node (`View.toSVG()` with renderer 'none':
 * no browser, no canvas, no network; text widths are estimated).
 *
 * Builders for the charts the scenarios use: a tree (Vega's tidy tree
 * layout), a CDF, points, lines (optionally on log axes), bars.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopoNode } from '../../core/index.ts';

/** One chart of a report: a Vega-Lite spec (`lite`) or a full Vega spec (`vega`). */
export interface ChartSpec {
  title: string;
  note?: string;
  lite?: Record<string, unknown>;
  vega?: Record<string, unknown>;
  /** The x field of this (Vega-Lite) chart is the scenario clock in ms: the report shades the faults in force (shadeFaults). */
  timeX?: string;
}

/** A fault as the charts shade it (records.faults rows: faults.ts FaultRow). */
export interface FaultSpan {
  kind: string;
  at: number;
  until: number | null;
  targets: readonly string[];
  detail: string;
}

const FONT = 'system-ui, sans-serif';
const CONFIG = {
  font: FONT,
  axis: { labelFontSize: 11, titleFontSize: 12, labelOverlap: true, labelLimit: 160 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 280 },
  view: { stroke: '#ddd' },
};

/**
 * The title of a time axis (one titled in ms) whose values are all 0 in a Vega-Lite chart, else null:
 * a run on simulated links with no latency takes no simulated time, and such a chart would collapse
 * onto one axis value.
 */
export function zeroTimeAxis(c: ChartSpec): string | null {
  const lite = c.lite as { data?: { values?: Row[] }; encoding?: Record<string, { field?: string; title?: string; type?: string }> } | undefined;
  const rows = lite?.data?.values;
  if (!rows?.length || !lite?.encoding) return null;
  for (const ch of ['x', 'y'] as const) {
    const e = lite.encoding[ch];
    if (!e?.field || e.type !== 'quantitative' || !/\bms\b/.test(e.title ?? '')) continue;
    if (rows.every((r) => r[e.field!] === 0)) return e.title!;
  }
  return null;
}

/** Renders one chart to an SVG string (throws on an invalid spec); a chart of times that are all 0 is refused in words. */
export async function renderChart(c: ChartSpec): Promise<string> {
  const zero = zeroTimeAxis(c);
  if (zero !== null) {
    const text = `not charted: every "${zero}" value is 0 (no simulated time passed: the links had no latency; give --latency)`.replace(/[<>&]/g, '');
    return `<svg xmlns="http://www.w3.org/2000/svg" width="560" height="30"><text x="4" y="20" font-family="${FONT}" font-size="13">${text}</text></svg>`;
  }
  let spec: vega.Spec;
  if (c.vega) spec = c.vega as vega.Spec;
  else if (c.lite) spec = vl.compile({ config: CONFIG, ...c.lite } as vl.TopLevelSpec).spec;
  else throw new Error(`chart "${c.title}" has no spec`);
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

type Row = Record<string, string | number | null>;

interface XY {
  data: Row[];
  x: string;
  y: string;
  xTitle: string;
  yTitle: string;
  color?: string;
  colorTitle?: string;
  logX?: boolean;
  logY?: boolean;
  tooltip?: readonly string[];
  width?: number;
  height?: number;
  /** x is a category (ordinal) rather than a number. */
  xOrdinal?: boolean;
  /** x takes whole values only (ticks on integers). */
  xInt?: boolean;
}

function enc(o: XY): Record<string, unknown> {
  const q = (field: string, title: string, log?: boolean, zero = true) => ({ field, type: 'quantitative', title, scale: log ? { type: 'log', nice: true } : { zero } });
  return {
    x: o.xOrdinal ? { field: o.x, type: 'ordinal', title: o.xTitle, axis: { labelAngle: 0 } }
      : { ...q(o.x, o.xTitle, o.logX, false), ...(o.xInt ? { axis: { tickMinStep: 1, format: 'd' } } : {}) },
    y: q(o.y, o.yTitle, o.logY),
    ...(o.color ? { color: { field: o.color, type: 'nominal', title: o.colorTitle ?? o.color } } : {}),
    ...(o.tooltip ? { tooltip: o.tooltip.map((f) => ({ field: f })) } : {}),
  };
}

const size = (o: { width?: number; height?: number }) => ({ width: o.width ?? 560, height: o.height ?? 260 });

/** Points (scatter). */
export function pointChart(title: string, o: XY, note?: string): ChartSpec {
  return { title, note, lite: { ...size(o), data: { values: o.data }, mark: { type: 'point', filled: true, size: 60, opacity: 0.8 }, encoding: enc(o) } };
}

/** Lines with points, one per `color` group. */
export function lineChart(title: string, o: XY, note?: string): ChartSpec {
  return { title, note, lite: { ...size(o), data: { values: o.data }, mark: { type: 'line', point: true }, encoding: enc(o) } };
}

/** Bars by category (x ordinal). */
export function barChart(title: string, o: XY, note?: string): ChartSpec {
  return { title, note, lite: { ...size(o), data: { values: o.data }, mark: 'bar', encoding: enc({ ...o, xOrdinal: true }) } };
}

/** Empirical CDF of `values` per group: fraction of values ≤ x, as a step line. */
export function cdfChart(title: string, groups: ReadonlyMap<string, readonly number[]>, o: { xTitle: string; groupTitle?: string; logX?: boolean }, note?: string): ChartSpec {
  const data: Row[] = [];
  for (const [g, vs] of groups) {
    const v = vs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    v.forEach((x, i) => data.push({ group: g, value: x, fraction: (i + 1) / v.length }));
  }
  const multi = groups.size > 1;
  return {
    title,
    note,
    lite: {
      ...size({}),
      data: { values: data },
      mark: { type: 'line', interpolate: 'step-after', point: data.length <= 60 },
      encoding: {
        x: { field: 'value', type: 'quantitative', title: o.xTitle, scale: o.logX ? { type: 'log', nice: true } : { zero: true } },
        y: { field: 'fraction', type: 'quantitative', title: 'fraction ≤ x', scale: { domain: [0, 1] }, axis: { format: '%' } },
        ...(multi ? { color: { field: 'group', type: 'nominal', title: o.groupTitle ?? 'group', sort: [...groups.keys()] } } : {}),
      },
    },
  };
}

/**
 * A tree drawn with Vega's tidy tree layout (root on top): one node per
 * peer, the root in red; ids as labels up to 80 peers; width grows with the
 * number of leaves so labels stay readable. Needs one root.
 */
export function treeChart(title: string, nodes: readonly Pick<TopoNode, 'id' | 'parent' | 'depth'>[], note?: string): ChartSpec {
  const ids = new Set(nodes.map((n) => n.id));
  const values = nodes.map((n) => ({ id: n.id, parent: n.parent !== null && ids.has(n.parent) ? n.parent : null }));
  const hasChild = new Set(values.map((v) => v.parent).filter((p): p is string => p !== null));
  const leaves = values.filter((v) => !hasChild.has(v.id)).length;
  const depth = Math.max(0, ...nodes.map((n) => n.depth));
  const labels = nodes.length <= 80;
  const width = Math.max(160, Math.min(1100, leaves * (labels ? 64 : 10)));
  const height = Math.max(60, Math.min(700, depth * (labels ? 80 : 36)));
  const r = labels ? 300 : nodes.length <= 400 ? 60 : 16;
  return {
    title,
    note,
    vega: {
      $schema: 'https://vega.github.io/schema/vega/v6.json',
      width,
      height,
      padding: labels ? 22 : 8,
      autosize: 'pad',
      data: [
        {
          name: 'tree',
          values,
          transform: [
            { type: 'stratify', key: 'id', parentKey: 'parent' },
            { type: 'tree', method: 'tidy', size: [width, height], as: ['x', 'y', 'depth', 'children'] },
          ],
        },
        { name: 'links', source: 'tree', transform: [{ type: 'treelinks' }, { type: 'linkpath', orient: 'vertical', shape: 'line' }] },
      ],
      marks: [
        { type: 'path', from: { data: 'links' }, encode: { update: { path: { field: 'path' }, stroke: { value: '#8895a7' }, strokeWidth: { value: labels ? 1.5 : 0.6 } } } },
        {
          type: 'symbol',
          from: { data: 'tree' },
          encode: {
            update: {
              x: { field: 'x' },
              y: { field: 'y' },
              size: { value: r * (labels ? 2.2 : 1) },
              fill: { signal: "datum.depth === 0 ? '#d9534f' : '#3b7dd8'" },
              tooltip: { signal: "datum.id + ' (depth ' + datum.depth + ')'" },
            },
          },
        },
        ...(labels
          ? [{
            type: 'text',
            from: { data: 'tree' },
            encode: { update: { x: { field: 'x' }, y: { field: 'y' }, text: { field: 'id' }, dy: { value: 4 }, align: { value: 'center' }, fontSize: { value: 10 }, font: { value: FONT }, fill: { value: '#fff' } } },
          }]
          : []),
      ],
    },
  };
}

/**
 * A time chart (its `timeX` field on the scenario clock, ms) with the faults
 * shaded behind its marks: a band per fault over the interval it was in
 * force (until null: to `endMs`), a dashed line for an instant one (reset,
 * heal, a zero-length stall), coloured by kind under the legend "fault".
 * Charts without `timeX`, or no faults: unchanged.
 */
export function shadeFaults(c: ChartSpec, faults: readonly FaultSpan[], endMs: number): ChartSpec {
  if (!c.timeX || !c.lite || faults.length === 0) return c;
  const { data, mark, encoding, width, height, ...rest } = c.lite as Record<string, unknown>;
  const x = (encoding as { x?: { title?: string } }).x ?? {};
  const row = (f: FaultSpan) => ({ fault: f.kind, from: f.at, to: f.until ?? endMs, targets: f.targets.join(' ').slice(0, 80), detail: f.detail });
  const spans = faults.filter((f) => f.until === null || f.until > f.at).map(row);
  const instants = faults.filter((f) => f.until !== null && f.until <= f.at).map(row);
  const color = { field: 'fault', type: 'nominal', title: 'fault', scale: { domain: [...new Set(faults.map((f) => f.kind))].sort(), range: PALETTE.slice(-5).concat(PALETTE) } };
  const tooltip = ['fault', 'from', 'to', 'targets', 'detail'].map((field) => ({ field }));
  const fx = { field: 'from', type: 'quantitative', title: x.title };
  const faultLayers = [
    ...(spans.length ? [{ data: { values: spans }, mark: { type: 'rect', opacity: 0.18 }, encoding: { x: fx, x2: { field: 'to' }, color, tooltip } }] : []),
    ...(instants.length ? [{ data: { values: instants }, mark: { type: 'rule', strokeDash: [4, 3], strokeWidth: 1.5 }, encoding: { x: fx, color, tooltip } }] : []),
  ];
  return {
    ...c,
    lite: { ...rest, width, height, layer: [{ layer: faultLayers }, { data, mark, encoding }], resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } } },
    note: `${c.note ? `${c.note} ` : ''}Shaded: the faults in force (dashed: instant ones).`,
  };
}

/** Vega's default categorical palette (tableau10), assigned by hand so a value keeps its colour across charts. */
const PALETTE = ['#4c78a8', '#f58518', '#e45756', '#72b7b2', '#54a24b', '#eeca3b', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac'];

/** Orders labels with numbers by their numbers: "5 ms" < "20 ms" < "50 ms", "N=100" < "N=1000" (text order otherwise). */
export function labelOrder(a: string, b: string): number {
  const num = /-?\d+(?:\.\d+)?/g;
  const shape = (s: string) => s.replace(num, '#');
  if (shape(a) === shape(b)) {
    const na = a.match(num) ?? [];
    const nb = b.match(num) ?? [];
    for (let i = 0; i < na.length; i++) if (Number(na[i]) !== Number(nb[i])) return Number(na[i]) - Number(nb[i]);
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The charts of one report with their colour legends in numeric order and one colour per value across
 * all of them (a value such as "20 ms" is the same colour in every chart). Charts whose colour scale is
 * set already are left as they are.
 */
export function harmonizeColors(charts: readonly ChartSpec[]): ChartSpec[] {
  type Color = { field?: string; type?: string; scale?: unknown; sort?: unknown };
  const colorOf = (c: ChartSpec) => {
    const color = (c.lite?.encoding as { color?: Color } | undefined)?.color;
    return color && color.field && color.type === 'nominal' && !color.scale ? color : undefined;
  };
  // Values as the data has them (a number stays a number: the scale matches values, not their text).
  const valuesOf = (c: ChartSpec, field: string) => {
    const rows = ((c.lite?.data as { values?: Row[] } | undefined)?.values ?? []);
    return [...new Set(rows.map((r) => r[field]).filter((v): v is string | number => v !== null && v !== undefined))].sort((a, b) => labelOrder(String(a), String(b)));
  };
  const all = [...new Set(charts.flatMap((c) => {
    const color = colorOf(c);
    return color ? valuesOf(c, color.field!).map(String) : [];
  }))].sort(labelOrder);
  const colour = new Map(all.map((v, i) => [v, PALETTE[i % PALETTE.length]!]));
  return charts.map((c) => {
    const color = colorOf(c);
    if (!color) return c;
    const domain = valuesOf(c, color.field!);
    const encoding = { ...(c.lite!.encoding as Record<string, unknown>), color: { ...color, sort: domain, scale: { domain, range: domain.map((v) => colour.get(String(v))!) } } };
    return { ...c, lite: { ...c.lite, encoding } };
  });
}
