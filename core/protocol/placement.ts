/**
 * Tree placement (docs/PROTOCOL.md, flow D), pure.
 *
 * A peer receiving JOIN accepts when it has a free child slot; otherwise it
 * redirects the newcomer to the child with the fewest descendants (ties: the
 * child that joined first), which keeps the tree shallow and balanced. The
 * newcomer follows redirects up to a bound (see RedirectTracker). Sizes count
 * the newcomers already redirected into a child and not yet in its reports
 * (RedirectLedger), so concurrent newcomers spread.
 */
import type { PeerRef } from './messages.ts';

export interface ChildInfo {
  ref: PeerRef;
  /** Size of the child's subtree, itself included. */
  subtree: number;
}

export type JoinDecision =
  | { kind: 'accept' }
  | { kind: 'redirect'; to: PeerRef }
  | { kind: 'refuse'; code: 'self-join' | 'cycle' | 'full'; message: string };

export interface JoinRequest {
  id: string;
  host: string;
  port: number;
}

export function decideJoin(self: { id: string; maxChildren: number; ancestors?: { has(id: string): boolean } }, children: readonly ChildInfo[], req: JoinRequest): JoinDecision {
  if (req.id === self.id) return { kind: 'refuse', code: 'self-join', message: `peer ${req.id} cannot join itself` };
  if (self.ancestors?.has(req.id)) {
    return { kind: 'refuse', code: 'cycle', message: `peer ${req.id} is an ancestor of ${self.id}; joining here would make a cycle` };
  }
  // A rejoin of an existing child (after its link broke) replaces the old link.
  const existing = children.some((c) => c.ref.id === req.id);
  if (existing || children.length < self.maxChildren) return { kind: 'accept' };
  const target = smallestChild(children);
  if (!target) return { kind: 'refuse', code: 'full', message: `peer ${self.id} accepts no children` };
  return { kind: 'redirect', to: target.ref };
}

export function smallestChild(children: readonly ChildInfo[]): ChildInfo | undefined {
  let best: ChildInfo | undefined;
  for (const c of children) if (!best || c.subtree < best.subtree) best = c;
  return best;
}

/** Default bound on redirects a newcomer follows before giving up. */
export const DEFAULT_MAX_REDIRECTS = 64;

/**
 * Redirect bookkeeping for the newcomer: refuses a redirect loop (a peer seen
 * twice) and more than `max` redirects.
 */
export class RedirectTracker {
  private seen = new Set<string>();
  count = 0;
  constructor(readonly max: number = DEFAULT_MAX_REDIRECTS) {}

  visit(key: string): { ok: true } | { ok: false; reason: string } {
    if (this.seen.has(key)) return { ok: false, reason: `redirect loop: ${key} visited twice` };
    this.seen.add(key);
    return { ok: true };
  }

  redirect(): { ok: true } | { ok: false; reason: string } {
    this.count++;
    if (this.count > this.max) return { ok: false, reason: `gave up after ${this.max} redirects` };
    return { ok: true };
  }
}

/** How long a redirected newcomer counts as pending in a child's subtree without showing up in its reports, ms. */
export const REDIRECT_PENDING_MS = 10_000;

/**
 * A parent's count of newcomers it redirected into each child's subtree that
 * the child's size reports do not show yet (issue 13, join storm). Reports
 * travel up one link at a time, so with many joins in flight the reported
 * sizes lag; counting the redirects as pending spreads concurrent newcomers
 * over the children instead of sending all of them down one branch. A
 * report that grew by k settles the k oldest pending redirects into that
 * child; a redirect never seen there (the newcomer failed or went elsewhere)
 * lapses after `ttlMs`. Allocated by the first redirect only (leaves never
 * redirect), one small array per child redirected into.
 */
export class RedirectLedger {
  /** child id → times of pending redirects, oldest first */
  private byChild = new Map<string, number[]>();
  constructor(private readonly ttlMs: number = REDIRECT_PENDING_MS) {}

  /** A newcomer was redirected into `child`'s subtree at `now`. */
  redirected(child: string, now: number): void {
    const q = this.byChild.get(child);
    if (q) q.push(now);
    else this.byChild.set(child, [now]);
  }

  /** `child` reported its subtree went from `before` to `after`: growth settles that many pending redirects. */
  reported(child: string, before: number, after: number): void {
    const q = this.byChild.get(child);
    if (!q || after <= before) return;
    q.splice(0, Math.min(q.length, after - before));
    if (q.length === 0) this.byChild.delete(child);
  }

  /** Pending redirects into `child` at `now` (lapsed ones dropped). */
  pending(child: string, now: number): number {
    const q = this.byChild.get(child);
    if (!q) return 0;
    let lapsed = 0;
    while (lapsed < q.length && now - q[lapsed]! > this.ttlMs) lapsed++;
    if (lapsed) q.splice(0, lapsed);
    if (q.length === 0) this.byChild.delete(child);
    return q.length;
  }

  /** The child is gone (or replaced its link): nothing of it is pending any more. */
  forget(child: string): void {
    this.byChild.delete(child);
  }
}
