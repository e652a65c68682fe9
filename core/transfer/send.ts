/**
 * Holder side of flow I (docs/PROTOCOL.md): open a temporary connection to the requester's own
 * listening address, offer the file (id, name, size, SHA-256), wait for ack or
 * decline, then stream exactly `size` bytes with backpressure and close.
 * Memory stays flat: two reused chunk buffers per upload (see streamFile).
 *
 * A file whose hash is not cached yet (its first upload) is hashed first.
 * When that takes longer than `preparingIntervalMs` (a large file), the
 * holder connects meanwhile: the connection opens with `preparing` and
 * repeats it with the bytes hashed so far every `preparingIntervalMs`, so the
 * requester keeps waiting however large the file; a decline or a close stops
 * the hashing. Small files go straight to the offer, as before.
 */
import { RemoteProtocolError, RemoteRefusedError, TransferError, TreeshareError } from '../errors.ts';
import { addrKey, PROTOCOL_VERSION, type HostPortLike, type Message, type PeerRef } from '../protocol/messages.ts';
import { nextMessage, type Connection } from '../transport/connection.ts';
import { deadline, realClock, type Clock } from '../clock.ts';
import type { Transport } from '../transport/transport.ts';
import { FsStore, type ShareStore, type StoreFile } from './store.ts';

/** Default chunk size read from disk and written to the socket: 2 MiB (two such buffers per upload). */
export const DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024;

export interface OfferOptions {
  transport: Transport;
  to: HostPortLike;
  localHost?: string;
  qid: string;
  self: PeerRef;
  /** The share folder (the file-system store's), used when `store` is not given. */
  shareDir: string;
  /** Where the file is read from. Default: the share folder `shareDir` (FsStore). */
  store?: ShareStore;
  name: string;
  signal?: AbortSignal;
  /** How long the requester may take to ack, ms. Default 10,000. */
  ackTimeoutMs?: number;
  /** A requester that reads none of the bytes for this long is dropped (`timeout`), ms. Default 0: no limit. */
  stallTimeoutMs?: number;
  chunkBytes?: number;
  /** While hashing for a first offer, tell the requester the progress this often, ms. Default 1,000. */
  preparingIntervalMs?: number;
  /** Clock of the timeouts, the preparing interval and the duration. Default realClock; under a SimClock disk work is held (takes no simulated time). */
  clock?: Clock;
}

export type OfferOutcome =
  | { kind: 'sent'; name: string; to: string; bytes: number; durationMs: number; mbps: number; sha256: string }
  | { kind: 'declined'; reason: string };

export async function offerFile(o: OfferOptions): Promise<OfferOutcome> {
  const clock = o.clock ?? realClock;
  const f = await clock.hold((o.store ?? new FsStore(o.shareDir)).open(o.name));
  let conn: Connection | undefined;
  let hashing: Hashing | undefined;
  try {
    const interval = Math.max(1, o.preparingIntervalMs ?? 1000);
    let sha256 = await clock.hold(f.knownSha256());
    if (sha256 === undefined) {
      hashing = startHashing(f, o.signal);
      let timer: ReturnType<Clock['setTimeout']> | undefined;
      try {
        sha256 = await Promise.race([clock.hold(hashing.done), new Promise<undefined>((r) => (timer = clock.setTimeout(() => r(undefined), interval)))]);
      } finally {
        clock.clearTimeout(timer);
      }
    }
    // Bounded: a requester that is gone or frozen must not hold an upload slot.
    conn = await o.transport.connect(o.to, { signal: deadline(clock, o.ackTimeoutMs ?? 10_000, o.signal), localHost: o.localHost });
    if (sha256 === undefined) {
      const h = await tellWhileHashing(conn, hashing!, f, o, interval);
      if (h.kind === 'declined') {
        conn.end();
        return h;
      }
      sha256 = h.sha256;
    }
    const answer = nextMessage(conn, ['ack', 'decline'], { signal: deadline(clock, o.ackTimeoutMs ?? 10_000, o.signal), what: `an answer to the offer of ${o.name}` });
    conn.send({ t: 'offer', v: PROTOCOL_VERSION, qid: o.qid, from: o.self, name: o.name, size: f.size, sha256 });
    const a = await answer;
    if (a.t === 'decline') {
      conn.end();
      return { kind: 'declined', reason: a.reason };
    }
    conn.raw();
    const t0 = clock.now();
    await streamFile(conn, f, f.size, o.chunkBytes ?? DEFAULT_CHUNK_BYTES, clock, o.stallTimeoutMs ?? 0, o.signal);
    conn.end();
    const durationMs = clock.now() - t0;
    return { kind: 'sent', name: o.name, to: addrKey(o.to), bytes: f.size, durationMs, mbps: f.size / 1e6 / Math.max(durationMs / 1000, 1e-6), sha256 };
  } catch (err) {
    conn?.destroy();
    throw err;
  } finally {
    // Hashing still running (connect failed): stop it before the handle closes.
    hashing?.stop.abort();
    await hashing?.done.catch(() => undefined);
    await f.close();
  }
}

interface Hashing {
  done: Promise<string>;
  stop: AbortController;
  hashed: number;
}

function startHashing(f: StoreFile, signal: AbortSignal | undefined): Hashing {
  const stop = new AbortController();
  const h: Hashing = { stop, hashed: 0, done: Promise.resolve('') };
  h.done = f.sha256({ signal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal, onProgress: (n) => (h.hashed = n) });
  h.done.catch(() => undefined); // observed by the caller; never an unhandled rejection
  return h;
}

/**
 * Waits for `hashing` while telling the requester on `conn` how far it got
 * (`preparing`), until done, declined, refused, closed or aborted.
 */
async function tellWhileHashing(conn: Connection, hashing: Hashing, f: StoreFile, o: OfferOptions, interval: number): Promise<{ kind: 'hashed'; sha256: string } | { kind: 'declined'; reason: string }> {
  const stop = hashing.stop;
  let outcome: { kind: 'declined'; reason: string } | { kind: 'failed'; err: Error } | undefined;
  const onMsg = (m: Message) => {
    if (m.t === 'decline') outcome = { kind: 'declined', reason: m.reason };
    else if (m.t === 'error') outcome = { kind: 'failed', err: new RemoteRefusedError(m.code, `${conn.remote}: ${m.message}`) };
    else {
      const e = new RemoteProtocolError('unexpected-message', `expected nothing or decline while preparing the offer, got "${m.t}"`);
      conn.fail(e);
      outcome = { kind: 'failed', err: e };
    }
    stop.abort();
  };
  const onClose = () => {
    outcome ??= { kind: 'failed', err: new TransferError('holder-gone', `requester ${conn.remote} closed the connection while ${f.name} was being hashed`) };
    stop.abort();
  };
  const tell = () => conn.send({ t: 'preparing', v: PROTOCOL_VERSION, qid: o.qid, from: o.self, name: o.name, size: f.size, hashed: hashing.hashed });
  conn.on('message', onMsg);
  conn.on('close', onClose);
  tell();
  const clock = o.clock ?? realClock;
  const timer = clock.setInterval(tell, interval);
  try {
    const sha256 = await hashing.done;
    if (!outcome) return { kind: 'hashed', sha256 };
  } catch (err) {
    if (!outcome) throw err;
  } finally {
    clock.clearInterval(timer);
    conn.off('message', onMsg);
    conn.off('close', onClose);
  }
  if (outcome.kind === 'declined') return outcome;
  throw outcome.err;
}

/**
 * Reads the file into two reused buffers, the next chunk read from disk while the
 * previous one is being sent (double buffering). A buffer is reused only once the
 * link holds no unsent bytes (a net.Socket emits 'drain' only then); on links that
 * keep references past 'drain' (shaped links), a fresh buffer is taken instead.
 */
async function streamFile(conn: Connection, fh: Pick<StoreFile, 'read'>, size: number, chunkBytes: number, clock: Clock, stallMs: number, signal?: AbortSignal): Promise<void> {
  const len = Math.max(1, Math.min(chunkBytes, size));
  const free: Buffer[] = [];
  const take = () => free.pop() ?? Buffer.allocUnsafe(len);
  const readAt = (buf: Buffer, at: number) => fh.read(buf, 0, Math.min(buf.length, size - at), at).then((r) => ({ buf, n: r.bytesRead }));
  let pos = 0;
  let next: Promise<{ buf: Buffer; n: number }> | undefined = size > 0 ? readAt(take(), 0) : undefined;
  try {
    while (pos < size) {
      const { buf, n } = await next!;
      next = undefined;
      if (signal?.aborted) throw new TransferError('aborted', 'upload aborted');
      if (conn.closed) throw new TransferError('holder-gone', `requester ${conn.remote} closed the connection after ${pos} of ${size} bytes`);
      if (n === 0) throw new TransferError('truncated', `file shrank while being sent (${pos} of ${size} bytes)`);
      pos += n;
      const ok = conn.write(n === buf.length ? buf : buf.subarray(0, n));
      if (pos < size) next = readAt(take(), pos);
      if (!ok) await drainedWithin(conn, clock, stallMs, signal);
      if (conn.writableLength === 0) free.push(buf);
    }
  } finally {
    // A read still running must finish before the caller closes the file handle.
    if (next) await next.catch(() => undefined);
  }
}

/**
 * Waits for 'drain'; an abort (the holder is leaving or stopping) cuts the upload at once, not after
 * the drain; a requester that reads nothing for `stallMs` (0: no limit) is dropped with `timeout`, so a
 * receiver that stops reading cannot hold an upload slot for ever (issue 22 defect 2). A close rejects
 * with `connection-closed`.
 */
export function drainedWithin(conn: Connection, clock: Clock, stallMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const done = () => {
      conn.off('drain', onDrain);
      conn.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      clock.clearTimeout(timer);
    };
    const onAbort = () => {
      done();
      reject(new TransferError('aborted', 'upload aborted'));
    };
    const onDrain = () => {
      done();
      resolve();
    };
    const onClose = () => {
      done();
      reject(new TreeshareError('connection-closed', `requester ${conn.remote} closed the connection mid-transfer`));
    };
    if (signal?.aborted) return onAbort();
    // write() returns false on a closed connection too, and 'close' will not come again.
    if (conn.closed) return onClose();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (stallMs > 0) {
      timer = clock.setTimeout(() => {
        done();
        const e = new TransferError('timeout', `requester ${conn.remote} read nothing for ${stallMs} ms`);
        conn.fail(e);
        reject(e);
      }, stallMs);
    }
    conn.on('drain', onDrain);
    conn.on('close', onClose);
  });
}
