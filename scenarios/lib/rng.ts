/**
 * Seeded randomness for scenarios: every random choice a scenario makes
 * (which file a peer asks for, who crashes, the metaserver's `random`
 * referral policy in-process, generated file contents) comes from one
 * mulberry32 generator seeded by `--seed`, so a run can be repeated.
 */
import { mulberry32 } from '../../core/index.ts';

export interface Rng {
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
  shuffle<T>(xs: readonly T[]): T[];
  /** An independent generator derived from this one (e.g. for the metaserver). */
  fork(label: string): Rng;
}

function hashLabel(seed: number, label: string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function createRng(seed: number): Rng {
  const next = mulberry32(seed);
  const rng: Rng = {
    seed,
    next,
    int(lo, hi) {
      return lo + Math.floor(next() * (hi - lo + 1));
    },
    pick(xs) {
      if (xs.length === 0) throw new Error('pick from an empty list');
      return xs[Math.floor(next() * xs.length)]!;
    },
    shuffle(xs) {
      const a = [...xs];
      for (let i = a.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [a[i], a[j]] = [a[j]!, a[i]!];
      }
      return a;
    },
    fork(label) {
      return createRng(hashLabel(seed, label));
    },
  };
  return rng;
}

/** A fresh seed for runs without `--seed` (printed, so the run can be repeated). */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

/** `n` seeded pseudo-random bytes (fast: 4 bytes per step). */
export function seededBytes(n: number, next: () => number): Buffer {
  const u32 = new Uint32Array(Math.ceil(n / 4));
  for (let i = 0; i < u32.length; i++) u32[i] = (next() * 4294967296) >>> 0;
  return Buffer.from(u32.buffer, 0, n);
}
