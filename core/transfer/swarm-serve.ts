/**
 * Holder side of a swarm download (docs/SWARM.md): a requester opens a
 * connection with `swarm-open`; the holder answers its manifest (after
 * `hashing` progress frames if the file was never hashed), then serves `want`
 * requests: each wanted piece's bytes are sent raw, back to back, in the order
 * asked, read from disk up to 4 MiB at a time (two reused buffers, the next
 * chunk read while this one is sent) and sent in slices of about
 * 1/50 s of the peer's shared UploadBucket (its uplink cap, over all its
 * connections), with backpressure.
 *
 * The requester decides everything else; the holder keeps no state beyond the
 * queue of this connection. A requester that leaves, or a file that changes
 * size under us, ends the connection.
 */
import { errorCode, RemoteProtocolError, TransferError } from '../errors.ts';
import type { Msg } from '../protocol/messages.ts';
import type { Connection } from '../transport/connection.ts';
import type { Clock } from '../clock.ts';
import { drainedWithin } from './send.ts';
import { pieceCount, pieceLength, type Manifest, type UploadBucket } from './manifest.ts';
import type { ShareStore, StoreFile } from './store.ts';

/** Most bytes read from disk at once for one piece. */
const READ_BYTES = 4 * 1024 * 1024;
/** Most piece requests queued on one connection. */
const MAX_QUEUED = 256;

export interface SwarmServeOptions {
  /** Where the file is read from (the peer's store: its share folder, or a harness wrapper around it). */
  store: ShareStore;
  clock: Clock;
  bucket: UploadBucket;
  minPieceBytes?: number;
  /** While hashing for a first manifest, report progress this often, ms. */
  hashingIntervalMs?: number;
  signal?: AbortSignal;
  /**
   * A requester that asks for nothing (no `want` with nothing queued) or reads
   * nothing (no drain) for this long loses its link and the upload slot, ms
   * (issue 22 defect 2: silent `swarm-open`s held every slot for ever). 0: no limit.
   */
  idleMs?: number;
  /** Set while the link waits for a `want` with nothing to send: when it started (clock ms). Read by SwarmUploads to give an idle slot to a newcomer. */
  link?: { idleSince: number | undefined };
}

export interface ServeOutcome {
  name: string;
  to: string;
  bytes: number;
  pieces: number;
  durationMs: number;
}

export async function serveSwarm(conn: Connection, open: Msg<'swarm-open'>, o: SwarmServeOptions): Promise<ServeOutcome> {
  let f: StoreFile;
  try {
    f = await o.clock.hold(o.store.open(open.name));
  } catch (err) {
    conn.fail(err);
    throw err;
  }
  if (!f.manifest) {
    await f.close();
    const e = new TransferError('io', `${open.name}: the store ${o.store.label} serves no swarm pieces`);
    conn.fail(e);
    throw e;
  }
  const manifestOf = f.manifest;
  const t0 = o.clock.now();
  /** Hashing this serve stopped waiting for (its requester left): the file is closed when it ends. */
  let hashingOn: Promise<unknown> | undefined;
  let bytes = 0;
  let served = 0;
  try {
    let m: Manifest | undefined = f.cachedManifest?.(o.minPieceBytes);
    if (!m) {
      let hashed = 0;
      const timer = o.clock.setInterval(() => conn.send({ t: 'hashing', hashed, size: f.size }), Math.max(1, o.hashingIntervalMs ?? 1000));
      // A requester that leaves while we hash frees its slot at once; the hashing goes on (shared
      // with other requesters, cached for later ones) and the file stays open until it ends.
      const hashing = manifestOf({ minPieceBytes: o.minPieceBytes, onProgress: (n) => (hashed = n) });
      const left = closeOf(conn);
      try {
        m = await Promise.race([hashing, left.promise]);
        if (!m) hashingOn = hashing;
      } finally {
        left.cancel();
        o.clock.clearInterval(timer);
      }
    }
    if (!m || conn.closed) throw new TransferError('holder-gone', `requester ${conn.remote} left while ${open.name} was being hashed`);
    if (open.sha256 && open.sha256 !== m.sha256) {
      const e = new TransferError('changed', `${open.name} here has SHA-256 ${m.sha256.slice(0, 12)}…, not the ${open.sha256.slice(0, 12)}… asked for`);
      conn.fail(e);
      throw e;
    }
    const manifest = m;
    conn.send({ t: 'manifest', name: open.name, size: manifest.size, sha256: manifest.sha256, pieceSize: manifest.pieceSize, pieces: manifest.pieces });
    const n = pieceCount(manifest);
    const queue: number[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const onMsg = (msg: import('../protocol/messages.ts').Message) => {
      if (msg.t !== 'want') {
        failure = new RemoteProtocolError('unexpected-message', `expected want, got "${msg.t}"`);
        conn.fail(failure);
      } else if (msg.pieces.some((i) => i >= n) || queue.length + msg.pieces.length > MAX_QUEUED) {
        failure = new RemoteProtocolError('bad-message', `want: piece index out of range (0..${n - 1}) or more than ${MAX_QUEUED} queued`);
        conn.fail(failure);
      } else queue.push(...msg.pieces);
      wake?.();
    };
    const onClose = () => wake?.();
    conn.on('message', onMsg);
    conn.on('close', onClose);
    o.signal?.addEventListener('abort', onClose, { once: true });
    let idle: TransferError | undefined;
    /** Waits for a want; past `idleMs` the requester is dropped as idle. */
    const wantOrIdle = async () => {
      if (o.link) o.link.idleSince = o.clock.now();
      const timer = o.idleMs ? o.clock.setTimeout(() => {
        idle = new TransferError('timeout', `requester ${conn.remote} asked for no piece of ${open.name} for ${o.idleMs} ms`);
        conn.fail(idle);
      }, o.idleMs) : undefined;
      try {
        while (queue.length === 0 && !conn.closed && !failure && !o.signal?.aborted) await new Promise<void>((r) => (wake = r));
      } finally {
        o.clock.clearTimeout(timer);
        if (o.link) o.link.idleSince = undefined;
      }
    };
    // Double buffering on two reused buffers, as the single-source send path (send.ts
    // streamFile): the next chunk is read from disk while this one is being sent, and a buffer
    // is reused only once the link holds no unsent bytes (else a fresh one is taken). Measured
    // before (a fresh buffer per read, no read ahead), unshaped loopback: the holders spent
    // 3.6-7.6 ms of CPU per MB with 75-254 page faults/MB, against 1.2-1.5 and 16 on the offer path.
    const chunkLen = Math.min(READ_BYTES, manifest.pieceSize);
    const free: Buffer[] = [];
    interface Chunk { piece: number; at: number; n: number; last: boolean }
    let cur: { piece: number; off: number } | undefined;
    const nextChunk = (): Chunk | undefined => {
      if (!cur) {
        const piece = queue.shift();
        if (piece === undefined) return undefined;
        cur = { piece, off: 0 };
      }
      const len = pieceLength(manifest, cur.piece);
      const n = Math.min(chunkLen, len - cur.off);
      const c = { piece: cur.piece, at: cur.piece * manifest.pieceSize + cur.off, n, last: cur.off + n === len };
      cur.off += n;
      if (c.last) cur = undefined;
      return c;
    };
    const readChunk = (c: Chunk) => {
      const buf = free.pop() ?? Buffer.allocUnsafe(chunkLen);
      const p = f.read(buf, 0, c.n, c.at).then((r) => ({ c, buf, got: r.bytesRead }));
      p.catch(() => undefined); // awaited later; a failure is not unhandled meanwhile
      return p;
    };
    let pending: ReturnType<typeof readChunk> | undefined;
    try {
      for (;;) {
        if (!pending) {
          await wantOrIdle();
          wake = undefined;
          if (conn.closed || failure || o.signal?.aborted) break;
          pending = readChunk(nextChunk()!);
        }
        const { c, buf, got } = await pending;
        pending = undefined;
        if (conn.closed || failure || o.signal?.aborted) break;
        if (got !== c.n) throw new TransferError('truncated', `${open.name} shrank while being sent`);
        const data = c.n === buf.length ? buf : buf.subarray(0, c.n);
        const next = nextChunk();
        if (next) pending = readChunk(next);
        // Sent in slices, each taken from the uplink cap when there is one.
        const step = Math.min(c.n, o.bucket.sliceBytes());
        for (let p = 0; p < c.n && !conn.closed; p += step) {
          const slice = data.subarray(p, Math.min(c.n, p + step));
          await o.bucket.take(slice.length, o.signal);
          bytes += slice.length;
          // A close ends the loop below (the requester may leave at any time); a stall or an abort is an error.
          if (!conn.write(slice)) await drainedWithin(conn, o.clock, o.idleMs ?? 0, o.signal).catch((err: unknown) => {
            if (errorCode(err) !== 'connection-closed') throw err;
          });
        }
        if (conn.writableLength === 0) free.push(buf);
        if (conn.closed) break;
        if (c.last) served++;
      }
    } finally {
      conn.off('message', onMsg);
      conn.off('close', onClose);
      o.signal?.removeEventListener('abort', onClose);
      // A read still running must finish before the file handle is closed.
      if (pending) await pending.catch(() => undefined);
    }
    if (idle) throw idle;
    if (o.signal?.aborted) throw new TransferError('aborted', `upload of ${open.name} aborted after ${served} piece(s)`);
    conn.end();
    return { name: open.name, to: conn.remote, bytes, pieces: served, durationMs: o.clock.now() - t0 };
  } catch (err) {
    conn.destroy();
    throw err;
  } finally {
    if (hashingOn) void hashingOn.catch(() => undefined).then(() => f.close()).catch(() => undefined);
    else await f.close();
  }
}

/** Resolves (undefined) when `conn` closes, at once if it is closed; `cancel` removes the listener. */
function closeOf(conn: Connection): { promise: Promise<undefined>; cancel(): void } {
  let done: () => void = () => undefined;
  const promise = new Promise<undefined>((resolve) => {
    if (conn.closed) return resolve(undefined);
    done = () => resolve(undefined);
    conn.once('close', done);
  });
  return { promise, cancel: () => conn.off('close', done) };
}
