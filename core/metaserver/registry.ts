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
 * - kids: on each node, the joined entries naming it as parent (the
 *   children index: a subtree is walked without a rescan, and no map lookup
 *   per child); children naming an id not held wait in `orphans`.
 * - attached: entries whose parent chain reaches a root, with that root and
 *   the size of each root's tree; changed only along the subtree whose
 *   chain changed.
 * - pool: the attached nodes as an indexable set (uniform `random`).
 * - free / all: lazy min-heaps of attached peers ordered by (depth,
 *   joined-at, first registered): `free` holds those with a free slot
 *   (children + pending < maxChildren) for least-loaded, `all` every one for
 *   the root policy. Stale heap items are dropped when they reach the top.
 *   A peer that fills its slots keeps its `free` item: a choice looks past
 *   up to SEARCH_BUDGET such items at the top (best-first, by the heap
 *   order) and only then takes them out, so a slot taken and freed again
 *   (a referral, then that newcomer leaves) moves nothing in a heap of
 *   100,000 (each level of which would be a cache miss).
 * - pending: on each node, the newcomers referred to it and not confirmed,
 *   its own pending referral while a newcomer, and a FIFO in referral order
 *   (expiry); an announce or leave clears it in O(1). With the children on
 *   the node, a load check needs no lookup.
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
  /** Bumped as stampAll: older `free` heap items are stale. */
  stamp: number;
  /** It has a current item in the `free` heap (one stamped `stamp`; it may be full for now). */
  inFree: boolean;
  /** Joined entries naming it as parent, in the order they linked (the children index: no map lookup per child). */
  kids: Node[];
  /** Newcomers referred to it and not confirmed yet. */
  pending: number;
  /** Its own pending referral while it is a newcomer (the same object sits in the FIFO), else null. */
  ref: Referral | null;
  /** Removed from the registry: referrals to it no longer count (a re-registered id is a new Node). */
  dead: boolean;
  /** Its address key in `byAddr` (made once per address, not per announce). */
  addr: string;
}

/** The children of a node without any (shared, never written: link gives a node its own array). */
const NO_KIDS: Node[] = [];

/** How many ineligible heap items a choice looks past before it takes them out of the heap. */
const SEARCH_BUDGET = 16;

/** (depth, joined-at, first registered) of `a` before that of `b`. */
const before = (ad: number, aj: number, as: number, bd: number, bj: number, bs: number): boolean =>
  ad !== bd ? ad < bd : aj !== bj ? aj < bj : as < bs;

/**
 * Binary min-heap with lazy deletion (the caller says which items are still
 * valid), struct-of-arrays: the keys sit in arrays of numbers (contiguous,
 * unboxed), so a sift compares without touching one object per level; an
 * item is (node, stamp) with the node's key as pushed.
 */
class LazyHeap {
  private depth: number[] = [];
  private joined: number[] = [];
  private seq: number[] = [];
  private stamp: number[] = [];
  private node: Node[] = [];

  get size(): number {
    return this.node.length;
  }

  push(n: Node, stamp: number): void {
    this.depth.push(n.e.depth ?? Number.MAX_SAFE_INTEGER);
    this.joined.push(n.e.joinedAt);
    this.seq.push(n.seq);
    this.stamp.push(stamp);
    this.node.push(n);
    this.up(this.node.length - 1);
  }

  /** The top item's node and stamp, or undefined. */
  topNode(): Node | undefined {
    return this.node[0];
  }

  topStamp(): number {
    return this.stamp[0]!;
  }

  /** Positions still to look at in `search` (reused). */
  private frontier: number[] = [];

  /**
   * The least item for which `want` holds, found best-first from the top
   * past items for which it does not (they stay where they are): null when
   * there is none, undefined when more than `budget` items were passed.
   * By the heap order the first wanted item taken from the frontier is the
   * least wanted one.
   */
  search(want: (n: Node, stamp: number) => boolean, budget: number): Node | null | undefined {
    const len = this.node.length;
    const f = this.frontier;
    f.length = 0;
    if (len > 0) f.push(0);
    while (f.length > 0) {
      let b = 0;
      for (let k = 1; k < f.length; k++) if (this.less(f[k]!, f[b]!)) b = k;
      const i = f[b]!;
      f[b] = f[f.length - 1]!;
      f.pop();
      if (want(this.node[i]!, this.stamp[i]!)) return this.node[i]!;
      if (--budget < 0) return undefined;
      const l = 2 * i + 1;
      if (l < len) f.push(l);
      if (l + 1 < len) f.push(l + 1);
    }
    return null;
  }

  /** Drops the top item. */
  pop(): void {
    const last = this.node.length - 1;
    if (last < 0) return;
    this.move(last, 0);
    this.depth.pop();
    this.joined.pop();
    this.seq.pop();
    this.stamp.pop();
    this.node.pop();
    if (last > 0) this.down(0);
  }

  /** Rebuilds from the valid items only (bounds growth from stale ones). */
  compact(valid: (n: Node, stamp: number) => boolean): void {
    const nodes = this.node;
    const stamps = this.stamp;
    this.depth = [];
    this.joined = [];
    this.seq = [];
    this.stamp = [];
    this.node = [];
    for (let i = 0; i < nodes.length; i++) if (valid(nodes[i]!, stamps[i]!)) this.push(nodes[i]!, stamps[i]!);
  }

  private less(i: number, j: number): boolean {
    const d = this.depth, jn = this.joined, s = this.seq;
    return before(d[i]!, jn[i]!, s[i]!, d[j]!, jn[j]!, s[j]!);
  }

  /** Copies item `from` into slot `to`. */
  private move(from: number, to: number): void {
    this.depth[to] = this.depth[from]!;
    this.joined[to] = this.joined[from]!;
    this.seq[to] = this.seq[from]!;
    this.stamp[to] = this.stamp[from]!;
    this.node[to] = this.node[from]!;
  }

  private swap(i: number, j: number): void {
    const d = this.depth, jn = this.joined, s = this.seq, st = this.stamp, n = this.node;
    let t = d[i]!; d[i] = d[j]!; d[j] = t;
    t = jn[i]!; jn[i] = jn[j]!; jn[j] = t;
    t = s[i]!; s[i] = s[j]!; s[j] = t;
    t = st[i]!; st[i] = st[j]!; st[j] = t;
    const x = n[i]!; n[i] = n[j]!; n[j] = x;
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const len = this.node.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < len && this.less(l, m)) m = l;
      if (r < len && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
}

export class Registry {
  private nodes = new Map<string, Node>();
  private byAddr = new Map<string, string>();
  /**
   * Children naming a parent id the registry does not hold (yet: after a
   * restart children may announce before their parent; or their parent was
   * removed). Usually empty; a node takes its list over when it is added.
   * The children of held ids sit on their node (`Node.kids`).
   */
  private orphans = new Map<string, Node[]>();
  private pool: Node[] = [];
  private treeSize = new Map<string, number>();
  private freeHeap = new LazyHeap();
  private allHeap = new LazyHeap();
  /** The `all` heap is kept only once the root policy has been used. */
  private allOn = false;
  private seq = 0;
  /** Source of heap stamps, unique across entries (a removed and re-added id never revalidates old items). */
  private tick = 0;
  /** Referrals in the order given (expiry); ones no longer their newcomer's current one are skipped. */
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
    if (!n) return false;
    this.clearPendingOf(n);
    // Referrals to it lapse: their newcomers' refs are dropped when met (clearPendingOf, expiry).
    n.dead = true;
    this.unlinkParent(n);
    this.setDetached(n);
    this.nodes.delete(id);
    if (n.kids.length > 0) {
      this.orphans.set(id, n.kids);
      n.kids = NO_KIDS;
    }
    if (this.byAddr.get(n.addr) === id) this.byAddr.delete(n.addr);
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
    const me = this.put(e);
    // Its earlier referral (if any) no longer counts, also when it now becomes a root.
    this.clearPendingOf(me);
    if (!chosen) return { referral: null };
    chosen.pending++;
    const ref: Referral = { from: me, to: chosen, at: now };
    me.ref = ref;
    this.fifo.push(ref);
    this.loadChanged(chosen);
    return { referral: chosen.e };
  }

  /** A peer says where it is in the tree (also rebuilds the registry after a restart). */
  announce(a: { id: string; host: string; port: number; parent: string | null; depth: number; children: number; maxChildren: number; token?: string }, now: number, wallNow: number): { isNew: boolean } {
    const known = this.nodes.get(a.id);
    const old = known?.e;
    if (known) this.clearPendingOf(known);
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
    for (const n of this.pool) if (!this.inSubtree(n.e.id, exclude)) out.add(n.e.id);
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
          for (const n of this.pool) this.allHeap.push(n, n.stampAll);
        }
        return this.minOf(this.allHeap, exclude);
      case 'random': {
        // Rejection sampling keeps the choice uniform over the eligible peers.
        for (let tries = 0; tries < 32; tries++) {
          const n = this.pool[Math.floor(rng() * this.pool.length)] ?? this.pool[0]!;
          if (!this.inSubtree(n.e.id, exclude)) return n;
        }
        const ok = this.pool.filter((n) => !this.inSubtree(n.e.id, exclude));
        if (!ok.length) return null;
        return ok[Math.floor(rng() * ok.length)] ?? ok[0]!;
      }
      case 'least-loaded': {
        const free = this.minOf(this.freeHeap, exclude);
        if (free) return free;
        // Every attached peer is full (all leaves have pending referrals): the least loaded, shallowest.
        // Rare (a burst of newcomers larger than the free slots), so a scan.
        let best: Node | null = null;
        for (const n of this.pool) {
          if (this.inSubtree(n.e.id, exclude)) continue;
          if (!best || this.load(n) < this.load(best) || (this.load(n) === this.load(best) && before(n.e.depth ?? Number.MAX_SAFE_INTEGER, n.e.joinedAt, n.seq, best.e.depth ?? Number.MAX_SAFE_INTEGER, best.e.joinedAt, best.seq))) best = n;
        }
        return best;
      }
    }
  }

  /**
   * The valid minimum of `heap`, skipping (and keeping) peers in `exclude`'s
   * subtree. Stale items are dropped from the top; a current item that is not
   * eligible now (a full peer in `free`: it may free a slot again; an excluded
   * one) stays in place and the search looks past it, so a peer that fills
   * and frees a slot keeps its one heap item. Only when more than a few such
   * items sit at the top are they taken out (a full one is pushed again when
   * it frees a slot, see loadChanged).
   */
  private minOf(heap: LazyHeap, exclude: string | null): Node | null {
    const all = heap === this.allHeap;
    for (let n = heap.topNode(); n && !this.current(n, heap.topStamp(), all); n = heap.topNode()) heap.pop();
    const top = heap.topNode();
    if (!top) return null;
    this.wantAll = all;
    this.wantExclude = exclude;
    if (this.want(top, heap.topStamp())) return top;
    const found = heap.search(this.wantFn, SEARCH_BUDGET);
    if (found !== undefined) return found;
    // Many ineligible items at the top (a burst of referrals filled the shallowest peers): take them out.
    const skipped: [Node, number][] = [];
    let best: Node | null = null;
    for (let n = heap.topNode(); n; n = heap.topNode()) {
      const stamp = heap.topStamp();
      if (!this.current(n, stamp, all)) {
        heap.pop();
        continue;
      }
      if (!this.eligible(n, all)) {
        heap.pop();
        if (!all) n.inFree = false;
        continue;
      }
      if (this.inSubtree(n.e.id, exclude)) {
        skipped.push([n, stamp]);
        heap.pop();
        continue;
      }
      best = n;
      break;
    }
    for (const [n, stamp] of skipped) heap.push(n, stamp);
    return best;
  }

  /** Which heap and which excluded subtree `want` is asked about (set by minOf; saves a closure per choice). */
  private wantAll = false;
  private wantExclude: string | null = null;
  private readonly wantFn = (n: Node, stamp: number): boolean => this.want(n, stamp);

  /** Heap item (n, stamp) is current, its peer eligible now and not in the excluded subtree. */
  private want(n: Node, stamp: number): boolean {
    return this.current(n, stamp, this.wantAll) && this.eligible(n, this.wantAll) && !this.inSubtree(n.e.id, this.wantExclude);
  }

  /** Heap item (n, stamp) of the `all` (else `free`) heap is not stale. */
  private current(n: Node, stamp: number, all: boolean): boolean {
    return !n.dead && (all ? n.stampAll : n.stamp) === stamp;
  }

  /** Attached, and for the `free` heap with a free slot now. */
  private eligible(n: Node, all: boolean): boolean {
    return n.slot >= 0 && (all || this.isFree(n));
  }

  private isFree(n: Node): boolean {
    return n.kids.length + n.pending < n.e.maxChildren;
  }

  private load(n: Node): number {
    return (n.kids.length + n.pending) / n.e.maxChildren;
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
    if (this.allOn) this.allHeap.push(n, n.stampAll);
    if (this.isFree(n)) {
      this.freeHeap.push(n, n.stamp);
      n.inFree = true;
    }
    this.compactHeaps();
  }

  /**
   * Its children or pending referrals changed. A peer that fills up keeps
   * its `free` item (the search looks past it while it is full); one that
   * has a free slot and no current item gets one.
   */
  private loadChanged(n: Node): void {
    if (n.slot < 0 || n.inFree || !this.isFree(n)) return;
    n.inFree = true;
    this.freeHeap.push(n, n.stamp);
    this.compactHeaps();
  }

  private compactHeaps(): void {
    const cap = 2 * this.nodes.size + 64;
    if (this.freeHeap.size > cap) this.freeHeap.compact((n, stamp) => !n.dead && n.stamp === stamp);
    if (this.allHeap.size > cap) this.allHeap.compact((n, stamp) => !n.dead && n.stampAll === stamp);
  }

  // ---- structure ----

  /** Inserts or replaces an entry, keeping every index in step; returns its node. */
  private put(e: Entry): Node {
    const n = this.nodes.get(e.id);
    if (!n) {
      let kids = NO_KIDS;
      if (this.orphans.size > 0) {
        const o = this.orphans.get(e.id);
        if (o) {
          kids = o;
          this.orphans.delete(e.id);
        }
      }
      const node: Node = {
        e, seq: this.seq++, root: null, slot: -1, stamp: ++this.tick, stampAll: ++this.tick, inFree: false,
        kids, pending: 0, ref: null, dead: false, addr: addr(e.host, e.port),
      };
      this.nodes.set(e.id, node);
      this.byAddr.set(node.addr, e.id);
      this.link(node);
      this.reattach(node);
      return node;
    }
    const old = n.e;
    if (old.host !== e.host || old.port !== e.port) {
      if (this.byAddr.get(n.addr) === e.id) this.byAddr.delete(n.addr);
      n.addr = addr(e.host, e.port);
    }
    this.byAddr.set(n.addr, e.id);
    const structural = old.state !== e.state || old.parent !== e.parent;
    if (structural) this.unlinkParent(n);
    n.e = e;
    if (structural) {
      this.link(n);
      this.reattach(n);
    } else if (old.depth !== e.depth || old.joinedAt !== e.joinedAt) {
      this.touch(n, true);
    } else if (old.maxChildren !== e.maxChildren) {
      this.touch(n);
    }
    return n;
  }

  /** Adds `n` to its parent's children (joined entries with a parent only). */
  private link(n: Node): void {
    const e = n.e;
    if (e.state !== 'joined' || e.parent === null) return;
    const p = this.nodes.get(e.parent);
    let s = p ? p.kids : this.orphans.get(e.parent);
    if (p && s === NO_KIDS) p.kids = s = [];
    else if (!s) this.orphans.set(e.parent, (s = []));
    if (!s.includes(n)) s.push(n);
    if (p) this.touch(p);
  }

  /** Takes `n` out of its parent's children (as its entry is now: call before replacing it). */
  private unlinkParent(n: Node): void {
    const e = n.e;
    if (e.state !== 'joined' || e.parent === null) return;
    const p = this.nodes.get(e.parent);
    const s = p?.kids ?? this.orphans.get(e.parent);
    const at = s ? s.indexOf(n) : -1;
    if (!s || at < 0) return;
    s.splice(at, 1);
    if (p) this.touch(p);
    else if (s.length === 0) this.orphans.delete(e.parent);
  }

  /**
   * `n`'s chain changed: detach its subtree, then attach it again if the
   * new chain reaches a root. Detaching first means a parent inside its own
   * subtree (a loop) is seen as detached.
   */
  private reattach(n: Node): void {
    this.setDetached(n);
    if (n.dead || n.e.state !== 'joined') return;
    let root: string | null;
    if (n.e.parent === null) root = n.e.id;
    else root = this.nodes.get(n.e.parent)?.root ?? null;
    if (root !== null) this.setAttached(n, root);
  }

  /** Marks `top` and everything below it (by the children index) detached. */
  private setDetached(top: Node): void {
    const stack = [top];
    let first = true;
    while (stack.length) {
      const n = stack.pop()!;
      if (n.slot >= 0) {
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
      for (const k of n.kids) stack.push(k);
    }
  }

  /** Marks `top` and everything below it attached under `root`. */
  private setAttached(top: Node, root: string): void {
    const stack = [top];
    while (stack.length) {
      const n = stack.pop()!;
      if (n.slot >= 0 || n.e.state !== 'joined') continue;
      n.root = root;
      n.slot = this.pool.length;
      this.pool.push(n);
      this.treeSize.set(root, (this.treeSize.get(root) ?? 0) + 1);
      this.touch(n, true);
      for (const k of n.kids) stack.push(k);
    }
  }

  private poolRemove(n: Node): void {
    const last = this.pool.pop()!;
    if (last !== n) {
      this.pool[n.slot] = last;
      last.slot = n.slot;
    }
    n.slot = -1;
  }

  // ---- pending referrals ----

  /** The newcomer `n` confirmed (announced), left or was referred again: its referral no longer counts. */
  private clearPendingOf(n: Node): void {
    const ref = n.ref;
    if (ref === null) return;
    n.ref = null;
    // A referral to an entry removed since (and perhaps registered again) no longer counts.
    const to = ref.to;
    if (to.dead) return;
    to.pending--;
    this.loadChanged(to);
  }

  private expirePending(now: number): void {
    while (this.fifoHead < this.fifo.length) {
      const f = this.fifo[this.fifoHead]!;
      if (now - f.at <= this.pendingTtlMs) break;
      this.fifoHead++;
      // Only if this very referral is still the newcomer's pending one.
      if (f.from.ref === f) this.clearPendingOf(f.from);
    }
    if (this.fifoHead > 1024 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.fifoHead);
      this.fifoHead = 0;
    }
  }
}

interface Referral {
  /** The newcomer's node (a removed one has ref null). */
  from: Node;
  /** The referred node (dead once removed: the referral lapses). */
  to: Node;
  at: number;
}

function addr(host: string, port: number): string {
  return `${host}|${port}`;
}
