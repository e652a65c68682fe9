/**
 * A peer's lifecycle: the one place that holds and changes where the peer
 * is (joined, in the tree, stopping, reattaching, where a leave hands its
 * children), so the peer and its helpers (floods, transfers, repair) only
 * read it and ask for transitions. An illegal transition is a bug in core
 * and throws a LocalError with code `internal`.
 *
 * States:
 *
 *   idle       not in the overlay: constructed, listening, or a join failed.
 *   attached   in the tree: under a parent, or the root.
 *   orphaned   joined, but the parent link is gone (crash, heartbeat
 *              silence, or it left); repair has not started reattaching.
 *   rejoining  joined, reattaching with our subtree (repair.ts's loop, or a
 *              root merging into the bigger of two trees). Not in the tree:
 *              we must not announce ourselves as a root. The loop ends only
 *              reattached or because leave()/stop() moved the state on.
 *   leaving    leave() runs: joins are refused, no announce, no repair of
 *              our own; children are handed over.
 *   left       leave() finished (terminal).
 *   stopped    stop() without a leave: crash, dispose (terminal).
 *
 * Transitions (event: from → to):
 *
 *   joined       idle → attached                (join accepted, or the root)
 *   parent-lost  attached → orphaned            (parent link closed or told us it leaves)
 *   reattach     orphaned → rejoining           (repair starts its loop)
 *                attached → rejoining           (a second root merges: no parent to lose)
 *   attached     orphaned | rejoining → attached (reattached; or made the root by a leaving parent)
 *   leave        idle | attached | orphaned | rejoining → leaving
 *   left         leaving → left
 *   stop         idle | attached | orphaned | rejoining → stopped
 *                leaving | left | stopped → (unchanged: leave() stops the peer itself)
 *
 * Derived flags, as the rest of core reads them:
 *   joined    attached, orphaned, rejoining; while leaving or after a stop,
 *             whether we were joined when that began; false once left.
 *   inTree    attached (and not leaving or stopped).
 *   stopping  leaving, left, stopped.
 *
 * `handoff` (where our children go when our parent left while we were
 * leaving too) is set only while leaving.
 */
import { LocalError } from '../errors.ts';
import type { PeerRef } from '../protocol/messages.ts';

export type LifeState = 'idle' | 'attached' | 'orphaned' | 'rejoining' | 'leaving' | 'left' | 'stopped';
export type LifeEvent = 'joined' | 'parent-lost' | 'reattach' | 'attached' | 'leave' | 'left' | 'stop';

/** The transition table: event → (from → to). A missing entry is an illegal transition. */
const TABLE: Record<LifeEvent, Partial<Record<LifeState, LifeState>>> = {
  joined: { idle: 'attached' },
  'parent-lost': { attached: 'orphaned' },
  reattach: { orphaned: 'rejoining', attached: 'rejoining' },
  attached: { orphaned: 'attached', rejoining: 'attached' },
  leave: { idle: 'leaving', attached: 'leaving', orphaned: 'leaving', rejoining: 'leaving' },
  left: { leaving: 'left' },
  stop: { idle: 'stopped', attached: 'stopped', orphaned: 'stopped', rejoining: 'stopped', leaving: 'leaving', left: 'left', stopped: 'stopped' },
};

export class Lifecycle {
  private s: LifeState = 'idle';
  /** Whether we were joined when leaving or stopping began. */
  private wasJoined = false;
  /** Leaving: where our children go (null: we act as the root; undefined: not decided by our parent). */
  private handoffTo: PeerRef | null | undefined;

  constructor(private readonly onChange?: (from: LifeState, to: LifeState, ev: LifeEvent) => void) {}

  get state(): LifeState {
    return this.s;
  }

  /** Whether `ev` is allowed now (and would change or keep the state). */
  can(ev: LifeEvent): boolean {
    return TABLE[ev][this.s] !== undefined;
  }

  /** The one method that changes the state. Throws (code `internal`) on an illegal transition. */
  to(ev: LifeEvent): LifeState {
    const from = this.s;
    const next = TABLE[ev][from];
    if (next === undefined) throw new LocalError('internal', `peer lifecycle: "${ev}" is not allowed in state ${from}`);
    if ((ev === 'leave' || ev === 'stop') && from !== next) this.wasJoined = this.joined;
    this.s = next;
    if (next !== from) this.onChange?.(from, next, ev);
    return next;
  }

  get joined(): boolean {
    switch (this.s) {
      case 'attached':
      case 'orphaned':
      case 'rejoining':
        return true;
      case 'leaving':
      case 'stopped':
        return this.wasJoined;
      default:
        return false;
    }
  }

  get inTree(): boolean {
    return this.s === 'attached';
  }

  get stopping(): boolean {
    return this.s === 'leaving' || this.s === 'left' || this.s === 'stopped';
  }

  get rejoining(): boolean {
    return this.s === 'rejoining';
  }

  get handoff(): PeerRef | null | undefined {
    return this.handoffTo;
  }

  /** While leaving: our parent left too and named where our children go. */
  setHandoff(to: PeerRef | null): void {
    if (this.s !== 'leaving') throw new LocalError('internal', `peer lifecycle: a hand-off is set only while leaving, not in state ${this.s}`);
    this.handoffTo = to;
  }
}
