/**
 * The command line of every scenario: parse options (bad flag → one line,
 * exit 2), print the seed, run, print the tables (or only the JSON with
 * --json), write results/<scenario>-<timestamp>.json and .html, and exit 0
 * when every step and check passed, 1 otherwise. Ctrl-C / SIGTERM clean up
 * every process and temporary folder first. Every exit waits until stdout
 * has delivered everything (a --json result piped to jq is whole).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseOptions, helpText, UsageError, type CommonOptions } from './args.ts';
import { cleanupAll, installSignalHandlers } from '../../testnet/cleanup.ts';
import { printTables, standardTables, writeResults } from './output.ts';
import { runScenario, type ScenarioDef, type ScenarioResult } from './scenario.ts';
import { isStudyArgv, STUDY_HELP, studyMain } from './study.ts';
import { loadSchedule, refusal, type ScheduleEntry } from './fault-schedule.ts';
import { loadRegions } from './regions.ts';
import { FAULT_KINDS, type FaultKind } from './faults.ts';
import { createRunner } from './runners.ts';
import { SimClock } from '../../core/clock.ts';
import { exitAfterOutput, guardStdout } from '../../core/stdout.ts';

/** True when `importMetaUrl` is the script node was started with. */
export function isMain(importMetaUrl: string): boolean {
  return !!process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === importMetaUrl;
}

/** Runs `def` programmatically with command-line style arguments; writes files unless `write: false`. */
export async function run(def: ScenarioDef, argv: readonly string[], o: { write?: boolean; print?: boolean } = {}): Promise<ScenarioResult> {
  const opts = parseOptions(argv, def.defaults, def.options);
  return execute(def, opts, argv, o);
}

async function execute(def: ScenarioDef, opts: CommonOptions, argv: readonly string[], o: { write?: boolean; print?: boolean }): Promise<ScenarioResult> {
  const print = o.print ?? false;
  def.validate?.(opts);
  const schedule = opts.faultsFile !== undefined ? await checkedSchedule(opts) : undefined;
  if (opts.regionsFile !== undefined) await checkedRegions(opts);
  if (print && !opts.quiet && !opts.json) {
    process.stdout.write(`${def.name}: runner ${opts.runner}, ${opts.peers} peers, max-children ${opts.maxChildren}, policy ${opts.policy}` +
      `${opts.latency ? `, latency ${opts.latency} ms` : ''}${opts.bandwidth ? `, bandwidth ${opts.bandwidth.toLocaleString('en-US')} B/s` : ''}, seed ${opts.seed}\n`);
  }
  const { s, result } = await runScenario(def, opts, argv, { schedule });
  result.tables = [...standardTables(def, result.records, result.tree), ...s.tables];
  if (o.write !== false) await writeResults(opts.out, result, opts.html);
  if (print) {
    if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
    else {
      if (!opts.quiet) printTables(result.tables);
      const rel = (f?: string) => (f ? path.relative(process.cwd(), f) : '');
      const files = result.files.json ? ` → ${rel(result.files.json)}${result.files.html ? `, ${rel(result.files.html)}` : ''}` : '';
      process.stdout.write(`\n${def.name}: ${result.ok ? 'ok' : `FAILED (${result.failures.length})`} in ${result.clock === 'simulated' ? `${(result.durationMs / 1000).toFixed(1)} s simulated, ${((result.wallMs ?? 0) / 1000).toFixed(1)} s wall` : `${(result.durationMs / 1000).toFixed(1)} s`}, seed ${result.seed}${result.simDigest ? `, simDigest ${result.simDigest}` : ''}${files}\n`);
      if (!result.ok) for (const f of result.failures) process.stdout.write(`  ✗ ${f}\n`);
    }
  }
  return result;
}

/** What the run's runner cannot do, asked of a runner that starts nothing (its simulated clock not driven), before anything runs. */
async function unsupportedBy(opts: CommonOptions): Promise<{ unsupported(kind: FaultKind): string | null }> {
  const probe = createRunner(opts.runner, { clock: opts.runner === 'memory' ? new SimClock() : undefined });
  const why = new Map(FAULT_KINDS.map((k) => [k, probe.faults.unsupported(k)] as const));
  await probe.close();
  return { unsupported: (k) => why.get(k) ?? null };
}

/** --regions FILE read and validated, and refused (UsageError: exit 2) on a runner that cannot shape links. */
async function checkedRegions(opts: CommonOptions): Promise<void> {
  loadRegions(opts.regionsFile!);
  const why = (await unsupportedBy(opts)).unsupported('shape');
  if (why !== null) throw new UsageError(`--regions ${opts.regionsFile}: the ${opts.runner} runner cannot shape links: ${why}`);
}

/** --faults FILE read, validated, and refused (UsageError: exit 2) when the runner cannot apply one of its kinds. */
async function checkedSchedule(opts: CommonOptions): Promise<ScheduleEntry[]> {
  const schedule = loadSchedule(opts.faultsFile!);
  const can = await unsupportedBy(opts);
  const why = refusal(schedule, opts.runner, (k) => can.unsupported(k));
  if (why !== null) throw new UsageError(`--faults ${opts.faultsFile}: ${why}`);
  return schedule;
}

/** Entry point of a scenario file: `if (isMain(import.meta.url)) await main(def)`. */
export async function main(def: ScenarioDef, argv: readonly string[] = process.argv.slice(2)): Promise<never> {
  guardStdout();
  if (isStudyArgv(argv) && !argv.some((a) => a === '--help' || a === '-h')) return exitAfterOutput(await studyMain(def, argv));
  let opts: CommonOptions & { help: boolean };
  try {
    opts = parseOptions(argv, def.defaults, def.options);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${def.name}: ${err.message} (see --help)\n`);
      return exitAfterOutput(2);
    }
    throw err;
  }
  if (opts.help) {
    process.stdout.write(`${helpText(def.name, def.summary, def.defaults, def.options ?? {}, def.commonHelp)}\n\n${STUDY_HELP}\n`);
    return exitAfterOutput(0);
  }
  installSignalHandlers((sig) => process.stderr.write(`\n${def.name}: ${sig}: stopping every process this scenario started…\n`));
  let code = 1;
  try {
    const result = await execute(def, opts, argv, { print: true });
    code = result.ok ? 0 : 1;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${def.name}: ${err.message} (see --help)\n`);
      code = 2;
    } else process.stderr.write(`${def.name}: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    await cleanupAll();
  }
  return exitAfterOutput(code);
}
