/**
 * Requester side of flow I (docs/PROTOCOL.md), after an offer has been accepted: ack, then take
 * exactly `size` raw bytes into a temporary hidden file inside the share
 * folder while hashing them, until the holder closes; rename into place only when the size and
 * SHA-256 match. Any failure (too few or too many bytes, hash mismatch,
 * holder gone, idle timeout, abort) removes the temporary file. The final
 * name is never overwritten: the rename is a hard link that fails if the
 * name exists, then the temporary name is removed.
 *
 * The body is read straight into one reused 1 MiB buffer when the link allows
 * it (accepted plain TCP sockets: Connection.rawInto, see
 * transport/tcp-link.ts); every read is checked against the offered size,
 * hashed and written to the file synchronously before the next read, so there
 * is no per-chunk allocation and no stream between socket, hash and file.
 * Memory, shaped and encrypted links deliver 'data' chunks, which go through
 * the same checks, hash and synchronous write. A synchronous write of 1 MiB
 * into the page cache takes well under a millisecond, so the event loop stays
 * responsive (see the bench's search-during-transfer row).
 *
 * Durable before visible: the temporary file is fsynced before it is linked
 * into place, and the folder after (so a crash never leaves a visible name
 * with missing data). Temporary files are named `.treeshare-<peer id>-<12 hex>.part`,
 * so a peer can sweep its own leftovers of a crash at start (sweepTemps).
 */
import { createHash } from 'node:crypto';
import { TransferError } from '../errors.ts';
import type { Msg } from '../protocol/messages.ts';
import type { Connection } from '../transport/connection.ts';
import { assertName } from './jail.ts';
import { FsStore, type ShareStore } from './store.ts';
import { realClock, type Clock } from '../clock.ts';

export interface ReceiveOptions {
  /** The share folder (the file-system store's), used when `store` is not given. */
  shareDir: string;
  /** Where the file lands. Default: the share folder `shareDir` (FsStore). */
  store?: ShareStore;
  signal?: AbortSignal;
  /** No byte for this long fails the transfer, ms. Default 15,000. */
  idleTimeoutMs?: number;
  /**
   * Minimum progress: fewer than this many bytes per second over a window of `rateWindowMs`
   * fails the transfer (`timeout`, too slow), so a holder trickling a byte now and then (which
   * resets the idle timer) cannot hold the download. Default MIN_RATE_BYTES_PER_SEC (1 KiB/s); 0: none.
   */
  minRateBytesPerSec?: number;
  /** The window of `minRateBytesPerSec`, ms. Default twice `idleTimeoutMs` (30 s). */
  rateWindowMs?: number;
  onProgress?: (bytes: number, size: number) => void;
  /** Names the temporary file (normally the peer id) so sweepTemps finds this peer's leftovers. */
  tmpTag?: string;
  /** fsync the file before linking it into place and the folder after. Default true. */
  fsync?: boolean;
  /**
   * Clock of the idle timeout and of every duration. Default realClock. Under
   * a SimClock the opening and closing disk work (open, fsync, link) is held,
   * so it takes no simulated time; the writes while bytes arrive are not held.
   */
  clock?: Clock;
}

export interface TransferMetrics {
  name: string;
  from: string;
  bytes: number;
  /** ack sent → first byte received, ms. */
  ttfbMs: number;
  /** ack sent → file renamed into place, ms. */
  durationMs: number;
  /** bytes / duration, MB/s (10^6 bytes). */
  mbps: number;
  sha256: string;
  verified: boolean;
  /** How the body was read: `fast` (reused buffer, TCP) or `stream` ('data' chunks). */
  readPath: 'fast' | 'stream';
  /** Time spent in fsync (file, then folder), ms; 0 when fsync is off. Included in durationMs. */
  fsyncMs: number;
}

/** Default minimum progress of a download from a holder, bytes/s (ReceiveOptions.minRateBytesPerSec; swarm.ts too). */
export const MIN_RATE_BYTES_PER_SEC = 1024;

/**
 * A minimum-progress rule over tumbling windows of `windowMs` (docs/SWARM.md, "Faults"): `check`
 * answers, once a window is over, whether at least `minRate` bytes/s came in it (then a new
 * window starts at `progress`), or how many bytes came when too few (the caller drops the holder).
 */
export class ProgressFloor {
  private from: number;
  private at: number;
  constructor(private readonly minRate: number, private readonly windowMs: number, now: number, progress: number) {
    this.from = now;
    this.at = progress;
  }

  /** Starts a new window (nothing was expected before: no request outstanding). */
  restart(now: number, progress: number): void {
    this.from = now;
    this.at = progress;
  }

  /** null: fine so far; else the reason, naming the bytes, the time and the floor. */
  check(now: number, progress: number): string | null {
    if (this.minRate <= 0 || now - this.from < this.windowMs) return null;
    const got = progress - this.at;
    if (got * 1000 < this.minRate * (now - this.from)) return `${got} bytes in ${Math.round(now - this.from)} ms, below the minimum of ${this.minRate} bytes/s (too slow)`;
    this.restart(now, progress);
    return null;
  }
}

/** Bytes per read on the fast path (the reused buffer's size). */
export const RECEIVE_BUFFER_BYTES = 1024 * 1024;

/** Longest stretch of back-to-back reads (hash + write) before other I/O gets a turn, ms. */
const YIELD_AFTER_MS = 4;

export async function receiveFile(conn: Connection, offer: Msg<'offer'>, o: ReceiveOptions): Promise<TransferMetrics> {
  assertName(offer.name);
  const clock = o.clock ?? realClock;
  const store = o.store ?? new FsStore(o.shareDir);
  const tmp = await clock.hold(store.createTemp({ tag: o.tmpTag, fsync: o.fsync ?? true }));
  // Hashing stays on this thread: a worker thread was measured (2 cores) to add CPU and
  // ~75 MB of RSS without raising throughput, as the holder's process uses the other core.
  const hash = createHash('sha256');
  const from = `${offer.from.id}@${offer.from.host}:${offer.from.port}`;
  let bytes = 0;
  let readPath: TransferMetrics['readPath'] = 'stream';
  const t0 = clock.now();
  let tFirst = 0;

  const body = new Promise<void>((resolve, reject) => {
    let settled = false;
    // Idle check: one timer ticking at a quarter of the timeout, not one re-armed per chunk.
    const idleMs = o.idleTimeoutMs ?? 15_000;
    const rateMs = o.rateWindowMs ?? 2 * idleMs;
    let lastData = clock.now();
    // A trickle resets the idle timer, not the minimum-progress window.
    const floor = new ProgressFloor(o.minRateBytesPerSec ?? MIN_RATE_BYTES_PER_SEC, rateMs, lastData, 0);
    const idle = clock.setInterval(() => {
      const now = clock.now();
      if (now - lastData > idleMs) return fail(new TransferError('timeout', `no data from ${from} for ${idleMs} ms (${bytes} of ${offer.size} bytes)`));
      const slow = bytes < offer.size ? floor.check(now, bytes) : null;
      if (slow) fail(new TransferError('timeout', `${from} sent ${slow} (${bytes} of ${offer.size} bytes)`));
    }, Math.max(10, Math.floor(Math.min(idleMs, rateMs) / 4)));
    let reported = 0;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clock.clearInterval(idle);
      conn.off('data', take);
      conn.off('close', onClose);
      o.signal?.removeEventListener('abort', onAbort);
      if (err) {
        conn.destroy();
        reject(err);
      } else resolve();
    };
    const fail = (err: Error) => finish(err);
    /** One chunk of the body (a fresh 'data' Buffer, or a view of the reused buffer). */
    const take = (b: Buffer) => {
      if (settled) return;
      if (tFirst === 0) tFirst = clock.now();
      if (bytes + b.length > offer.size) return fail(new TransferError('too-long', `${from} sent more than the ${offer.size} bytes it offered`));
      hash.update(b);
      try {
        tmp.write(b);
      } catch (e) {
        return fail(new TransferError('io', `cannot write ${offer.name}: ${(e as Error).message}`));
      }
      bytes += b.length;
      lastData = clock.now();
      if (bytes - reported >= 1024 * 1024 || bytes === offer.size) {
        reported = bytes;
        o.onProgress?.(bytes, offer.size);
      }
      // At `size` bytes, wait for the holder to close: bytes beyond the offer are caught
      // even when they arrive in a later read.
    };
    const onClose = () => {
      if (bytes < offer.size) fail(new TransferError('truncated', `${from} closed the connection after ${bytes} of ${offer.size} bytes`));
      else finish();
    };
    const onAbort = () => fail(new TransferError('aborted', `download of ${offer.name} aborted after ${bytes} of ${offer.size} bytes`));
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    conn.on('close', onClose);
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(RECEIVE_BUFFER_BYTES, offer.size + 1)));
    // libuv reads a readable socket up to 32 times in a row before polling anything else:
    // 32 MiB hashed and written without a break (tens of ms). After YIELD_AFTER_MS of
    // reading, pause and resume on the next loop turn, so other sockets (searches, joins)
    // get in between.
    // Real time on purpose: this shares the CPU between sockets; it decides nothing in the protocol.
    let turn = performance.now();
    let rest = conn.rawInto(buf, (n) => {
      take(buf.subarray(0, n));
      if (settled || performance.now() - turn < YIELD_AFTER_MS) return;
      conn.pause();
      setImmediate(() => {
        turn = performance.now();
        if (!settled) conn.resume();
      });
    });
    if (rest) readPath = 'fast';
    else {
      conn.on('data', take);
      rest = conn.raw();
    }
    conn.send({ t: 'ack' });
    if (rest.length) take(rest);
    // Closed while the offer was being accepted (the holder left): no 'close' event is coming.
    if (conn.closed) onClose();
  });

  try {
    await body;
    let fsyncMs = 0;
    try {
      fsyncMs += await clock.hold(tmp.seal());
    } catch (err) {
      throw new TransferError('io', `cannot write ${offer.name}: ${(err as Error).message}`);
    }
    const sha256 = hash.digest('hex');
    if (sha256 !== offer.sha256) throw new TransferError('hash-mismatch', `SHA-256 of ${offer.name} from ${from} does not match its offer (got ${sha256.slice(0, 12)}…, offered ${offer.sha256.slice(0, 12)}…)`);
    fsyncMs += await clock.hold(tmp.commit(offer.name, sha256));
    conn.end();
    const durationMs = clock.now() - t0;
    return { name: offer.name, from, bytes, ttfbMs: tFirst ? tFirst - t0 : durationMs, durationMs, mbps: bytes / 1e6 / Math.max(durationMs / 1000, 1e-6), sha256, verified: true, readPath, fsyncMs };
  } finally {
    await clock.hold(tmp.discard());
  }
}

// freeBytes, tempName and sweepTemps live in store.ts (the file-system store's); re-exported here.
export { freeBytes, sweepTemps, tempName } from './store.ts';
