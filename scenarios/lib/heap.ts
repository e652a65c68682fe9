/**
 * Heap room for large simulated runs (memory runner). With Node's default limits the live
 * heap of 100,000 simulated peers sits near the old-space limit and V8 collects again and
 * again; and a flood that reaches every peer keeps its per-peer state alive until the
 * replies come back, so with the default young generation (16 MiB semi-spaces) a scavenge
 * in the middle of every flood promotes that state to the old space, where it dies soon
 * after and costs a full collection. So a scenario run as a command re-runs itself once
 * with `--max-old-space-size` and a larger `--max-semi-space-size`, unless heap flags are
 * given (on the command line or in NODE_OPTIONS) or TREESHARE_NO_RESPAWN is set (the old
 * name TREESHARE_SCALE_NO_RESPAWN too). The figures of both choices are in docs/SCALE.md.
 */
import { spawn } from 'node:child_process';
import v8 from 'node:v8';

export interface HeapRoom {
  /** --max-old-space-size, MiB. */
  oldMiB: number;
  /** --max-semi-space-size, MiB. */
  semiMiB: number;
}

/**
 * Re-runs this process with more heap room when it has less; returns the child's exit
 * code, or null when this process should run the scenario itself.
 */
export async function respawnWithHeapRoom(room: HeapRoom): Promise<number | null> {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (process.env.TREESHARE_NO_RESPAWN || process.env.TREESHARE_SCALE_NO_RESPAWN) return null;
  if (flags.some((f) => f.startsWith('--max-old-space-size') || f.startsWith('--max-semi-space-size'))) return null;
  if (v8.getHeapStatistics().heap_size_limit >= room.oldMiB * 1024 ** 2) return null;
  const child = spawn(process.execPath, [...process.execArgv, `--max-old-space-size=${room.oldMiB}`, `--max-semi-space-size=${room.semiMiB}`, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, TREESHARE_NO_RESPAWN: '1' },
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

/** The command line asks for the memory runner (`--runner memory` or `--runner=memory`). */
export function wantsMemoryRunner(argv: readonly string[] = process.argv): boolean {
  return argv.some((a, i) => a === '--runner=memory' || (a === '--runner' && argv[i + 1] === 'memory'));
}
