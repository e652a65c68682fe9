/**
 * The whole-file SHA-256 of a swarm download (docs/SWARM.md), fed piece by
 * piece in file order. Every piece is hashed twice on the requester: once
 * alone when it lands (to verify it against the manifest), once as part of the
 * whole file (to verify the manifest against its own SHA-256, before the name
 * appears). On a large file the second pass runs on a worker thread, so the
 * piece path's cost on the main thread (the one reading the sockets) is one
 * hash, as on the single-source receive path; pieces move to the worker and
 * back without a copy (transferred ArrayBuffers).
 *
 * Backpressure: past `maxBacklog` bytes handed to the worker and not yet
 * hashed, `busy` is true and the caller stops reading until `onDrain`.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface WholeHasher {
  /** Feeds the next bytes in file order. True: the hasher took `buf` (it must not be used again). */
  update(buf: Buffer): boolean;
  digest(): Promise<string>;
  /** Ends the worker, if any (idempotent). */
  close(): void;
  /** Too many bytes waiting for the worker: stop feeding until onDrain. */
  readonly busy: boolean;
  onDrain?: () => void;
  /** Buffers the worker is done with come back here (for reuse). */
  onReturn?: (b: Buffer) => void;
}

class InlineHasher implements WholeHasher {
  private readonly h: Hash = createHash('sha256');
  readonly busy = false;
  update(buf: Buffer): boolean {
    this.h.update(buf);
    return false;
  }
  digest(): Promise<string> {
    return Promise.resolve(this.h.digest('hex'));
  }
  close(): void {}
}

// Plain JavaScript (eval): the worker needs no TypeScript loader.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const h = require('node:crypto').createHash('sha256');
parentPort.on('message', (m) => {
  if (m.end) return parentPort.postMessage({ digest: h.digest('hex') });
  h.update(new Uint8Array(m.ab, m.off, m.len));
  parentPort.postMessage({ ab: m.ab, off: m.off, len: m.len, done: m.len }, [m.ab]);
});
`;

class WorkerHasher implements WholeHasher {
  private readonly w: Worker;
  private backlog = 0;
  private failure: Error | undefined;
  private waiting: ((v: string) => void) | undefined;
  private rejectWait: ((e: Error) => void) | undefined;
  onDrain?: () => void;
  onReturn?: (b: Buffer) => void;

  constructor(private readonly maxBacklog: number) {
    this.w = new Worker(WORKER_SOURCE, { eval: true });
    this.w.unref();
    this.w.on('message', (m: { ab?: ArrayBuffer; off: number; len: number; done?: number; digest?: string }) => {
      if (m.digest !== undefined) return this.waiting?.(m.digest);
      const wasBusy = this.busy;
      this.backlog -= m.done ?? 0;
      if (m.ab) this.onReturn?.(Buffer.from(m.ab, m.off, m.len));
      if (wasBusy && !this.busy) this.onDrain?.();
    });
    this.w.on('error', (e) => this.fail(e));
    this.w.on('exit', () => this.fail(new Error('hash worker exited')));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.rejectWait?.(this.failure);
  }

  get busy(): boolean {
    return this.backlog > this.maxBacklog;
  }

  update(buf: Buffer): boolean {
    const ab = buf.buffer;
    // Only a buffer that owns its whole ArrayBuffer can be moved; anything else is copied once.
    const own = buf.byteOffset === 0 && ab.byteLength === buf.length && ab instanceof ArrayBuffer;
    let b = buf;
    if (!own) {
      b = Buffer.allocUnsafeSlow(buf.length); // its own ArrayBuffer (never the shared pool's)
      buf.copy(b);
    }
    this.backlog += b.length;
    this.w.postMessage({ ab: b.buffer, off: 0, len: b.length }, [b.buffer as ArrayBuffer]);
    return own;
  }

  digest(): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.rejectWait = reject;
      this.w.postMessage({ end: true });
    });
  }

  close(): void {
    this.w.removeAllListeners('exit');
    void this.w.terminate();
  }
}

/** Files at least this large hash the whole on a worker thread. */
export const WORKER_HASH_MIN_BYTES = 16 * 1024 * 1024;

export function wholeHasher(size: number, o: { maxBacklog?: number; worker?: boolean } = {}): WholeHasher {
  const useWorker = o.worker ?? size >= WORKER_HASH_MIN_BYTES;
  if (!useWorker) return new InlineHasher();
  try {
    return new WorkerHasher(o.maxBacklog ?? 64 * 1024 * 1024);
  } catch {
    return new InlineHasher();
  }
}
