/**
 * Flooding with convergecast (docs/PROTOCOL.md, flows E/F and G/H), pure.
 *
 * A request (topo or query) enters a peer from `from` (a neighbour id, or null
 * at the requester). The peer forwards it to every other neighbour (unless
 * the hop count reached the TTL or the time budget is spent) and waits. Each
 * neighbour answers once with the aggregate of its subtree; a neighbour that
 * closes or misses the deadline is recorded as `missing`. When nobody is left
 * to wait for, the entry completes: the peer sends the aggregate (its own
 * contribution merged with its subtrees') to `from`, or, at the requester,
 * hands it to the caller. So every request ends with a definite answer.
 *
 * SeenCache suppresses duplicates: a request id is handled at most once; the
 * cache is bounded in size (oldest evicted) and in age.
 */

export interface FloodCounters {
  /** Peers that handled the request in this subtree (each once). */
  reached: number;
  /** Overlay messages sent because of the request in this subtree (requests + replies). */
  messages: number;
  /** Duplicate deliveries dropped in this subtree. */
  duplicates: number;
  /** Deepest hop count reached in this subtree. */
  maxHops: number;
  /** Neighbours (ids) whose subtree did not answer. */
  missing: string[];
}

export function emptyCounters(): FloodCounters {
  return { reached: 0, messages: 0, duplicates: 0, maxHops: 0, missing: [] };
}

export function mergeCounters(into: FloodCounters, from: FloodCounters): void {
  into.reached += from.reached;
  into.messages += from.messages;
  into.duplicates += from.duplicates;
  into.maxHops = Math.max(into.maxHops, from.maxHops);
  for (const m of from.missing) into.missing.push(m);
}

/** A request that has reached its TTL or spent its time budget is forwarded no further (its other neighbours count as missing). */
export function floodCut(hops: number, ttl: number, budgetMs: number, minBudgetMs: number): boolean {
  return hops >= ttl || budgetMs < minBudgetMs;
}

/** Who to forward a request to: every neighbour but the sender, unless floodCut() (the flood model in tests and benches; FloodHandler.forward walks its links the same way). */
export function floodTargets(neighbours: Iterable<string>, from: string | null, hops: number, ttl: number, budgetMs: number, minBudgetMs: number): { targets: string[]; cut: 'ttl' | 'budget' | null } {
  const others = [...neighbours].filter((n) => n !== from);
  if (others.length === 0) return { targets: [], cut: null };
  if (!floodCut(hops, ttl, budgetMs, minBudgetMs)) return { targets: others, cut: null };
  return { targets: [], cut: hops >= ttl ? 'ttl' : 'budget' };
}

/** The budget a forwarded request carries: what this hop had, less a per-hop slack. */
export function childBudget(budgetMs: number, slackMs: number): number {
  return Math.max(0, Math.floor(budgetMs - slackMs));
}

export interface Completion<P> {
  qid: string;
  /** The neighbour to answer, or null when this peer is the requester. */
  to: string | null;
  acc: P;
}

interface Entry<P> {
  from: string | null;
  /** Neighbours not answered yet (a handful: an array is smaller and faster than a Set). */
  waiting: string[];
  acc: P;
  /** When the entry times out (see expire()); Infinity: never by itself. */
  deadline: number;
}

function drop(xs: string[], x: string): boolean {
  const i = xs.indexOf(x);
  if (i < 0) return false;
  // In place, order kept (splice would allocate the array of removed items: once per reply per peer).
  for (let j = i + 1; j < xs.length; j++) xs[j - 1] = xs[j]!;
  xs.pop();
  return true;
}

export class Convergecast<P extends { counters: FloodCounters }> {
  private entries = new Map<string, Entry<P>>();

  constructor(private readonly merge: (acc: P, part: P) => void) {}

  get size(): number {
    return this.entries.size;
  }

  has(qid: string): boolean {
    return this.entries.has(qid);
  }

  /** Starts waiting on `targets` (the array is kept: the caller hands it over); completes at once when there are none. */
  begin(qid: string, from: string | null, targets: string[], own: P, deadline = Infinity): Completion<P> | undefined {
    const entry: Entry<P> = { from, waiting: targets, acc: own, deadline };
    this.entries.set(qid, entry);
    return this.check(qid, entry);
  }

  /** A neighbour's answer (the final frame of it). Unknown or repeated answers are ignored. */
  reply(qid: string, neighbour: string, part: P): Completion<P> | undefined {
    const e = this.entries.get(qid);
    if (!e || !drop(e.waiting, neighbour)) return undefined;
    this.merge(e.acc, part);
    return this.check(qid, e);
  }

  /** Adds to an entry's aggregate without completing (e.g. a non-final topo frame). */
  partial(qid: string, neighbour: string, part: P): void {
    const e = this.entries.get(qid);
    if (!e || !e.waiting.includes(neighbour)) return;
    this.merge(e.acc, part);
  }

  waitingOn(qid: string, neighbour: string): boolean {
    return this.entries.get(qid)?.waiting.includes(neighbour) ?? false;
  }

  /** A neighbour went away: every entry waiting on it records it missing. */
  neighbourGone(neighbour: string): Completion<P>[] {
    const out: Completion<P>[] = [];
    for (const [qid, e] of this.entries) {
      if (e.from === neighbour && e.waiting.length > 0) {
        // Nobody to answer any more; finish quietly (the answer is dropped by the caller).
        e.from = null;
      }
      if (drop(e.waiting, neighbour)) {
        e.acc.counters.missing.push(neighbour);
        const c = this.check(qid, e);
        if (c) out.push(c);
      }
    }
    return out;
  }

  /** Deadline reached: everything still waited on is missing. */
  timeout(qid: string): Completion<P> | undefined {
    const e = this.entries.get(qid);
    if (!e) return undefined;
    for (const n of e.waiting) e.acc.counters.missing.push(n);
    e.waiting = [];
    return this.check(qid, e);
  }

  /** Times out every entry whose deadline is ≤ now (as timeout()); returns their completions. */
  expire(now: number): Completion<P>[] {
    const out: Completion<P>[] = [];
    for (const [qid, e] of this.entries) {
      if (e.deadline > now) continue;
      const c = this.timeout(qid);
      if (c) out.push(c);
    }
    return out;
  }

  /** The earliest deadline of the entries still waiting (Infinity when none). */
  nextDeadline(): number {
    let min = Infinity;
    for (const e of this.entries.values()) if (e.deadline < min) min = e.deadline;
    return min;
  }

  /** Drops every entry (peer stopping); returns their completions. */
  clear(): Completion<P>[] {
    const out: Completion<P>[] = [];
    for (const qid of [...this.entries.keys()]) {
      const c = this.timeout(qid);
      if (c) out.push(c);
    }
    return out;
  }

  private check(qid: string, e: Entry<P>): Completion<P> | undefined {
    if (e.waiting.length > 0) return undefined;
    this.entries.delete(qid);
    return { qid, to: e.from, acc: e.acc };
  }
}

export interface SeenCacheOptions {
  /** Most ids remembered; the oldest is evicted. Default 10,000. */
  maxEntries?: number;
  /** How long an id is remembered, ms. Default 120,000. */
  ttlMs?: number;
}

/** Bounded duplicate-suppression cache: insertion-ordered Map, evicts oldest. */
export class SeenCache {
  readonly maxEntries: number;
  readonly ttlMs: number;
  private map = new Map<string, number>();
  /** A lower bound of the oldest entry's time: nothing can have expired while now - firstAt < ttlMs. */
  private firstAt = Infinity;

  constructor(opts: SeenCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.ttlMs = opts.ttlMs ?? 120_000;
  }

  get size(): number {
    return this.map.size;
  }

  /** Returns true if `id` was seen (and not expired); otherwise records it and returns false. */
  checkAndAdd(id: string, now: number): boolean {
    const at = this.map.get(id);
    if (at !== undefined && now - at < this.ttlMs) return true;
    if (at !== undefined) this.map.delete(id);
    if (this.map.size === 0) this.firstAt = now;
    this.map.set(id, now);
    // Expired ids are swept in batches (an eighth of the TTL apart), not one per call: an expired id
    // still held is not "seen" (the test above), it only waits for the next sweep.
    if (this.map.size > this.maxEntries || now - this.firstAt >= this.ttlMs + (this.ttlMs >> 3)) this.evict(now);
    return false;
  }

  has(id: string, now: number): boolean {
    const at = this.map.get(id);
    return at !== undefined && now - at < this.ttlMs;
  }

  private evict(now: number): void {
    while (this.map.size > this.maxEntries) {
      const first = this.map.keys().next().value as string;
      this.map.delete(first);
    }
    // Drop expired ids from the old end (insertion order = age order).
    this.firstAt = Infinity;
    for (const [k, at] of this.map) {
      if (now - at < this.ttlMs) {
        this.firstAt = at;
        break;
      }
      this.map.delete(k);
    }
  }
}
