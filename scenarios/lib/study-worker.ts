/**
 * One run of a study, as its own process (started by study.ts):
 *
 *   node --import tsx scenarios/lib/study-worker.ts SCENARIO.ts OUT.json [scenario options…]
 *
 * Runs the scenario defined in SCENARIO.ts (its exported ScenarioDef of the
 * file's name) with the options, without writing its own result files, and
 * writes the run's compact result and figures to OUT.json (a temporary file
 * renamed into place, so OUT.json exists only complete). Exit 0 when OUT.json
 * is written (the run itself may have failed: it says so), 2 for bad options,
 * 1 otherwise. Ctrl-C / SIGTERM stop what the run started first.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cleanupAll, installSignalHandlers } from '../../testnet/cleanup.ts';
import { exitAfterOutput } from '../../core/stdout.ts';
import { UsageError } from './args.ts';
import { run } from './cli.ts';
import type { ScenarioDef } from './scenario.ts';
import type { WorkerOutput } from './study-file.ts';
import { runFigures } from './study-figures.ts';

async function loadDef(file: string): Promise<ScenarioDef> {
  const name = path.basename(file, '.ts');
  const mod = (await import(pathToFileURL(path.resolve(file)).href)) as Record<string, unknown>;
  const def = Object.values(mod).find((x): x is ScenarioDef => !!x && typeof x === 'object' && (x as ScenarioDef).name === name && typeof (x as ScenarioDef).run === 'function');
  if (!def) throw new Error(`${file} exports no scenario named ${name}`);
  return def;
}

async function work(argv: string[]): Promise<number> {
  const [scenarioFile, outFile, ...args] = argv;
  if (!scenarioFile || !outFile) {
    process.stderr.write('usage: study-worker.ts SCENARIO.ts OUT.json [options…]\n');
    return 2;
  }
  const def = await loadDef(scenarioFile);
  const r = await run(def, [...args, '--quiet'], { write: false });
  const { values, info } = runFigures(r);
  const out: WorkerOutput = {
    run: { seed: r.seed, ok: r.ok, failures: r.failures, simDigest: r.simDigest ?? null, durationMs: r.durationMs, wallMs: r.wallMs ?? null, figures: values, summary: r.summary, tables: r.tables },
    figureInfo: info,
  };
  const tmp = `${outFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(out));
  fs.renameSync(tmp, outFile);
  return 0;
}

installSignalHandlers();
let code = 1;
try {
  code = await work(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  code = err instanceof UsageError ? 2 : 1;
} finally {
  await cleanupAll();
}
await exitAfterOutput(code);
