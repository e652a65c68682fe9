/**
 * The HTML report of a study (self-contained, like a run's report.ts): each
 * figure's median against the swept parameter (the first swept one with
 * several values; a log axis where its values span a decade or more, and
 * a log y axis where a figure spans two),
 * one line per value of the other swept parameters, the 95% interval of the
 * median as error bars (Vega-Lite, rendered to SVG by charts.ts); then a
 * table per point and every run with its seed and command.
 */
import { fmt } from '../../bench/lib/report.ts';
import type { ChartSpec } from './charts.ts';
import { CSS, esc, figure, tableHtml } from './report.ts';
import type { Study } from './study-file.ts';
import { paramValue } from './sweep.ts';

/** Positive values whose largest is at least `ratio` times the smallest (10: a decade). */
const spans = (xs: readonly number[], ratio: number) => xs.length > 1 && xs.every((x) => x > 0) && Math.max(...xs) / Math.min(...xs) >= ratio;


/** The charts of a study: one per figure that is not the same at every point (none without a parameter of several values). */
export function studyCharts(s: Study): ChartSpec[] {
  const axis = s.sweeps.find((w) => w.values.length > 1 && w.values.every((v) => typeof paramValue(v) === 'number')) ?? s.sweeps.find((w) => w.values.length > 1);
  if (!axis) return [];
  const xs = s.points.map((p) => p.params[axis.name]);
  const numeric = xs.every((x) => typeof x === 'number');
  const logX = numeric && spans(xs as number[], 10);
  const others = s.sweeps.filter((w) => w !== axis && w.values.length > 1).map((w) => w.name);
  const series = (p: Study['points'][number]) => others.map((n) => `${n}=${p.params[n]}`).join(' ') || 'all';
  const charts: ChartSpec[] = [];
  for (const [name, info] of Object.entries(s.figureInfo)) {
    const rows = s.points.flatMap((p) => {
      const f = p.figures[name];
      return f ? [{ x: p.params[axis.name]!, series: series(p), median: f.median, lo: f.ci95[0], hi: f.ci95[1], n: f.n, point: p.key }] : [];
    });
    if (rows.length < 2) continue;
    const ys = rows.flatMap((r) => [r.median, r.lo, r.hi]);
    if (Math.max(...ys) === Math.min(...ys)) continue;
    const logY = spans(ys, 100);
    const yScale = logY ? { type: 'log', nice: true } : { zero: false };
    const yTitle = `${info.label}${info.unit ? `, ${info.unit}` : ''}${logY ? ' (log)' : ''}`;
    charts.push({
      title: `${info.label} against ${axis.name}`,
      note: `Median over each point's runs; bars: the 95% interval of the median (order statistics). ${info.better ? `${info.better === 'lower' ? 'Lower' : 'Higher'} is better.` : ''}`,
      lite: {
        width: 420,
        height: 220,
        data: { values: rows },
        encoding: {
          x: numeric
            ? { field: 'x', type: 'quantitative', title: `${axis.name}${logX ? ' (log)' : ''}`, scale: logX ? { type: 'log', nice: true } : { zero: false } }
            : { field: 'x', type: 'ordinal', title: axis.name, axis: { labelAngle: 0 } },
          color: { field: 'series', type: 'nominal', title: others.join(' ') || ' ' },
        },
        layer: [
          { mark: { type: 'errorbar', ticks: true }, encoding: { y: { field: 'lo', type: 'quantitative', title: yTitle, scale: yScale }, y2: { field: 'hi' } } },
          {
            mark: { type: 'line', point: true },
            encoding: {
              y: { field: 'median', type: 'quantitative', title: yTitle, scale: yScale },
              tooltip: [{ field: 'point' }, { field: 'median' }, { field: 'lo', title: '95% low' }, { field: 'hi', title: '95% high' }, { field: 'n' }],
            },
          },
        ],
      },
    });
  }
  return charts;
}

export async function studyHtml(s: Study): Promise<string> {
  const out: string[] = [];
  out.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>treeshare · ${esc(s.scenario)} study</title><style>${CSS}</style></head><body>`);
  out.push(`<h1>treeshare study: ${esc(s.scenario)} <span class="${s.ok ? 'ok' : 'bad'}">${s.ok ? '✓ every run passed' : `✗ ${s.counts.failed} run(s) failed`}</span></h1>`);
  out.push(tableHtml([], [
    ['command', s.command],
    ['started / updated', `${s.startedAt} / ${s.updatedAt}${s.finished ? '' : ' (not finished: continue with --resume)'}`],
    ['seed', `${s.seed} (each run's seed derived from it, the point and the repetition)`],
    ['sweeps', s.sweeps.map((w) => `${w.name} = ${w.values.join(', ')}`).join('; ') || '(none)'],
    ['points × repeat', `${s.points.length} × ${s.repeat} = ${s.counts.runs} runs, ${s.counts.done} done, ${s.counts.failed} failed`],
    ...Object.entries(s.method).map(([k, v]) => [`method: ${k}`, v]),
  ]).replace('<table>', '<table class="meta">'));
  const charts = studyCharts(s);
  if (charts.length) {
    out.push('<h2>Figures against the swept parameter</h2><div class="charts">');
    for (const c of charts) out.push(await figure(c));
    out.push('</div>');
  }
  for (const p of s.points) {
    out.push(`<h2>${esc(p.key || 'All runs')}</h2>`);
    out.push(tableHtml(['figure', 'unit', 'n', 'median', '95% interval (median)', 'mean', 'sd', '95% interval (mean)'], Object.entries(p.figures).map(([name, f]) => {
      const i = s.figureInfo[name];
      return [i?.label ?? name, i?.unit ?? '', String(f.n), fmt(f.median), `${fmt(f.ci95[0])} – ${fmt(f.ci95[1])}`, fmt(f.mean), fmt(f.sd), f.meanCi95 ? `${fmt(f.meanCi95[0])} – ${fmt(f.meanCi95[1])}` : '—'];
    })));
    out.push(tableHtml(['run', 'seed', 'ok', 'wall s', 'simDigest', 'command (re-runs it alone)'], p.runs.map((r) => [
      `#${r.rep + 1}`, String(r.seed), r.ok ? 'yes' : `NO: ${r.failures.join('; ')}`, r.wallMs === null ? '—' : (r.wallMs / 1000).toFixed(1), r.simDigest ?? '—', r.command,
    ])));
  }
  out.push('</body></html>\n');
  return out.join('\n');
}
