/**
 * Statistics of a study: per figure over the runs of one point, n, median,
 * mean, standard deviation and a 95% confidence interval of the median
 * (distribution-free, from order statistics and the binomial distribution)
 * and of the mean (Student's t); per comparison of two points, a rank test
 * (Mann–Whitney U, exact without ties for small samples, else bench's normal
 * approximation), and corrections of many p-values (Holm, Benjamini–Hochberg).
 * Everything is deterministic: the same runs give the same numbers.
 */
import { mannWhitneyP } from '../../bench/lib/compare.ts';
import { median } from '../../bench/lib/stats.ts';

export interface FigureStats {
  n: number;
  median: number;
  mean: number;
  /** Sample standard deviation (n − 1); 0 for one value. */
  sd: number;
  /** 95% confidence interval of the median (see `method`); [min, max] when n is too small for 95%. */
  ci95: [number, number];
  /** How ci95 was computed, and the coverage it reaches. */
  method: string;
  /** 95% confidence interval of the mean (Student's t); null for one value. */
  meanCi95: [number, number] | null;
}

export const MEDIAN_CI_METHOD = 'order statistics (binomial, distribution-free) for the median';

/** log of n choose k. */
function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

/** P(X ≤ k) for X ~ Binomial(n, 1/2). */
export function binomHalfCdf(n: number, k: number): number {
  let p = 0;
  for (let i = 0; i <= k; i++) p += Math.exp(logChoose(n, i) - n * Math.LN2);
  return Math.min(1, p);
}

/**
 * The ranks (1-based) [k, n + 1 − k] of the sorted sample that bound the
 * median with at least 95% confidence, and that confidence: the largest k
 * with P(Binomial(n, ½) ≤ k − 1) ≤ 2.5%. n < 6 cannot reach 95%: [1, n].
 */
export function medianCiRanks(n: number): { lo: number; hi: number; coverage: number } {
  let k = 0;
  while (k + 1 <= n / 2 && binomHalfCdf(n, k) <= 0.025) k++;
  if (k === 0) return { lo: 1, hi: n, coverage: n === 0 ? 0 : 1 - 2 * binomHalfCdf(n, 0) };
  return { lo: k, hi: n + 1 - k, coverage: 1 - 2 * binomHalfCdf(n, k - 1) };
}

/** Two-sided 97.5% quantiles of Student's t, df 1..30. */
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** The 0.975 quantile of Student's t with `df` degrees of freedom (a table to 30, then the Cornish–Fisher expansion, |error| < 0.001). */
export function tQuantile975(df: number): number {
  if (df < 1) return NaN;
  if (df <= 30) return T975[Math.round(df) - 1]!;
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2);
}

/** The statistics of one figure over the runs of a point (finite values only); null without any. */
export function figureStats(values: readonly number[]): FigureStats | null {
  const xs = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = xs.length;
  if (n === 0) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : 0;
  const r = medianCiRanks(n);
  const half = n > 1 ? (tQuantile975(n - 1) * sd) / Math.sqrt(n) : null;
  return {
    n,
    median: median(xs),
    mean,
    sd,
    ci95: [xs[r.lo - 1]!, xs[r.hi - 1]!],
    method: `${MEDIAN_CI_METHOD}: sorted values ${r.lo} and ${r.hi} of ${n}, coverage ${(r.coverage * 100).toFixed(1)}%${r.coverage < 0.95 ? ' (too few runs for 95%: min and max)' : ''}`,
    meanCi95: half === null ? null : [mean - half, mean + half],
  };
}

/** Largest sample for the exact distribution of U (beyond it, or with ties, the normal approximation). */
const EXACT_MAX = 50;

/** Number of ways to get each U (0..n1·n2) for samples of n1 and n2 without ties. */
function uCounts(n1: number, n2: number): number[] {
  // f[i][j][u]: arrangements of i and j values with U = u; built row by row.
  let prev: number[][] = Array.from({ length: n2 + 1 }, () => [1]);
  for (let i = 1; i <= n1; i++) {
    const cur: number[][] = [[1]];
    for (let j = 1; j <= n2; j++) {
      const a = prev[j]!; // the largest value is from sample 1: it beats all j of sample 2
      const b = cur[j - 1]!; // the largest value is from sample 2
      const out = new Array<number>(i * j + 1).fill(0);
      a.forEach((c, u) => (out[u + j]! += c));
      b.forEach((c, u) => (out[u]! += c));
      cur.push(out);
    }
    prev = cur;
  }
  return prev[n2]!;
}

/** Two-sided p-value of the Mann–Whitney U test of `a` against `b`, and which distribution gave it. */
export function mannWhitney(a: readonly number[], b: readonly number[]): { p: number; exact: boolean } {
  const n1 = a.length;
  const n2 = b.length;
  if (n1 === 0 || n2 === 0) return { p: 1, exact: true };
  const ties = new Set([...a, ...b]).size < n1 + n2;
  if (ties || n1 + n2 > EXACT_MAX) return { p: mannWhitneyP(a, b), exact: false };
  let u = 0;
  for (const x of a) for (const y of b) if (x > y) u++;
  const counts = uCounts(n1, n2);
  const total = counts.reduce((s, c) => s + c, 0);
  const lo = Math.min(u, n1 * n2 - u);
  let tail = 0;
  for (let k = 0; k <= lo; k++) tail += counts[k]!;
  return { p: Math.min(1, (2 * tail) / total), exact: true };
}

export const CORRECTIONS = ['holm', 'bh'] as const;
export type Correction = (typeof CORRECTIONS)[number];

/**
 * Adjusted p-values, in the order given: Holm's step-down (controls the
 * family-wise error) or Benjamini–Hochberg's step-up (the false discovery rate).
 */
export function adjustP(ps: readonly number[], how: Correction): number[] {
  const m = ps.length;
  const order = ps.map((p, i) => ({ p, i })).sort((x, y) => x.p - y.p);
  const out = new Array<number>(m);
  if (how === 'holm') {
    let run = 0;
    order.forEach(({ p, i }, k) => {
      run = Math.max(run, Math.min(1, (m - k) * p));
      out[i] = run;
    });
  } else {
    let run = 1;
    for (let k = m - 1; k >= 0; k--) {
      const { p, i } = order[k]!;
      run = Math.min(run, Math.min(1, (m / (k + 1)) * p));
      out[i] = run;
    }
  }
  return out;
}
