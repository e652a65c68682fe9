/**
 * Parameter sweeps: `--sweep NAME=V1,V2,...` with ranges (`1000..100000*10`
 * multiplies, `0..50+10` adds, `1..4` counts by one), the cross-product of
 * several sweeps, and the seed of each run of a study, derived from the
 * study's seed, the point and the repetition. A bad sweep is a UsageError
 * (exit 2). The scenarios' own value lists (`--sizes`, `--latencies`) take
 * the same syntax (numberList in args.ts), and their loops walk `points()`.
 */
import { expandValues, MAX_VALUES, UsageError } from './args.ts';
import { createRng } from './rng.ts';

export { expandValues, MAX_VALUES };
/** Most runs a study may have. */
export const MAX_RUNS = 100_000;

export interface Sweep {
  name: string;
  /** The values as they go on the command line (`--name value`). */
  values: string[];
}

/** A point of a study: option name → value (a number when the value is one). */
export type Params = Record<string, string | number>;

/** `NAME=V1,V2,...` (values and ranges) → a sweep; `names` are the options that may be swept. */
export function parseSweep(spec: string, names: ReadonlySet<string>): Sweep {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new UsageError(`--sweep takes NAME=V1,V2,... (values or ranges like 1000..100000*10), not ${JSON.stringify(spec)}`);
  const name = spec.slice(0, eq).trim().replace(/^--/, '');
  if (!names.has(name)) throw new UsageError(`--sweep: ${JSON.stringify(name)} is not an option that can be swept (one of ${[...names].join(', ')})`);
  const values = expandValues(`--sweep ${name}`, spec.slice(eq + 1));
  if (new Set(values).size !== values.length) throw new UsageError(`--sweep ${name}: a value is given twice in ${JSON.stringify(spec.slice(eq + 1))}`);
  return { name, values };
}

/** A value as a point parameter: a number when it reads as one ("10" → 10), else the string. */
export function paramValue(v: string): string | number {
  return /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(v) ? Number(v) : v;
}

/**
 * The cross-product of `axes` (name → values), the first axis outermost:
 * points({ a: [1, 2], b: ['x', 'y'] }) → a=1 b=x, a=1 b=y, a=2 b=x, a=2 b=y.
 * No axes: one empty point.
 */
export function points<T extends Record<string, unknown>>(axes: { [K in keyof T]: readonly T[K][] }): T[] {
  let out: Record<string, unknown>[] = [{}];
  for (const [k, vs] of Object.entries(axes) as [string, readonly unknown[]][]) out = out.flatMap((p) => vs.map((v) => ({ ...p, [k]: v })));
  return out as T[];
}

/** The point's key: `name=value` in sweep order, space-separated ('' without sweeps). */
export function pointKey(params: Params): string {
  return Object.entries(params).map(([k, v]) => `${k}=${v}`).join(' ');
}

/**
 * The seed of repetition `rep` (0-based) of the point `key` in a study of
 * seed `base`: a hash of the three (the rng's fork), so a run's seed does
 * not depend on which other points or how many repetitions the study has.
 */
export function deriveSeed(base: number, key: string, rep: number): number {
  return createRng(base).fork(`study:${key}#${rep}`).seed;
}
