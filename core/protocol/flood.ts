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

  /**
   * Starts waiting on `targets`; completes at once when there are none. The entry waits on its own
   * copy: the caller may go on iterating `targets` while the answers come in (reply() removes them
   * from the copy only).
   */
  begin(qid: string, from: string | null, targets: readonly string[], own: P, deadline = Infinity): Completion<P> | undefined {
    const entry: Entry<P> = { from, waiting: targets.slice(), acc: own, deadline };
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

/**
 * Bounded duplicate-suppression cache. Ids are kept as 52-bit hashes in typed arrays, not as
 * strings in a Map: a long simulation holds one cache per peer with every query id of the last
 * two minutes, and as strings those were hundreds of MB the collector kept copying and marking
 * (measured: 10,000 peers at 181 floods a minute). Two ids share a hash with probability about
 * 2^-52 per pair (a peer holds a few thousand at most); a hostile peer choosing an id that
 * collides gains nothing a peer on the path could not do by dropping the request.
 *
 * The ids sit in a ring in arrival order (= age order: `now` never goes back), pairs of hash and
 * arrival time, and in an open-addressing table of the hashes themselves (a lookup reads the table
 * only); expired ids leave from the old end as soon as a call sees them, and over `maxEntries` the
 * oldest is evicted. A new id touches two places of memory: its table slot and the ring's end.
 */
export class SeenCache {
  readonly maxEntries: number;
  readonly ttlMs: number;
  /** Ring of [hash, arrival time] pairs: entries head, head+1, … (mod cap), `count` of them. */
  private ring = new Float64Array(32);
  private head = 0;
  private count = 0;
  /** Arrival time of the oldest entry (Infinity when empty): expiry needs no read of the ring. */
  private oldestAt = Infinity;
  /** Open-addressing table of the hashes (0 = empty), at least twice the ring's capacity. */
  private table = new Float64Array(32);

  constructor(opts: SeenCacheOptions = {}) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
    this.ttlMs = opts.ttlMs ?? 120_000;
  }

  get size(): number {
    return this.count;
  }

  /** Returns true if `id` was seen (and not expired); otherwise records it and returns false. */
  checkAndAdd(id: string, now: number): boolean {
    if (now - this.oldestAt >= this.ttlMs) this.expire(now);
    const key = idHash(id);
    const table = this.table;
    let i = this.slotOf(key);
    if (table[i] === key) return true;
    const cap = this.ring.length >> 1;
    if (this.count === this.maxEntries) {
      // The eviction may open a hole anywhere in the probe run: find the first empty slot again.
      this.dropOldest();
      i = this.slotOf(key);
    } else if (this.count === cap) {
      this.grow();
      return this.checkAndAdd(id, now);
    }
    table[i] = key;
    const slot = (this.head + this.count) & ((this.ring.length >> 1) - 1);
    this.ring[2 * slot] = key;
    this.ring[2 * slot + 1] = now;
    if (this.count++ === 0) this.oldestAt = now;
    return false;
  }

  has(id: string, now: number): boolean {
    const key = idHash(id);
    if (this.table[this.slotOf(key)] !== key) return false;
    // Found: its arrival time is in the ring (this is not a hot path).
    const cap = this.ring.length >> 1;
    for (let k = 0; k < this.count; k++) {
      const slot = (this.head + k) & (cap - 1);
      if (this.ring[2 * slot] === key) return now - this.ring[2 * slot + 1]! < this.ttlMs;
    }
    return false;
  }

  /** The table slot holding `key`, or the empty slot that ends its probe run. */
  private slotOf(key: number): number {
    const table = this.table;
    const mask = table.length - 1;
    let i = key & mask;
    while (table[i] !== 0 && table[i] !== key) i = (i + 1) & mask;
    return i;
  }

  private expire(now: number): void {
    while (this.count > 0 && now - this.oldestAt >= this.ttlMs) this.dropOldest();
  }

  /** Removes the oldest entry from the ring and the table. */
  private dropOldest(): void {
    const cap = this.ring.length >> 1;
    const key = this.ring[2 * this.head]!;
    const table = this.table;
    const mask = table.length - 1;
    let i = this.slotOf(key);
    // Backward-shift deletion: entries after the hole that may not stay past it move into it.
    for (let j = (i + 1) & mask; table[j] !== 0; j = (j + 1) & mask) {
      const home = table[j]! & mask;
      if (((j - home) & mask) >= ((j - i) & mask)) {
        table[i] = table[j]!;
        i = j;
      }
    }
    table[i] = 0;
    this.head = (this.head + 1) & (cap - 1);
    this.oldestAt = --this.count > 0 ? this.ring[2 * this.head + 1]! : Infinity;
  }

  /** Doubles the ring (laid out from slot 0 again) and the table, and fills the table again. */
  private grow(): void {
    const oldCap = this.ring.length >> 1;
    const cap = oldCap * 2;
    const ring = new Float64Array(2 * cap);
    for (let k = 0; k < this.count; k++) {
      const from = (this.head + k) & (oldCap - 1);
      ring[2 * k] = this.ring[2 * from]!;
      ring[2 * k + 1] = this.ring[2 * from + 1]!;
    }
    this.ring = ring;
    this.head = 0;
    const table = new Float64Array(cap * 2);
    const mask = table.length - 1;
    for (let k = 0; k < this.count; k++) {
      let i = ring[2 * k]! & mask;
      while (table[i] !== 0) i = (i + 1) & mask;
      table[i] = ring[2 * k]!;
    }
    this.table = table;
  }
}

/** A 52-bit hash of a string (two 32-bit multiplicative lanes, each mixed at the end; 26 bits of each), never 0. */
export function idHash(s: string): number {
  let a = 0x811c9dc5 ^ s.length;
  let b = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  a ^= a >>> 15;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  b ^= b >>> 16;
  b = Math.imul(b, 0xc2b2ae35);
  b ^= b >>> 15;
  return ((a >>> 6) * 0x4000000 + (b >>> 6)) || 1;
}
