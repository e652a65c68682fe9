/** Picks the runner implementation for a kind (see runner.ts). */
import { LocalRunner } from './runner-local.ts';
import { ProcessRunner } from './runner-process.ts';
import type { Runner, RunnerKind, RunnerOptions } from './runner.ts';

export function createRunner(kind: RunnerKind, o: RunnerOptions = {}): Runner {
  return kind === 'process' ? new ProcessRunner(o) : new LocalRunner(kind, o);
}
