/**
 * Requester side of flow I, after an offer has been accepted: ack, then take
 * exactly `size` raw bytes into a temporary hidden file inside the share
 * folder while hashing them, until the holder closes; rename into place only when the size and
 * SHA-256 match. Any failure (too few or too many bytes, hash mismatch,
 * holder gone, idle timeout, abort) removes the temporary file. The final
 * name is never overwritten: the rename is a hard link that fails if the
 * name exists, then the temporary name is removed.
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
  /** Time spent in fsync (file, then folder), ms; 0 when fsync is off. Included in durationMs. */
  fsyncMs: number;
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
  const root = await shareRoot(o.shareDir);
  const final = path.join(root, offer.name);
  const tmp = path.join(root, tempName(o.tmpTag));
  const out = fs.createWriteStream(tmp, { flags: 'wx', highWaterMark: 1024 * 1024 });
  const durable = o.fsync ?? true;
  // Durable downloads: flush written data to disk in the background every FLUSH_BYTES while
  // receiving, so the final fsync only has the tail to wait for (errors here are ignored:
  // the final fsync is the one that counts).
  let written = 0;
  let flushedAt = 0;
  let flushing = false;
  const flush = () => {
    const fd = (out as unknown as { fd: number | null }).fd;
    if (!durable || flushing || typeof fd !== 'number' || out.destroyed || written - flushedAt < FLUSH_BYTES) return;
    flushing = true;
    flushedAt = written;
    fs.fdatasync(fd, () => (flushing = false));
  };
  // Hashing stays on this thread: a worker thread was measured (2 cores) to add CPU and
  // ~75 MB of RSS without raising throughput, as the holder's process uses the other core.
  const hash = createHash('sha256');
  const from = `${offer.from.id}@${offer.from.host}:${offer.from.port}`;
  let bytes = 0;
  const t0 = performance.now();
  let tFirst = 0;

  const body = new Promise<void>((resolve, reject) => {
    let settled = false;
    // Idle check: one timer ticking at a quarter of the timeout, not one re-armed per chunk.
    const idleMs = o.idleTimeoutMs ?? 15_000;
    let lastData = performance.now();
    const idle = setInterval(() => {
      if (performance.now() - lastData > idleMs) fail(new TransferError('timeout', `no data from ${from} for ${idleMs} ms (${bytes} of ${offer.size} bytes)`));
    }, Math.max(10, Math.floor(idleMs / 4)));
    // The socket is paused while the file write is behind.
    let holds = 0;
    const hold = () => {
      if (holds++ === 0) conn.pause();
    };
    const unhold = () => {
      if (--holds === 0 && !settled) conn.resume();
    };
    let reported = 0;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearInterval(idle);
      conn.off('data', onData);
      conn.off('close', onClose);
      o.signal?.removeEventListener('abort', onAbort);
      if (err) {
        conn.destroy();
        reject(err);
      } else resolve();
    };
    const fail = (err: Error) => finish(err);
    const onData = (b: Buffer) => {
      if (settled) return;
      if (tFirst === 0) tFirst = performance.now();
      if (bytes + b.length > offer.size) return fail(new TransferError('too-long', `${from} sent more than the ${offer.size} bytes it offered`));
      bytes += b.length;
      lastData = performance.now();
      hash.update(b);
      if (bytes - reported >= 1024 * 1024 || bytes === offer.size) {
        reported = bytes;
        o.onProgress?.(bytes, offer.size);
      }
      if (!(durable ? out.write(b, () => ((written += b.length), flush())) : out.write(b))) {
        hold();
        out.once('drain', unhold);
      }
      // At `size` bytes, wait for the holder to close: bytes beyond the offer are caught
      // even when they arrive in a later chunk.
    };
    const onClose = () => {
      if (bytes < offer.size) fail(new TransferError('truncated', `${from} closed the connection after ${bytes} of ${offer.size} bytes`));
      else finish();
    };
    const onAbort = () => fail(new TransferError('aborted', `download of ${offer.name} aborted after ${bytes} of ${offer.size} bytes`));
    out.on('error', (e) => fail(new TransferError('io', `cannot write ${offer.name}: ${e.message}`)));
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    conn.on('data', onData);
    conn.on('close', onClose);
    const rest = conn.raw();
    conn.send({ t: 'ack' });
    if (rest.length) onData(rest);
    // Closed while the offer was being accepted (the holder left): no 'close' event is coming.
    if (conn.closed) onClose();
  });

  try {
    await body;
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(new TransferError('io', `cannot write ${offer.name}: ${err.message}`)) : resolve())));
    const sha256 = hash.digest('hex');
    if (sha256 !== offer.sha256) throw new TransferError('hash-mismatch', `SHA-256 of ${offer.name} from ${from} does not match its offer (got ${sha256.slice(0, 12)}…, offered ${offer.sha256.slice(0, 12)}…)`);
    let fsyncMs = 0;
    if (durable) fsyncMs += await syncPath(tmp, offer.name);
    try {
      await fsp.link(tmp, final);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TransferError('exists', `${offer.name} already exists in ${o.shareDir}; not overwritten`);
      throw new TransferError('io', `cannot move ${offer.name} into place: ${(err as Error).message}`);
    }
    // The new name reaches the disk (a temporary name surviving a crash is swept at the next start).
    if (durable) fsyncMs += await syncPath(root, offer.name);
    conn.end();
    const durationMs = performance.now() - t0;
    return { name: offer.name, from, bytes, ttfbMs: tFirst ? tFirst - t0 : durationMs, durationMs, mbps: bytes / 1e6 / Math.max(durationMs / 1000, 1e-6), sha256, verified: true, fsyncMs };
  } finally {
    if (!out.closed) {
      // Not once(out, 'close'): it rejects on the ERR_STREAM_DESTROYED 'error' that pending
      // writes raise here, which would replace the real error and skip the rm below.
      const closed = new Promise<void>((resolve) => out.once('close', () => resolve()));
      out.destroy();
      await closed;
    }
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
async function syncPath(p: string, name: string): Promise<number> {
  const t = performance.now();
  let h: fsp.FileHandle | undefined;
  try {
    h = await fsp.open(p, 'r');
    await h.sync();
  } catch (err) {
    throw new TransferError('io', `cannot make ${name} durable (fsync ${path.basename(p)}): ${(err as Error).message}`);
  } finally {
    await h?.close();
  }
  return performance.now() - t;
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
