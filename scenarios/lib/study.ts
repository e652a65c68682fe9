/**
 * Studies: any scenario run over the cross-product of `--sweep NAME=VALUES`
 * (common or scenario options), each point `--repeat N` times with seeds
 * derived from `--seed`, the point and the repetition (sweep.ts). Each run is
 * its own process (study-worker.ts, started with zx through testnet's
 * runScript), `--parallel K` at once; every finished run goes into
 * results/<scenario>-study-<time>.json at once (written to a temporary file
 * and renamed), so Ctrl-C or a crash loses nothing finished and
 * `--resume FILE` runs only what the file lacks. A failed run is recorded
 * with its error and the study goes on (exit 1 at the end). Per point and
 * figure: n, median, mean, sd and 95% intervals (stats.ts); the HTML report
 * is study-report.ts. The shape is in docs/SCENARIOS.md, "Studies".
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { installSignalHandlers, onCleanup, cleanupAll } from '../../testnet/cleanup.ts';
import { runScript } from '../../testnet/driver.ts';
import { optionConfig, parseOptions, UsageError, type CommonOptions } from './args.ts';
import { printTables } from './output.ts';
import type { ScenarioDef, TableSpec } from './scenario.ts';
import { REPO } from './shares.ts';
import { fmt } from '../../bench/lib/report.ts';
import { figureStats, MEDIAN_CI_METHOD, type FigureStats } from './stats.ts';
import { studyHtml } from './study-report.ts';
import { loadStudy, workerSchema, type Study, type StudyPoint, type StudyRun, type WorkerOutput } from './study-file.ts';

export { isMachineFigure, isStudyFile, loadStudy, StudyFileError, type FigureInfo, type Study, type StudyPoint, type StudyRun, type WorkerOutput } from './study-file.ts';
import { deriveSeed, MAX_RUNS, paramValue, parseSweep, pointKey, points, type Params, type Sweep } from './sweep.ts';
import { randomSeed } from './rng.ts';

/** Common options a sweep may vary (the scenario's own options may be swept too). */
export const SWEEPABLE = ['peers', 'runner', 'max-children', 'policy', 'latency', 'bandwidth'] as const;

const STUDY_OPTIONS = {
  sweep: { type: 'string', multiple: true },
  repeat: { type: 'string' },
  parallel: { type: 'string' },
  resume: { type: 'string' },
  'run-timeout': { type: 'string' },
} as const;

/** Options of the run's own result that a study sets itself (not passed on to the runs). */
const STUDY_OWNED = new Set(['seed', 'json', 'quiet', 'out', 'no-html', 'help']);

export const STUDY_HELP = `study options (any of them makes a study: many runs, one result):
  --sweep NAME=V1,V2,...  run every value (repeatable: the cross-product); NAME is a common option
                          (${SWEEPABLE.join(', ')}) or this scenario's own; ranges: 1000..100000*10, 0..50+10
  --repeat N              run each point N times, seeds derived from --seed, the point and the repetition
  --parallel K            runs at once, each its own process (default: the cores for the memory runner,
                          half of them for inproc, 1 for process)
  --resume FILE           continue the study in FILE (results/<scenario>-study-<time>.json), skipping its runs
  --run-timeout DURATION  a run taking longer is stopped and recorded as failed (e.g. 10m; default none)
Result: results/<scenario>-study-<time>.json and .html (docs/SCENARIOS.md, "Studies").`;

/** True when the command line asks for a study. */
export function isStudyArgv(argv: readonly string[]): boolean {
  return argv.some((a) => Object.keys(STUDY_OPTIONS).some((k) => a === `--${k}` || a.startsWith(`--${k}=`)));
}

/** Per point, each figure's statistics over the point's ok runs. */
export function pointFigures(runs: readonly StudyRun[]): Record<string, FigureStats> {
  const names = [...new Set(runs.filter((r) => r.ok).flatMap((r) => Object.keys(r.figures)))];
  const out: Record<string, FigureStats> = {};
  for (const n of names) {
    const s = figureStats(runs.filter((r) => r.ok && n in r.figures).map((r) => r.figures[n]!));
    if (s) out[n] = s;
  }
  return out;
}

/** Writes `data` to `file` atomically (a temporary file in the same folder, renamed over it). */
function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

// ---- the plan ----

export interface Job {
  point: StudyPoint;
  rep: number;
  seed: number;
  argv: string[];
}

export interface Plan {
  def: ScenarioDef;
  study: Study;
  file: string;
  jobs: Job[];
  parallel: number;
  runTimeoutMs: number | null;
  json: boolean;
  quiet: boolean;
  html: boolean;
}

function intArg(name: string, v: string | undefined, dflt: number, lo: number, hi: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v.trim()) || Number(v) < lo || Number(v) > hi) throw new UsageError(`--${name} must be a whole number from ${lo} to ${hi}, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** The argv of one point: the base options, each swept option's value, the seed. */
function pointArgv(def: ScenarioDef, base: readonly string[], params: Params, seed: number): string[] {
  const out = [...base];
  for (const [k, v] of Object.entries(params)) {
    if (def.options?.[k]?.type === 'boolean') {
      if (v === 'true') out.push(`--${k}`);
    } else out.push(`--${k}`, String(v));
  }
  return [...out, '--seed', String(seed)];
}

/** Default --parallel: a memory-runner run is one thread; inproc runs load more than one core; process runs start many processes. */
export function defaultParallel(runners: readonly string[], cores = os.availableParallelism()): number {
  if (runners.includes('process')) return 1;
  if (runners.includes('inproc')) return Math.max(1, Math.floor(cores / 2));
  return Math.max(1, cores);
}

/**
 * Builds the plan of a study from the command line (a new study, or
 * `--resume FILE`): every bad sweep, value or combination is a UsageError
 * before anything runs (each point's options go through the scenario's own
 * parser and validate()).
 */
export function planStudy(def: ScenarioDef, argv: readonly string[], now = new Date()): Plan {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...optionConfig(def.options), ...STUDY_OPTIONS }, strict: true, allowPositionals: false, tokens: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!.replace(/\. To specify.*$/, ''));
  }
  const v = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const str = (k: string) => v[k] as string | undefined;
  // The base argv: every option given that is neither a study option nor one the study sets itself.
  const base: string[] = [];
  const givenNames = new Set<string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== 'option' || t.name in STUDY_OPTIONS) continue;
    givenNames.add(t.name);
    if (STUDY_OWNED.has(t.name)) continue;
    base.push(`--${t.name}`, ...(t.value !== undefined ? [t.value] : []));
  }
  const common = parseOptions(baseForParse(parsed.tokens ?? []), def.defaults, def.options);
  const parallelArg = str('parallel');
  const runTimeoutMs = str('run-timeout') === undefined ? null : durationMs('run-timeout', str('run-timeout')!);
  const shared = { json: common.json, quiet: common.quiet, runTimeoutMs };

  if (str('resume') !== undefined) {
    const extra = [...givenNames].filter((n) => !['json', 'quiet', 'no-html'].includes(n));
    if (v.sweep !== undefined || v.repeat !== undefined || extra.length) throw new UsageError(`--resume takes the study's options from its file; give only --parallel, --run-timeout, --json, --quiet or --no-html with it, not ${[...(v.sweep ? ['--sweep'] : []), ...(v.repeat ? ['--repeat'] : []), ...extra.map((n) => `--${n}`)].join(' ')}`);
    const file = path.resolve(str('resume')!);
    let study: Study;
    try {
      study = loadStudy(file);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (study.scenario !== def.name) throw new UsageError(`${file} is a study of ${study.scenario}, not of ${def.name}`);
    const jobs = jobsOf(def, study, true);
    return { def, study, file, jobs, parallel: intArg('parallel', parallelArg, defaultParallel(runnersOf(def, study)), 1, 256), ...shared, html: common.html };
  }

  const sweeps: Sweep[] = [];
  const names = new Set<string>([...SWEEPABLE, ...Object.keys(def.options ?? {})]);
  for (const spec of (v.sweep as string[] | undefined) ?? []) {
    const sw = parseSweep(spec, names);
    if (sweeps.some((s) => s.name === sw.name)) throw new UsageError(`--sweep ${sw.name} is given twice: give all its values in one --sweep`);
    if (givenNames.has(sw.name)) throw new UsageError(`--${sw.name} is both given and swept: drop one`);
    if (def.options?.[sw.name]?.type === 'boolean' && sw.values.some((x) => x !== 'true' && x !== 'false')) throw new UsageError(`--sweep ${sw.name}: a flag takes true or false, not ${sw.values.join(',')}`);
    sweeps.push(sw);
  }
  const repeat = intArg('repeat', str('repeat'), 1, 1, 10_000);
  const seed = common.given.has('seed') ? common.seed : randomSeed();
  const axes = Object.fromEntries(sweeps.map((s) => [s.name, s.values]));
  const pts = points<Record<string, string>>(axes);
  if (pts.length * repeat > MAX_RUNS) throw new UsageError(`a study of ${pts.length} points × ${repeat} runs is more than ${MAX_RUNS} runs`);
  const stamp = now.toISOString();
  const file = path.join(common.out, `${def.name}-study-${stamp.replace(/[:.]/g, '-').replace(/Z$/, '')}.json`);
  const study: Study = {
    kind: 'treeshare-study',
    version: 1,
    scenario: def.name,
    command: ['npx tsx', `scenarios/${def.name}.ts`, ...argv, ...(common.given.has('seed') ? [] : ['--seed', String(seed)])].join(' '),
    startedAt: stamp,
    updatedAt: stamp,
    finished: false,
    ok: true,
    seed,
    repeat,
    sweeps,
    base,
    method: {
      run: 'each figure of a run is the median of its samples (one per peer, request or download) or its single value',
      point: 'n, median, mean and sd over the point\'s runs that passed (ok); failed runs are kept in runs[] but not counted',
      ci95: MEDIAN_CI_METHOD,
      meanCi95: "Student's t: mean ± t(0.975, n−1) · sd / √n",
      seeds: 'each run\'s seed is derived from the study seed, the point (its key) and the repetition: deriveSeed in scenarios/lib/sweep.ts',
    },
    counts: { runs: pts.length * repeat, done: 0, failed: 0 },
    figureInfo: {},
    points: pts.map((p) => {
      const params: Params = Object.fromEntries(Object.entries(p).map(([k, x]) => [k, paramValue(x)]));
      return { key: pointKey(params), params, runs: [], figures: {} };
    }),
    files: {},
  };
  const jobs = jobsOf(def, study, true);
  return { def, study, file, jobs, parallel: intArg('parallel', parallelArg, defaultParallel(runnersOf(def, study)), 1, 256), ...shared, html: common.html };
}

/** The argv without the study's own options (for parsing the common ones). */
function baseForParse(tokens: NonNullable<ReturnType<typeof parseArgs>['tokens']>): string[] {
  const out: string[] = [];
  for (const t of tokens) if (t.kind === 'option' && !(t.name in STUDY_OPTIONS)) out.push(`--${t.name}`, ...(t.value !== undefined ? [t.value] : []));
  return out;
}

function durationMs(name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const ms = m ? Number(m[1]) * unit[(m[2] ?? 's') as keyof typeof unit] : NaN;
  if (!(ms > 0 && ms <= 7 * 24 * 3_600_000)) throw new UsageError(`--${name} must be a positive duration like 90s, 10m or 1h, not ${JSON.stringify(v)}`);
  return ms;
}

/** Each point's options, parsed and validated by the scenario (a UsageError names the point). */
function pointOptions(def: ScenarioDef, study: Study, p: StudyPoint): CommonOptions {
  try {
    const o = parseOptions(pointArgv(def, study.base, p.params, 0), def.defaults, def.options);
    def.validate?.(o);
    return o;
  } catch (err) {
    if (err instanceof UsageError && p.key) throw new UsageError(`at ${p.key}: ${err.message}`);
    throw err;
  }
}

function runnersOf(def: ScenarioDef, study: Study): string[] {
  return [...new Set(study.points.map((p) => pointOptions(def, study, p).runner))];
}

/** The runs still to do, repetition by repetition (every point's first run, then every point's second, …), so a stopped study has all points. */
function jobsOf(def: ScenarioDef, study: Study, validate: boolean): Job[] {
  if (validate) for (const p of study.points) pointOptions(def, study, p);
  const jobs: Job[] = [];
  for (let rep = 0; rep < study.repeat; rep++) {
    for (const point of study.points) {
      if (point.runs.some((r) => r.rep === rep)) continue;
      const seed = deriveSeed(study.seed, point.key, rep);
      jobs.push({ point, rep, seed, argv: pointArgv(def, study.base, point.params, seed) });
    }
  }
  return jobs;
}

// ---- running ----

/** Adds a finished run to the study (and its figures' descriptions); recomputes the point's statistics and the counts. */
export function recordRun(study: Study, job: Job, out: WorkerOutput | { error: string }): StudyRun {
  const command = ['npx tsx', `scenarios/${study.scenario}.ts`, ...job.argv].join(' ');
  const run: StudyRun = 'error' in out
    ? { rep: job.rep, seed: job.seed, argv: job.argv, command, ok: false, failures: [out.error], error: out.error, simDigest: null, durationMs: null, wallMs: null, figures: {}, summary: {}, tables: [] }
    : { ...out.run, rep: job.rep, seed: job.seed, argv: job.argv, command };
  if (!('error' in out)) for (const [k, i] of Object.entries(out.figureInfo)) study.figureInfo[k] ??= i;
  const p = job.point;
  p.runs = [...p.runs.filter((r) => r.rep !== run.rep), run].sort((a, b) => a.rep - b.rep);
  p.figures = pointFigures(p.runs);
  const all = study.points.flatMap((x) => x.runs);
  study.counts = { runs: study.points.length * study.repeat, done: all.length, failed: all.filter((r) => !r.ok).length };
  study.ok = study.counts.failed === 0;
  study.updatedAt = new Date().toISOString();
  return run;
}

/** Runs one job as its own process (study-worker.ts); resolves to its output, or null when it was stopped (Ctrl-C) before finishing. */
async function runJob(def: ScenarioDef, job: Job, tmpDir: string, signal: AbortSignal, timeoutMs: number | null): Promise<WorkerOutput | { error: string } | null> {
  const outFile = path.join(tmpDir, `run-${job.point.key.replace(/[^\w.=-]+/g, '_')}-${job.rep}.json`);
  const ac = new AbortController();
  const stop = () => ac.abort();
  signal.addEventListener('abort', stop, { once: true });
  let timedOut = false;
  const timer = timeoutMs === null ? null : setTimeout(() => ((timedOut = true), ac.abort()), timeoutMs);
  try {
    const r = await runScript(path.join(REPO, 'scenarios/lib/study-worker.ts'), [path.join(REPO, 'scenarios', `${def.name}.ts`), outFile, ...job.argv], { signal: ac.signal });
    if (fs.existsSync(outFile)) {
      let j: unknown;
      try {
        j = JSON.parse(fs.readFileSync(outFile, 'utf8'));
      } catch {
        j = null;
      }
      const w = workerSchema.safeParse(j);
      return w.success ? w.data : { error: `the run's result could not be read: ${w.error.issues[0]?.message ?? 'not JSON'}` };
    }
    if (signal.aborted) return null;
    if (timedOut) return { error: `timed out after ${(timeoutMs! / 1000).toFixed(0)} s (--run-timeout)` };
    const tail = r.stderr.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
    return { error: `the run's process exited with code ${r.code}${tail ? `: ${tail}` : ''}` };
  } finally {
    if (timer) clearTimeout(timer);
    signal.removeEventListener('abort', stop);
    fs.rmSync(outFile, { force: true });
  }
}

/** Heap flags of this process, passed on to the runs (scale re-runs itself with more heap room: heap.ts). */
function heapFlagsForChildren(): void {
  const flags = process.execArgv.filter((f) => /^--max-(old|semi)-space-size=/.test(f));
  if (flags.length) process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS ?? '', ...flags].join(' ').trim();
}

interface Reporter {
  log(line: string): void;
  tick(): void;
  stop(): void;
}

function reporter(plan: Plan, total: number, done: number): Reporter {
  const out = plan.json ? process.stderr : process.stdout;
  if (plan.quiet) return { log() {}, tick() {}, stop() {} };
  if (!process.stderr.isTTY || plan.json) return { log: (l) => out.write(`${l}\n`), tick() {}, stop() {} };
  const multi = new cliProgress.MultiBar({
    format: `  ${plan.def.name} study [{bar}] {value}/{total} runs  {duration_formatted} elapsed, ETA {eta_formatted}`,
    stream: process.stderr, hideCursor: true, clearOnComplete: true, etaBuffer: 20, fps: 5,
  }, cliProgress.Presets.shades_classic);
  const bar = multi.create(total, done);
  return { log: (l) => multi.log(`${l}\n`), tick: () => bar.increment(1), stop: () => multi.stop() };
}

function saveStudy(plan: Plan): void {
  plan.study.files.json = plan.file;
  writeAtomic(plan.file, JSON.stringify(plan.study, null, 1) + '\n');
}

/**
 * Runs the plan's jobs, `parallel` at once; every finished run is recorded
 * and the file rewritten. Resolves when all ran, or when `signal` stops it
 * (the runs in flight are stopped and not recorded unless they finished).
 */
export async function runStudy(plan: Plan, signal: AbortSignal, exec: (job: Job) => Promise<WorkerOutput | { error: string } | null>): Promise<void> {
  const s = plan.study;
  fs.mkdirSync(path.dirname(plan.file), { recursive: true });
  saveStudy(plan);
  const rep = reporter(plan, s.counts.runs, s.counts.done);
  const queue = [...plan.jobs];
  let finished = s.counts.done;
  const worker = async () => {
    for (let job = queue.shift(); job && !signal.aborted; job = queue.shift()) {
      const out = await exec(job);
      if (out === null) continue;
      const run = recordRun(s, job, out);
      saveStudy(plan);
      finished++;
      rep.tick();
      const what = run.ok ? 'ok' : `FAILED: ${run.failures.slice(0, 2).join('; ')}`;
      rep.log(`  [${finished}/${s.counts.runs}] ${job.point.key || 'run'} #${job.rep + 1} seed ${job.seed}: ${what}${run.wallMs !== null ? ` in ${(run.wallMs / 1000).toFixed(1)} s` : ''}${run.simDigest ? `, simDigest ${run.simDigest.slice(0, 16)}` : ''}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(plan.parallel, Math.max(1, queue.length)) }, worker));
  } finally {
    rep.stop();
  }
  if (!signal.aborted) {
    s.finished = s.counts.done === s.counts.runs;
    saveStudy(plan);
  }
}

/** The study's summary table: one row per figure, one column per point: median [95% interval]. */
export function studyTable(s: Study): TableSpec {
  const names = Object.keys(s.figureInfo).filter((n) => s.points.some((p) => p.figures[n]));
  return {
    title: `Study: median [95% interval] over each point's runs`,
    head: ['figure', 'unit', ...s.points.map((p) => p.key || 'all runs')],
    rows: names.map((n) => [s.figureInfo[n]!.label, s.figureInfo[n]!.unit, ...s.points.map((p) => {
      const st = p.figures[n];
      return st ? `${fmt(st.median)} [${fmt(st.ci95[0])}, ${fmt(st.ci95[1])}] n=${st.n}` : '—';
    })]),
    note: `interval: ${MEDIAN_CI_METHOD}. Every run's seed, command and figures are in the study JSON.`,
  };
}

/** How long Ctrl-C waits for the runs in flight to stop before the study reports what it kept (the cleanup gives every closer 10 s). */
const STOP_GRACE_MS = 5000;

/** A study from the command line: plan (bad options → exit 2), run, print, write; exit 0 when every run passed, 1 otherwise, 130 on Ctrl-C. */
export async function studyMain(def: ScenarioDef, argv: readonly string[]): Promise<number> {
  let plan: Plan;
  try {
    plan = planStudy(def, argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${def.name}: ${err.message} (see --help)\n`);
      return 2;
    }
    throw err;
  }
  const s = plan.study;
  const say = (l: string) => (plan.quiet ? undefined : (plan.json ? process.stderr : process.stdout).write(`${l}\n`));
  say(`${def.name} study: ${s.points.length} point(s) × ${s.repeat} run(s) = ${s.counts.runs} runs${s.counts.done ? `, ${s.counts.done} already done` : ''}, ${plan.parallel} at once, seed ${s.seed} (each run's seed derived from it and printed)`);
  say(`  → ${path.relative(process.cwd(), plan.file)} (rewritten after every run; continue with --resume ${path.relative(process.cwd(), plan.file)})`);
  heapFlagsForChildren();
  const ac = new AbortController();
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-study-'));
  let running: Promise<void> | null = null;
  // Once the stop message is printed no run is recorded any more, so the file holds what it says.
  let sealed = false;
  const unregister = onCleanup(async () => {
    ac.abort();
    let wait: NodeJS.Timeout | undefined;
    await Promise.race([running?.catch(() => {}), new Promise<void>((resolve) => (wait = setTimeout(resolve, STOP_GRACE_MS)))]);
    clearTimeout(wait);
    sealed = true;
    fs.rmSync(tmpDir, { recursive: true, force: true });
    process.stderr.write(`${def.name} study stopped: ${s.counts.done} of ${s.counts.runs} runs kept in ${path.relative(process.cwd(), plan.file)}; continue with: npx tsx scenarios/${def.name}.ts --resume ${path.relative(process.cwd(), plan.file)}\n`);
  });
  installSignalHandlers();
  running = runStudy(plan, ac.signal, async (job) => {
    const out = await runJob(def, job, tmpDir, ac.signal, plan.runTimeoutMs);
    return sealed ? null : out;
  });
  await running;
  unregister();
  fs.rmSync(tmpDir, { recursive: true, force: true });
  if (plan.html) {
    plan.study.files.html = plan.file.replace(/\.json$/, '.html');
    fs.writeFileSync(plan.study.files.html, await studyHtml(plan.study));
    saveStudy(plan);
  }
  if (plan.json) process.stdout.write(JSON.stringify(s) + '\n');
  else if (!plan.quiet) printTables([studyTable(s)]);
  const rel = (f?: string) => (f ? path.relative(process.cwd(), f) : '');
  if (!plan.json) {
    process.stdout.write(`\n${def.name} study: ${s.ok ? 'ok' : `FAILED (${s.counts.failed} of ${s.counts.runs} runs)`}, ${s.points.length} point(s) × ${s.repeat}, seed ${s.seed} → ${rel(s.files.json)}${s.files.html ? `, ${rel(s.files.html)}` : ''}\n`);
    for (const p of s.points) for (const r of p.runs.filter((x) => !x.ok)) process.stdout.write(`  ✗ ${p.key || 'run'} #${r.rep + 1}: ${r.failures.join('; ')}\n    re-run alone: ${r.command}\n`);
  }
  await cleanupAll();
  return s.ok ? 0 : 1;
}
