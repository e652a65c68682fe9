/**
 * Invariants checked all along a run (issue 23 §4), by a checker attached to
 * every Cluster: after every fault, join, leave, crash, repair or other tree
 * event the cluster hears of, and on simulated time every simulated second.
 *
 * - tree: the peers' own parent links form a forest (no cycle) and no peer
 *   has more children than it accepts; once no fault is in force and the
 *   overlay has been quiet for deadAfterMs + repair time (SETTLE_MS): one
 *   root, every live peer in it; after REGISTRY_SETTLE_MS the metaserver
 *   lists exactly the live peers.
 * - requests: every search, download search and topology request recorded
 *   (records.floods) ended with a definite answer (found, not found, or
 *   answered with its missing subtrees) before its deadline.
 * - data: no finished download's file under its final name fails its size or
 *   SHA-256, and no temporary of a finished download remains (memory stores:
 *   storedSha256/openTemps; folders: the file and leftoverParts).
 *
 * Cheap by construction: only peers that had an event since the last check
 * are read (PeerHandle.status(): Peer.state() in-process, no flood), and only
 * the records added since. A violation is kept with the last 50 events before
 * it and fails the scenario (scenario.ts).
 */
import path from 'node:path';
import fs from 'node:fs';
import type { Clock, PeerState, RegistryEntry } from '../../core/index.ts';
import { realClock } from '../../core/clock.ts';
import type { FloodRow, TransferRow } from './metrics.ts';
import type { FaultRow } from './faults.ts';
import { leftoverParts, sha256File } from './shares.ts';

export const INVARIANTS = ['tree', 'requests', 'data'] as const;
export type InvariantName = (typeof INVARIANTS)[number];

export interface Violation {
  round: string;
  /** Scenario clock, ms. */
  at: number;
  invariant: InvariantName;
  peers: string[];
  detail: string;
  /** The last events (at most LAST_EVENTS) the checker heard before the violation, oldest first: "12034 repaired K17". */
  lastEvents: string[];
}

/** Where checkers report: one per scenario, shared by its clusters. */
export interface InvariantSink {
  checks: number;
  readonly violations: Violation[];
  violated(v: Violation): void;
}

export const LAST_EVENTS = 50;
/** Quiet time (no tree event, no fault in force) after which the tree must be one tree of every live peer: deadAfterMs (4 s) + repair time. */
export const SETTLE_MS = 14_000;
/** Quiet time after which the metaserver must list exactly the live peers (its stale-entry sweep: 30 s, plus an announce). */
export const REGISTRY_SETTLE_MS = 40_000;
/** Files up to this size are re-hashed by the data check; larger ones are checked by size (their hash was checked when they finished). */
export const REHASH_LIMIT = 16 * 1024 * 1024;

/** What the checker reads of one peer (a PeerHandle). */
export interface CheckedPeer {
  readonly id: string;
  readonly alive: boolean;
  readonly share: string;
  status(o?: { timeoutMs?: number }): Promise<Pick<PeerState, 'parent' | 'children'>>;
  storedSha256?(name: string): Promise<string | null>;
  openTemps?(): number;
}

/** What the checker reads of one overlay (a Cluster). */
export interface CheckedCluster {
  readonly round: string;
  readonly peers: ReadonlyMap<string, CheckedPeer>;
  alive(): string[];
  maxChildrenOf(id: string): number;
  registry(): Promise<Pick<RegistryEntry, 'id'>[]>;
  /** True when peers keep their files in memory stores (memory runner). */
  readonly memoryStores: boolean;
  /** True while the peer is paused (a fault): it cannot answer, and its state cannot change until it resumes. */
  isPaused?(id: string): boolean;
}

/** How long the checker waits for one peer's state (a peer stopped by a signal would otherwise hold it for the Op default). */
const STATUS_TIMEOUT_MS = 5000;

/** What the checker needs of the scenario. */
export interface CheckerHost {
  now(): number;
  readonly records: { floods: FloodRow[]; transfers: TransferRow[]; faults: FaultRow[] };
  /** The simulated clock (memory runner): checks every simulated second. */
  simClock(): Clock | undefined;
}

export class InvariantChecker {
  private readonly events: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly parentOf = new Map<string, string | null>();
  private floodsSeen = 0;
  private transfersSeen = 0;
  private readonly downloading = new Map<string, number>();
  /** Finished downloads whose requester was still downloading something else: checked for temps once it is idle. */
  private readonly tempsDue = new Set<string>();
  private lastChange: number;
  private quietDone = 0;
  private queued = false;
  private running: Promise<void> = Promise.resolve();
  private timer: ReturnType<Clock['setTimeout']> | undefined;
  private readonly clock: Clock;
  /** On simulated time (asked of the host once: asking starts its clock's driver). */
  private readonly simulated: boolean;
  private closed = false;

  constructor(private readonly c: CheckedCluster, private readonly host: CheckerHost, private readonly sink: InvariantSink) {
    this.lastChange = host.now();
    const sim = host.simClock();
    this.clock = sim ?? realClock;
    this.simulated = sim !== undefined;
    if (sim) this.arm(1000);
  }

  /** A tree event on `peers` (join, leave, crash, repair, child joined/left, parent lost, fault…): those peers are re-read at the next check. */
  event(what: string, peers: readonly string[] = []): void {
    if (this.closed) return;
    const at = this.host.now();
    this.events.push(`${Math.round(at)} ${what}${peers.length ? ` ${peers.slice(0, 8).join(' ')}${peers.length > 8 ? ' …' : ''}` : ''}`);
    if (this.events.length > LAST_EVENTS) this.events.splice(0, this.events.length - LAST_EVENTS);
    for (const p of peers) this.dirty.add(p);
    this.lastChange = at;
    this.quietDone = 0;
    if (!this.simulated) this.arm(SETTLE_MS + 10);
    this.soon();
  }

  /** A download by `by` started (+1) or ended (-1): its temporaries are checked only when it has none in flight. */
  downloads(by: string, d: 1 | -1): void {
    const n = (this.downloading.get(by) ?? 0) + d;
    if (n > 0) this.downloading.set(by, n);
    else this.downloading.delete(by);
  }

  /** Runs one check now (after the ones queued) and resolves when it is done. */
  check(o: { final?: boolean } = {}): Promise<void> {
    this.running = this.running.then(() => this.pass(o.final ?? false)).catch((err) => this.violate('tree', [], `the check itself failed: ${err instanceof Error ? err.message : String(err)}`));
    return this.running;
  }

  /**
   * The last check (records added since the last tick), then no more timers.
   * It asks nothing over the network (no registry): the scenario's simulated
   * clock may have stopped already, and a request would wait for it forever.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.check({ final: true });
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
  }

  private soon(): void {
    if (this.queued) return;
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      void this.check();
    });
  }

  private arm(ms: number): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      if (this.simulated) this.arm(1000);
      // Wall clock: after the tree's quiet check, once more when the registry's is due.
      void this.check().then(() => {
        if (!this.simulated && !this.closed && this.quietDone === 1 && this.timer === undefined) this.arm(Math.max(10, REGISTRY_SETTLE_MS - (this.host.now() - this.lastChange) + 10));
      });
    }, ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private violate(invariant: InvariantName, peers: string[], detail: string): void {
    if (this.closed) return;
    this.sink.violated({ round: this.c.round, at: this.host.now(), invariant, peers, detail, lastEvents: [...this.events] });
  }

  private async pass(final: boolean): Promise<void> {
    if (this.closed) return;
    this.sink.checks++;
    await this.checkTree();
    this.checkRequests();
    await this.checkData();
    if (!final) await this.checkQuiet();
  }

  /** Forest, no cycle, fan-out within bounds: only the peers that changed are read. */
  private async checkTree(): Promise<void> {
    if (this.dirty.size === 0) return;
    const ids = [...this.dirty];
    this.dirty.clear();
    const read: string[] = [];
    for (const id of ids) {
      const h = this.c.peers.get(id);
      if (!h || !h.alive) {
        this.parentOf.delete(id);
        continue;
      }
      if (this.c.isPaused?.(id)) {
        this.dirty.add(id); // read once it resumes
        continue;
      }
      let st: Pick<PeerState, 'parent' | 'children'>;
      try {
        st = await h.status({ timeoutMs: STATUS_TIMEOUT_MS });
      } catch {
        continue; // gone meanwhile: its exit is an event of its own
      }
      this.parentOf.set(id, st.parent?.id ?? null);
      const max = this.c.maxChildrenOf(id);
      if (st.children.length > max) this.violate('tree', [id], `${id} has ${st.children.length} children, over its limit of ${max}: ${st.children.map((x) => x.id).join(', ')}`);
      read.push(id);
    }
    for (const id of read) {
      const cycle = this.cycleFrom(id);
      if (cycle) this.violate('tree', cycle, `the parent links form a cycle: ${[...cycle, cycle[0]].join(' → ')}`);
    }
  }

  /** The cycle reached by following parent links from `id`, or null when they end at a root or a peer not known. */
  private cycleFrom(id: string): string[] | null {
    const seen = new Map<string, number>();
    const chain: string[] = [];
    let cur: string | null | undefined = id;
    while (cur != null && this.parentOf.has(cur)) {
      const i = seen.get(cur);
      if (i !== undefined) return chain.slice(i);
      seen.set(cur, chain.length);
      chain.push(cur);
      cur = this.parentOf.get(cur);
    }
    return null;
  }

  /** Every request recorded since the last check ended with a definite answer. */
  private checkRequests(): void {
    const rows = this.host.records.floods;
    for (; this.floodsSeen < rows.length; this.floodsSeen++) {
      const f = rows[this.floodsSeen]!;
      if (f.round !== this.c.round || f.answered) continue;
      this.violate('requests', [f.by], `${f.kind} by ${f.by}${f.name ? ` for ${f.name}` : ''} at ${Math.round(f.at)} ms ended without a definite answer after ${Math.round(f.completionMs ?? 0)} ms: ${f.error ?? 'no answer'}`);
    }
  }

  /** Finished downloads: the file under its final name has the size and SHA-256 offered; no temporary is left once the requester is idle. */
  private async checkData(): Promise<void> {
    const rows = this.host.records.transfers;
    for (; this.transfersSeen < rows.length; this.transfersSeen++) {
      const t = rows[this.transfersSeen]!;
      if (t.round !== this.c.round) continue;
      const h = this.c.peers.get(t.to);
      if (!h || !h.alive) continue;
      if (t.ok && t.sha256) {
        const bad = await this.badFile(h, t.file, t.bytes, t.sha256);
        if (bad) this.violate('data', [t.to], `${t.to}'s ${t.file}: ${bad}`);
      }
      this.tempsDue.add(t.to);
    }
    for (const id of [...this.tempsDue]) {
      if (this.downloading.has(id)) continue;
      this.tempsDue.delete(id);
      const h = this.c.peers.get(id);
      if (!h || !h.alive) continue;
      const left = this.c.memoryStores ? (h.openTemps?.() ? [`${h.openTemps!()} open temporary file(s)`] : []) : leftoverParts(h.share);
      if (left.length) this.violate('data', [id], `${id} has no download in flight but keeps ${left.join(', ')}`);
    }
  }

  private async badFile(h: CheckedPeer, name: string, bytes: number, sha256: string): Promise<string | null> {
    if (this.c.memoryStores) {
      const got = h.storedSha256 ? await h.storedSha256(name).catch(() => null) : null;
      return got === sha256 ? null : got === null ? 'missing from its store' : `SHA-256 ${got.slice(0, 12)}, offered ${sha256.slice(0, 12)}`;
    }
    const file = path.join(h.share, name);
    let size: number;
    try {
      size = (await fs.promises.stat(file)).size;
    } catch {
      return 'missing from its share folder';
    }
    if (size !== bytes) return `${size} bytes, offered ${bytes}`;
    if (size > REHASH_LIMIT) return null;
    const got = await sha256File(file).catch(() => null);
    return got === sha256 ? null : `SHA-256 ${got?.slice(0, 12) ?? 'unreadable'}, offered ${sha256.slice(0, 12)}`;
  }

  /** Once quiet long enough with no fault in force: one tree of every live peer (and later, the registry agreeing). */
  private async checkQuiet(): Promise<void> {
    const now = this.host.now();
    const quiet = now - this.lastChange;
    if (quiet < SETTLE_MS || this.quietDone >= 2) return;
    const open = this.host.records.faults.some((f) => f.round === this.c.round && (f.until === null || f.until > now));
    if (open) return;
    const alive = this.c.alive();
    if (this.quietDone === 0) {
      this.quietDone = 1;
      const parent = new Map<string, string | null>();
      for (const id of alive) {
        const st = await this.c.peers.get(id)!.status({ timeoutMs: STATUS_TIMEOUT_MS }).catch(() => null);
        if (st) parent.set(id, st.parent?.id ?? null);
      }
      for (const [id, p] of parent) this.parentOf.set(id, p);
      const roots = [...parent].filter(([, p]) => p === null || !parent.has(p)).map(([id]) => id);
      if (alive.length && roots.length !== 1) this.violate('tree', roots.slice(0, 20), `quiet for ${Math.round(quiet)} ms with no fault in force, yet ${roots.length} roots among ${alive.length} live peers: ${roots.slice(0, 10).join(', ')}`);
    }
    if (quiet < REGISTRY_SETTLE_MS || this.quietDone >= 2) return;
    this.quietDone = 2;
    const reg = await this.c.registry().catch(() => null);
    if (!reg) return;
    const live = new Set(alive);
    const listed = new Set(reg.map((e) => e.id));
    const extra = [...listed].filter((id) => !live.has(id));
    const missing = alive.filter((id) => !listed.has(id));
    if (extra.length || missing.length) this.violate('tree', [...missing, ...extra].slice(0, 20), `quiet for ${Math.round(quiet)} ms, yet the metaserver's registry disagrees with the live peers: ${missing.length ? `missing ${missing.slice(0, 10).join(', ')}` : ''}${missing.length && extra.length ? '; ' : ''}${extra.length ? `lists departed ${extra.slice(0, 10).join(', ')}` : ''}`);
  }
}
