/**
 * Tables and files: the standard tables built from a run's records (join
 * latency, flood fan-out, transfers, repairs, final tree), the scenario's
 * own tables, printed with cli-table3, and the JSON written to
 * results/<scenario>-<timestamp>.json (with the HTML report beside it).
 */
import fs from 'node:fs';
import path from 'node:path';
import Table from 'cli-table3';
import { renderTree, type TopoNode } from '../../core/index.ts';
import { transferRate } from '../../core/cli/format.ts';
import { floodNotFound, groupBy, summarize } from './metrics.ts';
import { htmlReport } from './report.ts';
import type { Records, ScenarioResult, StandardTables, TableSpec } from './records.ts';
import { checkTree } from '../../testnet/tree.ts';

export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return v < 10 ? v.toFixed(2) : v < 1000 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US');
}

/** MB/s of a transfer by the rule of core/cli/format.ts (transferRate), or null when it is too small or too short for a rate. */
export function transferMBps(bytes: number, durationMs: number | null): number | null {
  const rate = durationMs === null ? null : transferRate(bytes, durationMs);
  return rate === null ? null : rate / 1e6;
}

/** MB/s for a table cell, as the menu shows rates (formatRate): two decimals under 10, else one; '—' when there is none. */
export function mbpsCell(v: number | null | undefined): string {
  return v === null || v === undefined ? '—' : v.toFixed(v >= 10 ? 1 : 2);
}

/** Said instead of a rate when a transfer took no time at all (simulated links with no latency or bandwidth cap). */
export const NO_SIMULATED_TIME = '— (no simulated time)';

/** A transfer's MB/s cell: mbpsCell, or NO_SIMULATED_TIME for bytes moved in 0 ms. */
export function transferRateCell(bytes: number, durationMs: number | null): string {
  return durationMs === 0 && bytes > 0 ? NO_SIMULATED_TIME : mbpsCell(transferMBps(bytes, durationMs));
}

/** The MB/s of the transfers that have one (transferMBps). */
export function ratesOf(ts: readonly { bytes: number; durationMs: number | null }[]): number[] {
  return ts.flatMap((t) => transferMBps(t.bytes, t.durationMs) ?? []);
}

export function int(v: number | null | undefined): string {
  return v === null || v === undefined ? '—' : Math.round(v).toLocaleString('en-US');
}

export function mib(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(2)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/** Indented tree for up to 200 peers; beyond that, a one-line shape summary. */
export function renderTreeText(nodes: readonly TopoNode[]): string {
  if (nodes.length <= 200) return renderTree(nodes);
  const c = checkTree(nodes);
  return `${nodes.length} peers, ${c.roots.length} root(s) (${c.roots.slice(0, 3).join(', ')}), depth ${c.depth}, widest fan-out ${c.maxChildren}; peers per depth: ${c.perDepth.join(' / ')}`;
}

type Mode = 'auto' | 'rows' | 'summary' | 'off';
const ROWS_LIMIT = 40;

function pick(mode: Mode | undefined, n: number): 'rows' | 'summary' | 'off' {
  if (n === 0 || mode === 'off') return 'off';
  if (mode === 'rows' || mode === 'summary') return mode;
  return n > ROWS_LIMIT ? 'summary' : 'rows';
}

function floodResult(f: Records['floods'][number]): string {
  if (!f.answered) return `failed: ${f.error ?? ''}`;
  if (f.kind === 'topo') return `${f.reached} peers`;
  return f.hits.length ? `found at ${[...new Set(f.hits)].join(', ')}` : floodNotFound(f);
}

export function standardTables(def: { standard?: StandardTables }, r: Records, tree: ScenarioResult['tree']): TableSpec[] {
  const out: TableSpec[] = [];
  const multi = new Set([...r.joins, ...r.floods].map((x) => x.round)).size > 1;
  const rc = (round: string) => (multi ? [round] : []);
  const rh = multi ? ['round'] : [];
  const sd = def.standard ?? {};

  const jm = pick(sd.joins, r.joins.length);
  if (jm === 'rows') {
    const rows = r.joins.map((j) => [...rc(j.round), j.peer, ms(j.metaRttMs), String(j.redirects), ms(j.finalConnectMs), ms(j.totalMs), String(j.depth), j.parent ?? '(root)']);
    const s = summarize(r.joins.map((j) => j.totalMs));
    out.push({
      title: 'Join latency per peer',
      head: [...rh, 'peer', 'metaserver RTT ms', 'redirects', 'final connect ms', 'total ms', 'depth', 'parent'],
      rows,
      note: s ? `total: median ${ms(s.median)} ms, p95 ${ms(s.p95)} ms, max ${ms(s.max)} ms over ${s.n} joins` : undefined,
    });
  } else if (jm === 'summary') {
    out.push({
      title: 'Join latency (per-peer rows in the JSON)',
      head: ['round', 'peers', 'median ms', 'p95 ms', 'max ms', 'median metaserver RTT ms', 'redirects (mean / max)', 'max depth'],
      rows: [...groupBy(r.joins, (j) => j.round)].map(([round, js]) => {
        const s = summarize(js.map((j) => j.totalMs))!;
        const m = summarize(js.map((j) => j.metaRttMs))!;
        const red = js.map((j) => j.redirects);
        return [round || '—', int(js.length), ms(s.median), ms(s.p95), ms(s.max), ms(m.median), `${(red.reduce((a, b) => a + b, 0) / js.length).toFixed(2)} / ${Math.max(...red)}`, String(Math.max(...js.map((j) => j.depth)))];
      }),
    });
  }

  const fm = pick(sd.floods, r.floods.length);
  if (fm === 'rows') {
    out.push({
      title: 'Flood fan-out per request',
      head: [...rh, 'by', 'kind', 'name', 'answer', 'reached', 'messages', '2(N−1)', 'dups', 'deepest hop', 'first hit ms', 'done ms'],
      rows: r.floods.map((f) => [
        ...rc(f.round), f.by, f.kind, f.name || '—', floodResult(f), int(f.reached), int(f.messages), f.treeSize ? int(2 * (f.treeSize - 1)) : '—',
        int(f.duplicates), int(f.maxHops), ms(f.firstHitMs), ms(f.completionMs),
      ]),
      note: 'N = peers in the overlay when the request started (optimum on a tree: N−1 messages out, N−1 back); dups = duplicates dropped; done = definite answer.',
    });
  } else if (fm === 'summary') {
    out.push({
      title: 'Flood fan-out (per-request rows in the JSON)',
      head: ['round', 'kind', 'requests', 'answered', 'of them incomplete', 'median reached', 'median messages', 'duplicates', 'max deepest hop', 'median completion ms', 'p95 completion ms'],
      rows: [...groupBy(r.floods, (f) => f.round)].flatMap(([round, fs]) =>
        (['search', 'download', 'topo'] as const).filter((k) => fs.some((f) => f.kind === k)).map((k) => {
          const xs = fs.filter((f) => f.kind === k);
          const c = summarize(xs.map((f) => f.completionMs))!;
          return [round || '—', k, int(xs.length), int(xs.filter((f) => f.answered).length), int(xs.filter((f) => f.answered && f.missing.length > 0).length), int(summarize(xs.map((f) => f.reached))!.median), int(summarize(xs.map((f) => f.messages))!.median), int(xs.reduce((a, f) => a + f.duplicates, 0)), int(Math.max(...xs.map((f) => f.maxHops))), ms(c.median), ms(c.p95)];
        }),
      ),
    });
  }

  const tm = pick(sd.transfers, r.transfers.length);
  if (tm === 'summary') {
    const keyed = groupBy(r.transfers, (t) => `${t.round}\u0000${t.label}`);
    out.push({
      title: 'Transfers (per-transfer rows in the JSON)',
      head: ['round', 'what', 'downloads', 'verified', 'failed (by code)', 'bytes', 'median first byte ms', 'median MB/s', 'SHA-256 mismatches'],
      rows: [...keyed.values()].map((ts) => {
        const ok = ts.filter((t) => t.ok);
        const codes = new Map<string, number>();
        for (const t of ts) if (!t.ok && t.errorCode) codes.set(t.errorCode, (codes.get(t.errorCode) ?? 0) + 1);
        const mb = summarize(ratesOf(ok));
        return [ts[0]!.round || '—', ts[0]!.label, int(ts.length), int(ok.length), [...codes].map(([k, v]) => `${v} ${k}`).join(', ') || '0',
          int(ok.reduce((a, t) => a + t.bytes, 0)), ms(summarize(ok.map((t) => t.ttfbMs))?.median), ok.length && ok.every((t) => t.durationMs === 0 && t.bytes > 0) ? NO_SIMULATED_TIME : mbpsCell(mb?.median),
          int(ts.filter((t) => !t.errorCode && !t.ok).length)];
      }),
    });
  } else if (tm === 'rows') {
    out.push({
      title: 'Transfers',
      head: [...rh, 'file', 'from', 'to', 'bytes', 'first byte ms', 'duration ms', 'MB/s', 'SHA-256 ok'],
      rows: r.transfers.map((t) => [
        ...rc(t.round), t.file, t.from || '—', t.to, int(t.bytes), ms(t.ttfbMs), ms(t.durationMs), transferRateCell(t.bytes, t.durationMs),
        t.ok ? 'yes' : t.errorCode ? `failed: ${t.errorCode}` : 'NO',
      ]),
    });
  }

  const pm = pick(sd.repairs, r.repairs.length);
  if (pm === 'summary') {
    out.push({
      title: 'Repairs (per-orphan rows in the JSON)',
      head: ['round', 'lost', 'cause', 'orphans', 'median ms', 'p95 ms', 'max ms'],
      rows: [...groupBy(r.repairs, (x) => x.round)].flatMap(([round, rs]) =>
        [...groupBy(rs, (x) => `${x.lost}\u0000${x.cause}`).values()].map((xs) => {
          const q = summarize(xs.map((x) => x.ms));
          return [round || '—', xs[0]!.lost, xs[0]!.cause, int(xs.length), ms(q?.median), ms(q?.p95), ms(q?.max)];
        }),
      ),
      note: 'repair ms: from the loss being noticed to the orphan being reattached, measured by the orphan.',
    });
  } else if (pm === 'rows') {
    out.push({
      title: 'Repairs',
      head: [...rh, 'peer', 'cause', 'lost', 'new parent', 'repair ms'],
      rows: r.repairs.map((x) => [...rc(x.round), x.peer, x.cause, x.lost, x.newParent ?? '(root)', ms(x.ms)]),
      note: 'repair ms: from the loss being noticed to the orphan being reattached, measured by the orphan.',
    });
  }
  const faults = r.faults ?? []; // results written before records.faults existed have none
  if (faults.length) {
    const fr = new Set(faults.map((f) => f.round)).size > 1;
    out.push({
      title: 'Faults applied',
      head: [...(fr ? ['round'] : []), 'at ms', 'kind', 'targets', 'until ms', 'detail'],
      rows: faults.map((f) => [...(fr ? [f.round || '—'] : []), ms(f.at), f.kind, f.targets.join(' ') || '—', f.until === null ? 'end' : ms(f.until), f.detail || '—']),
      note: 'Scenario clock; until: when it stopped being in force (end: still in force when the run ended, or a lasting change).',
    });
  }
  if (tree && sd.tree !== 'off') out.push({ title: `Final tree${tree.round ? ` (${tree.round})` : ''}`, head: [], rows: tree.text.split('\n').map((l) => [l]) });
  return out;
}

/** One table as printed: its title, the grid (or the lines of a head-less table) and its note. */
export function renderTable(t: TableSpec): string {
  if (t.head.length === 0) return `\n${t.title}\n${t.rows.map((r) => `  ${r[0]}`).join('\n')}\n`;
  const table = new Table({ head: t.head, style: { head: [], border: [], compact: true } });
  for (const row of t.rows) table.push(row);
  return `\n${t.title}\n${table.toString()}\n${t.note ? `  ${t.note}\n` : ''}`;
}

export function printTables(tables: readonly TableSpec[]): void {
  for (const t of tables) process.stdout.write(renderTable(t));
}

/** Writes results/<scenario>-<timestamp>.json (and .html); returns the paths. */
export async function writeResults(dir: string, result: ScenarioResult, html: boolean): Promise<{ json: string; html?: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, '-').replace(/Z$/, '');
  const base = path.join(dir, `${result.scenario}-${stamp}`);
  const files: { json: string; html?: string } = { json: `${base}.json` };
  if (html) files.html = `${base}.html`;
  result.files = files;
  fs.writeFileSync(files.json, JSON.stringify(result, null, 2) + '\n');
  if (files.html) fs.writeFileSync(files.html, await htmlReport(result));
  return files;
}
