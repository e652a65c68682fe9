/**
 * `npm run bench`: micro suites (benny) and macro benchmarks, each macro
 * figure side by side with a baseline measured in the same run and reported
 * as a ratio; targets printed with PASS / MISS; results saved to
 * bench/results/<date>.json (benny's own output in bench/results/benny/) and
 * compared with the previous saved run.
 *
 *   npm run bench                      full run (64 MiB and 1 GiB transfers), < 5 min
 *   npm run bench -- --quick           smaller sizes, fewer runs, < 60 s
 *   npm run bench -- --only=transfer,search   some sections only
 *   npm run bench -- --profile         CPU profiles of this process and the
 *                                      fixture processes → bench/results/profiles/<date>/
 *   npm run bench -- --no-save         print only
 *
 * Progress goes to stderr, tables to stdout. Ctrl-C stops, kills the
 * fixture processes and removes every temporary file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Session } from 'node:inspector/promises';
import { fixturesCompiled } from './lib/child.ts';
import { cleanupAll, installSignalHandlers } from '../testnet/cleanup.ts';
import { guardStdout } from '../core/stdout.ts';
import type { Ctx } from './lib/context.ts';
import { BENCH_SECTIONS, loadPrevious, printGroup, printMicro, printTargets, Report, RESULTS_DIR, runFileName, saveRun } from './lib/report.ts';
import { microBench } from './micro.ts';
import { joinBench } from './macro/join.ts';
import { registrationsBench } from './macro/registrations.ts';
import { registryScaleBench } from './macro/registry-scale.ts';
import { searchBench } from './macro/search.ts';
import { busyBench } from './macro/busy.ts';
import { concurrentBench, transferBench } from './macro/transfer.ts';

const SECTIONS = BENCH_SECTIONS;
type Section = (typeof SECTIONS)[number];

function usage(): never {
  process.stderr.write(`usage: npm run bench [-- --quick] [--only=${SECTIONS.join(',')}] [--profile] [--no-save]\n`);
  process.exit(2);
}

guardStdout();

const argv = process.argv.slice(2);
let quick = false;
let profile = false;
let save = true;
let only: Set<Section> = new Set(SECTIONS);
for (const a of argv) {
  if (a === '--quick') quick = true;
  else if (a === '--profile') profile = true;
  else if (a === '--no-save') save = false;
  else if (a.startsWith('--only=')) {
    const want = a.slice(7).split(',').filter(Boolean);
    const bad = want.filter((w) => !(SECTIONS as readonly string[]).includes(w));
    if (bad.length) {
      process.stderr.write(`unknown section(s): ${bad.join(', ')}\n`);
      usage();
    }
    only = new Set(want as Section[]);
  } else if (a === '--help' || a === '-h') usage();
  else {
    process.stderr.write(`unknown option ${a}\n`);
    usage();
  }
}

installSignalHandlers((sig) => process.stderr.write(`\n${sig}: stopping, cleaning up…\n`));

const startedAt = new Date();
const t0 = performance.now();
const stamp = runFileName(startedAt).replace(/\.json$/, '');
const loadStart = os.loadavg();
const report = new Report();
const profileDir = profile ? path.join(RESULTS_DIR, 'profiles', stamp) : undefined;
if (profileDir) fs.mkdirSync(profileDir, { recursive: true });
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s`;
const ctx: Ctx = { quick, report, log: (s) => process.stderr.write(`[${elapsed()}] ${s}\n`), profileDir };

const mode = quick ? 'quick' : 'full';
const cpus = os.cpus().length;
process.stderr.write(`treeshare bench (${mode}) — node ${process.version}, ${cpus} × ${os.cpus()[0]?.model ?? 'cpu'}, load average ${loadStart.map((x) => x.toFixed(2)).join(' ')}\n`);
if (loadStart[0]! > cpus * 0.5) process.stderr.write(`note: the machine is busy (1-min load ${loadStart[0]!.toFixed(1)} on ${cpus} CPUs); figures will be noisy.\n`);

let session: Session | undefined;
if (profileDir) {
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
}

const failures: string[] = [];
let micro: Awaited<ReturnType<typeof microBench>> = [];
const runners: Record<Section, () => Promise<void>> = {
  micro: async () => {
    micro = await microBench(ctx, stamp);
    report.micro.push(...micro);
  },
  transfer: () => transferBench(ctx),
  concurrent: () => concurrentBench(ctx),
  busy: () => busyBench(ctx),
  join: () => joinBench(ctx),
  search: () => searchBench(ctx),
  registrations: async () => {
    await registrationsBench(ctx);
    await registryScaleBench(ctx);
  },
};

try {
  if (!(await fixturesCompiled())) report.note('esbuild not found: fixture processes ran through tsx, whose loader adds ~40 MB to every RSS figure.');
  for (const s of SECTIONS) {
    if (!only.has(s)) continue;
    ctx.log(`— ${s}`);
    const s0 = performance.now();
    try {
      await runners[s]();
      report.sections.push({ name: s, ok: true, ms: Math.round(performance.now() - s0) });
    } catch (err) {
      report.sections.push({ name: s, ok: false, ms: Math.round(performance.now() - s0) });
      const msg = `${s}: ${(err as Error).stack ?? String(err)}`;
      failures.push(msg);
      report.note(`section ${s} failed: ${(err as Error).message}`);
      ctx.log(`FAILED ${msg}`);
    }
  }
} finally {
  await cleanupAll();
}

if (session) {
  const { profile: p } = await session.post('Profiler.stop');
  fs.writeFileSync(path.join(profileDir!, 'bench-main.cpuprofile'), JSON.stringify(p));
  session.disconnect();
}

const durationMs = performance.now() - t0;
const prevRun = loadPrevious(mode);
const prev = prevRun?.run ?? null;
const lines: string[] = [];
lines.push('');
lines.push(`treeshare benchmarks — ${mode} run, ${startedAt.toISOString()}, ${(durationMs / 1000).toFixed(0)} s, node ${process.version}, ${cpus} CPUs, load average at start ${loadStart[0]!.toFixed(2)}, at end ${os.loadavg()[0]!.toFixed(2)}`);
lines.push('Every figure below was measured in this run; ratios compare with the baseline measured alongside it. MB = 10^6 bytes.');
if (prevRun) lines.push(`"vs previous": change of the median against ${path.relative(process.cwd(), prevRun.file)} (${prev!.mode} run); "~" = within the noise (bench/lib/compare.ts: 10% or half the run-to-run spread, whichever is larger; a rank test from 8 runs on).`);
else lines.push('No previous saved run: nothing to compare with yet.');
if (micro.length) {
  lines.push('', 'micro suites (benny; ops/s, ± relative margin of error)');
  lines.push(printMicro(micro, prev));
}
for (const g of new Set(report.metrics.map((m) => m.group))) {
  lines.push('', g);
  lines.push(printGroup(report, g, prev));
}
if (report.targets.length) {
  lines.push('', 'targets');
  lines.push(printTargets(report.targets));
}
for (const n of report.notes) lines.push(`note: ${n}`);
process.stdout.write(lines.join('\n') + '\n');

if (save) {
  const file = saveRun(report.toFile(mode, startedAt, loadStart, durationMs), `${stamp}.json`);
  process.stdout.write(`\nsaved ${path.relative(process.cwd(), file)}${micro.length ? ` (benny: ${path.relative(process.cwd(), path.join(RESULTS_DIR, 'benny'))}/${stamp}-*.json)` : ''}\n`);
}
if (profileDir) process.stdout.write(`CPU profiles in ${path.relative(process.cwd(), profileDir)} (open in Chrome DevTools → Performance, or speedscope)\n`);
const missed = report.targets.filter((t) => !t.pass).length;
if (report.targets.length) process.stdout.write(`${report.targets.length - missed} of ${report.targets.length} targets met${missed ? ` (${missed} missed: reported above, not a failure)` : ''}\n`);
process.stdout.write(`total ${(durationMs / 1000).toFixed(1)} s\n`);
if (failures.length) {
  process.stderr.write(`\n${failures.length} section(s) failed:\n${failures.join('\n')}\n`);
  process.exitCode = 1;
}
