/**
 * The runner seam: how a scenario gets a metaserver and peers. Three
 * runners, one interface:
 *
 * - process: each node is a real OS process in `--json` control mode
 *   (core/bin/*-main.ts), driven over stdin/stdout (runner-process.ts).
 * - inproc: many core Peers in this Node process over real loopback TCP.
 * - memory: the same Peers over core's MemoryNetwork (10,000+ peers).
 *
 * Handles return core's own result types (SearchResult, DownloadResult,
 * TopoResult, PeerState, JoinTimeline): the process runner parses them from
 * the control protocol, the in-process runners get them from Peer directly.
 */
import type { EventEmitter } from 'node:events';
import type { SimClock } from '../../core/clock.ts';
import type { RunnerFaults } from './faults.ts';
import type { Clock, DownloadResult, HostPort, JoinTimeline, LinkShape, PeerState, Policy, RegistryEntry, RepairRecord, SearchResult, TopoResult } from '../../core/index.ts';

export const RUNNERS = ['process', 'inproc', 'memory'] as const;
export type RunnerKind = (typeof RUNNERS)[number];

export interface PeerSpec {
  id: string;
  /** Absolute path of the peer's share folder (made by the Workspace). */
  share: string;
  maxChildren: number;
  /**
   * Memory runner only: the peer's files, held in a memory store instead of
   * the folder `share` (which is then only a label): generated from `seed`,
   * or fixed `data` (a copy of a repository file).
   */
  memFiles?: { name: string; bytes: number; seed: number; data?: Buffer }[];
  /** In-process runners only: this peer's heartbeat interval, ms (0: off), instead of the runner's. */
  heartbeatMs?: number;
}

export interface JoinOutcome {
  timeline: JoinTimeline;
}

export interface PeerHandleEvents {
  repaired: [RepairRecord];
  'parent-lost': [{ id: string; reason: string }];
  'child-left': [{ id: string; reason: string }];
  'child-joined': [{ id: string }];
  /** Bytes received so far by one of this peer's downloads (may come often: sample on the listening side). */
  progress: [{ name: string; bytes: number; size: number }];
  /** The node is gone (left, crashed, killed or exited on its own). */
  exit: [{ code: number | null; signal: string | null }];
}

export interface PeerHandle extends EventEmitter<PeerHandleEvents> {
  readonly id: string;
  readonly address: HostPort;
  readonly share: string;
  /** OS process id (process runner), null in-process. */
  readonly pid: number | null;
  readonly alive: boolean;
  join(o?: Op): Promise<JoinOutcome>;
  search(name: string, o?: Op): Promise<SearchResult>;
  /** Rejects with an Error carrying `code` (not-found, no-offer, hash-mismatch, ...) on failure. */
  download(name: string, o?: Op): Promise<DownloadResult>;
  topo(o?: Op): Promise<TopoResult>;
  status(o?: Op): Promise<PeerState>;
  files(o?: Op): Promise<{ name: string; size: number }[]>;
  /** Graceful leave (children told, metaserver told). */
  leave(o?: Op): Promise<void>;
  /** Crash: kill -9 (process) or stop() without goodbyes (in-process). */
  crash(): Promise<void>;
  /** Cleanup: stop without ceremony; never throws. */
  dispose(): Promise<void>;
  /** Frames this peer's overlay connections wrote since start, by message type, counted at the transport (not what the peer reports of its floods). */
  wireFrames(o?: Op): Promise<Partial<Record<string, number>>>;
  /** Memory runner: SHA-256 of a file the peer holds (its store has no folder to re-hash), or null. */
  storedSha256?(name: string): Promise<string | null>;
  /** Memory runner: downloads being written and not yet committed or discarded. */
  openTemps?(): number;
}

export interface Op {
  signal?: AbortSignal;
  /** ms before the operation is abandoned with code `timeout`. Default 30,000. */
  timeoutMs?: number;
}

export interface MetaHandle {
  readonly address: HostPort;
  readonly policy: Policy;
  readonly pid: number | null;
  status(o?: Op): Promise<RegistryEntry[]>;
  dispose(): Promise<void>;
}

export interface RunnerOptions {
  /** Link emulation on every connection (both runners honour it). */
  shape?: LinkShape;
  /**
   * Seed of the metaserver's `random` policy: the process runner passes it as
   * `--seed`, the in-process runners build the same mulberry32 generator from
   * it, so every runner makes the same choices. Unset: unseeded.
   */
  metaSeed?: number;
  /** Peer timers (heartbeat/announce), ms; core defaults (1,000 / 5,000) on every runner; 0 turns one off. */
  heartbeatMs?: number;
  announceMs?: number;
  /** Per-flood wait, ms (core default 10,000). */
  floodTimeoutMs?: number;
  /**
   * Memory runner: seed of the peers' query ids and the metaserver's tokens
   * (simulation only), so a run is a function of its seed. Unset: crypto randomness.
   */
  simSeed?: number;
  /**
   * Memory runner: the SimClock to run on, driven by the caller (a Scenario
   * shares one across its rounds). Unset: the runner makes one and drives it
   * itself from creation to close(). Ignored by the other runners.
   */
  clock?: SimClock;
  /**
   * Process runner: start every node from the faulty entry points
   * (testnet/faulty-*-main.ts: the production mains with the harness's fault
   * plane, clock and store around them and a fault side channel on fd 3), so
   * link, clock and disk faults can be applied. Default true; false: the
   * production entry points, where only pause/resume (signals) work.
   * Ignored by the other runners.
   */
  faults?: boolean;
  /**
   * In-process runners: false runs without a fault plane (scenarios/lib/fault-plane.ts):
   * connections are not wrapped and every link fault is refused. For the largest runs
   * that apply no fault (the plane costs ~500 bytes of heap per memory peer). Default true.
   */
  linkFaults?: boolean;
}

export interface MemorySample {
  /** What was measured: JS heap delta in-process (after GC when available), or RSS per process. */
  kind: 'heap' | 'rss';
  peers: number;
  totalBytes: number;
  perPeerBytes: number;
  /** Whole-process RSS (in-process runners: this process; process runner: the harness), bytes. */
  rssBytes: number;
  /** In-process runners: RSS growth since the runner was created, per live peer, bytes. */
  rssPerPeerBytes: number | null;
}

export interface Runner {
  readonly kind: RunnerKind;
  /** The clock its nodes run on when not real time (the memory runner's SimClock). */
  readonly clock?: Clock;
  startMetaserver(o: { policy: Policy }): Promise<MetaHandle>;
  startPeer(spec: PeerSpec, meta: HostPort): Promise<PeerHandle>;
  /** The faults this runner can apply (scenarios/lib/faults.ts); the Cluster records them and refuses unsupported ones. */
  readonly faults: RunnerFaults;
  /** Memory attributable to the live peers. */
  memory(peers: readonly PeerHandle[]): Promise<MemorySample>;
  /** Stops every node this runner started. */
  close(): Promise<void>;
}

/** An Error with a stable code, as peers report failures. */
export class OpError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'OpError';
  }
}

/** An error's message (core has no message-only helper: describeError appends the code). */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
