/**
 * The fault vocabulary of the harness (docs/FAULTS.md): what a scenario can
 * do to the network, the clocks and the disks of its nodes. Faults live in
 * the harness, never in the peer: each runner applies them around the
 * unchanged peer code (the memory network and per-node clocks and stores of
 * the in-process runners; signals and a harness side channel for processes).
 *
 * Nodes are named by peer id, and the metaserver by META.
 */

/** The metaserver as a fault target. */
export const META = 'meta';

export const FAULT_KINDS = ['partition', 'heal', 'shape', 'stall', 'reset', 'pause', 'resume', 'skew', 'disk'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One link's shape: one-way latency, jitter (order kept, as TCP keeps it) and per-direction bandwidth. */
export interface LinkSpec {
  latencyMs?: number;
  jitterMs?: number;
  /** bytes/s; 0 or absent: unlimited. */
  bandwidthBytesPerSec?: number;
}

/** A clock that runs early or late (offsetMs) and fast or slow (driftPpm, parts per million). */
export interface SkewSpec {
  offsetMs?: number;
  driftPpm?: number;
}

export const DISK_FAULTS = ['enospc', 'eio-read', 'eio-write', 'fsync-fails', 'slow'] as const;
export type DiskFaultKind = (typeof DISK_FAULTS)[number];

/** A disk fault on one node's share store: from the start, or after `afterBytes` written (enospc, eio-write) or read (eio-read); `slow` adds `ms` to each operation. */
export interface DiskSpec {
  kind: DiskFaultKind;
  afterBytes?: number;
  ms?: number;
}

/** Regions: a latency/bandwidth matrix between named regions (`--regions FILE`); peers are assigned to regions by the seed. */
export interface RegionMatrix {
  regions: string[];
  /** links[a][b]: the shape from region a to region b (a missing entry: links[b][a], else the default). */
  links: Record<string, Record<string, LinkSpec>>;
}

/** The shape from region a to region b: links[a][b], else links[b][a], else undefined. */
export function regionLink(m: RegionMatrix, a: string, b: string): LinkSpec | undefined {
  return m.links[a]?.[b] ?? m.links[b]?.[a];
}

/**
 * What a runner does for each fault. Every method resolves once the fault is
 * in force. A runner that cannot do a kind says why in `unsupported(kind)`,
 * and the Cluster refuses it with that reason before calling anything.
 */
export interface RunnerFaults {
  /** Why this runner cannot apply `kind`, or null when it can. */
  unsupported(kind: FaultKind): string | null;
  /**
   * Links between two listed nodes that share no group carry nothing: an
   * established link stalls (bytes are held, in order, and delivered after
   * the heal unless a side gave up on it), a new connection times out.
   * oneWay: only bytes from a node of an earlier group to a node of a later
   * group are held. Nodes not listed are not affected. Replaces any partition.
   */
  partition(groups: readonly (readonly string[])[], o?: { oneWay?: boolean }): Promise<void>;
  /** Ends the partition; held bytes flow again. */
  heal(): Promise<void>;
  /** The link between a and b (both directions) gets this shape; null: back to the runner's default. */
  shape(a: string, b: string, s: LinkSpec | null): Promise<void>;
  /** Every node's region (undefined: none) and the matrix between regions; replaces earlier regions. */
  shapeRegions(regionOf: ReadonlyMap<string, string>, m: RegionMatrix): Promise<void>;
  /** Bytes between a and b are held for `ms`, then delivered in order (a clog). */
  stall(a: string, b: string, ms: number): Promise<void>;
  /** Every open connection between a and b dies at both ends, as on ECONNRESET. */
  reset(a: string, b: string): Promise<void>;
  /** Nothing in, nothing out, no timer of the node fires, until resume. */
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** The node's clock from now on; an empty spec: the true clock again. */
  skew(id: string, s: SkewSpec): Promise<void>;
  /** A disk fault on the node's share store; null: the disk is healthy again. */
  disk(id: string, d: DiskSpec | null): Promise<void>;
}

/** A runner that applies no fault: every kind is refused with `why`. */
export function noFaults(why: (kind: FaultKind) => string): RunnerFaults {
  const refuse = (kind: FaultKind) => () => Promise.reject(new Error(why(kind)));
  return {
    unsupported: why,
    partition: refuse('partition'),
    heal: refuse('heal'),
    shape: refuse('shape'),
    shapeRegions: refuse('shape'),
    stall: refuse('stall'),
    reset: refuse('reset'),
    pause: refuse('pause'),
    resume: refuse('resume'),
    skew: refuse('skew'),
    disk: refuse('disk'),
  };
}

/** One applied fault, as `records.faults` keeps it: when, what, on whom, and until when it was in force. */
export interface FaultRow {
  round: string;
  /** Scenario clock, ms since the scenario started. */
  at: number;
  kind: FaultKind;
  /** Node ids (META for the metaserver); for a partition, the groups joined with ' | '. */
  targets: string[];
  /** When it stopped being in force (heal, resume, the end of a stall, a new shape…); null while in force or for a lasting change. */
  until: number | null;
  /** Its parameters in words (e.g. "oneWay", "20 ms ± 5 ms, 1 MB/s", "enospc after 1 MiB"). */
  detail: string;
}

/** A fault asked of a runner that cannot apply it (a usage error, not a silent no-op). */
export class FaultUnsupportedError extends Error {
  constructor(readonly kind: FaultKind, readonly runner: string, why: string) {
    super(`the ${runner} runner cannot ${kind}: ${why}`);
    this.name = 'FaultUnsupportedError';
  }
}

/**
 * The link half of the faults, for runners whose nodes talk through a core
 * Transport (memory, inproc, and each process of the process runner): one
 * plane per process, every node's transport wrapped by it. Implemented by
 * FaultPlane (fault-plane.ts).
 */
export interface LinkFaults {
  /** Node `id`'s transport: its listeners are known by address, its connections obey the faults in force. */
  transportFor(id: string, inner: import('../../core/index.ts').Transport): import('../../core/index.ts').Transport;
  /** Node `id` listens at `addrKey` (host:port) in another process (process runner): connects there reach `id`. */
  knowAddress(addrKey: string, id: string): void;
  partition(groups: readonly (readonly string[])[], o?: { oneWay?: boolean }): void;
  heal(): void;
  shape(a: string, b: string, s: LinkSpec | null): void;
  shapeRegions(regionOf: ReadonlyMap<string, string>, m: RegionMatrix): void;
  stall(a: string, b: string, ms: number): void;
  reset(a: string, b: string): void;
  /** Pause's network half: nothing in or out of `id` while on. */
  isolate(id: string, on: boolean): void;
}

/**
 * The node half (pause's clock side, skew, disk), for one node in this
 * process: a clock and a share store to hand to the Peer or Metaserver, and
 * the switches. Implemented by NodeFaults (fault-node.ts).
 */
export interface NodeFaultHandle {
  readonly clock: import('../../core/clock.ts').Clock;
  /** Wraps the node's store (undefined: the peer's own folder store, made by the wrapper). */
  wrapStore(inner: import('../../core/index.ts').ShareStore): import('../../core/index.ts').ShareStore;
  /** Timers hold while paused and fire (in order) after resume. */
  setPaused(on: boolean): void;
  setSkew(s: SkewSpec): void;
  setDisk(d: DiskSpec | null): void;
}
