/**
 * SHA-256 off the requester's main thread (docs/SWARM.md, "Hashing off the main thread").
 *
 * A swarm download hashes every byte twice (each piece against the manifest when it lands, the
 * whole file before the rename). On the main thread that was ~1.2 ms of CPU per MB of the
 * ~1.8 ms a swarm requester spent, against ~1.04 ms/MB for the single-pass offer path, and the
 * main thread was the limit. Either pass can run on worker threads here (swarm.ts moves the
 * whole-file hash by default, pieces only with `pieceThreads`):
 *
 * - `verifyWrite`: a piece worker hashes a piece in place (a view of a SharedArrayBuffer, no
 *   copy) and, only when it matches, writes it at its offset in the partial (pwrite on the
 *   download's fd). The answer comes back after the write, so the requester counts (and saves
 *   in its resume file) only pieces verified *and* written.
 * - `whole()`: one whole-file hash per download, in its own worker, fed in file order with
 *   ranges of the partial to read back (page cache) and hash; `digest()` answers once every
 *   range fed before it is hashed.
 *
 * The workers are process-wide, started on first use, referenced only while a call waits for
 * its answer (an idle pool never keeps a process alive), with no tsx loader (`execArgv: []`; their code is the plain JS below). A worker that
 * dies fails its pending calls; the next call starts a fresh one.
 *
 * The fd passed in must stay open until every call that names it has answered (the
 * requester awaits them before closing it).
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';

/** Piece verification and the whole-file hash of one download, as the requester uses them. */
export interface HashBackend {
  /**
   * SHA-256 of `buf` (a view of a SharedArrayBuffer); equal to `sha256` (hex): written whole at
   * `at` in `fd`, then true; different: false, nothing written. Rejects when the write fails.
   */
  verifyWrite(buf: Buffer, sha256: string, fd: number, at: number): Promise<boolean>;
  /** A whole-file hash fed with ranges of a file, in order. */
  whole(): WholeHash;
  /** The whole-file worker is already running (starting one costs ~65 ms of CPU and ~60 ms). */
  readonly wholeRunning?: boolean;
}

export interface WholeHash {
  /** Hash `len` bytes of `fd` at `at` next (read back). Errors surface at digest(). */
  feed(fd: number, at: number, len: number): void;
  /** Hex SHA-256 of every range fed; rejects when a read failed or came back short. */
  digest(): Promise<string>;
  /** Forget this hash (a failed download); pending reads still finish before it answers. */
  close(): Promise<void>;
}

const WORKER_JS = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const wholes = new Map();
let scratch;
parentPort.on('message', (m) => {
  try {
    if (m.op === 'piece') {
      const v = Buffer.from(m.sab, m.off, m.len);
      const ok = createHash('sha256').update(v).digest('hex') === m.sha;
      if (ok) for (let o = 0; o < m.len; ) o += fs.writeSync(m.fd, v, o, m.len - o, m.at + o);
      parentPort.postMessage({ id: m.id, ok });
    } else if (m.op === 'feed') {
      const w = wholes.get(m.key) ?? { h: createHash('sha256'), err: '' };
      wholes.set(m.key, w);
      if (w.err) return;
      if (!scratch || scratch.length < m.len) scratch = Buffer.allocUnsafe(Math.max(m.len, 1 << 20));
      let o = 0;
      while (o < m.len) {
        const r = fs.readSync(m.fd, scratch, o, m.len - o, m.at + o);
        if (r === 0) { w.err = 'short read at ' + (m.at + o); return; }
        o += r;
      }
      w.h.update(scratch.subarray(0, m.len));
    } else if (m.op === 'digest') {
      const w = wholes.get(m.key) ?? { h: createHash('sha256'), err: '' };
      wholes.delete(m.key);
      parentPort.postMessage(w.err ? { id: m.id, err: w.err } : { id: m.id, hex: w.h.digest('hex') });
    } else if (m.op === 'close') {
      wholes.delete(m.key);
      parentPort.postMessage({ id: m.id });
    }
  } catch (e) {
    if (m.op === 'feed') { const w = wholes.get(m.key); if (w) w.err = String(e && e.message || e); }
    else parentPort.postMessage({ id: m.id, err: String(e && e.message || e) });
  }
});
`;

interface Reply {
  id: number;
  ok?: boolean;
  hex?: string;
  err?: string;
}

class HashWorker {
  private w: Worker | undefined;
  get running(): boolean {
    return this.w !== undefined;
  }
  private readonly pending = new Map<number, { res: (r: Reply) => void; rej: (e: Error) => void }>();
  private seq = 0;
  /** Workers started so far: a whole-file hash lives in one of them. */
  gen = 0;
  get load(): number {
    return this.pending.size;
  }
  private worker(): Worker {
    if (this.w) return this.w;
    const w = new Worker(WORKER_JS, { eval: true, execArgv: [] });
    this.gen++;
    w.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (this.pending.size === 0) w.unref();
      p.res(r);
    });
    const fail = (e: Error) => {
      if (this.w === w) this.w = undefined;
      for (const p of this.pending.values()) p.rej(e);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`hash worker exited (code ${code})`)));
    // Referenced only while a call waits for its answer (after the listeners: adding a 'message'
    // listener refs the worker again).
    w.unref();
    this.w = w;
    return w;
  }
  /** Stops the worker (its pending calls fail); the next call starts a fresh one. */
  async stop(): Promise<void> {
    const w = this.w;
    this.w = undefined;
    await w?.terminate();
  }
  /** Post without an answer (ordered with the calls after it); returns the worker's generation. */
  post(m: object): number {
    this.worker().postMessage(m);
    return this.gen;
  }
  call(m: object): Promise<Reply> {
    const w = this.worker();
    const id = ++this.seq;
    return new Promise<Reply>((res, rej) => {
      if (this.pending.size === 0) w.ref();
      this.pending.set(id, { res, rej });
      w.postMessage({ ...m, id });
    });
  }
}

/** Piece workers (up to two: the machine's spare cores) and one whole-file worker, shared by every download of the process. */
export class HashPool implements HashBackend {
  private readonly pieces: HashWorker[];
  private readonly wholeWorker = new HashWorker();
  private keys = 0;
  constructor(pieceWorkers = Math.max(1, Math.min(2, os.availableParallelism()))) {
    this.pieces = Array.from({ length: pieceWorkers }, () => new HashWorker());
  }
  async verifyWrite(buf: Buffer, sha256: string, fd: number, at: number): Promise<boolean> {
    if (!(buf.buffer instanceof SharedArrayBuffer)) throw new TypeError('verifyWrite needs a view of a SharedArrayBuffer');
    let w = this.pieces[0]!;
    for (const x of this.pieces) if (x.load < w.load) w = x;
    const r = await w.call({ op: 'piece', sab: buf.buffer, off: buf.byteOffset, len: buf.length, sha: sha256, fd, at });
    if (r.err) throw new Error(r.err);
    return r.ok === true;
  }
  /** Stops every worker of this pool (calls waiting fail; whole-file hashes in them are lost). */
  async stop(): Promise<void> {
    await Promise.all([...this.pieces, this.wholeWorker].map((w) => w.stop()));
  }
  get wholeRunning(): boolean {
    return this.wholeWorker.running;
  }
  whole(): WholeHash {
    const key = ++this.keys;
    const w = this.wholeWorker;
    // Nothing fed yet: no need to start (or wait for) the worker. A worker that died took the
    // hash with it: a later worker would answer for another (empty) hash, so that is an error.
    let fed = false;
    let gen = 0;
    const lost = () => new Error('the whole-file hash worker exited; its hash is lost');
    return {
      feed: (fd, at, len) => {
        fed = true;
        const g = w.post({ op: 'feed', key, fd, at, len });
        if (gen !== 0 && g !== gen) gen = -1;
        else if (gen === 0) gen = g;
      },
      digest: async () => {
        if (!fed) return createHash('sha256').digest('hex');
        if (!w.running || w.gen !== gen) throw lost();
        const r = await w.call({ op: 'digest', key });
        if (w.gen !== gen) throw lost();
        if (r.err !== undefined) throw new Error(r.err);
        return r.hex!;
      },
      close: async () => {
        if (fed && w.running && w.gen === gen) await w.call({ op: 'close', key }).catch(() => undefined);
      },
    };
  }
}

let shared: HashPool | undefined;
/** The process's pool (started on first use). */
export function hashPool(): HashPool {
  return (shared ??= new HashPool());
}
