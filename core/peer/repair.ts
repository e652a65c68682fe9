/**
 * Leave and repair. The overlay stays one tree holding every remaining peer.
 *
 * Graceful leave of L: L tells its parent first (which frees the slot at
 * once), then each child where to reattach: L's parent, or, when L is the
 * root, its largest child becomes the new root and the others reattach
 * through it. Then L deregisters and closes. Children reattach with a normal
 * JOIN (redirects and max-children apply), keeping their own subtrees.
 *
 * Crash of the parent (socket closed without `leaving`, or heartbeats
 * missed): the orphan probes the parent; if it does not answer, the orphan
 * reports it dead to the metaserver and re-registers as the top of its
 * subtree. The metaserver only refers to peers attached to the root, so an
 * orphaned subtree is never joined under another orphaned subtree (no
 * cycles); when no attached peer is left, the first orphan becomes the root.
 * Rejoining retries with backoff while the metaserver is unreachable.
 */
import { describeError } from '../errors.ts';
import { probe, request } from '../metaserver/client.ts';
import { PROTOCOL_VERSION, type Msg, type PeerRef } from '../protocol/messages.ts';
import { joinOverlay } from './join.ts';
import type { Link } from './links.ts';
import type { Peer } from './peer.ts';
import type { RepairRecord } from './types.ts';

export class Repairer {
  private rejoining = false;

  constructor(private readonly peer: Peer) {}

  async leave(): Promise<void> {
    const p = this.peer;
    if (p.stopping) return;
    const parent = p.links.parent;
    const children = [...p.links.children.values()].sort((a, b) => b.subtree - a.subtree);
    if (parent) parent.conn.send({ t: 'leaving', parent: null, successor: null });
    if (parent) {
      for (const c of children) c.conn.send({ t: 'leaving', parent: parent.ref, successor: null });
    } else if (children.length) {
      const successor = children[0]!.ref;
      for (const c of children) c.conn.send({ t: 'leaving', parent: c === children[0] ? null : successor, successor });
    }
    if (p.joined) {
      try {
        await request(p.transport, p.opts.meta, { t: 'leave', v: PROTOCOL_VERSION, id: p.id }, ['ok'], { localHost: p.localHost, timeoutMs: 2000 });
      } catch (err) {
        p.log('warn', `could not tell the metaserver we left: ${describeError(err)}`);
      }
    }
    await p.stop({ graceful: true });
    p.joined = false;
    p.emit('left');
  }

  /** A neighbour announced it is leaving. */
  onLeaving(link: Link, m: Msg<'leaving'>): void {
    const p = this.peer;
    if (link.role === 'child') {
      // Free the slot now: the departing child's own children may be about to JOIN here.
      if (p.links.children.get(link.ref.id) === link) {
        p.links.children.delete(link.ref.id);
        p.flood.neighbourGone(link.ref.id);
        p.emit('child-left', { id: link.ref.id, reason: 'left' });
        p.log('info', `child ${link.ref.id} left`);
        p.reportSubtree();
        p.scheduleAnnounce();
      }
      return;
    }
    if (p.links.parent !== link) return;
    p.links.parent = null;
    p.inTree = false;
    p.flood.neighbourGone(link.ref.id);
    const rec: RepairRecord = { cause: 'parent-left', lost: link.ref.id, detectedAt: performance.now(), reattachedAt: null, ms: null, newParent: null };
    p.emit('parent-lost', { id: link.ref.id, reason: 'left' });
    if (m.successor?.id === p.id) {
      p.log('info', `parent ${link.ref.id} left; this peer is the new root`);
      p.attach(null, { ...(p.timeline ?? blankTimeline()), parent: null, depth: 0 });
      this.done(rec, null);
      return;
    }
    void this.rejoin(rec, m.parent ?? m.successor ?? undefined);
  }

  /** The parent link closed without a goodbye, or missed its heartbeats. */
  onParentLost(link: Link): void {
    const p = this.peer;
    if (link.leaving) return;
    const rec: RepairRecord = { cause: 'parent-crashed', lost: link.ref.id, detectedAt: performance.now(), reattachedAt: null, ms: null, newParent: null };
    p.emit('parent-lost', { id: link.ref.id, reason: 'connection lost' });
    p.log('warn', `lost parent ${link.ref.id}; reattaching`);
    void (async () => {
      const alive = await probe(p.transport, link.ref, { localHost: p.localHost, timeoutMs: 1000 }).catch(() => false);
      if (!alive) {
        try {
          await request(p.transport, p.opts.meta, { t: 'leave', v: PROTOCOL_VERSION, id: link.ref.id }, ['ok'], { localHost: p.localHost, timeoutMs: 2000 });
        } catch {
          /* metaserver down: the rejoin loop below reports it */
        }
      }
      await this.rejoin(rec, alive ? link.ref : undefined);
    })();
  }

  private async rejoin(rec: RepairRecord, via: PeerRef | undefined): Promise<void> {
    const p = this.peer;
    if (this.rejoining) return;
    this.rejoining = true;
    let delay = 100;
    try {
      for (let attempt = 0; !p.stopping; attempt++) {
        try {
          const out = await joinOverlay({
            transport: p.transport, meta: p.opts.meta, self: p.ref, maxChildren: p.opts.maxChildren,
            subtree: () => p.links.subtree(), localHost: p.localHost, maxRedirects: p.opts.maxRedirects,
            via: attempt === 0 ? via : undefined,
          });
          if (p.stopping) {
            out.conn?.destroy();
            return;
          }
          p.attach(out.conn, out.timeline);
          this.done(rec, out.timeline.parent);
          return;
        } catch (err) {
          const msg = describeError(err);
          p.log('warn', `reattach attempt ${attempt + 1} failed: ${msg}`);
          if (attempt === 0 && via) continue;
          await new Promise((r) => setTimeout(r, delay).unref?.());
          delay = Math.min(delay * 2, 5000);
        }
      }
    } finally {
      this.rejoining = false;
    }
  }

  private done(rec: RepairRecord, parent: PeerRef | null): void {
    rec.reattachedAt = performance.now();
    rec.ms = rec.reattachedAt - rec.detectedAt;
    rec.newParent = parent;
    this.peer.repairs.push(rec);
    this.peer.emit('repaired', rec);
    this.peer.log('info', `reattached ${parent ? `under ${parent.id}` : 'as the root'} in ${rec.ms.toFixed(1)} ms`);
  }
}

function blankTimeline() {
  const now = performance.now();
  return { registerSentAt: now, referralAt: now, referral: null, redirects: [], acceptedAt: now, parent: null, depth: 0, metaRttMs: 0, finalConnectMs: 0, totalMs: 0 };
}
