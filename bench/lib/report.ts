/**
 * Benchmark results: metrics (samples + summary + ratio to a baseline measured
 * in the same run), targets (pass/miss), micro results from benny; printed as
 * cli-table3 tables, saved as bench/results/<date>.json, and compared with the
 * previous saved run (changes beyond the noise are marked).
 *
 * Noise: see compare.ts (shared with scenarios/compare.ts): with 2..7 runs a
 * change of a median counts only when it exceeds the larger of 10% and half
 * the run-to-run spread ((max-min)/median) of either run; for micro results,
 * the larger of 10% and twice benny's relative margin of error.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { compareFigure, type Figure } from './compare.ts';
import { summarize, type Summary } from './stats.ts';

export type Better = 'higher' | 'lower';

export interface Metric {
  /** Stable key for comparisons across runs, e.g. "transfer.64MiB.peer". */
  id: string;
  group: string;
  label: string;
  /** Short name used where other rows quote this one as their baseline. */
  short?: string;
  unit: string;
  better: Better;
  samples: number[];
  summary: Summary;
  /** ids of the baseline metrics (same run) this one is compared with. */
  baselines?: string[];
  /** baseline id → this median / that baseline's median. */
  ratios?: Record<string, number>;
  /** Show p95 as well (latencies). */
  p95?: boolean;
  note?: string;
}

export interface Target {
  id: string;
  text: string;
  measured: number;
  required: number;
  op: '>=' | '<=' | '==';
  unit: string;
  pass: boolean;
  /** Shortfall in words when missed, e.g. "0.42× short (needs +35%)". */
  detail?: string;
}

export interface MicroResult {
  suite: string;
  name: string;
  ops: number;
  /** Relative margin of error, percent. */
  rme: number;
  samples: number;
  /** Derived throughput: ops * perOp, in `unit` (e.g. MB/s, peers/s). */
  derived?: { value: number; unit: string };
}

export interface RunFile {
  version: 1;
  date: string;
  mode: 'quick' | 'full';
  env: { node: string; platform: string; cpus: number; cpuModel: string; loadavgStart: number[]; loadavgEnd: number[]; memGB: number };
  durationMs: number;
  micro: MicroResult[];
  metrics: Metric[];
  targets: Target[];
  notes: string[];
  /** The sections this run ran, in order, and whether each finished (absent in runs saved before it was added). */
  sections?: { name: string; ok: boolean; ms: number }[];
}

/** The sections of `npm run bench`, in the order they run. */
export const BENCH_SECTIONS = ['micro', 'transfer', 'concurrent', 'busy', 'join', 'search', 'registrations'] as const;

/** Where runs are saved: bench/results/, or $TREESHARE_BENCH_RESULTS (the smoke stage keeps the repository clean). */
export const RESULTS_DIR = path.resolve(process.env.TREESHARE_BENCH_RESULTS || path.join(import.meta.dirname, '..', 'results'));
const RUN_FILE_RE = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:-\d{3})?Z\.json$/;

export class Report {
  readonly metrics: Metric[] = [];
  readonly targets: Target[] = [];
  readonly micro: MicroResult[] = [];
  readonly notes: string[] = [];
  readonly sections: { name: string; ok: boolean; ms: number }[] = [];

  add(m: Omit<Metric, 'summary' | 'ratios'>): Metric {
    const metric: Metric = { ...m, summary: summarize(m.samples) };
    for (const id of m.baselines ?? []) {
      const b = this.get(id);
      if (b && b.summary.median) (metric.ratios ??= {})[id] = metric.summary.median / b.summary.median;
    }
    const i = this.metrics.findIndex((x) => x.id === m.id);
    if (i >= 0) this.metrics[i] = metric;
    else this.metrics.push(metric);
    return metric;
  }

  get(id: string): Metric | undefined {
    return this.metrics.find((m) => m.id === id);
  }

  ratio(id: string, baseline: string): number {
    return this.get(id)?.ratios?.[baseline] ?? NaN;
  }

  target(t: Omit<Target, 'pass' | 'detail'> & { detail?: string }): Target {
    let pass: boolean;
    switch (t.op) {
      case '>=':
        pass = t.measured >= t.required;
        break;
      case '<=':
        pass = t.measured <= t.required;
        break;
      case '==':
        pass = t.measured === t.required;
        break;
    }
    let detail = t.detail;
    if (!pass && detail === undefined && Number.isFinite(t.measured) && t.measured !== 0) {
      if (t.op === '>=') detail = `short by ${fmtPct(1 - t.measured / t.required)} (needs ×${(t.required / t.measured).toFixed(2)})`;
      else if (t.op === '<=') detail = `over by ${fmtPct(t.measured / t.required - 1)}`;
      else detail = `off by ${fmt(t.measured - t.required)}`;
    }
    const target: Target = { ...t, pass, detail };
    this.targets.push(target);
    return target;
  }

  note(s: string): void {
    this.notes.push(s);
  }

  toFile(mode: 'quick' | 'full', startedAt: Date, loadavgStart: number[], durationMs: number): RunFile {
    return {
      version: 1,
      date: startedAt.toISOString(),
      mode,
      env: {
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        loadavgStart,
        loadavgEnd: os.loadavg(),
        memGB: Math.round(os.totalmem() / 1e9),
      },
      durationMs,
      micro: this.micro,
      metrics: this.metrics,
      targets: this.targets,
      notes: this.notes,
      sections: this.sections,
    };
  }
}

// ---- saving and loading runs ----

export function runFileName(d: Date): string {
  return `${d.toISOString().replace(/:/g, '-').replace(/\.\d{3}Z$/, 'Z')}.json`;
}

/** The newest saved run of the same mode (quick / full), else the newest of any mode, or null. */
export function loadPrevious(mode: 'quick' | 'full'): { file: string; run: RunFile } | null {
  let names: string[];
  try {
    names = fs.readdirSync(RESULTS_DIR).filter((n) => RUN_FILE_RE.test(n)).sort().reverse();
  } catch {
    return null;
  }
  let any: { file: string; run: RunFile } | null = null;
  for (const n of names) {
    const file = path.join(RESULTS_DIR, n);
    try {
      const run = JSON.parse(fs.readFileSync(file, 'utf8')) as RunFile;
      if (run.version !== 1 || !Array.isArray(run.metrics)) continue;
      if (run.mode === mode) return { file, run };
      any ??= { file, run };
    } catch {
      /* unreadable: try an older one */
    }
  }
  return any;
}

export function saveRun(run: RunFile, name: string): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, name);
  fs.writeFileSync(file, JSON.stringify(run, null, 2) + '\n');
  return file;
}

// ---- printing ----

export function fmt(v: number, unit = ''): string {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
  const a = Math.abs(v);
  let s: string;
  if (unit === 'msgs' || unit === 'peers' || unit === 'redirects') s = Math.round(v).toLocaleString('en-US');
  else if (a >= 1000) s = Math.round(v).toLocaleString('en-US');
  else if (a >= 100) s = v.toFixed(0);
  else if (a >= 10) s = v.toFixed(1);
  else if (a >= 1) s = v.toFixed(2);
  else s = v.toFixed(3);
  return unit ? `${s} ${unit}` : s;
}

export function fmtPct(x: number): string {
  return `${(x * 100).toFixed(Math.abs(x) < 0.1 ? 1 : 0)}%`;
}

function fmtRatio(r: number | undefined): string {
  if (r === undefined || !Number.isFinite(r)) return '';
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

const plain = { head: [] as string[], border: [] as string[] };

/** Change of a median against the previous run's (compare.ts decides what is beyond the noise), or '' when not comparable. */
function change(now: Metric, prev: Metric | undefined): string {
  const fig = (m: Metric): Figure => ({ id: m.id, label: m.label, unit: m.unit, better: m.better, samples: m.samples ?? [] });
  return compareFigure(prev ? fig(prev) : undefined, fig(now)).text;
}

/** Micro results: one ops/s figure each, noise from benny's margin of error. */
export function microFigure(r: MicroResult): Figure {
  return { id: `micro.${r.suite}.${r.name}`, label: `${r.suite}: ${r.name}`, unit: 'ops/s', better: 'higher', samples: [r.ops], rme: r.rme / 100 };
}

function microChange(now: MicroResult, prev: MicroResult | undefined): string {
  return compareFigure(prev ? microFigure(prev) : undefined, microFigure(now)).text;
}

export function printMicro(results: readonly MicroResult[], prev: RunFile | null): string {
  const t = new Table({ head: ['suite', 'case', 'ops/s', '±', 'samples', 'throughput', ...(prev ? ['vs previous'] : [])], style: plain });
  for (const r of results) {
    const p = prev?.micro.find((x) => x.suite === r.suite && x.name === r.name);
    t.push([r.suite, r.name, fmt(r.ops), `${r.rme.toFixed(1)}%`, String(r.samples), r.derived ? fmt(r.derived.value, r.derived.unit) : '', ...(prev ? [microChange(r, p)] : [])]);
  }
  return t.toString();
}

export function printGroup(rep: Report, group: string, prev: RunFile | null): string {
  const ms = rep.metrics.filter((m) => m.group === group);
  const anyP95 = ms.some((m) => m.p95);
  const head = ['', 'median', ...(anyP95 ? ['p95'] : []), 'min', 'max', 'runs', 'ratio to baseline', ...(prev ? ['vs previous'] : [])];
  const t = new Table({ head, style: plain });
  for (const m of ms) {
    const ratio = (m.baselines ?? []).map((id) => `${fmtRatio(m.ratios?.[id])} ${rep.get(id)?.short ?? rep.get(id)?.label ?? id}`).join('\n');
    const p = prev?.metrics.find((x) => x.id === m.id);
    t.push([
      m.label + (m.note ? `\n  ${m.note}` : ''),
      fmt(m.summary.median, m.unit),
      ...(anyP95 ? [m.p95 ? fmt(m.summary.p95, m.unit) : ''] : []),
      fmt(m.summary.min, m.unit),
      fmt(m.summary.max, m.unit),
      String(m.summary.n),
      ratio || (isBaseline(rep, m) ? '(baseline)' : ''),
      ...(prev ? [change(m, p)] : []),
    ]);
  }
  return t.toString();
}

function isBaseline(rep: Report, m: Metric): boolean {
  return rep.metrics.some((x) => x.baselines?.includes(m.id));
}

export function printTargets(targets: readonly Target[]): string {
  const t = new Table({ head: ['target', 'measured', 'required', 'result'], style: plain });
  for (const x of targets) {
    const show = (v: number) => (x.unit === '×' ? fmtRatio(v) : fmt(v, x.unit));
    t.push([x.text, show(x.measured), `${x.op === '==' ? '=' : x.op === '>=' ? '≥' : '≤'} ${show(x.required)}`, x.pass ? 'PASS' : `MISS${x.detail ? ` – ${x.detail}` : ''}`]);
  }
  return t.toString();
}
