/** Options, results and events of a Peer. */
import type { FloodCounters } from '../protocol/flood.ts';
import type { Hit, PeerRef, TopoNode } from '../protocol/messages.ts';
import type { Clock } from '../clock.ts';
import type { ConnectionOptions } from '../transport/connection.ts';
import type { HostPort, Transport } from '../transport/transport.ts';
import type { TransferMetrics } from '../transfer/receive.ts';
import type { ShareStore } from '../transfer/store.ts';
import type { SwarmMetrics } from '../transfer/swarm.ts';
import type { JoinTimeline } from './join.ts';

export type { JoinTimeline, TransferMetrics };

export interface PeerOptions {
  /** Peer id (S1..S5 or any name of [A-Za-z0-9_.-], 1–64 chars). */
  id: string;
  /** Bind host. Default 127.0.0.1. */
  host?: string;
  /** Host others use to reach this peer. Default: `host`, or 127.0.0.1 when binding 0.0.0.0. */
  advertiseHost?: string;
  /** Listening port; 0 picks a free one. Default 9001. */
  port?: number;
  /** Share folder. Default shares/<id>. */
  share?: string;
  /** Metaserver address. Default 127.0.0.1:9000. */
  meta?: HostPort;
  /** Most children this peer accepts. Default 2. */
  maxChildren?: number;
  /** Most redirects followed while joining. Default 64. */
  maxRedirects?: number;
  transport?: Transport;
  /** Shared network key: every connection runs over TLS with this pre-shared key (at least 32 bytes; see docs/SECURITY.md). Default none. */
  networkKey?: string | Buffer;
  connection?: ConnectionOptions;
  /** Default hop limit of floods. Default 255. */
  ttl?: number;
  /** How long a search or topo waits for the whole tree, ms. Default 10,000. */
  floodTimeoutMs?: number;
  /** Budget each hop keeps back from its subtree so answers get home in time, ms. Default 20. */
  hopSlackMs?: number;
  /** After a search finds holders, how long to wait for their offer, ms. Default 10,000. */
  offerTimeoutMs?: number;
  /** A transfer with no data for this long fails, ms. Default 15,000. */
  transferIdleTimeoutMs?: number;
  /**
   * Minimum progress of a download from a holder, bytes/s, over every window of twice
   * transferIdleTimeoutMs (a holder trickling bytes resets the silence timer, not this).
   * Default 1,024 (MIN_RATE_BYTES_PER_SEC); 0: no floor (links deliberately slower than that).
   */
  minRateBytesPerSec?: number;
  /** fsync each downloaded file before it becomes visible, and the share folder after. Default true. */
  fsync?: boolean;
  /** A holder still hashing a file for its first offer tells the requester its progress this often, ms. Default 1,000. */
  preparingIntervalMs?: number;
  /** Most uploads at once; further hits are answered but not offered. Default 16. */
  maxUploads?: number;
  /** Largest file accepted for download, bytes. Default 64 GiB. */
  maxFileBytes?: number;
  /** Duplicate-suppression cache: most query ids remembered. Default 10,000. */
  seenCacheSize?: number;
  /** Floods accepted per second from one neighbour (token bucket refill). Default 1,000. */
  queryRatePerSec?: number;
  /** Burst of floods accepted from one neighbour. Default 2,000. */
  queryBurst?: number;
  /** Most simultaneous inbound connections. Default 1,024. */
  maxConnections?: number;
  /** Times join() retries an unreachable metaserver, waiting 250 ms, 500 ms, 1 s, ... Default 3. */
  joinRetries?: number;
  /** Heartbeat interval on links, ms. Default 1,000; 0 disables. */
  heartbeatMs?: number;
  /** A link silent for this long is declared dead, ms. Default 4,000. */
  deadAfterMs?: number;
  /** Re-announce to the metaserver this often, ms. Default 5,000; 0 disables. */
  announceMs?: number;
  /**
   * What the peer shares and where downloads land. Default: the file-system
   * store of `share` (the jail). The memory runner passes a MemoryStore.
   */
  store?: ShareStore;
  /**
   * Random source for query ids, [0,1). Default: crypto randomness. The
   * memory runner passes a seeded generator so a run repeats exactly.
   */
  rng?: () => number;
  /**
   * Swarm downloads (docs/SWARM.md, "When a download is a swarm"): true (default) swarms when the
   * search finds ≥ 2 holders or a resumable partial of the name exists, and otherwise takes the one
   * holder's offer (the faster receive path); 'always': every download is a swarm, even from one
   * holder; false: every download is one holder's offer, as protocol 1 did (--no-swarm).
   */
  swarm?: boolean | 'always';
  /** Most holders a swarm download uses at once (--max-sources). Default 8. */
  maxSources?: number;
  /** Pieces a swarm download asks ahead on each link. Default 0: sized per link to its round trip (2 on a LAN; core/transfer/swarm.ts linkDepth). */
  swarmDepth?: number;
  /**
   * A swarm download uses only as many holders as it can absorb: while the requester's event loop
   * is saturated it parks the slowest holder, and keeps it parked only if the others make up its
   * rate (docs/SWARM.md, "Adaptive number of sources"). Default true; off under a simulated clock.
   */
  swarmAdaptive?: boolean;
  /** Upload cap of the whole peer (all its swarm uploads together), bytes/s (--upload-rate); 0: none. Default 0. */
  uploadRate?: number;
  /** Smallest piece size of this peer's manifests, bytes (doubled for large files). Default 1 MiB. */
  minPieceBytes?: number;
  /** Resumable partials not advanced for this long are removed at start, ms (--partial-max-age). Default 7 days. */
  partialMaxAgeMs?: number;
  /**
   * Time source for every now(), timer, interval and timeout of this peer and
   * what it opens (joins, floods, transfers, repair). Default realClock; the
   * memory runner passes its SimClock (simulated time).
   */
  clock?: Clock;
}

/** Swarm figures of a download (docs/SWARM.md): the swarm's own report, less what every download has. */
export type SwarmStats = Pick<SwarmMetrics, 'sources' | 'pieceSize' | 'pieces' | 'resumedPieces' | 'resumedBytes' | 'bytesReceived' | 'bytesWasted' | 'badPieces' | 'bytesOutstandingLost' | 'bytesDuplicate' | 'fanout'>;

export interface FloodResult extends FloodCounters {
  qid: string;
  /** Request sent → first hit known (search) or first node beyond self (topo), ms; null when none. */
  firstHitMs: number | null;
  /** Request sent → definite answer, ms. */
  completionMs: number;
}

export interface SearchResult extends FloodResult {
  name: string;
  hits: Hit[];
}

export interface TopoResult extends FloodResult {
  nodes: TopoNode[];
  /** True when every subtree answered. */
  complete: boolean;
}

export interface DownloadResult extends TransferMetrics {
  holder: PeerRef;
  search: SearchResult;
  /** Present for swarm downloads. */
  swarm?: SwarmStats;
}

export interface PeerState {
  id: string;
  address: HostPort;
  joined: boolean;
  parent: PeerRef | null;
  children: (PeerRef & { subtree: number })[];
  depth: number;
  subtree: number;
  timeline: JoinTimeline | null;
  repairs: RepairRecord[];
}

export interface RepairRecord {
  /** What happened: parent-left, parent-crashed, child-left, ... */
  cause: string;
  lost: string;
  detectedAt: number;
  reattachedAt: number | null;
  ms: number | null;
  newParent: PeerRef | null;
}

export interface PeerEvents {
  listening: [HostPort];
  referral: [PeerRef | null];
  redirect: [{ from: PeerRef; to: PeerRef }];
  joined: [JoinTimeline];
  'child-joined': [PeerRef];
  'child-left': [{ id: string; reason: string }];
  'parent-lost': [{ id: string; reason: string }];
  repaired: [RepairRecord];
  hit: [{ qid: string; name: string; holder: Hit }];
  offer: [{ qid: string; name: string; from: PeerRef; size: number; accepted: boolean }];
  progress: [{ qid: string; name: string; bytes: number; size: number }];
  /** A swarm download found verified pieces of an earlier attempt on disk. */
  resume: [{ name: string; pieces: number; of: number; bytes: number; percent: number }];
  downloaded: [DownloadResult];
  uploaded: [{ name: string; to: string; bytes: number; durationMs: number; mbps: number }];
  'search-done': [SearchResult];
  'topo-done': [TopoResult];
  'protocol-error': [{ remote: string; code: string; message: string }];
  left: [];
  log: [{ level: 'info' | 'warn'; message: string }];
}
