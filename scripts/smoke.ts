/**
 * `npm run smoke`: runs what the README and docs tell a user to run, each
 * with small sizes, the way a user runs it (a separate process, its output
 * through a pipe), and fails on any non-zero exit or output that does not
 * parse. CI runs it after `npm test` (.ci/run); it also runs by hand.
 *
 * - `npx tsx scenarios/five-peers.ts`, real processes, as the quick start gives it;
 * - every scenario file in scenarios/ once, on the memory runner where it has one,
 *   `--json` through a pipe into JSON.parse (churn with 1,000 peers: more than 64 KiB);
 * - `npm run bench -- --quick`: exit 0 and every section ran and finished;
 * - `scenarios/compare.ts` on two of those results, `--json` through a pipe;
 * - a small study (`--sweep`, `--repeat`) run twice, and compare.ts on the two
 *   study files with `--fail-on-regression` (same code: exit 0);
 * - `npm run -s keygen`; the peer and the metaserver with `--help` (exit 0) and
 *   with a bad flag (exit 2, one line on stderr).
 *
 * Everything it writes goes to a temporary folder, removed at the end. It prints
 * the time of each step and the total.
 *
 *   npm run smoke [-- --only NAME,NAME] [--keep]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { $, type ProcessOutput } from 'zx';
import { BENCH_SECTIONS, type RunFile } from '../bench/lib/report.ts';
import { guardStdout } from '../core/stdout.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/**
 * Each scenario's smoke arguments (small sizes; --json is added). A scenario file without an entry
 * fails the smoke stage, so a new scenario cannot be left out.
 */
const SCENARIOS: Record<string, string[]> = {
  chain: ['--runner', 'memory'],
  churn: ['--runner', 'memory', '--peers', '1000', '--events', '4'],
  example: ['--runner', 'memory'],
  'five-peers': ['--runner', 'memory'],
  latency: ['--runner', 'memory', '--latencies', '0,20'],
  // A split, a heal and every other fault kind on the memory runner.
  partition: ['--runner', 'memory', '--peers', '200'],
  policies: ['--runner', 'memory', '--peers', '30'],
  scale: ['--runner', 'memory', '--sizes', '200', '--searches', '3'],
  star: ['--runner', 'memory'],
  // No memory runner: every peer in this process over loopback TCP (the requester killed at ~50% is a process).
  swarm: ['--inproc', '--holders', '2', '--size', '4', '--piece-kib', '64', '--bandwidth', '50M'],
  throughput: ['--runner', 'memory', '--sizes', '1', '--concurrency', '1'],
};
/** Files in scenarios/ that are not scenarios. */
const NOT_SCENARIOS = new Set(['compare']);

const { values: opt } = parseArgs({ options: { only: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
if (opt.help) {
  process.stdout.write('usage: npm run smoke [-- --only five-peers,scenarios,compare,faults,study,bench,commands] [--keep]\n');
  process.exit(0);
}
const only = opt.only ? new Set(opt.only.split(',')) : null;
const want = (step: string) => !only || only.has(step);

guardStdout();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-smoke-'));
const results = path.join(tmp, 'results');
const t0 = performance.now();
const times: [string, number, boolean][] = [];
const failures: string[] = [];
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Runs `fn` as one step: prints its time and ok / FAILED, records the failure and goes on with the next. */
async function step(name: string, fn: () => Promise<void>): Promise<void> {
  const s0 = performance.now();
  let ok = true;
  try {
    await fn();
  } catch (err) {
    ok = false;
    failures.push(`${name}: ${(err as Error).message}`);
  }
  const ms = performance.now() - s0;
  times.push([name, ms, ok]);
  process.stdout.write(`${ok ? 'ok    ' : 'FAILED'} ${sec(ms).padStart(7)}  ${name}${ok ? '' : `\n         ${failures.at(-1)!.split('\n').join('\n         ')}`}\n`);
}

const run = $({ cwd: REPO, nothrow: true, quiet: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TREESHARE_BENCH_RESULTS: path.join(tmp, 'bench'), NO_COLOR: '1', FORCE_COLOR: '0' } });

function tail(r: ProcessOutput): string {
  return (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-8).join('\n');
}

function expectExit(r: ProcessOutput, code: number, what: string): void {
  if (r.exitCode !== code) throw new Error(`${what}: exit ${r.exitCode ?? r.signal}, expected ${code}\n${tail(r)}`);
}

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${what}: output (${text.length} bytes) does not parse: ${(err as Error).message}`);
  }
}

/** A command-line mistake: exit 2, exactly one line on stderr, no stack trace. */
function expectUsageError(r: ProcessOutput, what: string): void {
  expectExit(r, 2, what);
  const lines = r.stderr.trimEnd().split('\n');
  if (lines.length !== 1 || /\n\s+at |node:internal/.test(r.stderr)) throw new Error(`${what}: expected one line on stderr, got:\n${r.stderr}`);
}

const scenarioResults: string[] = [];
try {
  if (want('five-peers')) {
    await step('npx tsx scenarios/five-peers.ts (real processes)', async () => {
      const r = await run`${NPX} tsx scenarios/five-peers.ts --out ${results} --no-html`;
      expectExit(r, 0, 'five-peers');
      if (!/five-peers: ok/.test(r.stdout)) throw new Error(`five-peers: no "five-peers: ok" line\n${tail(r)}`);
    });
  }

  if (want('scenarios') || want('compare')) {
    const files = fs.readdirSync(path.join(REPO, 'scenarios')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).filter((f) => !NOT_SCENARIOS.has(f)).sort();
    for (const name of files) {
      const args = SCENARIOS[name];
      const label = `scenarios/${name}.ts ${(args ?? []).join(' ')} --json | JSON.parse`;
      await step(label, async () => {
        if (!args) throw new Error(`scenarios/${name}.ts has no smoke arguments: add it to SCENARIOS in scripts/smoke.ts`);
        const r = await run`${NPX} tsx ${`scenarios/${name}.ts`} ${args} --seed 1 --json --out ${results} --no-html`;
        expectExit(r, 0, name);
        const res = parseJson<{ scenario: string; ok: boolean; records?: unknown }>(r.stdout, name);
        if (res.scenario !== name || res.ok !== true || !res.records) throw new Error(`${name}: the JSON is not an ok result of ${name}`);
        if (name === 'churn' && r.stdout.length <= 65_536) throw new Error(`churn: ${r.stdout.length} bytes of JSON; the smoke step wants more than a pipe's 64 KiB`);
        const f = path.join(tmp, `${name}.json`);
        fs.writeFileSync(f, r.stdout);
        scenarioResults.push(f);
      });
    }
  }

  if (want('compare')) {
    await step('scenarios/compare.ts A.json B.json --json | JSON.parse', async () => {
      // Two runs of one scenario (compare refuses runs of different scenarios).
      const b = await run`${NPX} tsx scenarios/five-peers.ts --runner memory --seed 2 --json --out ${results} --no-html`;
      expectExit(b, 0, 'five-peers --seed 2');
      const a = scenarioResults.find((f) => path.basename(f) === 'five-peers.json');
      if (!a) throw new Error('no five-peers result from the scenarios step');
      const fb = path.join(tmp, 'five-peers-2.json');
      fs.writeFileSync(fb, b.stdout);
      const r = await run`${NPX} tsx scenarios/compare.ts ${a} ${fb} --json --out ${results}`;
      expectExit(r, 0, 'compare');
      const cmp = parseJson<unknown>(r.stdout, 'compare');
      if (typeof cmp !== 'object' || cmp === null) throw new Error('compare: the JSON is not an object');
    });
  }

  if (want('faults')) {
    await step('churn.ts --faults scenarios/faults/split-half.json; latency.ts --regions scenarios/regions/three-continents.json (--json | JSON.parse)', async () => {
      const f = await run`${NPX} tsx scenarios/churn.ts --runner memory --peers 200 --duration 2m --faults scenarios/faults/split-half.json --seed 1 --json --out ${results} --no-html`;
      expectExit(f, 0, 'churn --faults');
      const fr = parseJson<{ ok: boolean; records?: { faults?: unknown[] }; summary?: { invariants?: { checks?: number; violations?: number } } }>(f.stdout, 'churn --faults');
      if (!fr.records?.faults?.length) throw new Error('churn --faults: no fault recorded in records.faults');
      if (!fr.summary?.invariants?.checks || fr.summary.invariants.violations !== 0) throw new Error(`churn --faults: invariants ${JSON.stringify(fr.summary?.invariants)}`);
      const g = await run`${NPX} tsx scenarios/latency.ts --runner memory --peers 12 --latencies 0 --regions scenarios/regions/three-continents.json --seed 1 --json --out ${results} --no-html`;
      expectExit(g, 0, 'latency --regions');
      const gr = parseJson<{ ok: boolean; records?: { joins?: { metaRttMs: number }[] } }>(g.stdout, 'latency --regions');
      if (!gr.records?.joins?.some((j) => j.metaRttMs > 0)) throw new Error('latency --regions: every metaserver round trip took 0 ms: the regions shaped nothing');
    });
  }

  if (want('study')) {
    await step('a study (scale.ts --sweep peers=50,100 --repeat 2) twice, compare.ts --fail-on-regression --json', async () => {
      const files: string[] = [];
      for (const seed of ['1', '2']) {
        const out = path.join(tmp, `study-${seed}`);
        const r = await run`${NPX} tsx scenarios/scale.ts --runner memory --searches 3 --sweep peers=50,100 --repeat 2 --seed ${seed} --json --out ${out} --no-html`;
        expectExit(r, 0, `study --seed ${seed}`);
        const st = parseJson<{ kind?: string; points?: { runs?: unknown[] }[] }>(r.stdout, 'study');
        const points = st.points ?? [];
        if (points.length !== 2 || points.some((p) => p.runs?.length !== 2)) throw new Error(`study --seed ${seed}: expected 2 points × 2 runs in its JSON`);
        const saved = fs.readdirSync(out).filter((f) => /-study-.*\.json$/.test(f));
        if (saved.length !== 1) throw new Error(`study --seed ${seed}: ${saved.length} study files in ${out}, expected 1`);
        files.push(path.join(out, saved[0]!));
      }
      const r = await run`${NPX} tsx scenarios/compare.ts ${files[0]!} ${files[1]!} --fail-on-regression --json --out ${path.join(tmp, 'study-compare')}`;
      expectExit(r, 0, 'compare of two studies of the same code');
      parseJson<unknown>(r.stdout, 'compare of two studies');
    });
  }

  if (want('bench')) {
    await step('npm run bench -- --quick (every section)', async () => {
      const r = await run`npm run -s bench -- --quick`;
      expectExit(r, 0, 'bench');
      const dir = path.join(tmp, 'bench');
      const saved = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
      if (saved.length !== 1) throw new Error(`bench: ${saved.length} saved results in ${dir}, expected 1`);
      const file = parseJson<RunFile>(fs.readFileSync(path.join(dir, saved[0]!), 'utf8'), 'bench result');
      const ran = new Map((file.sections ?? []).map((s) => [s.name, s.ok]));
      const missing = BENCH_SECTIONS.filter((s) => ran.get(s) !== true);
      if (missing.length) throw new Error(`bench: sections not run or failed: ${missing.join(', ')}`);
      if (!file.micro.length) throw new Error('bench: no micro rows saved');
    });
  }

  if (want('commands')) {
    await step('npm run -s keygen; peer and metaserver --help and a bad flag', async () => {
      const k = await run`npm run -s keygen`;
      expectExit(k, 0, 'keygen');
      if (!/^[0-9a-f]{64}\n$/.test(k.stdout)) throw new Error(`keygen: printed ${JSON.stringify(k.stdout)}, expected 64 hex digits and a newline`);
      const [ph, mh, pb, mb] = await Promise.all([
        run`npm run -s peer -- --help`,
        run`npm run -s metaserver -- --help`,
        run`npm run -s peer -- -i S1 --bogus-flag`,
        run`npm run -s metaserver -- --bogus-flag`,
      ]);
      expectExit(ph, 0, 'peer --help');
      expectExit(mh, 0, 'metaserver --help');
      if (!/--meta/.test(ph.stdout) || !/--policy/.test(mh.stdout)) throw new Error('--help does not list the flags');
      expectUsageError(pb, 'peer --bogus-flag');
      expectUsageError(mb, 'metaserver --bogus-flag');
    });
  }
} finally {
  if (!opt.keep) fs.rmSync(tmp, { recursive: true, force: true });
}

const total = performance.now() - t0;
process.stdout.write(`\nsmoke: ${times.length - failures.length} of ${times.length} steps ok in ${sec(total)}${opt.keep ? ` (output kept in ${tmp})` : ''}\n`);
if (failures.length) {
  process.stdout.write(`${failures.map((f) => `  ✗ ${f.split('\n')[0]}`).join('\n')}\n`);
  process.exitCode = 1;
}
