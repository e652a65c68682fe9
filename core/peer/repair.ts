/**
 * Leave and repair. The overlay stays one tree holding every remaining peer.
 *
 * Graceful leave of L: from then on L refuses joins and starts no repair of
 * its own. L tells its parent first (which frees the slot at once), then
 * deregisters at the metaserver (so nobody is referred to L, and a successor
 * root is never mistaken for a second tree), then tells each child where to
 * reattach: L's parent, or, when L is the root, its largest child becomes the
 * new root and the others reattach through it. Then L closes. Children
 * reattach with a normal JOIN (redirects and max-children apply), keeping
 * their own subtrees.
 *
 * Crash of the parent (socket closed without `leaving`, or heartbeats
 * missed): the orphan probes the parent; if it does not answer, the orphan
 * reports it dead to the metaserver and re-registers as the top of its
 * subtree. The metaserver only refers to peers attached to the root, so an
 * orphaned subtree is never joined under another orphaned subtree (no
 * cycles); when no attached peer is left, the first orphan becomes the root.
 * Rejoining retries with backoff while the metaserver is unreachable.
 * Crash of a child: the parent probes it and, if it is dead, reports it, so
 * a dead leaf is not a referral target until the registry's sweep.
 *
 * Two trees (a root that was frozen and woke up, or an orphan that became
 * root while a restarted metaserver was still rebuilding its registry): the
 * metaserver answers the smaller root's announce with `second-root`, and
 * that root rejoins through the metaserver with its whole subtree (merge).
 */
import { backoffDelays, retry } from '../backoff.ts';
import { describeError, TreeshareError } from '../errors.ts';
import { metaLeave, probe } from '../metaserver/client.ts';
import type { Msg, PeerRef } from '../protocol/messages.ts';
import { joinOverlay } from './join.ts';
import type { Link } from './links.ts';
import type { Connection } from '../transport/connection.ts';
import type { PeerContext } from './context.ts';
import type { JoinTimeline, RepairRecord } from './types.ts';

/** What repair needs from the peer itself (wired by peer.ts). */
export interface RepairDeps {
  /** Installs `conn` as the parent link (null: we are the root) and moves the lifecycle to attached. */
  attach(conn: Connection | null, t: JoinTimeline, path?: string[]): void;
  /** Drops the parent link; false if `link` is not the parent. */
  detachParent(link: Link): boolean;
  /** Drops a child link; false if `link` is not a child. */
  removeChild(link: Link): boolean;
  stop(o: { graceful?: boolean }): Promise<void>;
  /** The join timeline so far (null before a join). */
  timeline(): JoinTimeline | null;
  /** The metaserver token, and a new one to keep. */
  token(): string | undefined;
  setToken(token: string): void;
  /** Keeps a finished repair (Peer.repairs). */
  record(rec: RepairRecord): void;
}

export class Repairer {
  /** Links the heartbeat detector closed for silence (peer.ts heartbeat()). */
  readonly silent = new WeakSet<Link>();

  constructor(
    private readonly peer: PeerContext,
    private readonly deps: RepairDeps,
  ) {}

  /** `signal` bounds the goodbye to the metaserver (the only step that waits on the network). */
  async leave(signal?: AbortSignal): Promise<void> {
    const p = this.peer;
    const life = p.life;
    if (life.stopping) return;
    const parent = p.links.parent;
    // Mid-repair (our parent is gone and we are not reattached yet): no parent to hand over, and we
    // are not the root either, so our children rejoin through the metaserver rather than elect a root.
    const orphaned = !parent && !life.inTree;
    // From here on: joins are refused, no announce, no repair of our own (see lifecycle.ts).
    life.to('leave');
    if (parent) parent.conn.send({ t: 'leaving', parent: null, successor: null });
    if (life.joined) {
      try {
        await metaLeave(p.transport, p.opts.meta, p.id, { localHost: p.localHost(), signal, token: this.deps.token(), clock: p.clock });
      } catch (err) {
        p.log('warn', `could not tell the metaserver we left: ${describeError(err)}`);
      }
    }
    // Read the links only now: a child may have left, or the parent left too, meanwhile.
    const up = p.links.parent?.ref ?? (life.handoff !== undefined ? life.handoff : (parent?.ref ?? null));
    const children = [...p.links.children.values()].sort((a, b) => b.subtree - a.subtree);
    if (up) {
      for (const c of children) c.conn.send({ t: 'leaving', parent: up, successor: null });
    } else if (orphaned) {
      for (const c of children) c.conn.send({ t: 'leaving', parent: null, successor: null });
    } else if (children.length) {
      const successor = children[0]!.ref;
      for (const c of children) c.conn.send({ t: 'leaving', parent: c === children[0] ? null : successor, successor });
    }
    await this.deps.stop({ graceful: true });
    life.to('left');
    p.emit('left');
  }

  /** A neighbour announced it is leaving. */
  onLeaving(link: Link, m: Msg<'leaving'>): void {
    const p = this.peer;
    if (link.role === 'child') {
      // Free the slot now: the departing child's own children may be about to JOIN here.
      this.deps.removeChild(link);
      return;
    }
    if (!this.deps.detachParent(link)) return;
    if (p.life.stopping) {
      // Leaving too: our children go where our parent sent us (or we act as the root).
      if (p.life.state === 'leaving') p.life.setHandoff(m.successor?.id === p.id ? null : (m.parent ?? m.successor));
      return;
    }
    const rec: RepairRecord = { cause: 'parent-left', lost: link.ref.id, detectedAt: p.clock.now(), reattachedAt: null, ms: null, newParent: null };
    p.emit('parent-lost', { id: link.ref.id, reason: 'left' });
    if (m.successor?.id === p.id) {
      this.deps.attach(null, { ...(this.deps.timeline() ?? blankTimeline(p.clock.now())), parent: null, depth: 0 });
      this.done(rec, null);
      return;
    }
    void this.rejoin(rec, m.parent ?? m.successor ?? undefined);
  }

  /** The parent link closed without a goodbye, or missed its heartbeats. */
  onParentLost(link: Link): void {
    const p = this.peer;
    if (link.leaving) return;
    const rec: RepairRecord = { cause: 'parent-crashed', lost: link.ref.id, detectedAt: p.clock.now(), reattachedAt: null, ms: null, newParent: null };
    p.emit('parent-lost', { id: link.ref.id, reason: 'connection lost' });
    p.log('warn', `lost parent ${link.ref.id}; reattaching`);
    void (async () => {
      // A link closed by the heartbeat detector was silent for deadAfterMs: no second wait on a probe.
      const alive = !this.silent.has(link) && (await probe(p.transport, link.ref, { localHost: p.localHost(), timeoutMs: 1000, clock: p.clock }).catch(() => false));
      if (!alive) {
        try {
          await metaLeave(p.transport, p.opts.meta, link.ref.id, { localHost: p.localHost(), clock: p.clock });
        } catch {
          /* metaserver down: the rejoin loop below reports it */
        }
      }
      await this.rejoin(rec, alive ? link.ref : undefined);
    })();
  }

  /** A child link closed without a goodbye: if the child is dead, the metaserver must stop referring to it. */
  onChildLost(link: Link): void {
    const p = this.peer;
    if (link.leaving || p.life.stopping) return;
    void (async () => {
      const alive = !this.silent.has(link) && (await probe(p.transport, link.ref, { localHost: p.localHost(), timeoutMs: 1000, clock: p.clock }).catch(() => true));
      if (alive || p.life.stopping) return;
      try {
        await metaLeave(p.transport, p.opts.meta, link.ref.id, { localHost: p.localHost(), clock: p.clock });
        p.log('info', `reported child ${link.ref.id} dead to the metaserver`);
      } catch (err) {
        p.log('warn', `could not report child ${link.ref.id} dead to the metaserver: ${describeError(err)}`);
      }
    })();
  }

  /** The metaserver says another, larger tree exists and this root's is the second one: rejoin it. */
  merge(reason: string): void {
    const p = this.peer;
    if (!p.life.inTree || p.links.parent) return;
    // Out of the tree at once: no announce as a root while we rejoin.
    p.life.to('reattach');
    p.log('warn', `this peer roots a second tree (${reason}); rejoining with its subtree of ${p.links.subtree()}`);
    const rec: RepairRecord = { cause: 'merged', lost: p.id, detectedAt: p.clock.now(), reattachedAt: null, ms: null, newParent: null };
    void this.rejoin(rec, undefined);
  }

  private async rejoin(rec: RepairRecord, via: PeerRef | undefined): Promise<void> {
    const p = this.peer;
    const life = p.life;
    if (rec.cause !== 'merged') {
      // Orphaned (the parent is gone): start reattaching, unless already at it or stopping.
      if (life.state !== 'orphaned') return;
      life.to('reattach');
    } else if (life.state !== 'rejoining') return;
    // The first try goes through `via` (when given); if it fails, the next goes at once
    // through the metaserver; later ones wait 100 ms, 200 ms, ... at most 5 s, until it works
    // or the peer stops rejoining (leave() or stop()).
    // An orphan that sat below the root's children knows a root lives above its lost parent. A
    // metaserver that answers it "you are the first" has most likely just restarted and not yet
    // heard the tree's announces: becoming a root would make a second tree (merged again later).
    // So for up to two announce intervals such an answer is taken as "ask again".
    const waitForTreeUntil = rec.cause !== 'merged' && p.depth >= 2 && p.opts.announceMs > 0 ? p.clock.now() + 2 * p.opts.announceMs : -Infinity;
    const delays = function* () {
      if (via) yield 0;
      yield* backoffDelays({ first: 100, max: 5000 });
    };
    try {
      await retry(async (n) => {
        const attempt = n - 1;
        // A referral or redirect to the very peer we lost (its parent has not noticed yet) would
        // wait out a join timeout on a dead or frozen peer: give up at once and ask again.
        // (Not when we rejoin the lost parent itself on purpose: it answered our probe.)
        // Only for SHUN_DEAD_AFTERS × deadAfterMs after the loss: by then a dead peer has been
        // reported (its own parent's heartbeat) and the metaserver no longer refers to it, so one
        // it still offers is alive — a parent cut off by a partition that has healed — and
        // shunning it for ever would keep this subtree out of the tree.
        const ac = new AbortController();
        const shun = rec.cause !== 'merged' && !(attempt === 0 && via?.id === rec.lost) && p.clock.now() < rec.detectedAt + SHUN_DEAD_AFTERS * p.opts.deadAfterMs;
        const avoid = (to: PeerRef | null) => {
          if (shun && to?.id === rec.lost) ac.abort(new TreeshareError('lost-peer', `sent to ${to.id}, the peer just lost`));
        };
        const onReferral = (to: PeerRef | null) => {
          if (to === null && p.clock.now() < waitForTreeUntil) {
            throw new TreeshareError('busy', 'the metaserver knows no tree (restarted?): waiting for the tree\'s announces before becoming a root');
          }
          avoid(to);
        };
        const out = await joinOverlay({
          transport: p.transport, meta: p.opts.meta, self: p.ref(), maxChildren: p.opts.maxChildren,
          subtree: () => p.links.subtree(), localHost: p.localHost(), maxRedirects: p.opts.maxRedirects,
          via: attempt === 0 ? via : undefined, signal: ac.signal,
          onReferral, onRedirect: (_from, to) => avoid(to), token: () => this.deps.token(), clock: p.clock,
        });
        if (!life.rejoining) {
          // leave() or stop() meanwhile.
          out.conn?.destroy();
          return;
        }
        if (out.token) this.deps.setToken(out.token);
        this.deps.attach(out.conn, out.timeline, out.path);
        this.done(rec, out.timeline.parent);
      }, {
        delays: delays(),
        clock: p.clock,
        unref: true,
        retryIf: () => life.rejoining,
        onRetry: (err, n, delay) => {
          const msg = describeError(err);
          if (n === 1 && via) p.log('warn', `reattach attempt 1 (through ${via.id}) failed: ${msg}; trying through the metaserver`);
          else p.log('warn', `reattach attempt ${n} failed: ${msg}; retrying in ${delay} ms`);
        },
      });
    } catch (err) {
      // Only a peer that stopped rejoining gives up; its leave() or stop() says why.
      if (life.rejoining) throw err;
    }
  }

  private done(rec: RepairRecord, parent: PeerRef | null): void {
    rec.reattachedAt = this.peer.clock.now();
    rec.ms = rec.reattachedAt - rec.detectedAt;
    rec.newParent = parent;
    this.deps.record(rec);
    // Told once, by the event (the menu prints it, --json forwards it): a log line too printed each repair twice.
    this.peer.emit('repaired', rec);
  }
}

/** How long (in deadAfterMs) an orphan refuses referrals to the parent it lost. */
const SHUN_DEAD_AFTERS = 2;

function blankTimeline(now: number) {
  return { registerSentAt: now, referralAt: now, referral: null, redirects: [], acceptedAt: now, parent: null, depth: 0, metaRttMs: 0, finalConnectMs: 0, totalMs: 0 };
}
