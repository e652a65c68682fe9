/**
 * Tree placement (docs/PROTOCOL.md, flow D), pure.
 *
 * A peer receiving JOIN accepts when it has a free child slot; otherwise it
 * redirects the newcomer to the child with the fewest descendants (ties: the
 * child that joined first), which keeps the tree shallow and balanced. The
 * newcomer follows redirects up to a bound (see followRedirect).
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
