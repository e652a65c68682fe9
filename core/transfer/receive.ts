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
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { TransferError } from '../errors.ts';
import type { Msg } from '../protocol/messages.ts';
import type { Connection } from '../transport/connection.ts';
import { assertName, shareRoot } from './jail.ts';
import { realClock, type Clock } from '../clock.ts';

export interface ReceiveOptions {
  shareDir: string;
  signal?: AbortSignal;
  /** No byte for this long fails the transfer, ms. Default 15,000. */
  idleTimeoutMs?: number;
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

/** Bytes per read on the fast path (the reused buffer's size). */
export const RECEIVE_BUFFER_BYTES = 1024 * 1024;

/** Longest stretch of back-to-back reads (hash + write) before other I/O gets a turn, ms. */
const YIELD_AFTER_MS = 4;

/** Writes all of `b` at the file's current position. */
function writeAll(fd: number, b: Buffer): void {
  let off = 0;
  while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off);
}

/** Free bytes on the file system holding `dir`, or Infinity when unknown. */
export async function freeBytes(dir: string): Promise<number> {
  try {
    const s = await fsp.statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return Infinity;
  }
}

export async function receiveFile(conn: Connection, offer: Msg<'offer'>, o: ReceiveOptions): Promise<TransferMetrics> {
  assertName(offer.name);
  const clock = o.clock ?? realClock;
  const root = await clock.hold(shareRoot(o.shareDir));
  const final = path.join(root, offer.name);
  const tmp = path.join(root, tempName(o.tmpTag));
  let fh: fsp.FileHandle | undefined = await clock.hold(fsp.open(tmp, 'wx'));
  const fd = fh.fd;
  const durable = o.fsync ?? true;
  // Durable downloads: flush written data to disk in the background every FLUSH_BYTES while
  // receiving, so the final fsync only has the tail to wait for (errors here are ignored:
  // the final fsync is the one that counts). The file is closed only once no flush is in flight.
  let flushedAt = 0;
  let flushing: Promise<void> | undefined;
  const flush = () => {
    if (!durable || flushing || bytes - flushedAt < FLUSH_BYTES) return;
    flushedAt = bytes;
    flushing = new Promise<void>((r) => fs.fdatasync(fd, () => r())).then(() => {
      flushing = undefined;
    });
  };
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
    let lastData = clock.now();
    const idle = clock.setInterval(() => {
      if (clock.now() - lastData > idleMs) fail(new TransferError('timeout', `no data from ${from} for ${idleMs} ms (${bytes} of ${offer.size} bytes)`));
    }, Math.max(10, Math.floor(idleMs / 4)));
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
        writeAll(fd, b);
      } catch (e) {
        return fail(new TransferError('io', `cannot write ${offer.name}: ${(e as Error).message}`));
      }
      bytes += b.length;
      lastData = clock.now();
      if (bytes - reported >= 1024 * 1024 || bytes === offer.size) {
        reported = bytes;
        o.onProgress?.(bytes, offer.size);
      }
      flush();
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
      await clock.hold(flushing ?? Promise.resolve());
      if (durable) {
        const ts = clock.now();
        await clock.hold(fh.sync());
        fsyncMs += clock.now() - ts;
      }
      await clock.hold(fh.close());
    } catch (err) {
      throw new TransferError('io', `cannot write ${offer.name}: ${(err as Error).message}`);
    } finally {
      fh = undefined;
    }
    const sha256 = hash.digest('hex');
    if (sha256 !== offer.sha256) throw new TransferError('hash-mismatch', `SHA-256 of ${offer.name} from ${from} does not match its offer (got ${sha256.slice(0, 12)}…, offered ${offer.sha256.slice(0, 12)}…)`);
    try {
      await clock.hold(fsp.link(tmp, final));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TransferError('exists', `${offer.name} already exists in ${o.shareDir}; not overwritten`);
      throw new TransferError('io', `cannot move ${offer.name} into place: ${(err as Error).message}`);
    }
    // The new name reaches the disk (a temporary name surviving a crash is swept at the next start).
    if (durable) fsyncMs += await syncPath(root, offer.name, clock);
    conn.end();
    const durationMs = clock.now() - t0;
    return { name: offer.name, from, bytes, ttfbMs: tFirst ? tFirst - t0 : durationMs, durationMs, mbps: bytes / 1e6 / Math.max(durationMs / 1000, 1e-6), sha256, verified: true, readPath, fsyncMs };
  } finally {
    await flushing;
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
  }
}

/** `.treeshare-<tag>-<12 hex>.part` (tag: the peer id), or `.treeshare-<12 hex>.part` without one. */
function tempName(tag: string | undefined): string {
  const hex = randomBytes(6).toString('hex');
  return tag ? `.treeshare-${tag}-${hex}.part` : `.treeshare-${hex}.part`;
}

/** Written bytes between background flushes of a durable download. */
const FLUSH_BYTES = 8 * 1024 * 1024;

/** fsync of a file or folder by path; returns the time it took, ms. */
async function syncPath(p: string, name: string, clock: Clock): Promise<number> {
  const t = clock.now();
  let h: fsp.FileHandle | undefined;
  try {
    h = await clock.hold(fsp.open(p, 'r'));
    await clock.hold(h.sync());
  } catch (err) {
    throw new TransferError('io', `cannot make ${name} durable (fsync ${path.basename(p)}): ${(err as Error).message}`);
  } finally {
    if (h) await clock.hold(h.close());
  }
  return clock.now() - t;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Removes leftovers of downloads that a crash cut short: this peer's own
 * temporary files (`.treeshare-<id>-<hex>.part`, any age: the peer is starting,
 * so none of them is being written), and untagged ones of older versions
 * (`.treeshare-<hex>.part`) not modified for `untaggedAfterMs`. Temporary files
 * of other peers sharing the folder are left alone. Returns the names removed.
 */
export async function sweepTemps(dir: string, id: string, o: { untaggedAfterMs?: number } = {}): Promise<string[]> {
  const own = new RegExp(`^\\.treeshare-${escapeRe(id)}-[0-9a-f]{12}\\.part$`);
  const untagged = /^\.treeshare-[0-9a-f]{12}\.part$/;
  const minAge = o.untaggedAfterMs ?? 60 * 60 * 1000;
  const removed: string[] = [];
  for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
    if (!ent.isFile()) continue;
    const mine = own.test(ent.name);
    if (!mine && !untagged.test(ent.name)) continue;
    const p = path.join(dir, ent.name);
    try {
      if (!mine && Date.now() - (await fsp.lstat(p)).mtimeMs < minAge) continue;
      await fsp.rm(p);
      removed.push(ent.name);
    } catch {
      /* gone already, or not ours to remove */
    }
  }
  return removed;
}
