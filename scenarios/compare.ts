/**
 * Compares runs: two or more result files of the same scenario
 * (results/<scenario>-<time>.json) or two or more bench results
 * (bench/results/<time>.json). Prints each figure side by side with its
 * change against the first run (and whether the change is beyond the noise,
 * see bench/lib/compare.ts, the module the bench uses against its previous
 * run), and writes an HTML page with the same as charts.
 *
 *   npx tsx scenarios/compare.ts A.json B.json [C.json …] [--out DIR] [--no-html] [--json]
 *   npx tsx scenarios/compare.ts A-study.json B-study.json [--fail-on-regression] …  (two studies: lib/study-compare.ts)
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { compareRuns, type Comparison, type Figure } from '../bench/lib/compare.ts';
import { fmt, microFigure, type RunFile } from '../bench/lib/report.ts';
import { barChart, renderChart, type ChartSpec } from './lib/charts.ts';
import { groupBy } from './lib/metrics.ts';
import { esc } from './lib/report.ts';
import type { ScenarioResult } from './lib/records.ts';
import { REPO } from './lib/shares.ts';
import { readJsonFile } from './lib/json-file.ts';
import { isStudyFile } from './lib/study-file.ts';
import { differenceWarning, studyCompareCli } from './lib/study-compare.ts';
import { guardStdout } from '../core/stdout.ts';

export class CompareError extends Error {}

type Loaded = { kind: 'scenario'; name: string; file: string; run: ScenarioResult } | { kind: 'bench'; name: string; file: string; run: RunFile };

export function load(file: string): Loaded {
  const o = readJsonFile(file, (m) => new CompareError(m)) as Record<string, unknown>;
  const name = path.basename(file, '.json');
  if (o && typeof o.scenario === 'string' && o.records && typeof o.records === 'object') {
    const run = o as unknown as ScenarioResult;
    run.records.faults ??= []; // written before records.faults existed
    return { kind: 'scenario', name, file, run };
  }
  if (o && o.version === 1 && Array.isArray(o.metrics)) return { kind: 'bench', name, file, run: o as unknown as RunFile };
  throw new CompareError(`${file} is neither a scenario result (results/*.json) nor a bench result (bench/results/*.json)`);
}

const nums = (xs: readonly (number | null | undefined)[]) => xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));

function betterOf(key: string): Figure['better'] {
  if (/mbps|per ?s(ec)?$|PerSec|throughput|verified|answered/i.test(key)) return 'higher';
  if (/ms$|Ms$|bytes|Bytes|depth|messages|failed|duplicates/i.test(key)) return 'lower';
  return undefined;
}

/** Short keys of scenario summaries, in words. */
const WORDS: Record<string, string> = { L: 'latency', D: 'tree depth', N: 'peers', k: 'holders', ms: 'ms', rtt: 'RTT', cpu: 'CPU', rss: 'RSS', mbps: 'MB/s', sha256: 'SHA-256' };

/** A summary key path (`fromHead[L=0].D`, `searchPerLevelMs.20`) as people read it: "from head, latency 0: tree depth", "search per level, 20". */
export function figureLabel(at: string): string {
  const words = (k: string) => WORDS[k] ?? k.replace(/(Ms|MiB|Bytes)$/, '').replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/\b([A-Z])([a-z])/g, (_m, a: string, b: string) => a.toLowerCase() + b).replace(/\b(cpu|rss|rtt)\b/gi, (m) => m.toUpperCase()).replace(/\bP(\d+)\b/, 'p$1').trim();
  return at.split('.').map((seg) => {
    const m = /^([^[]*)\[([^\]]*)\]$/.exec(seg);
    if (!m) return words(seg);
    const [k, v] = m[2]!.includes('=') ? m[2]!.split('=') as [string, string] : [null, m[2]!];
    return `${words(m[1]!)}, ${k === null ? `#${v}` : `${words(k)} ${v}`}`;
  }).join(': ');
}

/** Numeric leaves of a scenario's `summary` (arrays of numbers: samples; arrays of objects keyed by N / id / name / size, else by their first field). */
function summaryFigures(v: unknown, at: string, out: Figure[]): void {
  const unit = /ms$|Ms(?=$|[.[])/.test(at) ? 'ms' : /bytes$|Bytes(?=$|[.[])/i.test(at) ? 'B' : '';
  if (typeof v === 'number' && Number.isFinite(v)) {
    out.push({ id: `summary.${at}`, label: figureLabel(at), unit, better: betterOf(at), samples: [v] });
  } else if (Array.isArray(v)) {
    if (v.length && v.every((x) => typeof x === 'number')) {
      out.push({ id: `summary.${at}`, label: figureLabel(at), unit: unit === 'ms' ? 'ms' : '', better: betterOf(at), samples: nums(v as number[]) });
      return;
    }
    v.forEach((x, i) => {
      const o = x as Record<string, unknown>;
      let key = String(i);
      if (o && typeof o === 'object') {
        const first = Object.entries(o)[0];
        key = ['N', 'id', 'name', 'size'].map((k) => (o[k] !== undefined ? `${k}=${String(o[k])}` : '')).find(Boolean)
          ?? (first && (typeof first[1] === 'number' || typeof first[1] === 'string') ? `${first[0]}=${String(first[1])}` : key);
      }
      summaryFigures(x, `${at}[${key}]`, out);
    });
  } else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) summaryFigures(x, at ? `${at}.${k}` : k, out);
  }
}

/** The figures of one scenario run: per round, join / flood / transfer / repair figures from its records, then its summary. */
export function scenarioFigures(r: ScenarioResult): Figure[] {
  const out: Figure[] = [];
  const rec = r.records;
  const add = (id: string, label: string, unit: string, better: Figure['better'], samples: number[]) => {
    if (samples.length) out.push({ id, label, unit, better, samples });
  };
  add('duration', 'run duration', 's', 'lower', [r.durationMs / 1000]);
  add('failures', 'failed steps and checks', '', 'lower', [r.failures.length]);
  const rounds = new Set([...rec.joins, ...rec.floods, ...rec.transfers, ...rec.repairs].map((x) => x.round));
  const multi = rounds.size > 1;
  const pre = (round: string) => (multi ? `[${round || '—'}] ` : '');
  for (const [round, js] of groupBy(rec.joins, (j) => j.round)) add(`join.${round}`, `${pre(round)}join latency (per peer)`, 'ms', 'lower', nums(js.map((j) => j.totalMs)));
  for (const [round, fs] of groupBy(rec.floods.filter((f) => f.answered), (f) => f.round)) {
    for (const kind of ['search', 'download', 'topo'] as const) {
      const xs = fs.filter((f) => f.kind === kind);
      add(`flood.${round}.${kind}`, `${pre(round)}${kind === 'download' ? 'download search' : kind === 'topo' ? 'topology request' : 'search'} completion`, 'ms', 'lower', nums(xs.map((f) => f.completionMs)));
      add(`flood.${round}.${kind}.messages`, `${pre(round)}${kind} messages per request`, 'msgs', 'lower', nums(xs.map((f) => f.messages)));
    }
  }
  for (const [round, ts] of groupBy(rec.transfers, (t) => t.round)) {
    const ok = ts.filter((t) => t.ok);
    add(`transfer.${round}.mbps`, `${pre(round)}transfer rate (per download)`, 'MB/s', 'higher', nums(ok.map((t) => t.mbps)));
    add(`transfer.${round}.ttfb`, `${pre(round)}transfer first byte`, 'ms', 'lower', nums(ok.map((t) => t.ttfbMs)));
    add(`transfer.${round}.failed`, `${pre(round)}failed downloads`, '', 'lower', [ts.length - ok.length]);
  }
  for (const [round, rs] of groupBy(rec.repairs, (x) => x.round)) add(`repair.${round}`, `${pre(round)}repair time (per orphan)`, 'ms', 'lower', nums(rs.map((x) => x.ms)));
  summaryFigures(r.summary, '', out);
  return out;
}

export function benchFigures(r: RunFile): Figure[] {
  return [
    ...r.metrics.map((m) => ({ id: m.id, label: `${m.group.replace(/\s*\(.*\)$/, '')}: ${m.label.trim()}`, unit: m.unit, better: m.better, samples: m.samples ?? [] })),
    ...(r.micro ?? []).map(microFigure),
  ];
}

/** Loads the files and compares them; throws CompareError for files that cannot be compared. */
/**
 * How scenario runs differ in runner or options (peers, latency, bandwidth, policy, max-children and
 * the scenario's own options), one entry each ("runner: A process, B memory"); empty when they agree.
 * A change between such runs is (also) the effect of that difference, not only of the code.
 */
export function optionDifferences(runs: readonly ScenarioResult[]): string[] {
  const flat = runs.map((r) => {
    const { extra, ...common } = r.options ?? ({} as ScenarioResult['options']);
    return new Map(Object.entries({ ...common, ...(extra ?? {}) }).map(([k, v]) => [k, v === undefined ? '—' : JSON.stringify(v).replace(/^"(.*)"$/, '$1')]));
  });
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))];
  const words: Record<string, string> = { maxChildren: 'max-children' };
  return keys
    .filter((k) => new Set(flat.map((m) => m.get(k) ?? '—')).size > 1)
    .map((k) => `${words[k] ?? k}: ${flat.map((m, i) => `${letter(i)} ${m.get(k) ?? '—'}`).join(', ')}`);
}

export function compareFiles(files: readonly string[]): { kind: 'scenario' | 'bench'; title: string; cmp: Comparison; differences: string[] } {
  if (files.length < 2) throw new CompareError('give two or more result files to compare');
  const runs = files.map(load);
  const kinds = new Set(runs.map((r) => r.kind));
  if (kinds.size > 1) throw new CompareError('cannot compare a scenario result with a bench result');
  const first = runs[0]!;
  if (first.kind === 'scenario') {
    const names = new Set(runs.map((r) => (r.kind === 'scenario' ? r.run.scenario : '')));
    if (names.size > 1) throw new CompareError(`runs of different scenarios (${[...names].join(', ')}): compare runs of one scenario`);
  }
  const cmp = compareRuns(runs.map((r) => ({ name: r.name, figures: r.kind === 'scenario' ? scenarioFigures(r.run) : benchFigures(r.run) })));
  const title = first.kind === 'scenario' ? `scenario ${first.run.scenario}` : `bench (${[...new Set(runs.map((r) => (r.kind === 'bench' ? r.run.mode : '')))].join(' / ')} runs)`;
  const differences = first.kind === 'scenario' ? optionDifferences(runs.map((r) => r.run as ScenarioResult)) : [];
  return { kind: first.kind, title, cmp, differences };
}

const letter = (i: number) => String.fromCharCode(65 + (i % 26)) + (i >= 26 ? String(Math.floor(i / 26)) : '');

function cell(v: Comparison['rows'][number]['values'][number], unit: string): string {
  if (!v) return '—';
  const m = Number.isInteger(v.median) ? v.median.toLocaleString('en-US') : fmt(v.median);
  return `${m}${v.n > 1 ? ` (median of ${v.n})` : ''}`;
}

export function comparisonTable(cmp: Comparison): { head: string[]; rows: string[][] } {
  const head = ['figure', 'unit', ...cmp.runs.flatMap((_, i) => (i === 0 ? [letter(i)] : [letter(i), `${letter(i)} vs A`]))];
  const rows = cmp.rows.map((r) => [r.label, r.unit, ...r.values.flatMap((v, i) => (i === 0 ? [cell(v, r.unit)] : [cell(v, r.unit), r.changes[i]?.text || '']))]);
  return { head, rows };
}

export function comparisonCharts(cmp: Comparison): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const changes = cmp.rows.flatMap((r) => r.changes.map((c, i) => (c && c.rel !== null ? { figure: r.label, run: `${letter(i)} vs A`, change: c.rel * 100, verdict: c.verdict, how: c.how } : null)).filter((x) => x !== null));
  if (changes.length) {
    const h = Math.max(120, new Set(changes.map((c) => c.figure)).size * 18 * Math.max(1, cmp.runs.length - 1));
    charts.push({
      title: 'Change of each figure against run A (median)',
      note: 'Bars: (run / A − 1) of the median, in %. Colour: beyond the noise and better or worse, within the noise (same), or not judged (one value each, or no better/worse direction).',
      lite: {
        width: 520, height: h, data: { values: changes },
        mark: 'bar',
        encoding: {
          y: { field: 'figure', type: 'nominal', title: null, sort: null, axis: { labelLimit: 320 } },
          ...(cmp.runs.length > 2 ? { yOffset: { field: 'run' } } : {}),
          x: { field: 'change', type: 'quantitative', title: 'change against A, %' },
          color: { field: 'verdict', type: 'nominal', title: 'verdict', scale: { domain: ['better', 'worse', 'same', 'changed', 'unknown'], range: ['#2a9d4a', '#d9534f', '#9aa5b1', '#e0a526', '#c9cfd6'] } },
          tooltip: [{ field: 'figure' }, { field: 'run' }, { field: 'change', format: '.1f' }, { field: 'verdict' }, { field: 'how' }],
        },
      },
    });
  }
  for (const [unit, rows] of groupBy(cmp.rows.filter((r) => r.values.filter(Boolean).length >= 2), (r) => r.unit || '(count)')) {
    const data = rows.flatMap((r) => r.values.map((v, i) => (v ? { figure: r.label, run: letter(i), median: v.median } : null)).filter((x) => x !== null));
    if (data.every((d) => d.median === 0)) continue;
    const c = barChart(`Figures in ${unit}, side by side`, { data, x: 'figure', y: 'median', xTitle: '', yTitle: `median, ${unit}`, color: 'run', colorTitle: 'run' });
    const lite = c.lite as Record<string, unknown> & { encoding: Record<string, unknown> };
    lite.width = Math.max(300, Math.min(1000, rows.length * 22 * cmp.runs.length));
    lite.encoding.xOffset = { field: 'run' };
    lite.encoding.x = { field: 'figure', type: 'nominal', title: null, sort: null, axis: { labelAngle: -30, labelLimit: 220 } };
    charts.push(c);
  }
  return charts;
}

export async function comparisonHtml(title: string, files: readonly string[], cmp: Comparison, differences: readonly string[] = []): Promise<string> {
  const t = comparisonTable(cmp);
  const out: string[] = [];
  out.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>treeshare · compare ${esc(title)}</title><style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1300px;color:#222;padding:0 1em}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f1f3f5}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figcaption{font-weight:600}.note{color:#666;font-size:.85em}svg{max-width:100%;height:auto}</style></head><body>`);
  out.push(`<h1>treeshare: compare ${esc(title)}</h1><ul>${files.map((f, i) => `<li><b>${letter(i)}</b>: ${esc(f)}</li>`).join('')}</ul>`);
  if (differences.length) out.push(`<p style="background:#fff3cd;border:2px solid #d9480f;padding:.6em;font-weight:600">${esc(differenceWarning(differences))}</p>`);
  out.push('<h2>Charts</h2>');
  for (const c of comparisonCharts(cmp)) {
    let svg: string;
    try {
      svg = await renderChart(c);
    } catch (err) {
      svg = `<p>chart could not be drawn: ${esc((err as Error).message)}</p>`;
    }
    out.push(`<figure class="chart"><figcaption>${esc(c.title)}</figcaption>${svg}${c.note ? `<p class="note">${esc(c.note)}</p>` : ''}</figure>`);
  }
  out.push(`<h2>Figures</h2><table><tr>${t.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</table>`);
  out.push(`<p class="note">Values: the median of the figure's samples (one per peer, request, download or bench repeat). "~": within the noise; "▲ better" / "▼ WORSE": beyond it (bench/lib/compare.ts: a Mann–Whitney test from 8 samples each, else 10% or half the spread).</p>`);
  out.push('</body></html>\n');
  return out.join('\n');
}

async function cli(argv: string[]): Promise<number> {
  if (argv.some(isStudyFile)) return studyCompareCli(argv);
  let a;
  try {
    a = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string' }, 'no-html': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`compare: ${(err as Error).message} (see --help)\n`);
    return 2;
  }
  if (a.values.help) {
    process.stdout.write(`Usage: npx tsx scenarios/compare.ts A.json B.json [C.json …] [options]

Compares runs of one scenario (results/<scenario>-<time>.json) or bench results
(bench/results/<time>.json): each figure side by side, with its change against A
and whether that change is beyond the noise. Writes an HTML page with charts.

Options:
  --out DIR    where the HTML page goes (default: results/)
  --no-html    print the table only
  --json       print the comparison as JSON instead of a table
  -h, --help   this text
`);
    return 0;
  }
  let res;
  try {
    res = compareFiles(a.positionals);
  } catch (err) {
    if (err instanceof CompareError) {
      process.stderr.write(`compare: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (a.values.json) process.stdout.write(JSON.stringify(res.differences.length ? { ...res.cmp, differences: res.differences } : res.cmp, null, 2) + '\n');
  if (res.differences.length) (a.values.json ? process.stderr : process.stdout).write(`${differenceWarning(res.differences)}\n`);
  if (!a.values.json) {
    const t = comparisonTable(res.cmp);
    const table = new Table({ head: t.head, style: { head: [], border: [], compact: true } });
    for (const r of t.rows) table.push(r);
    process.stdout.write(`Compare ${res.title}\n${a.positionals.map((f, i) => `  ${letter(i)}: ${f}`).join('\n')}\n${table.toString()}\n`);
    process.stdout.write('  "~": within the noise; ▲ / ▼: beyond it (Mann–Whitney from 8 samples each, else 10% or half the spread); "(one value each)": noise unknown.\n');
  }
  if (!a.values['no-html']) {
    const dir = path.resolve(a.values.out ?? path.join(REPO, 'results'));
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `compare-${new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '')}.html`);
    fs.writeFileSync(file, await comparisonHtml(res.title, a.positionals, res.cmp, res.differences));
    (a.values.json ? process.stderr : process.stdout).write(`→ ${path.relative(process.cwd(), file)}\n`);
  }
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  guardStdout();
  process.exitCode = await cli(process.argv.slice(2));
}
