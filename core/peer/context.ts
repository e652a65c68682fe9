/**
 * What a Peer's helpers (flood-handler.ts, transfers.ts, repair.ts) may see
 * of it: a narrow context, not the Peer. Each helper also gets the few
 * callbacks it needs from the others, wired by the Peer, so no helper
 * imports another or peer.ts (no import circle in core/peer).
 *
 * The lifecycle (joined, in the tree, stopping, reattaching, hand-off) is
 * read through `life`; only the Peer and the Repairer ask it for
 * transitions (lifecycle.ts lists them).
 */
import type { Clock } from '../clock.ts';
import type { ShareStore } from '../transfer/store.ts';
import type { PeerRef } from '../protocol/messages.ts';
import type { HostPort, Transport } from '../transport/transport.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { Links } from './links.ts';
import type { PeerEvents, PeerOptions } from './types.ts';

/** PeerOptions with every default filled in (the Peer's `opts`). */
export type ResolvedPeerOptions = Required<Omit<PeerOptions, 'transport' | 'connection' | 'advertiseHost' | 'share' | 'meta' | 'networkKey' | 'clock' | 'store' | 'rng'>> & {
  share: string;
  meta: HostPort;
  advertiseHost: string;
};

export interface PeerContext {
  readonly id: string;
  /** Our depth in the tree (0 = root); kept while we reattach, until the new parent tells us ours. */
  readonly depth: number;
  readonly opts: ResolvedPeerOptions;
  readonly links: Links;
  readonly transport: Transport;
  readonly clock: Clock;
  /** What the peer shares and where downloads land. */
  readonly store: ShareStore;
  readonly life: Lifecycle;
  /** This peer as others see it (throws before start()). */
  ref(): PeerRef;
  /** The outgoing-bind host (undefined when binding every interface). */
  localHost(): string | undefined;
  log(level: 'info' | 'warn', message: string): void;
  emit<K extends keyof PeerEvents>(event: K, ...args: PeerEvents[K]): void;
  /** A fresh flood query id. */
  newQid(): string;
}
