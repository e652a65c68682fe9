/**
 * Inline SVG for the HTML report, no dependencies: the tree (layered layout:
 * leaves in depth-first order, a parent centred over its children), bar
 * charts, and for many values a sorted curve (value by rank).
 */
import type { TopoNode } from '../../core/index.ts';
import { treeFromNodes, type TreeView } from '../../core/index.ts';

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const TREE_NODE_LIMIT = 2500;

export function treeSvg(nodes: readonly TopoNode[]): string {
  if (nodes.length === 0) return '<p>(no tree)</p>';
  if (nodes.length > TREE_NODE_LIMIT) return depthHistogram(nodes);
  const roots = treeFromNodes(nodes);
  const labels = nodes.length <= 120;
  const dx = labels ? 56 : nodes.length <= 600 ? 14 : 6;
  const dy = labels ? 64 : 40;
  const r = labels ? 14 : nodes.length <= 600 ? 4 : 2;
  const pos = new Map<string, { x: number; y: number; v: TreeView }>();
  let slot = 0;
  let maxDepth = 0;
  const place = (v: TreeView, d: number): number => {
    maxDepth = Math.max(maxDepth, d);
    let x: number;
    if (v.children.length === 0) x = slot++ * dx;
    else {
      const xs = v.children.map((c) => place(c, d + 1));
      x = (xs[0]! + xs[xs.length - 1]!) / 2;
    }
    pos.set(v.id, { x, y: d * dy, v });
    return x;
  };
  for (const root of roots) {
    place(root, 0);
    slot++;
  }
  const pad = 24;
  const w = Math.max(slot * dx, dx) + pad * 2;
  const h = maxDepth * dy + pad * 2 + (labels ? 16 : 0);
  const parts: string[] = [];
  for (const { x, y, v } of pos.values()) {
    for (const c of v.children) {
      const p = pos.get(c.id)!;
      parts.push(`<line x1="${(x + pad).toFixed(1)}" y1="${y + pad}" x2="${(p.x + pad).toFixed(1)}" y2="${p.y + pad}" stroke="#8895a7" stroke-width="${labels ? 1.5 : 0.6}"/>`);
    }
  }
  for (const { x, y, v } of pos.values()) {
    const title = `${v.id} ${v.host}:${v.port} depth ${v.depth}, ${v.files} file${v.files === 1 ? '' : 's'}`;
    const fill = v.depth === 0 ? '#d9534f' : '#3b7dd8';
    parts.push(`<g><title>${esc(title)}</title><circle cx="${(x + pad).toFixed(1)}" cy="${y + pad}" r="${r}" fill="${fill}"/>` +
      (labels ? `<text x="${(x + pad).toFixed(1)}" y="${y + pad + 4}" text-anchor="middle" font-size="10" fill="#fff">${esc(v.id.length > 6 ? v.id.slice(0, 6) : v.id)}</text>` : '') + '</g>');
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w.toFixed(0)} ${h}" width="${Math.min(w, 1400).toFixed(0)}" style="max-width:100%;height:auto" font-family="sans-serif">${parts.join('')}</svg>`;
}

function depthHistogram(nodes: readonly TopoNode[]): string {
  const per: number[] = [];
  for (const n of nodes) per[n.depth] = (per[n.depth] ?? 0) + 1;
  const values = Array.from(per, (v) => v ?? 0);
  return `<p>${nodes.length.toLocaleString('en-US')} peers: too many to draw one by one; peers per depth instead.</p>` +
    barChart({ labels: values.map((_, i) => `d${i}`), values, unit: 'peers', xTitle: 'depth' });
}

export interface ChartInput {
  labels: string[];
  values: (number | null)[];
  unit: string;
  xTitle?: string;
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axes(w: number, h: number, l: number, b: number, max: number, unit: string): string {
  const ticks = 4;
  const out: string[] = [];
  for (let i = 0; i <= ticks; i++) {
    const v = (max * i) / ticks;
    const y = h - b - ((h - b - 10) * i) / ticks;
    out.push(`<line x1="${l}" x2="${w - 5}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e3e6ea"/>`);
    out.push(`<text x="${l - 4}" y="${(y + 3).toFixed(1)}" text-anchor="end" font-size="10" fill="#555">${+v.toPrecision(3)}</text>`);
  }
  out.push(`<text x="4" y="12" font-size="10" fill="#555">${esc(unit)}</text>`);
  return out.join('');
}

/** Bars, one per value (≤ 80), else a sorted curve of the values by rank. */
export function barChart(c: ChartInput): string {
  const vals = c.values.map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : null));
  const present = vals.filter((v): v is number => v !== null);
  if (present.length === 0) return '<p>(no data)</p>';
  if (vals.length > 80) return rankCurve(present, c.unit);
  const w = 760;
  const h = 240;
  const l = 48;
  const b = 46;
  const max = niceMax(Math.max(...present));
  const bw = (w - l - 10) / vals.length;
  const parts = [axes(w, h, l, b, max, c.unit)];
  vals.forEach((v, i) => {
    const x = l + i * bw + bw * 0.1;
    const label = esc(c.labels[i] ?? '');
    if (v !== null) {
      const bh = ((h - b - 10) * v) / max;
      parts.push(`<g><title>${label}: ${+v.toPrecision(4)} ${esc(c.unit)}</title><rect x="${x.toFixed(1)}" y="${(h - b - bh).toFixed(1)}" width="${(bw * 0.8).toFixed(1)}" height="${bh.toFixed(1)}" fill="#3b7dd8"/></g>`);
    }
    const tx = x + bw * 0.4;
    parts.push(`<text transform="translate(${tx.toFixed(1)},${h - b + 10}) rotate(40)" font-size="9" fill="#333">${label.slice(0, 18)}</text>`);
  });
  if (c.xTitle) parts.push(`<text x="${w / 2}" y="${h - 2}" text-anchor="middle" font-size="10" fill="#555">${esc(c.xTitle)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" style="max-width:100%;height:auto" font-family="sans-serif">${parts.join('')}</svg>`;
}

function rankCurve(values: number[], unit: string): string {
  const v = [...values].sort((a, b) => a - b);
  const w = 760;
  const h = 240;
  const l = 48;
  const b = 30;
  const max = niceMax(v[v.length - 1]!);
  const pts = v.map((y, i) => `${(l + ((w - l - 10) * i) / Math.max(1, v.length - 1)).toFixed(1)},${(h - b - ((h - b - 10) * y) / max).toFixed(1)}`);
  const parts = [axes(w, h, l, b, max, unit), `<polyline points="${pts.join(' ')}" fill="none" stroke="#3b7dd8" stroke-width="1.5"/>`];
  for (const [q, name] of [[0.5, 'median'], [0.95, 'p95']] as const) {
    const i = Math.min(v.length - 1, Math.ceil(q * v.length) - 1);
    const x = l + ((w - l - 10) * i) / Math.max(1, v.length - 1);
    parts.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="10" y2="${h - b}" stroke="#d9534f" stroke-dasharray="3,3"/><text x="${(x + 3).toFixed(1)}" y="20" font-size="10" fill="#d9534f">${name} ${+v[i]!.toPrecision(3)}</text>`);
  }
  parts.push(`<text x="${w / 2}" y="${h - 6}" text-anchor="middle" font-size="10" fill="#555">${v.length.toLocaleString('en-US')} values, sorted (rank →)</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" style="max-width:100%;height:auto" font-family="sans-serif">${parts.join('')}</svg>`;
}
