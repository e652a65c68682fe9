/**
 * A peer's overlay links: one to its parent (none at the root) and one per
 * child. Each link is a long-lived Connection on which both ends send
 * requests and answers; `lastHeard` feeds the heartbeat failure detector.
 */
import type { TokenBucket } from '../protocol/ratelimit.ts';
import type { PeerRef } from '../protocol/messages.ts';
import type { Connection } from '../transport/connection.ts';

export interface Link {
  ref: PeerRef;
  role: 'parent' | 'child';
  conn: Connection;
  /** Child links: the child's subtree size as it last reported. */
  subtree: number;
  lastHeard: number;
  /**
   * `conn.sends` at our last heartbeat tick and when the neighbour's last ping arrived: a tick
   * pings only a link we sent nothing on since the previous tick, and a ping is answered only when
   * we sent the neighbour nothing since its previous ping (see Peer.heartbeat, Peer.onLinkMessage).
   */
  sendsAtTick: number;
  sendsAtPing: number;
  /** Set when the neighbour said it is leaving (so its close is not a crash). */
  leaving: boolean;
  /** The rate limit of floods from this neighbour (flood-handler.ts), made on its first flood. */
  floods: TokenBucket | undefined;
}

export class Links {
  parent: Link | null = null;
  readonly children = new Map<string, Link>();

  get(id: string): Link | undefined {
    if (this.parent?.ref.id === id) return this.parent;
    return this.children.get(id);
  }

  all(): Link[] {
    const out = [...this.children.values()];
    if (this.parent) out.unshift(this.parent);
    return out;
  }

  ids(): string[] {
    return this.all().map((l) => l.ref.id);
  }

  /** 1 + the sum of the children's subtrees. */
  subtree(): number {
    let n = 1;
    for (const c of this.children.values()) n += c.subtree;
    return n;
  }
}
