/**
 * Comparing runs: one figure (a set of samples, or one value) measured in two
 * runs, its change, and whether the change is beyond the noise. Used by the
 * bench (each run against the previous saved one) and by
 * `scenarios/compare.ts` (scenario runs or bench results side by side).
 *
 * Noise, by what the figure carries:
 * - ≥ 8 samples in both runs (e.g. one join latency per peer): a two-sided
 *   Mann–Whitney U test (normal approximation, ties corrected); beyond the
 *   noise when p < 0.05 and the medians differ by more than 2%;
 * - 2..7 samples in both (repeats of a bench measurement): the change of the
 *   median must exceed the larger of 10% and half the run-to-run spread
 *   ((max − min) / median) of either run;
 * - a relative margin of error given (benny's micro results): the larger of
 *   10% and twice the larger margin;
 * - otherwise (one value each): the change is shown, noise unknown.
 */
import { relSpread, summarize, type Summary } from './stats.ts';

export type Better = 'higher' | 'lower';

export interface Figure {
  /** Stable key across runs. */
  id: string;
  label: string;
  unit: string;
  better?: Better;
  samples: number[];
  /** Relative margin of error of the value (0.05 = ±5%), when known instead of samples. */
  rme?: number;
}

export interface Change {
  /** now / before − 1 of the medians; null when not comparable (missing, zero). */
  rel: number | null;
  /** true / false when it could be judged; null when the noise is unknown (single values). */
  beyondNoise: boolean | null;
  /** How the noise was judged, e.g. "Mann–Whitney p=0.003", "noise ±10%". */
  how: string;
  verdict: 'better' | 'worse' | 'changed' | 'same' | 'unknown' | '';
  /** Short text for a table cell: "+12% ▲ better", "−3% ~", "+40% (one value each)". */
  text: string;
}

export const MIN_RANK_TEST = 8;

export function fmtPct(x: number): string {
  return `${(x * 100).toFixed(Math.abs(x) < 0.1 ? 1 : 0)}%`;
}

/** Standard normal upper-tail probability (Abramowitz–Stegun 26.2.17, |error| < 7.5e-8). */
function normalSf(z: number): number {
  const t = 1 / (1 + 0.2316419 * Math.abs(z));
  const d = 0.3989422804014327 * Math.exp((-z * z) / 2);
  const p = d * t * (0.31938153 + t * (-0.356563782 + t * (1.781477937 + t * (-1.821255978 + t * 1.330274429))));
  return z >= 0 ? p : 1 - p;
}

/** Two-sided p-value of the Mann–Whitney U test of `a` against `b` (normal approximation with tie correction). */
export function mannWhitneyP(a: readonly number[], b: readonly number[]): number {
  const n1 = a.length;
  const n2 = b.length;
  const all = [...a.map((v) => ({ v, g: 0 })), ...b.map((v) => ({ v, g: 1 }))].sort((x, y) => x.v - y.v);
  const N = all.length;
  let r1 = 0;
  let tie = 0;
  for (let i = 0; i < N;) {
    let j = i;
    while (j + 1 < N && all[j + 1]!.v === all[i]!.v) j++;
    const rank = (i + j + 2) / 2;
    const t = j - i + 1;
    if (t > 1) tie += t ** 3 - t;
    for (let k = i; k <= j; k++) if (all[k]!.g === 0) r1 += rank;
    i = j + 1;
  }
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const mu = (n1 * n2) / 2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (N + 1 - tie / (N * (N - 1))));
  if (sigma === 0) return 1;
  const z = (Math.abs(u - mu) - 0.5) / sigma; // continuity correction
  return Math.min(1, 2 * normalSf(Math.max(0, z)));
}

function summaryOf(f: Figure): Summary {
  return summarize(f.samples);
}

/** The change of `now` against `before` (same figure in two runs). */
export function compareFigure(before: Figure | undefined, now: Figure): Change {
  const none: Change = { rel: null, beyondNoise: null, how: '', verdict: '', text: '' };
  if (!before || before.samples.length === 0 || now.samples.length === 0) return none;
  const b = summaryOf(before);
  const n = summaryOf(now);
  if (!Number.isFinite(b.median) || b.median === 0 || !Number.isFinite(n.median)) return none;
  const rel = n.median / b.median - 1;
  let beyond: boolean | null;
  let how: string;
  if (b.n >= MIN_RANK_TEST && n.n >= MIN_RANK_TEST) {
    const p = mannWhitneyP(before.samples, now.samples);
    beyond = p < 0.05 && Math.abs(rel) > 0.02;
    how = `Mann–Whitney p=${p < 0.001 ? p.toExponential(1) : p.toFixed(3)}`;
  } else if (b.n >= 2 && n.n >= 2) {
    const noise = Math.max(0.1, relSpread(n) / 2, relSpread(b) / 2);
    beyond = Math.abs(rel) > noise;
    how = `noise ±${fmtPct(noise)}`;
  } else if (before.rme !== undefined || now.rme !== undefined) {
    const noise = Math.max(0.1, 2 * Math.max(before.rme ?? 0, now.rme ?? 0));
    beyond = Math.abs(rel) > noise;
    how = `noise ±${fmtPct(noise)}`;
  } else {
    beyond = null;
    how = 'one value each: noise unknown';
  }
  const sign = rel >= 0 ? '+' : '−';
  const pct = `${sign}${fmtPct(Math.abs(rel))}`;
  let verdict: Change['verdict'];
  let text: string;
  if (beyond === null) {
    verdict = 'unknown';
    text = `${pct} (one value each)`;
  } else if (!beyond) {
    verdict = 'same';
    text = `${pct} ~`;
  } else if (!now.better) {
    verdict = 'changed';
    text = `${pct} changed`;
  } else {
    const good = (rel > 0) === (now.better === 'higher');
    verdict = good ? 'better' : 'worse';
    text = `${pct} ${good ? '▲ better' : '▼ WORSE'}`;
  }
  return { rel, beyondNoise: beyond, how, verdict, text };
}

export interface Comparison {
  runs: string[];
  rows: { id: string; label: string; unit: string; better?: Better; values: (Summary | null)[]; changes: (Change | null)[] }[];
}

/** Every figure of every run, side by side, each later run compared with the first. */
export function compareRuns(runs: readonly { name: string; figures: readonly Figure[] }[]): Comparison {
  const ids: string[] = [];
  const meta = new Map<string, Figure>();
  for (const r of runs) for (const f of r.figures) if (!meta.has(f.id)) (meta.set(f.id, f), ids.push(f.id));
  const byId = runs.map((r) => new Map(r.figures.map((f) => [f.id, f])));
  return {
    runs: runs.map((r) => r.name),
    rows: ids.map((id) => {
      const m = meta.get(id)!;
      const figs = byId.map((x) => x.get(id));
      return {
        id, label: m.label, unit: m.unit, ...(m.better ? { better: m.better } : {}),
        values: figs.map((f) => (f && f.samples.length ? summarize(f.samples) : null)),
        changes: figs.map((f, i) => (i === 0 || !f ? null : compareFigure(figs[0], f))),
      };
    }),
  };
}
