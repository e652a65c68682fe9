/**
 * The self-contained HTML report written next to a run's JSON: summary,
 * failures, charts (drawn by Vega / Vega-Lite, see charts.ts, and embedded
 * as inline SVG): the tree before and after each repair, join latency as a
 * CDF per round, search completion against the depth the flood reached,
 * transfer rate over time for large files, then the scenario's own charts;
 * then every printed table. No scripts, no network.
 */
import { groupBy } from './metrics.ts';
import { barChart, cdfChart, harmonizeColors, lineChart, pointChart, renderChart, shadeFaults, treeChart, type ChartSpec } from './charts.ts';
import type { ScenarioResult } from './records.ts';
import { checkTree } from '../../testnet/tree.ts';

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Trees drawn node by node up to this size; beyond it, peers per depth. */
const TREE_NODE_LIMIT = 2500;
/** At most this many tree snapshots are drawn (the first and the last ones kept). */
const SNAPSHOT_LIMIT = 16;

export const CSS = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f1f3f5}td:first-child,th:first-child{text-align:left}.ok{color:#2a7a2a}.bad{color:#b52a2a}
.meta td{text-align:left}figure{margin:.8em 1em .8em 0}figcaption{font-weight:600;margin-bottom:.3em}
.trees,.charts{display:flex;flex-wrap:wrap;align-items:flex-start}.tree svg,.chart svg{max-width:100%;height:auto}pre{background:#f6f8fa;padding:.7em;overflow:auto;font-size:.8em}.note{color:#666;font-size:.85em}`;

export function tableHtml(head: string[], rows: string[][]): string {
  const h = head.length ? `<tr>${head.map((x) => `<th>${esc(x)}</th>`).join('')}</tr>` : '';
  return `<table>${h}${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</table>`;
}

function treeFigure(title: string, nodes: ScenarioResult['trees'][number]['nodes'], note?: string): ChartSpec {
  if (nodes.length <= TREE_NODE_LIMIT && checkTree(nodes).roots.length === 1) return treeChart(title, nodes, note);
  const c = checkTree(nodes);
  return barChart(title, { data: c.perDepth.map((n, d) => ({ depth: d, peers: n })), x: 'depth', y: 'peers', xTitle: 'depth', yTitle: 'peers' },
    `${nodes.length.toLocaleString('en-US')} peers${c.roots.length > 1 ? ` in ${c.roots.length} trees` : ''}: too many to draw one by one; peers per depth instead.`);
}

/** The standard charts built from a run's records (and its tree snapshots). */
export function standardCharts(r: ScenarioResult): { trees: ChartSpec[]; charts: ChartSpec[] } {
  const rec = r.records;
  const trees: ChartSpec[] = [];
  let snaps = r.trees ?? [];
  if (snaps.length > SNAPSHOT_LIMIT) snaps = [...snaps.slice(0, SNAPSHOT_LIMIT / 2), ...snaps.slice(-SNAPSHOT_LIMIT / 2)];
  for (const t of snaps) trees.push(treeFigure(`${t.round ? `[${t.round}] ` : ''}${t.label}: ${t.nodes.length} peers`, t.nodes));
  if (trees.length === 0 && r.tree) trees.push(treeFigure(`Final tree${r.tree.round ? ` (${r.tree.round})` : ''}: ${r.tree.nodes.length} peers`, r.tree.nodes));

  const charts: ChartSpec[] = [];
  if (rec.joins.length) {
    const byRound = groupBy(rec.joins, (j) => j.round || 'all');
    charts.push(cdfChart('Join latency (CDF per round)', new Map([...byRound].map(([k, js]) => [k, js.map((j) => j.totalMs)])), { xTitle: 'join latency, ms (register sent → JOIN accepted)', groupTitle: 'round' },
      'Each step is one peer\'s join, measured on the peer\'s own clock; the curve at x is the share of joins that took at most x ms.'));
  }
  const floods = rec.floods.filter((f) => f.answered);
  if (floods.length) {
    const rounds = new Set(floods.map((f) => f.round)).size;
    charts.push(pointChart('Flood completion against depth', {
      data: floods.map((f) => ({ depth: f.maxHops, ms: f.completionMs, kind: f.kind, round: f.round || '—', by: f.by, name: f.name || '(topology)', label: f.label })),
      x: 'depth', y: 'ms', xInt: true, xTitle: 'deepest hop the flood reached', yTitle: 'request sent → definite answer, ms', color: rounds > 1 ? 'round' : 'kind', colorTitle: rounds > 1 ? 'round' : 'request',
      tooltip: ['by', 'kind', 'name', 'label', 'depth', 'ms'],
    }, 'One point per search, download search or topology request (the requester\'s clock).'));
  }
  // Requests along the run: on the scenario clock, so the faults in force are shaded behind them (not drawn when every time is zero).
  const timed = rec.floods.filter((f) => f.completionMs !== null);
  if (timed.length && timed.some((f) => f.completionMs! > 0)) {
    charts.push({
      ...pointChart('Requests along the run', {
        data: timed.map((f) => ({ at: f.at, ms: f.completionMs, kind: f.kind, answered: f.answered ? 'answered' : 'unanswered', by: f.by, name: f.name || '(topology)', round: f.round || '—' })),
        x: 'at', y: 'ms', xTitle: `scenario time, ms (${r.clock === 'simulated' ? 'simulated' : 'wall clock'})`, yTitle: 'request sent → answer, ms', color: 'kind', colorTitle: 'request',
        tooltip: ['at', 'by', 'kind', 'name', 'answered', 'ms'],
      }, 'One point per search, download search or topology request, at the time it was sent.'),
      timeX: 'at',
    });
  }
  const sampled = rec.transfers.filter((t) => t.samples && t.samples.length >= 2);
  if (sampled.length) {
    const data: Record<string, string | number>[] = [];
    for (const t of sampled.slice(0, 24)) {
      const sm = t.samples!;
      for (let i = 1; i < sm.length; i++) {
        const dt = sm[i]![0] - sm[i - 1]![0];
        if (dt > 0) data.push({ transfer: `${t.to} ← ${t.file}${t.round ? ` (${t.round})` : ''}`, ms: sm[i]![0], rate: (sm[i]![1] - sm[i - 1]![1]) / 1e6 / (dt / 1000) });
      }
    }
    charts.push(lineChart('Transfer rate over time (large files)', { data, x: 'ms', y: 'rate', xTitle: 'ms since the download was requested (harness clock)', yTitle: 'MB/s (1 MB = 10^6 B)', color: 'transfer' },
      'Rate between consecutive progress reports of the downloading peer (files of 1 MiB and more).'));
  }
  return { trees, charts };
}

export async function figure(c: ChartSpec, cls = 'chart'): Promise<string> {
  let svg: string;
  try {
    svg = await renderChart(c);
  } catch (err) {
    svg = `<p class="bad">chart could not be drawn: ${esc(err instanceof Error ? err.message : String(err))}</p>`;
  }
  return `<figure class="${cls}"><figcaption>${esc(c.title)}</figcaption>${svg}${c.note ? `<p class="note">${esc(c.note)}</p>` : ''}</figure>`;
}

export async function htmlReport(r: ScenarioResult): Promise<string> {
  const rec = r.records;
  const out: string[] = [];
  out.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>treeshare · ${esc(r.scenario)}</title><style>${CSS}</style></head><body>`);
  out.push(`<h1>treeshare scenario: ${esc(r.scenario)} <span class="${r.ok ? 'ok' : 'bad'}">${r.ok ? '✓ passed' : '✗ failed'}</span></h1>`);
  const o = r.options;
  out.push(tableHtml([], [
    ['command', r.command],
    ['started', r.startedAt],
    ['duration', r.clock === 'simulated' ? `${(r.durationMs / 1000).toFixed(1)} s simulated (${((r.wallMs ?? 0) / 1000).toFixed(1)} s wall)` : `${(r.durationMs / 1000).toFixed(1)} s`],
    ['seed', String(r.seed)],
    ['runner', o.runner],
    ['peers / max children / policy', `${o.peers} / ${o.maxChildren} / ${o.policy}`],
    ['link shaping', `${o.latency} ms latency, ${o.bandwidth ? `${o.bandwidth.toLocaleString('en-US')} B/s` : 'no bandwidth cap'}`],
    ['steps / checks', `${rec.steps.length} steps, ${rec.checks.filter((c) => c.ok).length}/${rec.checks.length} checks passed`],
  ]).replace('<table>', '<table class="meta">'));
  if (r.failures.length) out.push(`<h2 class="bad">Failures</h2><ul>${r.failures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul>`);

  const std = standardCharts(r);
  if (std.trees.length) {
    out.push(`<h2>${std.trees.length > 1 ? 'The tree along the run' : 'The tree'}</h2><p class="note">Root on top, in red. Hover a node for its id and depth.</p><div class="trees">`);
    for (const c of std.trees) out.push(await figure(c, 'tree'));
    out.push('</div>');
  }
  const own = r.charts ?? [];
  if (std.charts.length || own.length) {
    out.push('<h2>Charts</h2><div class="charts">');
    const faults = rec.faults ?? []; // results written before records.faults existed have none
    for (const c of harmonizeColors([...own, ...std.charts])) out.push(await figure(shadeFaults(c, faults, r.durationMs)));
    out.push('</div>');
  }
  for (const t of r.tables) {
    if (t.head.length === 0) {
      out.push(`<h2>${esc(t.title)} (text)</h2><pre>${esc(t.rows.map((x) => x[0]).join('\n'))}</pre>`);
      continue;
    }
    out.push(`<h2>${esc(t.title)}</h2>${tableHtml(t.head, t.rows)}${t.note ? `<p class="note">${esc(t.note)}</p>` : ''}`);
  }
  out.push(`<h2>Steps</h2>${tableHtml(['step', 'ok', 'ms', 'error'], rec.steps.map((s) => [s.name, s.ok ? 'yes' : s.soft ? 'no (expected)' : 'NO', s.ms.toFixed(0), s.error ?? '']))}`);
  if (rec.checks.length) out.push(`<h2>Checks</h2>${tableHtml(['check', 'ok', 'detail'], rec.checks.map((c) => [c.what, c.ok ? 'yes' : 'NO', c.detail ?? '']))}`);
  out.push('</body></html>\n');
  return out.join('\n');
}
