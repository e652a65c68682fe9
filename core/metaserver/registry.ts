/**
 * The metaserver's registry of live peers (pure data, no IO).
 *
 * An entry is created by `register` (state joining; the first peer is the root
 * and joined at once) and refreshed by `announce` (state joined, parent,
 * depth, children). Referrals handed out but not yet confirmed by the new
 * child's announce are kept as "pending" against the referred peer for
 * `pendingTtlMs`, so concurrent newcomers are spread over free slots.
 */
import type { RegistryEntry } from '../protocol/messages.ts';
import { chooseReferral, type Candidate, type Policy } from '../protocol/referral.ts';

export interface Entry extends RegistryEntry {
  /** performance.now() of the last register/announce. */
  seenAt: number;
}

export class Registry {
  private entries = new Map<string, Entry>();
  /** referred peer id → newcomer ids with the time of referral */
  private pending = new Map<string, Map<string, number>>();

  constructor(private readonly pendingTtlMs = 5000) {}

  get size(): number {
    return this.entries.size;
  }

  get(id: string): Entry | undefined {
    return this.entries.get(id);
  }

  byAddress(host: string, port: number): Entry | undefined {
    for (const e of this.entries.values()) if (e.host === host && e.port === port) return e;
    return undefined;
  }

  list(): RegistryEntry[] {
    return [...this.entries.values()].map(({ seenAt: _s, ...e }) => e);
  }

  private cache: { attached: Set<string>; kids: Map<string, number> } | null = null;

  private dirty(): void {
    this.cache = null;
  }

  private cachedAttached(): Set<string> {
    this.cache ??= { attached: this.attached(''), kids: this.countKids() };
    return this.cache.attached;
  }

  /** Children per peer, counted from the children's own announcements (consistent with `pending`, which a child's announce clears in the same step). */
  private childCounts(): Map<string, number> {
    this.cache ??= { attached: this.attached(''), kids: this.countKids() };
    return this.cache.kids;
  }

  private countKids(): Map<string, number> {
    const kids = new Map<string, number>();
    for (const e of this.entries.values()) if (e.parent !== null && e.state === 'joined') kids.set(e.parent, (kids.get(e.parent) ?? 0) + 1);
    return kids;
  }

  remove(id: string): boolean {
    this.dirty();
    this.pending.delete(id);
    for (const m of this.pending.values()) m.delete(id);
    return this.entries.delete(id);
  }

  /**
   * Adds a registering peer and picks its referral. Returns null referral for
   * the first peer (it becomes the root).
   */
  register(p: { id: string; host: string; port: number; maxChildren: number }, policy: Policy, now: number, wallNow: number, rng: () => number): { referral: Entry | null } {
    this.expirePending(now);
    const candidates: Candidate[] = [];
    // A brand-new id has no descendants: the cached attached set serves. A
    // re-registering id (a subtree reattaching) is excluded with its subtree.
    const attached = this.entries.has(p.id) ? this.attached(p.id) : this.cachedAttached();
    const kids = this.childCounts();
    for (const id of attached) {
      const e = this.entries.get(id)!;
      // Only the fields a policy reads (a spread of the whole entry made registering O(N) allocations of wide objects).
      candidates.push({ id: e.id, host: e.host, port: e.port, joinedAt: e.joinedAt, depth: e.depth, maxChildren: e.maxChildren, children: kids.get(e.id) ?? 0, pending: this.pending.get(e.id)?.size ?? 0 });
    }
    const chosen = chooseReferral(policy, candidates, rng);
    const root = candidates.length === 0;
    // A joining newcomer changes neither set; a new root or a replaced entry does.
    if (root || this.entries.has(p.id)) this.dirty();
    this.entries.set(p.id, {
      id: p.id, host: p.host, port: p.port, maxChildren: p.maxChildren, joinedAt: wallNow, seenAt: now,
      state: root ? 'joined' : 'joining', parent: null, depth: root ? 0 : null, children: 0,
    });
    if (!chosen) return { referral: null };
    let m = this.pending.get(chosen.id);
    if (!m) this.pending.set(chosen.id, (m = new Map()));
    m.set(p.id, now);
    return { referral: this.entries.get(chosen.id)! };
  }

  /** A peer says where it is in the tree (also rebuilds the registry after a restart). */
  announce(a: { id: string; host: string; port: number; parent: string | null; depth: number; children: number; maxChildren: number }, now: number, wallNow: number): { isNew: boolean } {
    const old = this.entries.get(a.id);
    // The cached attached set and child counts depend only on which entries exist, their state and parent.
    if (!old || old.state !== 'joined' || old.parent !== a.parent) this.dirty();
    for (const m of this.pending.values()) m.delete(a.id);
    this.entries.set(a.id, {
      id: a.id, host: a.host, port: a.port, maxChildren: a.maxChildren, joinedAt: old?.joinedAt ?? wallNow, seenAt: now,
      state: 'joined', parent: a.parent, depth: a.depth, children: a.children,
    });
    return { isNew: !old };
  }

  /**
   * Ids of joined peers whose parent chain reaches a root, excluding
   * `exclude` and everything below it (a rejoining subtree must not be
   * referred into itself, and orphaned subtrees are not referral targets).
   */
  attached(exclude: string): Set<string> {
    const memo = new Map<string, boolean>();
    const walk = (id: string): boolean => {
      const path: string[] = [];
      const onPath = new Set<string>();
      let cur: string | null = id;
      let ok = false;
      for (;;) {
        if (cur === null) break;
        const known = memo.get(cur);
        if (known !== undefined) {
          ok = known;
          break;
        }
        const e = this.entries.get(cur);
        if (!e || e.state !== 'joined' || cur === exclude || onPath.has(cur)) {
          ok = false;
          break;
        }
        path.push(cur);
        onPath.add(cur);
        if (e.parent === null) {
          ok = true;
          break;
        }
        cur = e.parent;
      }
      for (const p of path) memo.set(p, ok);
      return ok;
    };
    const out = new Set<string>();
    for (const id of this.entries.keys()) if (walk(id)) out.add(id);
    return out;
  }

  /**
   * When `id` is a joined root and another joined root's tree is larger
   * (ties: the smaller id wins), that other root: `id` roots a second tree
   * and should rejoin with its subtree. A tree's size is the number of
   * entries whose parent chain reaches its root, but at least 1 + the root's
   * announced children (while a registry is rebuilt, children may not have
   * announced yet).
   */
  rivalRoot(id: string): Entry | undefined {
    const me = this.entries.get(id);
    if (!me || me.state !== 'joined' || me.parent !== null) return undefined;
    const counts = new Map<string, number>();
    for (const e of this.entries.keys()) {
      const r = this.rootOf(e);
      if (r !== null) counts.set(r, (counts.get(r) ?? 0) + 1);
    }
    const size = (rid: string) => Math.max(counts.get(rid) ?? 1, 1 + (this.entries.get(rid)?.children ?? 0));
    const mine = size(id);
    let best: Entry | undefined;
    let bestSize = 0;
    for (const rid of counts.keys()) {
      if (rid === id) continue;
      const n = size(rid);
      if (n > bestSize || (n === bestSize && best && rid < best.id)) {
        best = this.entries.get(rid);
        bestSize = n;
      }
    }
    if (best && (bestSize > mine || (bestSize === mine && best.id < id))) return best;
    return undefined;
  }

  /** A root told to rejoin another tree: until it registers again it is no root and its subtree no referral target. */
  markRejoining(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.dirty();
    e.state = 'joining';
  }

  /** The root at the top of `id`'s parent chain (all joined), or null when the chain is broken or loops. */
  private rootOf(id: string): string | null {
    const seen = new Set<string>();
    let cur: string = id;
    for (;;) {
      const e = this.entries.get(cur);
      if (!e || e.state !== 'joined' || seen.has(cur)) return null;
      if (e.parent === null) return cur;
      seen.add(cur);
      cur = e.parent;
    }
  }

  /** Entries not heard from within `timeoutMs`. */
  stale(now: number, timeoutMs: number): Entry[] {
    return [...this.entries.values()].filter((e) => now - e.seenAt > timeoutMs);
  }

  private expirePending(now: number): void {
    for (const [id, m] of this.pending) {
      for (const [c, at] of m) if (now - at > this.pendingTtlMs) m.delete(c);
      if (m.size === 0) this.pending.delete(id);
    }
  }
}
