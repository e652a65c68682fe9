/**
 * The metaserver's registry of live peers (pure data, no IO), indexed so
 * that a registration, an announce and a leave cost O(log N) (amortized),
 * not a scan of every peer (issue 13 item 1).
 *
 * An entry is created by `register` (state joining; the first peer is the root
 * and joined at once) and refreshed by `announce` (state joined, parent,
 * depth, children). Referrals handed out but not yet confirmed by the new
 * child's announce are kept as "pending" against the referred peer for
 * `pendingTtlMs`, so concurrent newcomers are spread over free slots.
 *
 * Indexes, all kept in step with `entries`:
 * - byAddr: address → id.
 * - kids: parent id → ids of joined entries naming it as parent (the
 *   children index: a subtree is walked without a rescan).
 * - attached: entries whose parent chain reaches a root, with that root and
 *   the size of each root's tree; changed only along the subtree whose
 *   chain changed.
 * - pool: the attached ids as an indexable set (uniform `random`).
 * - free / all: lazy min-heaps of attached peers ordered by (depth,
 *   joined-at, first registered): `free` holds those with a free slot
 *   (children + pending < maxChildren) for least-loaded, `all` every one for
 *   the root policy. Stale heap items are dropped when they reach the top.
 * - pending: referred id → newcomers, a FIFO in referral order (expiry) and
 *   newcomer → referred id (an announce or leave clears it in O(1)).
 *
 * Choices are exactly those of core/protocol/referral.ts chooseReferral over
 * the attached peers (test/unit/referral.test.ts checks both agree).
 */
import type { RegistryEntry } from '../protocol/messages.ts';
import type { Policy } from '../protocol/referral.ts';

export interface Entry extends RegistryEntry {
  /** clock.now() (the metaserver's clock) of the last register/announce. */
  seenAt: number;
  /** The secret issued at register (never listed). */
  token: string;
}

interface Node {
  e: Entry;
  /** Insertion order: ties between equal (depth, joinedAt) go to the first registered. */
  seq: number;
  /** Root of its tree when attached, else null. */
  root: string | null;
  /** Index in `pool` when attached, else -1. */
  slot: number;
  /** Bumped whenever the heap key or membership changes: older `all` heap items are stale. */
  stampAll: number;
  /** Bumped as stampAll, and when it stops having a free slot: older `free` heap items are stale. */
  stamp: number;
  /** It has a valid item in the `free` heap. */
  inFree: boolean;
}

interface HeapItem {
  depth: number;
  joinedAt: number;
  seq: number;
  id: string;
  stamp: number;
}

const before = (a: HeapItem, b: HeapItem): boolean =>
  a.depth !== b.depth ? a.depth < b.depth : a.joinedAt !== b.joinedAt ? a.joinedAt < b.joinedAt : a.seq < b.seq;

/** Binary min-heap with lazy deletion (the caller says which items are still valid). */
class LazyHeap {
  private a: HeapItem[] = [];
  get size(): number {
    return this.a.length;
  }
  push(x: HeapItem): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  peek(): HeapItem | undefined {
    return this.a[0];
  }
  pop(): HeapItem | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
  /** Rebuilds from the valid items only (bounds growth from stale ones). */
  compact(valid: (x: HeapItem) => boolean): void {
    const keep = this.a.filter(valid);
    this.a = [];
    for (const x of keep) this.push(x);
  }
}

export class Registry {
  private nodes = new Map<string, Node>();
  private byAddr = new Map<string, string>();
  private kids = new Map<string, Set<string>>();
  private pool: string[] = [];
  private treeSize = new Map<string, number>();
  private freeHeap = new LazyHeap();
  private allHeap = new LazyHeap();
  /** The `all` heap is kept only once the root policy has been used. */
  private allOn = false;
  private seq = 0;
  /** Source of heap stamps, unique across entries (a removed and re-added id never revalidates old items). */
  private tick = 0;
  /** referred peer id → number of newcomers referred to it and not confirmed yet */
  private pending = new Map<string, number>();
  /** newcomer id → its pending referral (the same object sits in the FIFO) */
  private pendingOf = new Map<string, Referral>();
  /** Referrals in the order given (expiry); ones no longer current in `pendingOf` are skipped. */
  private fifo: Referral[] = [];
  private fifoHead = 0;

  constructor(private readonly pendingTtlMs = 5000) {}

  get size(): number {
    return this.nodes.size;
  }

  get(id: string): Entry | undefined {
    return this.nodes.get(id)?.e;
  }

  byAddress(host: string, port: number): Entry | undefined {
    const id = this.byAddr.get(addr(host, port));
    return id === undefined ? undefined : this.nodes.get(id)?.e;
  }

  list(): RegistryEntry[] {
    return [...this.nodes.values()].map(({ e: { seenAt: _s, token: _t, ...e } }) => e);
  }

  remove(id: string): boolean {
    const n = this.nodes.get(id);
    this.clearPendingOf(id);
    // Referrals to it lapse: their newcomers' entries in pendingOf are dropped when met (clearPendingOf, expiry).
    this.pending.delete(id);
    if (!n) return false;
    this.unlinkParent(n.e);
    this.setDetached(id);
    this.nodes.delete(id);
    if (this.byAddr.get(addr(n.e.host, n.e.port)) === id) this.byAddr.delete(addr(n.e.host, n.e.port));
    return true;
  }

  /**
   * Adds a registering peer and picks its referral. Returns null referral for
   * the first peer (it becomes the root). A re-registering id (a subtree
   * reattaching) is never referred into its own subtree.
   */
  register(p: { id: string; host: string; port: number; maxChildren: number; token?: string }, policy: Policy, now: number, wallNow: number, rng: () => number): { referral: Entry | null } {
    this.expirePending(now);
    const old = this.nodes.get(p.id);
    const chosen = this.choose(policy, old && old.root !== null ? p.id : null, rng);
    const root = chosen === null;
    const e: Entry = {
      id: p.id, host: p.host, port: p.port, maxChildren: p.maxChildren, joinedAt: wallNow, seenAt: now, token: p.token ?? '',
      state: root ? 'joined' : 'joining', parent: null, depth: root ? 0 : null, children: 0,
    };
    this.put(e);
    if (!chosen) return { referral: null };
    this.clearPendingOf(p.id);
    const to = chosen.e.id;
    this.pending.set(to, (this.pending.get(to) ?? 0) + 1);
    const ref: Referral = { newcomer: p.id, to, at: now, gen: chosen.seq };
    this.pendingOf.set(p.id, ref);
    this.fifo.push(ref);
    this.loadChanged(chosen);
    return { referral: chosen.e };
  }

  /** A peer says where it is in the tree (also rebuilds the registry after a restart). */
  announce(a: { id: string; host: string; port: number; parent: string | null; depth: number; children: number; maxChildren: number; token?: string }, now: number, wallNow: number): { isNew: boolean } {
    const old = this.nodes.get(a.id)?.e;
    this.clearPendingOf(a.id);
    this.put({
      id: a.id, host: a.host, port: a.port, maxChildren: a.maxChildren, joinedAt: old?.joinedAt ?? wallNow, seenAt: now, token: a.token ?? '',
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
    const out = new Set<string>();
    for (const id of this.pool) if (!this.inSubtree(id, exclude)) out.add(id);
    return out;
  }

  /** Is `id` (attached) `top` or below it? O(depth). */
  private inSubtree(id: string, top: string | null): boolean {
    if (top === null || !this.nodes.has(top)) return false;
    let cur: string | null = id;
    for (let hops = 0; cur !== null && hops <= this.nodes.size; hops++) {
      if (cur === top) return true;
      cur = this.nodes.get(cur)?.e.parent ?? null;
    }
    return false;
  }

  /**
   * When `id` is a joined root and another joined root's tree is larger
   * (ties: the smaller id wins), that other root: `id` roots a second tree
   * and should rejoin with its subtree. A tree's size is the number of
   * entries whose parent chain reaches its root, but at least 1 + the root's
   * announced children, capped at its maxChildren (while a registry is
   * rebuilt, children may not have announced yet; the cap bounds what one
   * announce can claim).
   */
  rivalRoot(id: string): Entry | undefined {
    const me = this.nodes.get(id);
    if (!me || me.root !== id) return undefined;
    const size = (rid: string) => {
      const e = this.nodes.get(rid)!.e;
      return Math.max(this.treeSize.get(rid) ?? 1, 1 + Math.min(e.children, e.maxChildren));
    };
    const mine = size(id);
    let best: Entry | undefined;
    let bestSize = 0;
    for (const rid of this.treeSize.keys()) {
      if (rid === id) continue;
      const n = size(rid);
      if (n > bestSize || (n === bestSize && best && rid < best.id)) {
        best = this.nodes.get(rid)!.e;
        bestSize = n;
      }
    }
    if (best && (bestSize > mine || (bestSize === mine && best.id < id))) return best;
    return undefined;
  }

  /** A root told to rejoin another tree: until it registers again it is no root and its subtree no referral target. */
  markRejoining(id: string): void {
    const n = this.nodes.get(id);
    if (!n) return;
    this.put({ ...n.e, state: 'joining' });
  }

  /** Entries not heard from within `timeoutMs` (the periodic sweep; not on the registration path). */
  stale(now: number, timeoutMs: number): Entry[] {
    const out: Entry[] = [];
    for (const n of this.nodes.values()) if (now - n.e.seenAt > timeoutMs) out.push(n.e);
    return out;
  }

  // ---- choice ----

  private choose(policy: Policy, exclude: string | null, rng: () => number): Node | null {
    if (this.pool.length === 0) return null;
    switch (policy) {
      case 'root':
        if (!this.allOn) {
          this.allOn = true;
          for (const id of this.pool) {
            const n = this.nodes.get(id)!;
            this.allHeap.push(item(n, n.stampAll));
          }
        }
        return this.minOf(this.allHeap, (n) => n.slot >= 0, exclude);
      case 'random': {
        // Rejection sampling keeps the choice uniform over the eligible peers.
        for (let tries = 0; tries < 32; tries++) {
          const id = this.pool[Math.floor(rng() * this.pool.length)] ?? this.pool[0]!;
          if (!this.inSubtree(id, exclude)) return this.nodes.get(id)!;
        }
        const ok = this.pool.filter((id) => !this.inSubtree(id, exclude));
        if (!ok.length) return null;
        return this.nodes.get(ok[Math.floor(rng() * ok.length)] ?? ok[0]!)!;
      }
      case 'least-loaded': {
        const free = this.minOf(this.freeHeap, (n) => n.slot >= 0 && this.isFree(n), exclude);
        if (free) return free;
        // Every attached peer is full (all leaves have pending referrals): the least loaded, shallowest.
        // Rare (a burst of newcomers larger than the free slots), so a scan.
        let best: Node | null = null;
        for (const id of this.pool) {
          const n = this.nodes.get(id)!;
          if (this.inSubtree(id, exclude)) continue;
          if (!best || this.load(n) < this.load(best) || (this.load(n) === this.load(best) && before(item(n, 0), item(best, 0)))) best = n;
        }
        return best;
      }
    }
  }

  /** The valid minimum of `heap`, skipping (and keeping) peers in `exclude`'s subtree. */
  private minOf(heap: LazyHeap, ok: (n: Node) => boolean, exclude: string | null): Node | null {
    const valid = (x: HeapItem) => {
      const n = this.nodes.get(x.id);
      return n !== undefined && (heap === this.allHeap ? n.stampAll : n.stamp) === x.stamp && ok(n);
    };
    const skipped: HeapItem[] = [];
    let found: Node | null = null;
    for (let x = heap.peek(); x; x = heap.peek()) {
      if (!valid(x)) {
        heap.pop();
        continue;
      }
      if (this.inSubtree(x.id, exclude)) {
        skipped.push(heap.pop()!);
        continue;
      }
      found = this.nodes.get(x.id)!;
      break;
    }
    for (const x of skipped) heap.push(x);
    return found;
  }

  private kidsOf(id: string): number {
    return this.kids.get(id)?.size ?? 0;
  }

  private pendingCount(id: string): number {
    return this.pending.get(id) ?? 0;
  }

  private isFree(n: Node): boolean {
    return this.kidsOf(n.e.id) + this.pendingCount(n.e.id) < n.e.maxChildren;
  }

  private load(n: Node): number {
    return (this.kidsOf(n.e.id) + this.pendingCount(n.e.id)) / n.e.maxChildren;
  }

  /**
   * Re-files a node in the heaps after its load changed (`key`: its depth,
   * joined-at or attachment changed too).
   */
  private touch(n: Node, key = false): void {
    if (!key) return this.loadChanged(n);
    n.stamp = ++this.tick;
    n.stampAll = ++this.tick;
    n.inFree = false;
    if (n.slot < 0) return;
    if (this.allOn) this.allHeap.push(item(n, n.stampAll));
    if (this.isFree(n)) {
      this.freeHeap.push(item(n, n.stamp));
      n.inFree = true;
    }
    this.compactHeaps();
  }

  /** Its children or pending referrals changed: the `free` heap changes only if it gained or lost its free slot. */
  private loadChanged(n: Node): void {
    if (n.slot < 0) return;
    const free = this.isFree(n);
    if (free === n.inFree) return;
    n.inFree = free;
    if (free) this.freeHeap.push(item(n, n.stamp));
    else n.stamp = ++this.tick;
    this.compactHeaps();
  }

  private compactHeaps(): void {
    const cap = 2 * this.nodes.size + 64;
    if (this.freeHeap.size > cap) this.freeHeap.compact((x) => this.nodes.get(x.id)?.stamp === x.stamp);
    if (this.allHeap.size > cap) this.allHeap.compact((x) => this.nodes.get(x.id)?.stampAll === x.stamp);
  }

  // ---- structure ----

  /** Inserts or replaces an entry, keeping every index in step. */
  private put(e: Entry): void {
    const n = this.nodes.get(e.id);
    if (!n) {
      const node: Node = { e, seq: this.seq++, root: null, slot: -1, stamp: ++this.tick, stampAll: ++this.tick, inFree: false };
      this.nodes.set(e.id, node);
      this.byAddr.set(addr(e.host, e.port), e.id);
      this.link(e);
      this.reattach(e.id);
      return;
    }
    const old = n.e;
    if (old.host !== e.host || old.port !== e.port) {
      if (this.byAddr.get(addr(old.host, old.port)) === e.id) this.byAddr.delete(addr(old.host, old.port));
    }
    this.byAddr.set(addr(e.host, e.port), e.id);
    const structural = old.state !== e.state || old.parent !== e.parent;
    if (structural) this.unlinkParent(old);
    n.e = e;
    if (structural) {
      this.link(e);
      this.reattach(e.id);
    } else if (old.depth !== e.depth || old.joinedAt !== e.joinedAt) {
      this.touch(n, true);
    } else if (old.maxChildren !== e.maxChildren) {
      this.touch(n);
    }
  }

  /** Adds `e` to its parent's children (joined entries with a parent only). */
  private link(e: Entry): void {
    if (e.state !== 'joined' || e.parent === null) return;
    let s = this.kids.get(e.parent);
    if (!s) this.kids.set(e.parent, (s = new Set()));
    s.add(e.id);
    const p = this.nodes.get(e.parent);
    if (p) this.touch(p);
  }

  private unlinkParent(e: Entry): void {
    if (e.state !== 'joined' || e.parent === null) return;
    const s = this.kids.get(e.parent);
    if (!s?.delete(e.id)) return;
    if (s.size === 0) this.kids.delete(e.parent);
    const p = this.nodes.get(e.parent);
    if (p) this.touch(p);
  }

  /**
   * `id`'s chain changed: detach its subtree, then attach it again if the
   * new chain reaches a root. Detaching first means a parent inside its own
   * subtree (a loop) is seen as detached.
   */
  private reattach(id: string): void {
    this.setDetached(id);
    const n = this.nodes.get(id);
    if (!n || n.e.state !== 'joined') return;
    let root: string | null;
    if (n.e.parent === null) root = id;
    else root = this.nodes.get(n.e.parent)?.root ?? null;
    if (root !== null) this.setAttached(id, root);
  }

  /** Marks `id` and everything below it (by the children index) detached. */
  private setDetached(id: string): void {
    const stack = [id];
    let first = true;
    while (stack.length) {
      const cur = stack.pop()!;
      const n = this.nodes.get(cur);
      if (n && n.slot >= 0) {
        this.poolRemove(n);
        const r = n.root!;
        const left = (this.treeSize.get(r) ?? 1) - 1;
        if (left > 0) this.treeSize.set(r, left);
        else this.treeSize.delete(r);
        n.root = null;
        this.touch(n, true);
      } else if (!first) {
        continue; // already detached: so is its subtree (this also ends a walk round a loop)
      }
      first = false;
      const ks = this.kids.get(cur);
      if (ks) for (const k of ks) stack.push(k);
    }
  }

  /** Marks `id` and everything below it attached under `root`. */
  private setAttached(id: string, root: string): void {
    const stack = [id];
    while (stack.length) {
      const cur = stack.pop()!;
      const n = this.nodes.get(cur);
      if (!n || n.slot >= 0 || n.e.state !== 'joined') continue;
      n.root = root;
      n.slot = this.pool.length;
      this.pool.push(cur);
      this.treeSize.set(root, (this.treeSize.get(root) ?? 0) + 1);
      this.touch(n, true);
      const ks = this.kids.get(cur);
      if (ks) for (const k of ks) stack.push(k);
    }
  }

  private poolRemove(n: Node): void {
    const last = this.pool.pop()!;
    if (last !== n.e.id) {
      this.pool[n.slot] = last;
      this.nodes.get(last)!.slot = n.slot;
    }
    n.slot = -1;
  }

  // ---- pending referrals ----

  private clearPendingOf(newcomer: string): void {
    const ref = this.pendingOf.get(newcomer);
    if (ref === undefined) return;
    this.pendingOf.delete(newcomer);
    const n = this.nodes.get(ref.to);
    // A referral to an entry removed since (and perhaps registered again) no longer counts.
    if (!n || n.seq !== ref.gen) return;
    const left = (this.pending.get(ref.to) ?? 1) - 1;
    if (left > 0) this.pending.set(ref.to, left);
    else this.pending.delete(ref.to);
    this.loadChanged(n);
  }

  private expirePending(now: number): void {
    while (this.fifoHead < this.fifo.length) {
      const f = this.fifo[this.fifoHead]!;
      if (now - f.at <= this.pendingTtlMs) break;
      this.fifoHead++;
      // Only if this very referral is still the newcomer's pending one.
      if (this.pendingOf.get(f.newcomer) === f) this.clearPendingOf(f.newcomer);
    }
    if (this.fifoHead > 1024 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.fifoHead);
      this.fifoHead = 0;
    }
  }
}

interface Referral {
  newcomer: string;
  to: string;
  at: number;
  /** The referred entry's `seq`: a referral outlives no removal of its target. */
  gen: number;
}

function addr(host: string, port: number): string {
  return `${host}|${port}`;
}

function item(n: Node, stamp: number): HeapItem {
  return { depth: n.e.depth ?? Number.MAX_SAFE_INTEGER, joinedAt: n.e.joinedAt, seq: n.seq, id: n.e.id, stamp };
}
