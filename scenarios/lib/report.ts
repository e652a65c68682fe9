/**
 * The self-contained HTML report written next to a run's JSON: summary,
 * failures, the final tree as inline SVG, charts of join latency and search
 * completion, then every printed table. No scripts, no network.
 */
import type { ScenarioResult } from './scenario.ts';
import { barChart, esc, treeSvg } from './svg.ts';

const CSS = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f1f3f5}td:first-child,th:first-child{text-align:left}.ok{color:#2a7a2a}.bad{color:#b52a2a}
.meta td{text-align:left}pre{background:#f6f8fa;padding:.7em;overflow:auto;font-size:.8em}.note{color:#666;font-size:.85em}`;

function tableHtml(head: string[], rows: string[][]): string {
  const h = head.length ? `<tr>${head.map((x) => `<th>${esc(x)}</th>`).join('')}</tr>` : '';
  return `<table>${h}${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</table>`;
}

export function htmlReport(r: ScenarioResult): string {
  const rec = r.records;
  const out: string[] = [];
  out.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>treeshare · ${esc(r.scenario)}</title><style>${CSS}</style></head><body>`);
  out.push(`<h1>treeshare scenario: ${esc(r.scenario)} <span class="${r.ok ? 'ok' : 'bad'}">${r.ok ? '✓ passed' : '✗ failed'}</span></h1>`);
  const o = r.options;
  out.push(tableHtml([], [
    ['command', r.command],
    ['started', r.startedAt],
    ['duration', `${(r.durationMs / 1000).toFixed(1)} s`],
    ['seed', String(r.seed)],
    ['runner', o.runner],
    ['peers / max children / policy', `${o.peers} / ${o.maxChildren} / ${o.policy}`],
    ['link shaping', `${o.latency} ms latency, ${o.bandwidth ? `${o.bandwidth.toLocaleString('en-US')} B/s` : 'no bandwidth cap'}`],
    ['steps / checks', `${rec.steps.length} steps, ${rec.checks.filter((c) => c.ok).length}/${rec.checks.length} checks passed`],
  ]).replace('<table>', '<table class="meta">'));
  if (r.failures.length) out.push(`<h2 class="bad">Failures</h2><ul>${r.failures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul>`);

  if (r.tree) {
    out.push(`<h2>Final tree${r.tree.round ? ` (${esc(r.tree.round)})` : ''}: ${r.tree.nodes.length.toLocaleString('en-US')} peers</h2>`);
    out.push(`<p class="note">Red: the root. Hover a node for its address, depth and file count.</p>${treeSvg(r.tree.nodes)}`);
  }

  if (rec.joins.length) {
    const multi = new Set(rec.joins.map((j) => j.round)).size > 1;
    out.push('<h2>Chart: join latency per peer</h2><p class="note">Register request sent → JOIN accepted, ms (the peer\'s own clock).</p>');
    out.push(barChart({ labels: rec.joins.map((j) => (multi ? `${j.round} ${j.peer}` : j.peer)), values: rec.joins.map((j) => j.totalMs), unit: 'ms', xTitle: 'peer' }));
  }
  const searches = rec.floods.filter((f) => f.kind !== 'topo' && f.answered);
  if (searches.length) {
    out.push('<h2>Chart: search completion</h2><p class="note">Request sent → definite answer, ms (the requester\'s clock).</p>');
    out.push(barChart({ labels: searches.map((f) => `${f.by} ${f.name}`), values: searches.map((f) => f.completionMs), unit: 'ms', xTitle: 'search (requester, file)' }));
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
