/**
 * The peer's side of swarm transfers (docs/SWARM.md), kept apart from Peer:
 * `downloadSwarm` searches for a name and downloads it from every holder
 * found (core/transfer/swarm.ts); `SwarmUploads` serves `swarm-open`
 * connections within `maxUploads`, all of them drawing on one upload cap
 * (`uploadRate`, the peer's uplink).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../clock.ts';
import { describeError, NotFoundError, TransferError } from '../errors.ts';
import type { Hit, Msg, PeerRef } from '../protocol/messages.ts';
import type { Connection } from '../transport/connection.ts';
import type { Transport } from '../transport/transport.ts';
import { assertName, shareRoot } from '../transfer/jail.ts';
import { UploadBucket } from '../transfer/manifest.ts';
import { serveSwarm } from '../transfer/swarm-serve.ts';
import type { ShareStore } from '../transfer/store.ts';
import { hasPartial, swarmDownload } from '../transfer/swarm.ts';
import type { DownloadResult, SearchResult } from './types.ts';

/** What a swarm download needs from its peer (a narrow view, not the Peer). */
export interface SwarmPeerContext {
  id: string;
  ref: PeerRef;
  transport: Transport;
  clock: Clock;
  localHost: string | undefined;
  share: string;
  maxSources: number;
  swarmDepth: number;
  swarmAdaptive: boolean;
  idleTimeoutMs: number;
  minRateBytesPerSec: number;
  manifestTimeoutMs: number;
  maxFileBytes: number;
  fsync: boolean;
  search(name: string, signal?: AbortSignal): Promise<SearchResult>;
  emit: {
    progress(p: { qid: string; name: string; bytes: number; size: number }): void;
    resume(r: { name: string; pieces: number; of: number; bytes: number; percent: number }): void;
    log(level: 'info' | 'warn', message: string): void;
  };
}

/** A resumable swarm partial of `name` is in the share folder `root` (a download of it resumes as a swarm). */
export function hasResumable(root: string, id: string, name: string): Promise<boolean> {
  return hasPartial(root, id, name);
}

export async function downloadSwarm(ctx: SwarmPeerContext, name: string, o: { signal?: AbortSignal } = {}): Promise<DownloadResult> {
  assertName(name);
  const root = await ctx.clock.hold(shareRoot(ctx.share));
  try {
    await ctx.clock.hold(fsp.lstat(path.join(root, name)));
    throw new TransferError('exists', `${name} already exists in ${ctx.share}; not overwritten`);
  } catch (err) {
    if (err instanceof TransferError) throw err;
  }
  const search = await ctx.search(name, o.signal);
  const hits: Hit[] = [...search.hits].sort((a, b) => a.hops - b.hops);
  if (hits.length === 0) throw new NotFoundError(name, search.reached, search.missing);
  const r = await swarmDownload({
    transport: ctx.transport,
    clock: ctx.clock,
    shareDir: ctx.share,
    self: ctx.ref,
    localHost: ctx.localHost,
    name,
    hits,
    maxSources: ctx.maxSources,
    depth: ctx.swarmDepth,
    adaptive: ctx.swarmAdaptive,
    signal: o.signal,
    idleTimeoutMs: ctx.idleTimeoutMs,
    minRateBytesPerSec: ctx.minRateBytesPerSec,
    manifestTimeoutMs: ctx.manifestTimeoutMs,
    maxFileBytes: ctx.maxFileBytes,
    fsync: ctx.fsync,
    tmpTag: ctx.id,
    onProgress: (bytes, size) => ctx.emit.progress({ qid: search.qid, name, bytes, size }),
    onResume: (x) => ctx.emit.resume(x),
    log: ctx.emit.log,
  });
  const { holder, sources, pieceSize, pieces, resumedPieces, resumedBytes, bytesReceived, bytesWasted, badPieces, bytesOutstandingLost, bytesDuplicate, fanout, ...metrics } = r;
  return { ...metrics, holder, search, swarm: { sources, pieceSize, pieces, resumedPieces, resumedBytes, bytesReceived, bytesWasted, badPieces, bytesOutstandingLost, bytesDuplicate, fanout } };
}

export interface SwarmUploadsOptions {
  /** What the served files are read from (the peer's store). */
  store: ShareStore;
  clock: Clock;
  maxUploads: number;
  /** The peer's whole upload cap, bytes/s; 0: none. */
  uploadRate: number;
  minPieceBytes: number;
  hashingIntervalMs: number;
  /** A served link that asks for nothing or reads nothing for this long is closed, ms (the transfer idle timeout). */
  idleMs: number;
  log(level: 'info' | 'warn', message: string): void;
  uploaded(u: { name: string; to: string; bytes: number; durationMs: number; mbps: number }): void;
}

/** A served link waiting for a `want` this long may lose its slot to a newcomer, ms (a busy link's queue empties for a round trip between wants). */
export const IDLE_SLOT_GRACE_MS = 1000;

interface Served {
  conn: Connection;
  link: { idleSince: number | undefined };
}

export class SwarmUploads {
  private readonly running = new Map<AbortController, Served>();
  readonly bucket: UploadBucket;

  constructor(private readonly o: SwarmUploadsOptions) {
    this.bucket = new UploadBucket(o.uploadRate, o.clock);
  }

  get count(): number {
    return this.running.size;
  }

  /**
   * Serves one `swarm-open` connection until the requester closes it, asks
   * for nothing for `idleMs` or reads nothing for `idleMs`. With every slot
   * taken, the link idle longest (past IDLE_SLOT_GRACE_MS) gives its slot to
   * the newcomer: a requester that asks for nothing cannot keep others out.
   */
  serve(conn: Connection, m: Msg<'swarm-open'>): void {
    if (this.running.size >= this.o.maxUploads && !this.preemptIdle()) {
      conn.fail(new TransferError('busy', `${this.running.size} uploads already running (--max-uploads); try later`));
      return;
    }
    const ac = new AbortController();
    const link = { idleSince: undefined };
    this.running.set(ac, { conn, link });
    serveSwarm(conn, m, { store: this.o.store, clock: this.o.clock, bucket: this.bucket, minPieceBytes: this.o.minPieceBytes, hashingIntervalMs: this.o.hashingIntervalMs, signal: ac.signal, idleMs: this.o.idleMs, link })
      .then((r) => {
        if (r.bytes > 0) this.o.uploaded({ name: r.name, to: `${m.from.id}@${r.to}`, bytes: r.bytes, durationMs: r.durationMs, mbps: r.bytes / 1e6 / Math.max(r.durationMs / 1000, 1e-6) });
      })
      .catch((err) => this.o.log('warn', `swarm upload of ${m.name} to ${m.from.id} ended: ${describeError(err)}`))
      .finally(() => this.running.delete(ac));
  }

  /** Links waiting for a `want` for at least IDLE_SLOT_GRACE_MS (their slots go to newcomers), with when they began to wait. */
  private idleLinks(now: number): [AbortController, Served, number][] {
    const out: [AbortController, Served, number][] = [];
    for (const [ac, s] of this.running) {
      const since = s.link.idleSince;
      if (since !== undefined && now - since >= IDLE_SLOT_GRACE_MS) out.push([ac, s, since]);
    }
    return out;
  }

  /** How many links are idle past the grace (their slots may go to newcomers). */
  get idle(): number {
    return this.idleLinks(this.o.clock.now()).length;
  }

  /** Closes the link idle longest, if one is idle past the grace; true when a slot was freed. */
  private preemptIdle(): boolean {
    const now = this.o.clock.now();
    const oldest = this.idleLinks(now).reduce<[AbortController, Served, number] | undefined>((a, e) => (!a || e[2] < a[2] ? e : a), undefined);
    if (!oldest) return false;
    const [ac, s, since] = oldest;
    this.running.delete(ac);
    s.conn.fail(new TransferError('busy', `idle for ${Math.round(now - since)} ms with every upload slot taken: slot given to another requester`));
    return true;
  }

  abortAll(): void {
    for (const ac of this.running.keys()) ac.abort();
  }
}
