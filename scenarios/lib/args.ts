/**
 * Command-line options shared by every scenario (node's util.parseArgs,
 * strict): --peers, --runner, --max-children, --policy, --latency,
 * --bandwidth, --seed, --json, --quiet, --out, --no-html, --help, plus the
 * scenario's own. A bad flag or value is a UsageError: one clear line, exit 2.
 */
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isPolicy, POLICIES, type Policy } from '../../core/index.ts';
import { sizeValue } from '../../core/control/args.ts';
import { randomSeed } from './rng.ts';
import { RUNNERS, type RunnerKind } from './runner.ts';
import { REPO } from './shares.ts';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CommonOptions {
  peers: number;
  runner: RunnerKind;
  maxChildren: number;
  policy: Policy;
  /** Added one-way latency per link, ms. */
  latency: number;
  /** Per-direction link rate, bytes/s; 0 = unlimited. */
  bandwidth: number;
  seed: number;
  json: boolean;
  quiet: boolean;
  /** Folder for results (JSON + HTML). */
  out: string;
  html: boolean;
  /** Long option names given explicitly on the command line. */
  given: ReadonlySet<string>;
  /** Scenario-specific options, as parsed. */
  extra: Record<string, string | boolean | undefined>;
  /** --faults FILE: a fault schedule (fault-schedule.ts; read and checked before the run starts). */
  faultsFile?: string;
  /** --regions FILE: latency/bandwidth between named regions (regions.ts; read and checked before the run starts). */
  regionsFile?: string;
  /** False with --no-invariants: no invariant checker on the clusters (invariants.ts). */
  invariants?: boolean;
  /** --stop-on-violation: the run stops at the first invariant violation. */
  stopOnViolation?: boolean;
}

export interface ExtraOption {
  type: 'string' | 'boolean';
  description: string;
  /** Shown in --help. */
  placeholder?: string;
}

export type Defaults = Partial<Pick<CommonOptions, 'peers' | 'runner' | 'maxChildren' | 'policy' | 'latency' | 'bandwidth'>>;

const COMMON: Record<string, { type: 'string' | 'boolean'; short?: string; help: string; arg?: string }> = {
  peers: { type: 'string', arg: 'N', help: 'number of peers' },
  runner: { type: 'string', arg: 'KIND', help: `process (real OS processes), inproc (one process, loopback TCP) or memory (in-memory transport)` },
  'max-children': { type: 'string', arg: 'N', help: 'most children a peer accepts (1-1024)' },
  policy: { type: 'string', arg: 'NAME', help: `metaserver referral policy: ${POLICIES.join(', ')}` },
  latency: { type: 'string', arg: 'MS', help: 'added one-way latency per link, ms (user-space link emulation)' },
  bandwidth: { type: 'string', arg: 'RATE', help: 'per-link rate cap, bytes/s; suffixes k M G (10^3..) or KiB MiB GiB; 0 = none' },
  seed: { type: 'string', arg: 'N', help: 'seed for every random choice (printed; default: random)' },
  json: { type: 'boolean', help: 'print only the JSON result on stdout' },
  quiet: { type: 'boolean', short: 'q', help: 'no progress, no step log, no tables: just the summary line' },
  out: { type: 'string', arg: 'DIR', help: 'where results go (default: results/)' },
  'no-html': { type: 'boolean', help: 'do not write the HTML report' },
  faults: { type: 'string', arg: 'FILE', help: 'apply the fault schedule in FILE (JSON, docs/FAULTS.md#schedules) to the first overlay' },
  regions: { type: 'string', arg: 'FILE', help: 'link latency/bandwidth between named regions (JSON, docs/FAULTS.md#regions); each peer in a region drawn by the seed' },
  'no-invariants': { type: 'boolean', help: 'do not check the invariants (tree, requests, data) along the run' },
  'stop-on-violation': { type: 'boolean', help: 'stop the run at the first invariant violation' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export function helpText(name: string, summary: string, defaults: Defaults, extra: Record<string, ExtraOption>, commonHelp: Partial<Record<string, string>> = {}): string {
  const common: [string, string][] = [];
  const dflt: Record<string, unknown> = {
    peers: defaults.peers, runner: defaults.runner, 'max-children': defaults.maxChildren, policy: defaults.policy,
    latency: defaults.latency ?? 0, bandwidth: defaults.bandwidth ?? 0,
  };
  for (const [k, o] of Object.entries(COMMON)) {
    const d = dflt[k] !== undefined ? ` (default ${String(dflt[k])})` : '';
    common.push([`${o.short ? `-${o.short}, ` : '    '}--${k}${o.arg ? ` ${o.arg}` : ''}`, commonHelp[k] ?? o.help + d]);
  }
  const own: [string, string][] = Object.entries(extra).map(([k, o]) => [`    --${k}${o.type === 'string' ? ` ${o.placeholder ?? 'VALUE'}` : ''}`, o.description]);
  const w = Math.max(...[...common, ...own].map((r) => r[0].length)) + 2;
  const rows = (rs: [string, string][]) => rs.map(([a, b]) => `  ${a.padEnd(w)}${b}`);
  return [
    `usage: npx tsx scenarios/${name}.ts [options]`,
    '',
    summary,
    '',
    ...(own.length ? [`${name} options:`, ...rows(own), ''] : []),
    'options of every scenario:',
    ...rows(common),
    '',
    'Results: results/<scenario>-<timestamp>.json and .html (open the .html in any browser; no network needed).',
  ].join('\n');
}

function int(name: string, v: string, lo: number, hi: number): number {
  if (!/^\d+$/.test(v.trim())) throw new UsageError(`--${name} must be a whole number, not ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < lo || n > hi) throw new UsageError(`--${name} must be between ${lo} and ${hi}, not ${n}`);
  return n;
}

/** "10M" → 10,000,000; "4MiB" → 4,194,304; "0" → 0 (the peer's --bandwidth parser: core/control/args.ts sizeValue). */
export function parseRate(v: string, name = 'bandwidth'): number {
  const n = sizeValue(v);
  if (n === null) throw new UsageError(`--${name} must be bytes per second like 1000000, 10M or 4MiB, not ${JSON.stringify(v)}`);
  return n;
}

/** The node:util parseArgs options of every scenario plus `extra` (the scenario's own). */
export function optionConfig(extra: Record<string, ExtraOption> = {}): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [k, o] of Object.entries(COMMON)) options[k] = o.short ? { type: o.type, short: o.short } : { type: o.type };
  for (const [k, o] of Object.entries(extra)) options[k] = { type: o.type };
  return options;
}

export function parseOptions(argv: readonly string[], defaults: Defaults, extra: Record<string, ExtraOption> = {}): CommonOptions & { help: boolean } {
  const options = optionConfig(extra);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }) as { values: Record<string, string | boolean | undefined> });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!.replace(/\. To specify.*$/, ''));
  }
  const given = new Set(Object.keys(values).filter((k) => values[k] !== undefined));
  const s = (k: string) => values[k] as string | undefined;
  const runner = s('runner') ?? defaults.runner ?? 'inproc';
  if (!(RUNNERS as readonly string[]).includes(runner)) throw new UsageError(`--runner must be one of ${RUNNERS.join(', ')}, not ${JSON.stringify(runner)}`);
  const policy = s('policy') ?? defaults.policy ?? 'least-loaded';
  if (!isPolicy(policy)) throw new UsageError(`--policy must be one of ${POLICIES.join(', ')}, not ${JSON.stringify(policy)}`);
  const latency = s('latency') !== undefined ? Number(s('latency')) : (defaults.latency ?? 0);
  if (!Number.isFinite(latency) || latency < 0 || latency > 10_000) throw new UsageError(`--latency must be a number of ms from 0 to 10000, not ${JSON.stringify(s('latency'))}`);
  const extraValues: Record<string, string | boolean | undefined> = {};
  for (const k of Object.keys(extra)) extraValues[k] = values[k];
  return {
    help: values.help === true,
    peers: s('peers') !== undefined ? int('peers', s('peers')!, 1, 1_000_000) : (defaults.peers ?? 5),
    runner: runner as RunnerKind,
    maxChildren: s('max-children') !== undefined ? int('max-children', s('max-children')!, 1, 1024) : (defaults.maxChildren ?? 2),
    policy,
    latency,
    bandwidth: s('bandwidth') !== undefined ? parseRate(s('bandwidth')!) : (defaults.bandwidth ?? 0),
    seed: s('seed') !== undefined ? int('seed', s('seed')!, 0, 2 ** 32 - 1) : randomSeed(),
    json: values.json === true,
    quiet: values.quiet === true,
    out: path.resolve(s('out') ?? path.join(REPO, 'results')),
    html: values['no-html'] !== true,
    given,
    extra: extraValues,
    ...(s('faults') !== undefined ? { faultsFile: path.resolve(s('faults')!) } : {}),
    ...(s('regions') !== undefined ? { regionsFile: path.resolve(s('regions')!) } : {}),
    invariants: values['no-invariants'] !== true,
    stopOnViolation: values['stop-on-violation'] === true,
  };
}

/** Most values one list or sweep may expand to. */
export const MAX_VALUES = 1000;

const NUM = String.raw`-?\d+(?:\.\d+)?(?:e[+-]?\d+)?`;
const RANGE = new RegExp(`^(${NUM})\\.\\.(${NUM})(?:([*+])(${NUM}))?$`, 'i');

/** x without binary float noise (0.1 + 0.2 → 0.3), as the command line would write it. */
function clean(x: number): string {
  return String(Number(x.toPrecision(12)));
}

/**
 * One comma-separated element list, ranges expanded: "10,100..1000*10" →
 * ["10", "100", "1000"]. Non-range elements are kept as written (the
 * option's own parser judges them). `what` names the option in errors.
 */
export function expandValues(what: string, spec: string): string[] {
  const out: string[] = [];
  const parts = spec.split(',').map((x) => x.trim());
  if (parts.some((p) => p === '')) throw new UsageError(`${what}: empty value in ${JSON.stringify(spec)}`);
  for (const p of parts) {
    if (!p.includes('..')) {
      out.push(p);
      continue;
    }
    const m = RANGE.exec(p);
    if (!m) throw new UsageError(`${what}: ${JSON.stringify(p)} is not a range like 1000..100000*10 or 0..50+10`);
    const lo = Number(m[1]);
    const hi = Number(m[2]);
    const op = m[3] ?? '+';
    const by = m[4] !== undefined ? Number(m[4]) : 1;
    if (hi < lo) throw new UsageError(`${what}: range ${JSON.stringify(p)} ends below its start`);
    if (op === '+' && !(by > 0)) throw new UsageError(`${what}: the step of ${JSON.stringify(p)} must be above 0`);
    if (op === '*' && !(by > 1 && lo > 0)) throw new UsageError(`${what}: a multiplying range needs a factor above 1 and a start above 0, not ${JSON.stringify(p)}`);
    const eps = Math.abs(hi) * 1e-9 + 1e-12;
    for (let i = 0; ; i++) {
      const x = op === '+' ? lo + i * by : lo * by ** i;
      if (x > hi + eps) break;
      if (out.length >= MAX_VALUES) throw new UsageError(`${what}: more than ${MAX_VALUES} values`);
      out.push(clean(x));
    }
  }
  return out;
}

/** A scenario option given as a comma list of numbers ("0,5,20,50"), ranges as in --sweep ("0..50+10", "100..10000*10"). */
export function numberList(name: string, v: string | boolean | undefined, dflt: number[], parse: (s: string) => number = Number): number[] {
  if (v === undefined || typeof v === 'boolean') return dflt;
  if (v.trim() === '') throw new UsageError(`--${name} is empty`);
  const out = expandValues(`--${name}`, v).map((x) => {
    let n: number;
    try {
      n = parse(x);
    } catch {
      n = NaN;
    }
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a comma list of non-negative numbers, not ${JSON.stringify(v)}`);
    return n;
  });
  if (out.length === 0) throw new UsageError(`--${name} is empty`);
  return out;
}

/**
 * A scenario option that is a whole number from 1 to `max` (`dflt` when not
 * given). Takes what Number() reads as an integer ("8", "8.0", "1e3"), as the
 * scenarios always have; the common options use the stricter digits-only int().
 */
export function intOption(o: Pick<CommonOptions, 'extra'>, name: string, dflt: number, max: number): number {
  const v = o.extra[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${name} must be a whole number from 1 to ${max}, not ${JSON.stringify(v)}`);
  return n;
}

/** Overlay sizes: `--peers N` alone when given, else `--sizes` (a comma list, each rounded, at least 2) or `dflt`. */
export function sizesOption(o: Pick<CommonOptions, 'extra' | 'given' | 'peers'>, dflt: number[]): number[] {
  if (o.given.has('peers')) return [o.peers];
  return numberList('sizes', o.extra.sizes, dflt).map((n) => Math.max(2, Math.round(n)));
}

/**
 * A duration option (`--duration 10m`): a number with unit ms, s, m or h
 * (no unit: seconds), in ms; undefined when not given.
 */
export function durationOption(o: Pick<CommonOptions, 'extra'>, name: string, maxMs = 7 * 24 * 3600 * 1000): number | undefined {
  const v = o.extra[name];
  if (v === undefined) return undefined;
  const ms = typeof v === 'string' ? durationMs(v, 's') : NaN;
  if (!Number.isFinite(ms) || ms <= 0 || ms > maxMs) throw new UsageError(`--${name} must be a positive duration like 90s, 10m or 1h (at most ${maxMs / 3_600_000} h), not ${JSON.stringify(v)}`);
  return ms;
}

/** "1500ms", "30s", "2m", "1h" (a bare number: `bare` units, or NaN when none) → ms; NaN when it is not a duration. */
export function durationMs(v: string, bare?: 'ms' | 's'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const u = m?.[2] ?? bare;
  return m && u ? Number(m[1]) * unit[u as keyof typeof unit] : NaN;
}

/** A positive number option (`--rate 6`), `dflt` when not given. */
export function numberOption(o: Pick<CommonOptions, 'extra'>, name: string, dflt: number, max: number): number {
  const v = o.extra[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > max) throw new UsageError(`--${name} must be a number above 0 and at most ${max}, not ${JSON.stringify(v)}`);
  return n;
}
