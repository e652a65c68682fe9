/** What every benchmark gets: the mode, the report to add to, a logger. */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Report } from './report.ts';

export interface Ctx {
  quick: boolean;
  report: Report;
  /** Progress line on stderr (tables go to stdout). */
  log: (s: string) => void;
  /** When set, child processes run with --cpu-prof writing here. */
  profileDir?: string;
}

/** Node flags for a fixture process (CPU profile when asked). */
export function nodeArgs(ctx: Ctx, what: string): string[] {
  return ctx.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${what}-${Date.now()}.cpuprofile`] : [];
}

/**
 * Writes `size` bytes of incompressible data: a 4 MiB random block rewritten
 * with the chunk number in its first bytes, so every chunk differs (fast to
 * generate; TCP and SHA-256 cost the same as for fully random data).
 */
export function makeFile(file: string, size: number): void {
  const block = randomBytes(4 * 1024 * 1024);
  const fd = fs.openSync(file, 'wx');
  try {
    let pos = 0;
    for (let i = 0; pos < size; i++) {
      block.writeUInt32LE(i, 0);
      const n = Math.min(block.length, size - pos);
      fs.writeSync(fd, block, 0, n, pos);
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
