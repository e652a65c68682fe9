/** Small statistics over samples: median, percentiles, spread. */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  p95: number;
  mean: number;
}

/** Linear-interpolated percentile (p in [0, 100]) of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const k = ((s.length - 1) * p) / 100;
  const lo = Math.floor(k);
  const hi = Math.ceil(k);
  return s[lo]! + (s[hi]! - s[lo]!) * (k - lo);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN, p95: NaN, mean: NaN };
  return {
    n: samples.length,
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    p95: percentile(samples, 95),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}

/** (max - min) / median: how far apart the runs of one metric were. */
export function relSpread(s: { median: number; min: number; max: number }): number {
  if (!Number.isFinite(s.median) || s.median === 0) return 0;
  return Math.abs(s.max - s.min) / Math.abs(s.median);
}

/** MB/s with 1 MB = 10^6 bytes. */
export function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / Math.max(ms / 1000, 1e-9);
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function sizeLabel(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes % MiB === 0) return `${bytes / MiB} MiB`;
  return `${bytes} B`;
}
