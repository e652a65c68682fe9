/**
 * Requester side of a swarm download (docs/SWARM.md): connect to up to
 * `maxSources` holders at once, take the manifest of the first that answers,
 * check every later one against it, then pull pieces from all of them with
 * `depth` pieces requested ahead on each link (by default sized to the link's round trip, linkDepth). A link asks for more as soon
 * as a piece lands, so faster holders get more pieces (pull, not an even
 * split). When no piece is left to ask for, an idle link asks for one still
 * in flight elsewhere (end-game, at most two copies); the later copy is
 * dropped.
 *
 * Each piece is verified (SHA-256) when it lands and written at its offset in
 * the partial file `.treeshare-<tag>-<sha16>.swarm.part`; its index goes
 * into the resume file `.treeshare-<tag>-<sha16>.swarm.json` next to it. A
 * holder that sends a bad piece, leaves or stalls is dropped and its
 * outstanding pieces go to the others. When every holder is gone, the
 * download fails (`all-holders-gone`) and keeps what it verified. A later
 * download of the same file resumes: pieces listed in the resume file are
 * re-read and re-verified on disk before they count.
 *
 * The whole file is hashed again from disk, fsynced, and only then linked
 * under its final name (never overwriting one), as single-source downloads do.
 * That second hash runs on a worker thread (hash-pool.ts), fed in file order
 * with pieces read back from the partial once they are verified and written;
 * the main thread does what the offer path does (receive, one hash, write).
 * With `pieceThreads`, pieces are verified and written on workers too.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { OpDeadline, type Clock, type TimerHandle } from '../clock.ts';
import { describeError, RemoteProtocolError, RemoteRefusedError, TransferError, TreeshareError } from '../errors.ts';
import { MAX_PIECES, PROTOCOL_VERSION, type Hit, type Message, type PeerRef } from '../protocol/messages.ts';
import type { Connection } from '../transport/connection.ts';
import type { Transport } from '../transport/transport.ts';
import { assertName, shareRoot } from './jail.ts';
import { createFresh, linkOwn, openDir, openRegular } from './share-fs.ts';
import { checkManifest, pieceBufferBytes, pieceCount, pieceLength, sameFile, sameManifest, type Manifest } from './manifest.ts';
import { backoffDelays } from '../backoff.ts';
import { FANOUT_WINDOW_MS, FanoutGovernor, type FanoutAction, type FanoutOptions } from './swarm-fanout.ts';
import { hashPool, type HashBackend, type WholeHash } from './hash-pool.ts';
import { freeBytes, MIN_RATE_BYTES_PER_SEC, ProgressFloor, tempName, type TransferMetrics } from './receive.ts';

export interface SwarmDownloadOptions {
  transport: Transport;
  clock: Clock;
  shareDir: string;
  self: PeerRef;
  localHost?: string;
  name: string;
  hits: Hit[];
  /** Most holders used at once. Default 8. */
  maxSources?: number;
  /**
   * Pieces requested ahead on each link. Default (undefined or 0): per link, enough to
   * cover its bandwidth-delay product (see linkDepth), at least 2.
   */
  depth?: number;
  signal?: AbortSignal;
  /** A holder with requests outstanding and no byte for this long is dropped, ms. Default 15,000. */
  idleTimeoutMs?: number;
  /** Wait for a manifest this long (re-armed while the holder reports hashing progress), ms. Default 10,000. */
  manifestTimeoutMs?: number;
  /**
   * Minimum progress (docs/SWARM.md, "Faults"): a holder with pieces asked (or still hashing for
   * its manifest) that delivers fewer than this many bytes per second over a window of
   * `rateWindowMs` is dropped (`too-slow`), so a trickle that keeps resetting the idle timer
   * cannot hold a download. Default MIN_RATE_BYTES_PER_SEC (1 KiB/s); 0: no floor.
   */
  minRateBytesPerSec?: number;
  /** The window of `minRateBytesPerSec`, ms. Default twice `idleTimeoutMs` (30 s). */
  rateWindowMs?: number;
  /**
   * A holder that answers `busy` (its upload slots are full) is asked again with backoff (250 ms,
   * doubling, at most 4 s apart) for this long before it is dropped, ms. Default 120,000.
   */
  busyRetryMs?: number;
  maxFileBytes?: number;
  fsync?: boolean;
  /** Names the partial and resume files (the peer id). */
  tmpTag: string;
  onProgress?: (bytes: number, size: number) => void;
  onResume?: (r: { name: string; pieces: number; of: number; bytes: number; percent: number }) => void;
  log?: (level: 'info' | 'warn', message: string) => void;
  /**
   * Use only as many sources as the requester can absorb (swarm-fanout.ts; docs/SWARM.md,
   * "Adaptive number of sources"). Default true; false: every source all the time; an object:
   * the governor's thresholds.
   */
  adaptive?: boolean | FanoutOptions;
  /**
   * The requester's load signal for `adaptive`: called once per governor window, returns the
   * load (0–1) since the previous call, or undefined (no signal: nothing is parked). Default on
   * the real clock: requesterLoad() (event-loop utilisation capped by the process's CPU share);
   * none on a simulated clock (real-time load says nothing about simulated time).
   */
  loadSignal?: () => number | undefined;
  /**
   * Where the whole-file hash runs (and, with `pieceThreads`, pieces are verified and written;
   * hash-pool.ts): worker threads (the default on the real clock: the process's HashPool), or
   * false: on this thread, fed as pieces land (the default on a simulated clock, whose time
   * says nothing about worker threads). Tests inject a wrapper to delay or fail verifications.
   */
  hashing?: HashBackend | false;
  /**
   * Verify and write each piece on a `hashing` worker too, not on this thread as it lands.
   * Default false: on the 2-core VM this was measured on, it cost 0.3-0.5 ms of CPU per MB more
   * in all than hashing a piece on this thread right after it arrived (cross-core, cache-cold
   * hashing; more slow page-cache writes from several writer threads), and the download was
   * bound by the machine's total CPU (docs/SWARM.md, "Hashing off the main thread").
   */
  pieceThreads?: boolean;
  /**
   * The whole-file hash goes to the worker when at least this many bytes are left to fetch, or
   * when the worker already runs (it stays up for the process). Default 128 MiB: starting it
   * costs ~65 ms of CPU, what hashing ~85 MB costs; below that the hash runs here.
   */
  wholeThreadMinBytes?: number;
}

/**
 * The requester's load since the previous call: the event loop's utilisation
 * (performance.eventLoopUtilization), capped by the process's CPU share over the same time
 * (process.cpuUsage ÷ wall time). ELU alone counts time the loop had work but the machine ran
 * other processes as busy: on a loaded machine a requester taking 20 MB/s from each of 8 capped
 * holders showed 0.91 ELU at 0.48 of a core (5.7 ms/MB × 85 MB/s), and parking a holder then
 * only loses its uplink. Saturated means: the loop never waits and its thread runs flat out.
 */
export function requesterLoad(): () => number {
  let prevElu = performance.eventLoopUtilization();
  let prevCpu = process.cpuUsage();
  let prevAt = performance.now();
  return () => {
    const elu = performance.eventLoopUtilization();
    const cpu = process.cpuUsage();
    const at = performance.now();
    const u = performance.eventLoopUtilization(elu, prevElu).utilization;
    const wallUs = Math.max(1, (at - prevAt) * 1000);
    const share = (cpu.user - prevCpu.user + cpu.system - prevCpu.system) / wallUs;
    prevElu = elu;
    prevCpu = cpu;
    prevAt = at;
    return Math.max(0, Math.min(u, share, 1));
  };
}

export interface SourceReport {
  id: string;
  pieces: number;
  bytes: number;
  /** Why this holder was dropped, if it was. */
  dropped?: string;
  /** Parked (no new pieces asked) when the download ended. */
  parked?: boolean;
}

/** What the adaptive number of sources did (swarm-fanout.ts). */
export interface FanoutReport {
  /** Sources parked (trials), unparked (failed trials, spare capacity, faults), trials undone because the rate fell. */
  parks: number;
  unparks: number;
  failedTrials: number;
  /** Governor windows run; 0 when off (one source, simulated clock, adaptive false). */
  windows: number;
  /** The requester's mean load over those windows (0–1: event-loop use capped by CPU share, requesterLoad; 0 when off). */
  utilisation: number;
}

export interface SwarmMetrics extends Omit<TransferMetrics, 'verified' | 'readPath'> {
  verified: true;
  /** `fast` when every holder that sent pieces was read into a reused buffer (plain TCP). */
  readPath: TransferMetrics['readPath'];
  holder: PeerRef;
  sources: SourceReport[];
  pieceSize: number;
  pieces: number;
  /** Pieces found verified on disk from an earlier, interrupted download. */
  resumedPieces: number;
  resumedBytes: number;
  /** Bytes received in all (including those thrown away). */
  bytesReceived: number;
  /** Bytes received but not kept: partial pieces of dropped holders, end-game duplicates, bad pieces. */
  bytesWasted: number;
  /** Pieces that failed verification. */
  badPieces: number;
  /** Bytes of pieces that were outstanding at holders when they were dropped. */
  bytesOutstandingLost: number;
  /** Whole pieces received twice (end-game copies that lost the race). Part of bytesWasted. */
  bytesDuplicate: number;
  fanout: FanoutReport;
}

/** Resume file: untrusted on load (zod, size limit); pieces listed are re-verified on disk. */
const ResumeFile = z.strictObject({
  v: z.literal(1),
  name: z.string().min(1).max(1024),
  manifest: z.strictObject({
    size: z.number().int().min(0).max(2 ** 53 - 1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    pieceSize: z.number().int().min(1024).max(2 ** 40),
    pieces: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(MAX_PIECES),
  }),
  have: z.array(z.number().int().min(0).max(MAX_PIECES - 1)).max(MAX_PIECES),
});
const MAX_RESUME_FILE_BYTES = 256 * 1024;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const partialRe = (tag: string) => new RegExp(`^\\.treeshare-${escapeRe(tag)}-([0-9a-f]{16})\\.swarm\\.(part|json)$`);
const partName = (tag: string, sha: string) => `.treeshare-${tag}-${sha.slice(0, 16)}.swarm.part`;
const stateName = (tag: string, sha: string) => `.treeshare-${tag}-${sha.slice(0, 16)}.swarm.json`;

function writeAll(fd: number, b: Buffer, at: number): void {
  for (let off = 0; off < b.length; ) off += fs.writeSync(fd, b, off, b.length - off, at + off);
}

/** Partials being written by this process (two downloads of one file never share one). */
const active = new Set<string>();

async function readResume(file: string): Promise<z.infer<typeof ResumeFile> | null> {
  let fh: fsp.FileHandle | undefined;
  try {
    // Never blocking (a FIFO under this name), regular files only (share-fs.ts).
    const { handle, st } = await openRegular(file);
    fh = handle;
    if (st.size > MAX_RESUME_FILE_BYTES) return null;
    const r = ResumeFile.safeParse(JSON.parse(await fh.readFile('utf8')));
    if (!r.success || checkManifest({ name: r.data.name, ...r.data.manifest }) !== null) return null;
    return r.data;
  } catch {
    return null;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Is a resumable partial of `name` here (this peer's, with a valid resume file)? */
export async function hasPartial(dir: string, tag: string, name: string): Promise<boolean> {
  const re = partialRe(tag);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return false;
  }
  for (const n of names) {
    const m = re.exec(n);
    if (!m || m[2] !== 'json') continue;
    const r = await readResume(path.join(dir, n));
    if (r && r.name === name && r.manifest.sha256.startsWith(m[1]!)) return true;
  }
  return false;
}

/**
 * Removes this peer's swarm partials (and their resume files) not advanced for
 * `maxAgeMs`, and halves of a pair whose other half is missing; and anything
 * under those names that is not a regular file or a folder (a symlink, a FIFO:
 * the entry itself, never what it points to). Returns the names removed.
 */
export async function sweepPartials(dir: string, tag: string, maxAgeMs: number): Promise<string[]> {
  const re = partialRe(tag);
  const groups = new Map<string, Set<string>>();
  const removed: string[] = [];
  for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
    const m = re.exec(ent.name);
    if (!m || ent.isDirectory()) continue;
    if (!ent.isFile()) {
      await fsp.unlink(path.join(dir, ent.name)).then(() => removed.push(ent.name), () => undefined);
      continue;
    }
    const g = groups.get(m[1]!) ?? new Set();
    g.add(m[2]!);
    groups.set(m[1]!, g);
  }
  for (const [sha, kinds] of groups) {
    const names = [...kinds].map((k) => `.treeshare-${tag}-${sha}.swarm.${k}`);
    let stale = kinds.size < 2;
    if (!stale) {
      try {
        stale = Date.now() - (await fsp.lstat(path.join(dir, names.find((n) => n.endsWith('.json'))!))).mtimeMs > maxAgeMs;
      } catch {
        stale = true;
      }
    }
    if (!stale) continue;
    for (const n of names) {
      await fsp.rm(path.join(dir, n), { force: true }).catch(() => undefined);
      removed.push(n);
    }
  }
  return removed;
}

interface Source {
  hit: Hit;
  conn?: Connection;
  /** The manifest this holder sent (its own: piece hashes may differ from the one in use, see `standby`). */
  manifest?: Manifest;
  /**
   * Sent a manifest of the same file (size, SHA-256) whose piece hashes disagree with the one in
   * use: not asked for pieces, its connection closed; the holders of the manifest in use are
   * liars if the whole file fails (then a next round uses these; docs/SWARM.md, "Liars").
   */
  standby?: boolean;
  /** Waiting to ask a busy holder again (its timer), and when it first answered busy. */
  retry?: TimerHandle;
  busySince?: number;
  busyDelays?: Iterator<number>;
  /** Bytes the holder reported hashed for its manifest (`hashing`). */
  hashed?: number;
  /** Minimum progress (pieces asked, or hashing for its manifest). */
  floor: ProgressFloor;
  queue: number[];
  buf?: Buffer;
  got: number;
  lastData: number;
  pieces: number;
  bytes: number;
  gone: boolean;
  dropped?: string;
  /** Reads land in a reused buffer (plain TCP). */
  fast?: boolean;
  /** Round trip estimate (the connect), ms. */
  rttMs: number;
  /** Parked by the governor: finishes its outstanding pieces, is asked for no new ones. */
  parked: boolean;
  /** Piece buffers of this link free again (their verification and write answered); with `slots` allocated in all. */
  free: Buffer[];
  slots: number;
}

/** Link rate the default pipeline depth is sized for, bytes/s. */
const DEPTH_RATE = 100e6;
const MAX_DEPTH = 16;

/**
 * Pieces asked ahead on a link by default: one being sent, plus those queued behind it:
 * at least one (so the holder never waits for the next want on a fast local link), and
 * enough to cover the bandwidth-delay product of a link of DEPTH_RATE at this RTT
 * (1 MiB pieces at 50 ms: 5 queued, depth 6). More than needed only fills socket buffers (measured on loopback, 4 holders
 * unshaped: depth 4 cost more CPU per MB than 2 and was slower).
 */
export function linkDepth(rttMs: number, pieceSize: number): number {
  const inFlight = ((Math.max(0, rttMs) / 1000) * DEPTH_RATE) / pieceSize;
  return Math.min(MAX_DEPTH, 1 + Math.max(1, Math.ceil(inFlight)));
}

/**
 * Where a plain TCP piece link reads bytes nobody asked for (none asked yet, or past the last
 * piece asked): they only prove the holder wrong (too-long), so one small buffer shared by
 * every link of every download (reads land and are handled one at a time, synchronously).
 */
let strayBuf: Buffer | undefined;
const STRAY_READ_BYTES = 16 * 1024;

/**
 * Piece buffers per link when pieces are verified off the main thread: one filling, the others
 * waiting for their verification and write (bounded: 2-8, at most 8 MiB per link unless a piece
 * is larger than 4 MiB). With every buffer of a link busy, the piece that just landed is verified
 * and written on the main thread instead (backpressure without pausing the socket). Measured
 * (harness, 256 MiB, k=1 and k=4, load 3-3.5): with 4 buffers of 1 MiB, 48-198 of 256 pieces
 * went that way; with 8, 30-41 (up to 187 in runs where page-cache writes were slow).
 */
const SLOT_BYTES = 8 * 1024 * 1024;
const WHOLE_THREAD_MIN_BYTES = 128 * 1024 * 1024;
export const slotsPerLink = (pieceSize: number) => Math.max(2, Math.min(8, Math.floor(SLOT_BYTES / pieceSize)));

/**
 * A round cannot finish on the manifest in use, and `reserve` holders sent the same file (size,
 * SHA-256) with other piece hashes: `hash-mismatch`, the whole file failed its SHA-256 although
 * every piece verified against the manifest in use, so its piece hashes are a lie (its holders,
 * `leftOut`, are liars); `all-holders-gone`, every holder of the manifest in use is gone
 * (docs/SWARM.md, "Liars").
 */
class SwitchManifestError extends TransferError {
  constructor(code: 'hash-mismatch' | 'all-holders-gone', message: string, readonly leftOut: SourceReport[], readonly reserve: number, readonly received: number) {
    super(code, message);
  }
}

/**
 * Downloads `o.name` from the holders in `o.hits` (a round, swarmRound). When the file fails its
 * whole-file hash and some holders sent the same file (size, SHA-256) with other piece hashes,
 * the holders of the manifest in use lied: they are left out and the download starts again from
 * the others, at most once per distinct manifest.
 */
export async function swarmDownload(o: SwarmDownloadOptions): Promise<SwarmMetrics> {
  const leftOut: SourceReport[] = [];
  let wasted = 0;
  for (;;) {
    const out = new Set(leftOut.map((l) => l.id));
    try {
      const r = await swarmRound({ ...o, hits: o.hits.filter((h) => !out.has(h.id)) });
      if (!leftOut.length) return r;
      return { ...r, sources: [...leftOut, ...r.sources], bytesReceived: r.bytesReceived + wasted, bytesWasted: r.bytesWasted + wasted };
    } catch (err) {
      if (!(err instanceof SwitchManifestError)) throw err;
      leftOut.push(...err.leftOut);
      wasted += err.received;
      if (err.reserve === 0) throw new TransferError(err.code as 'hash-mismatch', err.message);
      o.log?.('warn', `${o.name}: ${err.message}; again from the ${err.reserve} holder(s) whose manifest disagreed`);
    }
  }
}

async function swarmRound(o: SwarmDownloadOptions): Promise<SwarmMetrics> {
  assertName(o.name);
  const clock = o.clock;
  const root = await shareRoot(o.shareDir);
  const final = path.join(root, o.name);
  const maxSources = Math.max(1, o.maxSources ?? 8);
  const fixedDepth = o.depth && o.depth > 0 ? Math.floor(o.depth) : 0;
  const depthOf = (s: Source) => fixedDepth || linkDepth(s.rttMs, manifest!.pieceSize);
  const idleMs = o.idleTimeoutMs ?? 15_000;
  const manifestMs = o.manifestTimeoutMs ?? 10_000;
  const durable = o.fsync ?? true;
  const minRate = o.minRateBytesPerSec ?? MIN_RATE_BYTES_PER_SEC;
  const rateMs = o.rateWindowMs ?? 2 * idleMs;
  const busyMs = o.busyRetryMs ?? 120_000;
  const log = o.log ?? (() => undefined);
  const t0 = clock.now();

  // Earlier partials of this name (resume candidates), by whole-file hash.
  const candidates = new Map<string, z.infer<typeof ResumeFile>>();
  const re = partialRe(o.tmpTag);
  for (const n of await fsp.readdir(root)) {
    const m = re.exec(n);
    if (!m || m[2] !== 'json') continue;
    const r = await readResume(path.join(root, n));
    if (r && r.name === o.name && r.manifest.sha256.startsWith(m[1]!)) candidates.set(r.manifest.sha256, r);
  }

  const seen = new Set<string>([o.self.id]);
  const hits = o.hits.filter((h) => !seen.has(h.id) && (seen.add(h.id), true)).slice(0, maxSources);
  if (hits.length === 0) throw new TransferError('all-holders-gone', `no holder of ${o.name} other than this peer`);

  let manifest: Manifest | undefined;
  let n = 0;
  let have: Uint8Array = new Uint8Array(0);
  let haveCount = 0;
  let haveBytes = 0;
  const copies: number[] = [];
  let ready: Promise<void> | undefined;
  let fd = -1;
  let tmp = '';
  /** Where the partial is: `tmp`, or a fresh name when something that cannot be replaced holds `tmp`. */
  let partFile = '';
  let statePath = '';
  let resumedPieces = 0;
  let resumedBytes = 0;
  let bytesReceived = 0;
  let keptBytes = 0;
  let badPieces = 0;
  let bytesOutstandingLost = 0;
  let bytesDuplicate = 0;
  let tFirst = 0;
  let settled = false;
  const reasons: string[] = [];
  const sources: Source[] = hits.map((hit) => ({ hit, queue: [], got: 0, lastData: clock.now(), pieces: 0, bytes: 0, gone: false, rttMs: 0, parked: false, free: [], slots: 0, floor: new ProgressFloor(minRate, rateMs, clock.now(), 0) }));
  const hasher: HashBackend | undefined = o.hashing === false ? undefined : (o.hashing ?? (clock.kind === 'real' ? hashPool() : undefined));
  const pieceHasher = o.pieceThreads ? hasher : undefined;
  // Verifications (and writes) in flight off the main thread, and how many per piece.
  const jobs = new Set<Promise<void>>();
  let verifying: Uint8Array = new Uint8Array(0);
  /** A piece buffer: shared memory when a worker reads it in place. */
  const newSlot = (): Buffer => {
    // The largest piece: a one-piece file's piece size may be larger than the file (checkManifest bounds it).
    const size = pieceBufferBytes(manifest!);
    return pieceHasher ? Buffer.from(new SharedArrayBuffer(size)) : Buffer.allocUnsafe(size);
  };
  /** The link's current piece buffer, made on its first piece. */
  const bufOf = (s: Source): Buffer => {
    if (!s.buf) {
      s.buf = newSlot();
      s.slots++;
    }
    return s.buf;
  };

  let resolveDone!: () => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  done.catch(() => undefined);
  const settle = (err?: Error) => {
    if (settled) return;
    settled = true;
    // Complete: what links were still receiving are copies of pieces already verified (end-game).
    if (!err) for (const s of sources) if (!s.gone) bytesDuplicate += s.got;
    for (const s of sources) {
      clock.clearTimeout(s.retry);
      if (s.gone) continue;
      s.gone = true;
      s.conn?.destroy();
    }
    if (err) rejectDone(err);
    else resolveDone();
  };

  const live = () => sources.filter((s) => !s.gone);
  /** What counts as progress for the minimum rate: piece bytes received, and hashing reported before the manifest. */
  const progressOf = (s: Source) => s.bytes + (s.hashed ?? 0);
  const reportOf = (s: Source): SourceReport => ({ id: s.hit.id, pieces: s.pieces, bytes: s.bytes, ...(s.dropped ? { dropped: s.dropped } : {}), ...(s.parked && !s.dropped ? { parked: true } : {}) });
  const checkAlive = () => {
    // Pieces still being verified may yet count (and a bad one needs a holder): decided when they answer.
    if (settled || live().length > 0 || jobs.size > 0) return;
    const got = manifest ? ` (kept ${haveCount} of ${n} verified pieces for a later resume)` : '';
    const msg = `every holder of ${o.name} failed or left${got}: ${reasons.join('; ')}`;
    const reserve = sources.filter((s) => s.standby).length;
    if (reserve) settle(new SwitchManifestError('all-holders-gone', msg, sources.filter((s) => !s.standby).map(reportOf), reserve, bytesReceived));
    else settle(new TransferError('all-holders-gone', msg));
  };

  const drop = (s: Source, why: string) => {
    if (s.gone) return;
    s.gone = true;
    s.dropped = why;
    clock.clearTimeout(s.retry);
    reasons.push(`${s.hit.id}: ${why}`);
    if (manifest) {
      for (const i of s.queue) {
        release(i);
        bytesOutstandingLost += pieceLength(manifest, i);
      }
    }
    s.queue = [];
    s.conn?.destroy();
    if (!settled) log('warn', `dropped ${s.hit.id} from the download of ${o.name}: ${why}`);
    checkAlive();
    if (!settled && governor) apply(governor.onDrop(views()));
    if (!settled) for (const x of live()) fill(x);
  };

  let completed = false;
  // Whole-file SHA-256 of the bytes written, fed in file order: a piece landing at the front
  // is hashed from memory, pieces that landed ahead of it are read back from the partial.
  const whole = createHash('sha256');
  // Off the main thread (chosen at setup): the pool's worker reads every piece back from the partial, in order.
  let wholeOff: WholeHash | undefined;
  let wholeDigested = false;
  let wholeNext = 0;
  // Pieces that landed ahead of the hash front are read back from the partial (page cache)
  // when the front reaches them; none is kept in memory. Each link fills one piece buffer of
  // its own, reused for every piece it receives. Measured at k=4 unshaped (64 MiB, load 5-7):
  // fresh 1 MiB buffers for pieces kept ahead (the code before) cost 90-250 page faults/MB and
  // 4-11 ms of CPU/MB; a fixed set with 4 MiB kept ahead 38 faults/MB, 3.1-3.7 ms/MB; none
  // kept (read back) 22 faults/MB, 3.1-3.4 ms/MB. Copies into a rotating set of buffers are
  // cache-cold; the read-back goes into one buffer.
  // One buffer for every read-back of this download, not a fresh one per call.
  let scratch: Buffer | undefined;
  const advanceWhole = (landedAt: number, buf: Buffer | undefined): void => {
    const m = manifest!;
    while (wholeNext < n && have[wholeNext]) {
      const len = pieceLength(m, wholeNext);
      if (wholeOff) wholeOff.feed(fd, wholeNext * m.pieceSize, len);
      else if (wholeNext === landedAt && buf) whole.update(buf);
      else {
        scratch ??= Buffer.allocUnsafe(m.pieceSize);
        let off = 0;
        while (off < len) {
          const r = fs.readSync(fd, scratch, off, len - off, wholeNext * m.pieceSize + off);
          if (r === 0) throw new TransferError('truncated', `partial of ${o.name} is shorter than its verified pieces`);
          off += r;
        }
        whole.update(scratch.subarray(0, len));
      }
      wholeNext++;
    }
  };
  // The resume file is updated after every verified piece, synchronously and before the piece
  // is reported, so a crash (even SIGKILL) loses none of the reported pieces. It is written
  // whole once (manifest, then the list of verified pieces); later updates rewrite only the
  // list, in place, with one positional write: the list only grows during a download, so the
  // new text covers the old. (A rename per piece was measured at ~4 ms on ext4: renaming
  // over a file makes the kernel flush the new one.) A torn or unreadable resume file only
  // costs the resume, never a byte: the pieces it lists are re-hashed before they count.
  let stateFd = -1;
  let stateHandle: fsp.FileHandle | undefined;
  let stateHead = '';
  let saveFailed = false;
  const saveState = () => {
    if (!manifest || completed || stateFd < 0) return;
    const m = manifest;
    const list: number[] = [];
    for (let i = 0; i < n; i++) if (have[i]) list.push(i);
    const tail = `,"have":[${list.join(',')}]}`;
    try {
      if (!stateHead) {
        // A new, empty file of ours (setup).
        stateHead = JSON.stringify({ v: 1, name: o.name, manifest: { size: m.size, sha256: m.sha256, pieceSize: m.pieceSize, pieces: m.pieces } }).slice(0, -1);
        writeAll(stateFd, Buffer.from(stateHead + tail), 0);
      } else writeAll(stateFd, Buffer.from(tail), Buffer.byteLength(stateHead));
      saveFailed = false;
    } catch (err) {
      if (!saveFailed) log('warn', `cannot save the resume state of ${o.name}: ${describeError(err)}`);
      saveFailed = true;
    }
  };
  const closeState = async () => {
    const h = stateHandle;
    stateHandle = undefined;
    stateFd = -1;
    await h?.close().catch(() => undefined);
  };

  // Lowest piece neither verified nor asked for; every piece below it is one of those.
  let nextFree = 0;
  /** One request of piece `i` is over (landed, or its holder dropped); unverified, it may be asked again. */
  function release(i: number): void {
    copies[i]!--;
    if (i < nextFree) nextFree = i;
  }
  // Set once every piece is verified or asked for: idle links may then duplicate (end-game).
  let endGame = false;
  const pick = (s: Source): number | undefined => {
    while (nextFree < n && (have[nextFree] || copies[nextFree]! > 0)) nextFree++;
    if (nextFree < n) return nextFree;
    endGame = true;
    // End-game: an idle link takes a piece still in flight elsewhere (at most two copies).
    if (s.queue.length > 0) return undefined;
    for (let i = 0; i < n; i++) if (!have[i] && copies[i]! < 2 && !verifying[i] && !s.queue.includes(i)) return i;
    return undefined;
  };

  function fill(s: Source): void {
    if (s.gone || s.parked || s.standby || settled || !manifest || !s.conn || fd < 0) return;
    const asked: number[] = [];
    const depth = depthOf(s);
    while (s.queue.length < depth) {
      const i = pick(s);
      if (i === undefined) break;
      s.queue.push(i);
      copies[i]!++;
      asked.push(i);
    }
    if (asked.length) {
      if (s.queue.length === asked.length) {
        s.lastData = clock.now();
        s.floor.restart(s.lastData, progressOf(s));
      }
      s.conn.send({ t: 'want', pieces: asked });
    }
  }

  /**
   * Piece `i` from `s` is complete in `buf` (the link's current piece buffer). Off the main
   * thread (hasher): the buffer goes to a worker, which hashes it and writes it only if it
   * matches; the link goes on in another buffer of its own. The piece stays asked for (copies)
   * until the answer, so nobody asks for it again meanwhile. Without a hasher, or with every
   * buffer of the link busy: verified and written here, now.
   */
  const landed = (s: Source, i: number, buf: Buffer) => {
    const m = manifest!;
    if (have[i]) {
      release(i);
      bytesDuplicate += buf.length; // the other copy won (end-game): this one is dropped
      return;
    }
    const next = pieceHasher ? (s.free.pop() ?? (s.slots < slotsPerLink(m.pieceSize) ? (s.slots++, newSlot()) : undefined)) : undefined;
    if (pieceHasher && next) {
      const slot = s.buf!;
      s.buf = next;
      verifying[i]!++;
      const job: Promise<void> = pieceHasher.verifyWrite(buf, m.pieces[i]!, fd, i * m.pieceSize).then(
        (ok) => {
          verifying[i]!--;
          release(i);
          verified(s, i, buf, ok);
        },
        (err) => {
          verifying[i]!--;
          release(i);
          settle(new TransferError('io', `cannot write ${o.name}: ${describeError(err)}`));
        },
      ).finally(() => {
        s.free.push(slot);
        jobs.delete(job);
        if (!settled) {
          checkAlive();
          for (const x of live()) if (x.queue.length === 0) fill(x);
        }
      });
      jobs.add(job);
      return;
    }
    release(i);
    const ok = createHash('sha256').update(buf).digest('hex') === m.pieces[i];
    if (ok) {
      try {
        writeAll(fd, buf, i * m.pieceSize);
      } catch (err) {
        settle(new TransferError('io', `cannot write ${o.name}: ${describeError(err)}`));
        return;
      }
    }
    verified(s, i, buf, ok);
  };

  /** Piece `i` from `s` was verified (`ok`: and written whole at its offset), or failed. */
  const verified = (s: Source, i: number, buf: Buffer, ok: boolean) => {
    if (settled) {
      // Still being verified when the download ended: a copy of a piece already counted, or a bad
      // piece (counted as one: its bytes are wasted either way, and the metrics say why).
      if (!ok) badPieces++;
      else if (completed) bytesDuplicate += buf.length;
      return;
    }
    const m = manifest!;
    if (!ok) {
      badPieces++;
      drop(s, `piece ${i} failed verification (bad-piece)`);
      return;
    }
    if (have[i]) {
      bytesDuplicate += buf.length; // another copy answered first (end-game): same bytes, written twice
      return;
    }
    have[i] = 1;
    haveCount++;
    haveBytes += buf.length;
    keptBytes += buf.length;
    try {
      advanceWhole(i, buf);
    } catch (err) {
      settle(err instanceof TreeshareError ? err : new TransferError('io', `cannot read back ${o.name}: ${describeError(err)}`));
      return;
    }
    s.pieces++;
    if (!tFirst) tFirst = clock.now();
    if (haveCount === n) completed = true;
    // Saved before it is reported, and only once verified and written: a piece said to be verified is in the resume file.
    else saveState();
    o.onProgress?.(haveBytes, m.size);
    if (completed) settle();
  };

  /** Bytes `chunk[from, to)` from a holder (a view of its reused read buffer, or a 'data' chunk). */
  const onData = (s: Source, chunk: Buffer, from: number, to: number) => {
    if (s.gone || settled) return;
    const m = manifest!;
    s.lastData = clock.now();
    bytesReceived += to - from;
    s.bytes += to - from;
    let off = from;
    while (off < to && !s.gone && !settled) {
      const i = s.queue[0];
      if (i === undefined) return drop(s, 'sent bytes nobody asked for (too-long)');
      const len = pieceLength(m, i);
      const buf = bufOf(s);
      const take = Math.min(len - s.got, to - off);
      // Plain TCP reads land in place (pieceTail): nothing to copy.
      if (chunk.buffer !== buf.buffer || chunk.byteOffset + off !== buf.byteOffset + s.got) chunk.copy(buf, s.got, off, off + take);
      s.got += take;
      off += take;
      if (s.got === len) {
        s.queue.shift();
        s.got = 0;
        landed(s, i, len === buf.length ? buf : buf.subarray(0, len));
      }
    }
    if (!s.gone && !settled) {
      if (s.queue.length < depthOf(s)) fill(s);
      // A piece landing may leave other links idle in the end-game.
      if (endGame) for (const x of sources) if (x !== s && !x.gone && x.queue.length === 0) fill(x);
    }
  };

  /**
   * The buffer of a plain TCP link's next read: the unfilled part of the piece at the head of
   * its queue, in the link's piece buffer, so the kernel copies the bytes to their place (no
   * copy out of a read buffer: that copy cost 77 ms per 64 MiB at k=4 vs 7 at k=1, cache-cold
   * with 4 links interleaved). Called after every read, once the read's bytes are handled.
   */
  const pieceTail = (s: Source): Buffer => {
    const m = manifest;
    const i = s.queue[0];
    if (m && i !== undefined && !s.gone && !settled) {
      try {
        return bufOf(s).subarray(s.got, pieceLength(m, i));
      } catch (err) {
        drop(s, `its data failed here: ${describeError(err)}`);
      }
    }
    return (strayBuf ??= Buffer.allocUnsafe(STRAY_READ_BYTES));
  };

  /** First manifest: the file. Opens (or resumes) the partial. */
  const setup = async (m: Manifest) => {
    if (o.maxFileBytes !== undefined && m.size > o.maxFileBytes) {
      throw new TransferError('too-large', `${o.name} has ${m.size} bytes, larger than the ${o.maxFileBytes} bytes accepted (--max-file-bytes)`);
    }
    n = pieceCount(m);
    have = new Uint8Array(n);
    verifying = new Uint8Array(n);
    for (let i = 0; i < n; i++) copies.push(0);
    tmp = path.join(root, partName(o.tmpTag, m.sha256));
    statePath = path.join(root, stateName(o.tmpTag, m.sha256));
    if (active.has(tmp)) {
      tmp = '';
      throw new TransferError('busy', `${o.name} is already being downloaded by this peer`);
    }
    active.add(tmp);
    const prior = candidates.get(m.sha256);
    let fh: fsp.FileHandle | undefined;
    if (prior && sameManifest({ name: o.name, ...prior.manifest }, m)) {
      try {
        // Only our own regular, singly-linked file: never a FIFO, a symlink or a second name of a file elsewhere.
        fh = (await openRegular(tmp, { flags: fs.constants.O_RDWR, singleLink: true, own: true })).handle;
        // Bytes past the end would stay in the file: the pieces cover [0, size) only.
        await fh.truncate(m.size);
        // Re-verify every piece the resume file lists; only those that check out count.
        for (const i of new Set(prior.have)) {
          if (i >= n) continue;
          const len = pieceLength(m, i);
          const b = Buffer.allocUnsafe(len);
          const { bytesRead } = await fh.read(b, 0, len, i * m.pieceSize);
          if (bytesRead === len && createHash('sha256').update(b).digest('hex') === m.pieces[i]) {
            have[i] = 1;
            haveCount++;
            haveBytes += len;
          }
        }
        resumedPieces = haveCount;
        resumedBytes = haveBytes;
        const percent = m.size ? Math.floor((100 * haveBytes) / m.size) : 100;
        o.onResume?.({ name: o.name, pieces: haveCount, of: n, bytes: haveBytes, percent });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log('warn', `not resuming ${o.name} from ${path.basename(tmp)}: ${describeError(err)}`);
        await fh?.close().catch(() => undefined);
        fh = undefined;
        have.fill(0);
        haveCount = haveBytes = resumedPieces = resumedBytes = 0;
      }
    }
    partFile = tmp;
    // Else a new file, renamed over whatever has the partial's name (share-fs.ts): nothing there redirects the writes.
    if (!fh) ({ handle: fh, path: partFile } = await createFresh(tmp, path.join(root, tempName(o.tmpTag))));
    fd = fh.fd;
    fdHandle = fh;
    const free = await freeBytes(root);
    if (m.size - haveBytes > free) throw new TransferError('no-space', `not enough disk space (${m.size - haveBytes} bytes still needed, ${free} free)`);
    try {
      ({ handle: stateHandle, path: statePath } = await createFresh(statePath, path.join(root, tempName(o.tmpTag))));
      stateFd = stateHandle.fd;
    } catch (err) {
      log('warn', `cannot save the resume state of ${o.name}: ${describeError(err)}`);
    }
    manifest = m;
    if (hasher && (hasher.wholeRunning || m.size - haveBytes >= (o.wholeThreadMinBytes ?? WHOLE_THREAD_MIN_BYTES))) wholeOff = hasher.whole();
    advanceWhole(-1, undefined);
    saveState();
    startGovernor();
    if (haveCount === n) {
      completed = true;
      settle();
    }
  };
  let fdHandle: fsp.FileHandle | undefined;

  /** The first manifest that passed its checks: it names the file (size, SHA-256); set before setup answers. */
  let defining: Manifest | undefined;
  const onManifest = (s: Source, m: Manifest) => {
    const bad = checkManifest(m);
    if (bad) return drop(s, `bad-manifest: ${bad}`);
    s.manifest = m;
    if (!defining) {
      defining = m;
      ready = setup(m);
      ready.catch((err) => settle(err instanceof Error ? err : new TransferError('io', String(err))));
    } else if (!sameFile(defining, m)) {
      return drop(s, `offers another version of ${o.name} (SHA-256 ${m.sha256.slice(0, 12)}…, ${m.size} bytes)`);
    } else if (!sameManifest(defining, m)) {
      // Same file, other piece hashes: one of the two manifests lies. Kept in reserve (docs/SWARM.md, "Liars").
      s.standby = true;
      s.gone = true;
      s.dropped = `its piece hashes disagree with the manifest in use (kept in reserve, not used)`;
      s.conn?.destroy();
      log('warn', `${s.hit.id} sent other piece hashes for ${o.name} than the manifest in use; kept in reserve`);
      return checkAlive();
    }
    void ready!.then(() => fill(s), () => undefined);
  };

  /** Runs a handler of `s`'s data: whatever it throws is that holder's fault (dropped), never the process's. */
  const guarded = (s: Source, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      drop(s, `its data failed here: ${describeError(err)}`);
    }
  };

  /** `s` answered busy: asked again after a backoff delay while within `busyRetryMs`, else dropped. */
  const onBusy = (s: Source, conn: Connection, message: string) => {
    const now = clock.now();
    s.busySince ??= now;
    s.busyDelays ??= backoffDelays({ first: 250, factor: 2, max: 4000 });
    s.conn = undefined;
    conn.destroy();
    const d = s.busyDelays.next();
    if (d.done || now + d.value - s.busySince > busyMs) return drop(s, `still busy after ${now - s.busySince} ms: ${message} [busy]`);
    log('info', `${s.hit.id} is busy (${message}); asking again in ${d.value} ms`);
    s.retry = clock.setTimeout(() => void startSource(s), d.value);
  };

  /** Why a holder's connection closed, from the error it closed with (ours on a protocol violation). */
  const closeReason = (err: Error | undefined, before: boolean): string => {
    if (err instanceof RemoteProtocolError) return before ? `bad-manifest: ${err.message} [${err.code}]` : `protocol violation: ${describeError(err)}`;
    if (err instanceof TreeshareError && err.code === 'internal') return `its data failed here: ${err.message}`;
    return `connection closed (holder left or crashed)${err ? `: ${err.message}` : ''}`;
  };

  const startSource = async (s: Source) => {
    s.retry = undefined;
    let conn: Connection;
    const tc = clock.now();
    const connecting = new OpDeadline(clock, manifestMs, o.signal);
    try {
      conn = await o.transport.connect(s.hit, { signal: connecting.signal, localHost: o.localHost });
    } catch (err) {
      return drop(s, `cannot connect: ${describeError(err)}`);
    } finally {
      connecting.done();
    }
    // A TCP connect takes one round trip: the link's RTT estimate, for its pipeline depth.
    s.rttMs = clock.now() - tc;
    if (s.gone || settled) return conn.destroy();
    s.conn = conn;
    s.floor.restart(clock.now(), progressOf(s));
    let gotManifest = false;
    let protocolErr: Error | undefined;
    let lastHashed = -1;
    let hashSize = -1;
    let timer: TimerHandle | undefined;
    conn.on('protocol-error', (e) => (protocolErr ??= e));
    conn.on('close', (err) => {
      clock.clearTimeout(timer);
      // An earlier connection of a holder asked again after `busy` is no reason to drop it.
      if (s.conn === conn) drop(s, closeReason(err ?? protocolErr, !gotManifest));
    });
    const arm = () => {
      clock.clearTimeout(timer);
      timer = clock.setTimeout(() => drop(s, `no manifest within ${manifestMs} ms (timeout)`), manifestMs);
    };
    arm();
    const violation = (what: string) => {
      conn.fail(new RemoteProtocolError('bad-message', what));
      drop(s, `protocol violation: ${what} [bad-message]`);
    };
    const onMsg = (msg: Message) => {
      if (msg.t === 'hashing') {
        // Progress towards a manifest: bounded by the size it names, never backwards, one size throughout.
        if (msg.hashed > msg.size) return violation(`hashing: ${msg.hashed} of ${msg.size} bytes`);
        if (hashSize >= 0 && msg.size !== hashSize) return violation(`hashing: size changed from ${hashSize} to ${msg.size} bytes`);
        if (msg.hashed < lastHashed) return violation(`hashing: went back from ${lastHashed} to ${msg.hashed} bytes`);
        if (o.maxFileBytes !== undefined && msg.size > o.maxFileBytes) return drop(s, `hashing a file of ${msg.size} bytes, larger than the ${o.maxFileBytes} bytes accepted (too-large)`);
        // The minimum-progress window starts with the first report.
        if (hashSize < 0) s.floor.restart(clock.now(), progressOf(s));
        hashSize = msg.size;
        if (msg.hashed > lastHashed) {
          lastHashed = msg.hashed;
          s.hashed = msg.hashed;
          arm();
        }
        return;
      }
      clock.clearTimeout(timer);
      conn.off('message', listener);
      if (msg.t === 'error') {
        const e = new RemoteRefusedError(msg.code, msg.message);
        if (e.remoteCode === 'busy') return onBusy(s, conn, msg.message);
        return drop(s, `${msg.message} [${e.remoteCode}]`);
      }
      if (msg.t !== 'manifest') {
        conn.fail(new RemoteProtocolError('unexpected-message', `expected manifest, got "${msg.t}"`));
        return drop(s, `sent "${msg.t}" instead of a manifest`);
      }
      gotManifest = true;
      s.busySince = s.busyDelays = undefined;
      if (msg.name !== o.name) return drop(s, `bad-manifest: for another name`);
      // From here the holder sends raw piece bytes only (in the order asked).
      // Plain TCP: every read lands straight in the free tail of the piece this link is filling
      // (Connection.rawInto with a buffer function; bytes that came in the manifest's own read
      // follow through it too, once this handler returns); other links deliver 'data' chunks.
      let rest = conn.rawInto(() => pieceTail(s), (k, b) => guarded(s, () => onData(s, b, 0, k)));
      if (rest) s.fast = true;
      else {
        conn.on('data', (b: Buffer) => guarded(s, () => onData(s, b, 0, b.length)));
        rest = conn.raw();
      }
      if (rest.length) onData(s, rest, 0, rest.length);
      onManifest(s, { name: o.name, size: msg.size, sha256: msg.sha256, pieceSize: msg.pieceSize, pieces: msg.pieces });
    };
    const listener = (msg: Message) => guarded(s, () => onMsg(msg));
    conn.on('message', listener);
    conn.send({ t: 'swarm-open', v: PROTOCOL_VERSION, from: o.self, name: o.name, sha256: manifest?.sha256 ?? defining?.sha256 ?? null });
  };

  // Adaptive number of sources (swarm-fanout.ts): a window on the download's clock, the requester's
  // load over it. Off with one source, without a signal (simulated clock) or adaptive false.
  const adaptive = o.adaptive ?? true;
  const signal = o.loadSignal ?? (clock.kind === 'real' ? requesterLoad() : undefined);
  const governor = adaptive !== false && signal && sources.length > 1 ? new FanoutGovernor(adaptive === true ? {} : adaptive) : undefined;
  let govTimer: TimerHandle | undefined;
  let lastTick = 0;
  const views = () => sources.map((s) => ({ bytes: s.bytes, queued: s.queue.length, gone: s.gone, parked: s.parked }));
  function apply(a: FanoutAction): void {
    if (!a || settled) return;
    if ('park' in a) {
      for (const i of a.park) sources[i]!.parked = true;
      log('info', `${o.name}: parked ${a.park.map((i) => sources[i]!.hit.id).join(', ')} (requester saturated; ${live().filter((x) => !x.parked).length} active)`);
    } else {
      for (const i of a.unpark) sources[i]!.parked = false;
      log('info', `${o.name}: unparked ${a.unpark.map((i) => sources[i]!.hit.id).join(', ')}`);
      for (const i of a.unpark) fill(sources[i]!);
    }
  }
  const startGovernor = () => {
    if (!governor || govTimer || settled) return;
    signal!();
    lastTick = clock.now();
    govTimer = clock.setInterval(() => {
      if (settled) return;
      if (endGame) {
        // Every piece is asked for: rates would only measure the last pieces' race. Parked sources
        // come back so their idle links can copy pieces still in flight (end-game).
        clock.clearInterval(govTimer);
        return apply(governor.release(views()));
      }
      const now = clock.now();
      apply(governor.tick(signal!(), now - lastTick, views()));
      lastTick = now;
    }, FANOUT_WINDOW_MS);
  };

  const onAbort = () => settle(new TransferError('aborted', `download of ${o.name} aborted (verified pieces kept for a resume)`));
  if (o.signal?.aborted) throw new TransferError('aborted', `download of ${o.name} aborted`);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  // Idle and minimum progress (docs/SWARM.md, "Faults"): a holder with pieces asked that sends
  // nothing for idleMs, or (pieces asked, or hashing for its manifest) less than minRate bytes/s
  // over a window of rateMs, is dropped. A trickle resets the idle timer, not the window.
  const idle = clock.setInterval(() => {
    const now = clock.now();
    for (const s of sources) {
      if (s.gone) continue;
      const asked = s.queue.length > 0;
      if (asked && now - s.lastData > idleMs) {
        drop(s, `no data for ${idleMs} ms with ${s.queue.length} piece(s) asked (stalled)`);
        continue;
      }
      const hashing = !s.manifest && s.hashed !== undefined && !!s.conn;
      if (!(asked || hashing)) {
        s.floor.restart(now, progressOf(s));
        continue;
      }
      const slow = s.floor.check(now, progressOf(s));
      if (slow) drop(s, `${asked ? 'sent' : 'reported hashing'} ${slow}`);
    }
  }, Math.max(10, Math.floor(Math.min(idleMs, rateMs) / 4)));

  let fsyncMs = 0;
  try {
    for (const s of sources) void startSource(s);
    await done;
    await ready;
    // Copies still being verified (end-game duplicates) write the same bytes: let them finish first.
    await Promise.allSettled([...jobs]);
    const m = manifest!;
    if (durable) {
      const ts = clock.now();
      await fdHandle!.sync();
      fsyncMs += clock.now() - ts;
    }
    // The whole file, hashed in file order from the bytes written, before it becomes visible.
    if (wholeNext !== n) throw new TransferError('io', `internal: ${wholeNext} of ${n} pieces hashed at the end of ${o.name}`);
    let sha256: string;
    if (wholeOff) {
      wholeDigested = true;
      try {
        sha256 = await wholeOff.digest();
      } catch (err) {
        throw new TransferError('truncated', `cannot hash ${o.name} back from its partial: ${describeError(err)}`);
      }
    } else sha256 = whole.digest('hex');
    if (sha256 !== m.sha256) {
      await discard();
      // Every piece verified against the manifest in use: its piece hashes are of other bytes (docs/SWARM.md, "Liars").
      const liars = sources.filter((s) => s.manifest && sameManifest(s.manifest, m)).map((s) => ({ ...reportOf(s), dropped: `lying manifest: its piece hashes do not make the file's SHA-256 (hash-mismatch)` }));
      const msg = `SHA-256 of ${o.name} does not match its manifest (got ${sha256.slice(0, 12)}…, manifest ${m.sha256.slice(0, 12)}…): the piece hashes of ${liars.map((l) => l.id).join(', ')} are false; partial removed`;
      throw new SwitchManifestError('hash-mismatch', msg, liars, sources.filter((s) => s.standby).length, bytesReceived);
    }
    // What becomes visible is exactly what was hashed: this file, of the manifest's size.
    const st = await fdHandle!.stat();
    if (st.size !== m.size) throw new TransferError('io', `partial of ${o.name} has ${st.size} bytes, not ${m.size}`);
    await fdHandle!.close();
    fdHandle = undefined;
    await linkOwn(st, partFile, final, o.name, o.shareDir);
    await discard();
    // Partials of other versions of this name: no holder offered them here; the name is taken now.
    for (const other of candidates.keys()) {
      if (other === m.sha256 || active.has(path.join(root, partName(o.tmpTag, other)))) continue;
      await fsp.rm(path.join(root, partName(o.tmpTag, other)), { force: true });
      await fsp.rm(path.join(root, stateName(o.tmpTag, other)), { force: true });
    }
    if (durable) {
      const ts = clock.now();
      const dh = await openDir(root);
      await dh.sync().finally(() => dh.close());
      fsyncMs += clock.now() - ts;
    }
    const durationMs = clock.now() - t0;
    const first = sources.find((s) => s.pieces > 0) ?? sources[0]!;
    return {
      name: o.name,
      from: sources.filter((s) => s.pieces > 0).map((s) => `${s.hit.id}@${s.hit.host}:${s.hit.port}`).join(',') || 'disk',
      bytes: m.size,
      ttfbMs: tFirst ? tFirst - t0 : durationMs,
      durationMs,
      mbps: m.size / 1e6 / Math.max(durationMs / 1000, 1e-6),
      sha256,
      verified: true,
      readPath: sources.every((s) => s.pieces === 0 || s.fast) ? 'fast' : 'stream',
      fsyncMs,
      holder: { id: first.hit.id, host: first.hit.host, port: first.hit.port },
      sources: sources.map(reportOf),
      pieceSize: m.pieceSize,
      pieces: n,
      resumedPieces,
      resumedBytes,
      bytesReceived,
      bytesWasted: bytesReceived - keptBytes,
      badPieces,
      bytesOutstandingLost,
      bytesDuplicate,
      fanout: { parks: governor?.parks ?? 0, unparks: governor?.unparks ?? 0, failedTrials: governor?.failedTrials ?? 0, windows: governor?.windows ?? 0, utilisation: Number((governor?.utilisation ?? 0).toFixed(2)) },
    };
  } catch (err) {
    if (err instanceof TreeshareError) throw err;
    throw new TransferError('io', `download of ${o.name} failed: ${describeError(err)}`);
  } finally {
    settle(new TransferError('aborted', 'download ended'));
    clock.clearInterval(idle);
    clock.clearInterval(govTimer);
    o.signal?.removeEventListener('abort', onAbort);
    await ready?.catch(() => undefined);
    // Workers write to and read from the partial's fd: every call naming it answers before it is closed.
    await Promise.allSettled([...jobs]);
    if (wholeOff && !wholeDigested) await wholeOff.close().catch(() => undefined);
    // Failed or aborted: the resume file lists every piece verified so far.
    if (!completed && manifest) saveState();
    await closeState();
    await fdHandle?.close().catch(() => undefined);
    if (tmp) active.delete(tmp);
  }

  async function discard(): Promise<void> {
    await closeState();
    await fsp.rm(partFile, { force: true });
    await fsp.rm(statePath, { force: true });
  }
}
