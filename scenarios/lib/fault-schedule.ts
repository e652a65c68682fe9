/**
 * Fault schedules (`--faults FILE`, docs/FAULTS.md#schedules): a JSON array
 * of entries `{ at, kind, <targets>, duration?, every?, count?, ...params }`,
 * validated with zod (a bad field is a UsageError naming its path: exit 2),
 * expanded into occurrences, refused before the run when the runner cannot
 * apply a kind, and applied through the Cluster's fault methods on the
 * scenario clock (Scenario.at). Targets are drawn when the fault fires, from
 * the live peers and the run's seed: the same seed draws the same peers.
 */
import { z } from 'zod';
import { durationMs, UsageError } from './args.ts';
import { readJsonFile } from './json-file.ts';
import { DISK_FAULTS, FAULT_KINDS, META, type FaultKind, type LinkSpec, type SkewSpec } from './faults.ts';
import type { Rng } from './rng.ts';

/** A duration: a number of ms, or a string with its unit ("1500ms", "30s", "2m", "1h"). */
const Dur = z.union([z.number().finite().nonnegative(), z.string()]).transform((v, ctx) => {
  const ms = typeof v === 'number' ? v : durationMs(v);
  if (!Number.isFinite(ms)) {
    ctx.addIssue({ code: 'custom', message: `not a duration: ${JSON.stringify(v)} (a number of ms, or "1500ms", "30s", "2m", "1h")` });
    return z.NEVER;
  }
  return ms;
});

/** Who a fault hits: "half" (a random half of the live peers), "rest" (the live peers in no earlier group), "all", "meta", "random:N", a peer id, or a list of ids. */
const Selector = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);
export type Selector = z.infer<typeof Selector>;

const Entry = z.strictObject({
  at: Dur,
  kind: z.enum(FAULT_KINDS),
  duration: Dur.optional(),
  every: Dur.optional(),
  count: z.number().int().min(1).max(10_000).optional(),
  groups: z.array(Selector).min(2).optional(),
  oneWay: z.boolean().optional(),
  targets: Selector.optional(),
  between: z.tuple([Selector, Selector]).optional(),
  latencyMs: z.number().finite().nonnegative().optional(),
  jitterMs: z.number().finite().nonnegative().optional(),
  bandwidthBytesPerSec: z.number().finite().nonnegative().optional(),
  ms: Dur.optional(),
  offsetMs: z.number().finite().optional(),
  driftPpm: z.number().finite().optional(),
  disk: z.strictObject({ kind: z.enum(DISK_FAULTS), afterBytes: z.number().int().nonnegative().optional(), ms: z.number().finite().nonnegative().optional() }).optional(),
}).superRefine((e, ctx) => {
  const need = (field: keyof typeof e, why: string) => {
    if (e[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `required for kind "${e.kind}" (${why})` });
  };
  const forbid = (field: keyof typeof e) => {
    if (e[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: `not used by kind "${e.kind}"` });
  };
  const k = e.kind;
  if (k === 'partition') need('groups', 'the sides, e.g. ["half", "rest"]');
  else forbid('groups');
  if (k !== 'partition') forbid('oneWay');
  if (k === 'pause' || k === 'resume' || k === 'skew' || k === 'disk') need('targets', 'the nodes it hits, e.g. "random:3"');
  else forbid('targets');
  if (k === 'shape' || k === 'stall' || k === 'reset') need('between', 'the two sides of the links, e.g. ["meta", "all"]');
  else forbid('between');
  if (k === 'stall') need('ms', 'how long bytes are held');
  else forbid('ms');
  if (k === 'disk') need('disk', 'e.g. {"kind": "enospc"}');
  else forbid('disk');
  if (k !== 'shape') for (const f of ['latencyMs', 'jitterMs', 'bandwidthBytesPerSec'] as const) forbid(f);
  if (k !== 'skew') for (const f of ['offsetMs', 'driftPpm'] as const) forbid(f);
  if (e.duration !== undefined && !UNDO.has(k)) ctx.addIssue({ code: 'custom', path: ['duration'], message: `kind "${k}" has nothing to undo (duration is for ${[...UNDO].join(', ')})` });
  if (e.duration === 0) ctx.addIssue({ code: 'custom', path: ['duration'], message: 'must be above 0' });
  if ((e.every === undefined) !== (e.count === undefined)) ctx.addIssue({ code: 'custom', path: [e.every === undefined ? 'every' : 'count'], message: 'every and count go together (repeat `count` times, `every` apart)' });
  if (e.every === 0) ctx.addIssue({ code: 'custom', path: ['every'], message: 'must be above 0' });
  if (e.every !== undefined && e.duration !== undefined && e.duration > e.every) ctx.addIssue({ code: 'custom', path: ['duration'], message: `longer than every (${e.every} ms): repetitions would overlap` });
});
export type ScheduleEntry = z.infer<typeof Entry>;

const Schedule = z.array(Entry).max(10_000);

/** Kinds a `duration` undoes at its end: heal, resume, default shape, true clock, healthy disk. */
const UNDO: ReadonlySet<FaultKind> = new Set(['partition', 'shape', 'pause', 'skew', 'disk']);

/** Validates a parsed schedule; a bad field throws a UsageError naming it (`[2].groups[0]: …`). */
export function parseSchedule(json: unknown, what = 'fault schedule'): ScheduleEntry[] {
  const r = Schedule.safeParse(json);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  // An unknown field is named in the path, as a missing or bad one is.
  const unknown = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
  const where = [...issue.path, ...(unknown !== undefined ? [unknown] : [])].map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') || '(top level)';
  const msg = unknown !== undefined ? `unknown field (fields: ${Object.keys(Entry.shape).join(', ')})` : issue.path.length === 0 && !Array.isArray(json) ? 'must be a JSON array of fault entries' : issue.message;
  throw new UsageError(`${what}: ${where}: ${msg}`);
}

/** Reads and validates `--faults FILE`. */
export function loadSchedule(file: string): ScheduleEntry[] {
  return parseSchedule(readJsonFile(file, (m) => new UsageError(`--faults: ${m}`)), `--faults ${file}`);
}

/** One firing of an entry (repetitions expanded), in time order. */
export interface Occurrence {
  at: number;
  entry: ScheduleEntry;
  /** Index of the entry in the file, and which repetition (0-based). */
  index: number;
  rep: number;
}

export function expandSchedule(entries: readonly ScheduleEntry[]): Occurrence[] {
  const out: Occurrence[] = [];
  entries.forEach((entry, index) => {
    for (let rep = 0; rep < (entry.count ?? 1); rep++) out.push({ at: entry.at + rep * (entry.every ?? 0), entry, index, rep });
  });
  return out.sort((a, b) => a.at - b.at || a.index - b.index || a.rep - b.rep);
}

/** The kinds a schedule uses, undoing ones included (a timed pause needs resume, a timed partition heal). */
export function kindsOf(entries: readonly ScheduleEntry[]): FaultKind[] {
  const undo: Partial<Record<FaultKind, FaultKind>> = { partition: 'heal', pause: 'resume' };
  const ks = new Set<FaultKind>();
  for (const e of entries) {
    ks.add(e.kind);
    const u = undo[e.kind];
    if (e.duration !== undefined && u) ks.add(u);
  }
  return [...ks];
}

/** Why `unsupported` refuses some kind of the schedule (the first one), or null when the runner can do them all. */
export function refusal(entries: readonly ScheduleEntry[], runner: string, unsupported: (k: FaultKind) => string | null): string | null {
  for (const k of kindsOf(entries)) {
    const why = unsupported(k);
    if (why !== null) return `the ${runner} runner cannot ${k}: ${why}`;
  }
  return null;
}

/**
 * The node ids a list of selectors names, drawn from `live` with `rng`
 * (one draw per selector, in order): "rest" is the live peers in no earlier
 * group. An id that is neither live nor META is an error.
 */
export function resolveSelectors(sels: readonly Selector[], live: readonly string[], rng: Rng): string[][] {
  const used = new Set<string>();
  const liveSet = new Set(live);
  return sels.map((sel) => {
    let ids: string[];
    if (Array.isArray(sel)) ids = [...sel];
    else if (sel === 'all') ids = [...live];
    else if (sel === 'rest') ids = live.filter((id) => !used.has(id));
    else if (sel === 'half') ids = rng.shuffle(live.filter((id) => !used.has(id))).slice(0, Math.floor(live.filter((id) => !used.has(id)).length / 2));
    else if (sel.startsWith('random:')) {
      const n = Number(sel.slice('random:'.length));
      if (!Number.isInteger(n) || n < 1) throw new Error(`selector ${JSON.stringify(sel)}: random:N needs a whole N ≥ 1`);
      ids = rng.shuffle(live.filter((id) => !used.has(id))).slice(0, n);
    } else ids = [sel];
    for (const id of ids) {
      if (id !== META && !liveSet.has(id)) throw new Error(`selector ${JSON.stringify(sel)}: ${id} is not a live peer`);
      used.add(id);
    }
    return ids;
  });
}

/** What applying a schedule needs: the Cluster's fault methods and its live peers. */
export interface FaultTarget {
  alive(): string[];
  partition(groups: readonly (readonly string[])[], o?: { oneWay?: boolean }): Promise<unknown>;
  heal(): Promise<unknown>;
  shape(a: string, b: string, spec: LinkSpec | null): Promise<unknown>;
  stall(a: string, b: string, ms: number): Promise<unknown>;
  reset(a: string, b: string): Promise<unknown>;
  pause(id: string): Promise<unknown>;
  resume(id: string): Promise<unknown>;
  skew(id: string, spec: SkewSpec): Promise<unknown>;
  disk(id: string, spec: import('./faults.ts').DiskSpec | null): Promise<unknown>;
}

/** Most links one shape/stall/reset entry may name (its two sides crossed). */
export const MAX_LINKS = 10_000;

/** What one occurrence does, and what undoes it after `duration` (null: nothing). */
async function fire(o: Occurrence, c: FaultTarget, rng: Rng): Promise<(() => Promise<void>) | null> {
  const e = o.entry;
  const live = c.alive();
  const each = async (ids: readonly string[], fn: (id: string) => Promise<unknown>) => {
    for (const id of ids) await fn(id);
  };
  const links = (): [string, string][] => {
    const [a, b] = resolveSelectors(e.between!, live, rng) as [string[], string[]];
    const pairs: [string, string][] = [];
    for (const x of a) for (const y of b) if (x !== y) pairs.push([x, y]);
    if (pairs.length > MAX_LINKS) throw new Error(`between names ${pairs.length} links, over ${MAX_LINKS}`);
    return pairs;
  };
  switch (e.kind) {
    case 'partition': {
      const groups = resolveSelectors(e.groups!, live, rng);
      await c.partition(groups, { oneWay: e.oneWay });
      return async () => void (await c.heal());
    }
    case 'heal':
      await c.heal();
      return null;
    case 'shape': {
      const spec: LinkSpec = { latencyMs: e.latencyMs, jitterMs: e.jitterMs, bandwidthBytesPerSec: e.bandwidthBytesPerSec };
      const pairs = links();
      for (const [a, b] of pairs) await c.shape(a, b, spec);
      return async () => {
        for (const [a, b] of pairs) await c.shape(a, b, null);
      };
    }
    case 'stall':
      for (const [a, b] of links()) await c.stall(a, b, e.ms!);
      return null;
    case 'reset':
      for (const [a, b] of links()) await c.reset(a, b);
      return null;
    case 'pause': {
      const [ids] = resolveSelectors([e.targets!], live, rng) as [string[]];
      await each(ids, (id) => c.pause(id));
      return () => each(ids, (id) => c.resume(id));
    }
    case 'resume': {
      const [ids] = resolveSelectors([e.targets!], live, rng) as [string[]];
      await each(ids, (id) => c.resume(id));
      return null;
    }
    case 'skew': {
      const [ids] = resolveSelectors([e.targets!], live, rng) as [string[]];
      await each(ids, (id) => c.skew(id, { offsetMs: e.offsetMs, driftPpm: e.driftPpm }));
      return () => each(ids, (id) => c.skew(id, {}));
    }
    case 'disk': {
      const [ids] = resolveSelectors([e.targets!], live, rng) as [string[]];
      await each(ids, (id) => c.disk(id, e.disk!));
      return () => each(ids, (id) => c.disk(id, null));
    }
  }
}

/** A short name of an occurrence for the step log: "#2 partition (2/5)". */
export function occurrenceLabel(o: Occurrence): string {
  return `fault #${o.index + 1} ${o.entry.kind}${(o.entry.count ?? 1) > 1 ? ` (${o.rep + 1}/${o.entry.count})` : ''}`;
}

/**
 * Schedules every occurrence on `at` (the scenario clock): each draws its
 * targets from a fork of `rng` named by entry and repetition, applies the
 * fault through `c`, and with a `duration` schedules its undoing.
 */
export function applySchedule(entries: readonly ScheduleEntry[], c: FaultTarget, rng: Rng, at: (t: number, fn: () => Promise<void>, label: string) => void): void {
  for (const o of expandSchedule(entries)) {
    const label = occurrenceLabel(o);
    at(o.at, async () => {
      const undo = await fire(o, c, rng.fork(`faults:${o.index}:${o.rep}`));
      if (undo && o.entry.duration !== undefined) at(o.at + o.entry.duration, undo, `end of ${label}`);
    }, label);
  }
}
