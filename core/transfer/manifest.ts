/**
 * Piece manifests (docs/SWARM.md): a file described by its size, whole-file
 * SHA-256, piece size and the SHA-256 of every piece, computed in one pass over
 * the file and cached in memory per file version (path, size, mtime, inode),
 * next to the whole-file hash cache (hash-cache.ts) it also fills.
 *
 * Piece size rule: `minPieceBytes` (default 1 MiB), doubled until the file has
 * at most MAX_PIECES (512) pieces, so a manifest stays a few tens of KiB (one
 * frame) whatever the file size: 512 MiB → 1 MiB pieces, 64 GiB → 128 MiB.
 */
import { createHash } from 'node:crypto';
import { MAX_PIECE_BYTES, MAX_PIECES, MIN_PIECE_BYTES } from '../protocol/messages.ts';
import { TransferError } from '../errors.ts';
import type { SharedFile } from './jail.ts';
import { rememberSha256 } from './hash-cache.ts';
import { openRegular } from './share-fs.ts';

export const DEFAULT_PIECE_BYTES = 1024 * 1024;

export interface Manifest {
  name: string;
  size: number;
  sha256: string;
  pieceSize: number;
  pieces: string[];
}

export function pieceSizeFor(size: number, minPieceBytes = DEFAULT_PIECE_BYTES): number {
  let ps = Math.max(1024, minPieceBytes);
  while (Math.ceil(size / ps) > MAX_PIECES) ps *= 2;
  return ps;
}

export function pieceCount(m: { size: number; pieceSize: number }): number {
  return Math.ceil(m.size / m.pieceSize);
}

export function pieceLength(m: { size: number; pieceSize: number }, i: number): number {
  return Math.min(m.pieceSize, m.size - i * m.pieceSize);
}

/**
 * Largest minimum piece size (`minPieceBytes`) a requester accepts from a holder: a file of one
 * piece may have a piece size above its size (the holder's minimum), up to this.
 */
export const MAX_MIN_PIECE_BYTES = 64 * 1024 * 1024;

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * A manifest from the network or a resume file is consistent with itself: every field bounded by
 * what the file's size implies (docs/SWARM.md, "Manifest"). The reason it is not, or null.
 */
export function checkManifest(m: Manifest): string | null {
  if (!Number.isSafeInteger(m.size) || m.size < 0) return `size ${m.size} is not a byte count`;
  if (typeof m.sha256 !== 'string' || !HEX64.test(m.sha256)) return 'sha256 is not 64 lowercase hex digits';
  if (!Number.isSafeInteger(m.pieceSize) || m.pieceSize < MIN_PIECE_BYTES) return `piece size ${m.pieceSize} is below ${MIN_PIECE_BYTES} bytes`;
  if (m.pieceSize > MAX_PIECE_BYTES) return `piece size ${m.pieceSize} is above ${MAX_PIECE_BYTES} bytes`;
  // The holder's rule (pieceSizeFor): its minimum, doubled while the file has more than MAX_PIECES pieces.
  const largest = Math.max(MAX_MIN_PIECE_BYTES, 2 * Math.ceil(m.size / MAX_PIECES));
  if (m.pieceSize > largest) return `piece size ${m.pieceSize} is too large for a file of ${m.size} bytes (at most ${largest})`;
  if (!Array.isArray(m.pieces)) return 'no piece list';
  if (m.pieces.length > MAX_PIECES) return `more than ${MAX_PIECES} pieces`;
  if (m.pieces.length !== pieceCount(m)) return `${m.pieces.length} piece hashes for ${m.size} bytes in pieces of ${m.pieceSize} (expected ${pieceCount(m)})`;
  const bad = m.pieces.findIndex((p) => typeof p !== 'string' || !HEX64.test(p));
  if (bad >= 0) return `piece hash ${bad} is not 64 lowercase hex digits`;
  return null;
}

/** Bytes of the largest piece of `m` (its piece size, or the whole file when that is smaller): a piece buffer's size. */
export function pieceBufferBytes(m: { size: number; pieceSize: number }): number {
  return Math.min(m.pieceSize, m.size);
}

/** Same file (size and whole-file hash), whatever its manifests say about pieces. */
export function sameFile(a: { size: number; sha256: string }, b: { size: number; sha256: string }): boolean {
  return a.size === b.size && a.sha256 === b.sha256;
}

export function sameManifest(a: Manifest, b: Manifest): boolean {
  return a.size === b.size && a.sha256 === b.sha256 && a.pieceSize === b.pieceSize && a.pieces.length === b.pieces.length && a.pieces.every((p, i) => p === b.pieces[i]);
}

const cache = new Map<string, Manifest>();
const inflight = new Map<string, Promise<Manifest>>();
/** Manifests computed by this process (tests read it). */
export const manifestStats = { computed: 0 };

const keyOf = (f: SharedFile, minPieceBytes: number) => `${f.path}\0${f.size}:${f.mtimeMs}:${f.ino}:${minPieceBytes}`;

/** The cached manifest of this file version, if any (never reads the file). */
export function cachedManifest(f: SharedFile, minPieceBytes = DEFAULT_PIECE_BYTES): Manifest | undefined {
  const m = cache.get(keyOf(f, minPieceBytes));
  return m && { ...m, name: f.name };
}

/**
 * The manifest of an open shared file: cached, or computed in one read of the
 * file (concurrent callers share the pass). `onProgress` gets the bytes hashed.
 */
export function manifestOf(f: SharedFile, o: { minPieceBytes?: number; onProgress?: (hashed: number) => void; signal?: AbortSignal } = {}): Promise<Manifest> {
  const min = o.minPieceBytes ?? DEFAULT_PIECE_BYTES;
  const hit = cachedManifest(f, min);
  if (hit) return Promise.resolve(hit);
  const key = keyOf(f, min);
  let p = inflight.get(key);
  if (!p) {
    p = compute(f, min, o.onProgress, o.signal)
      .then((m) => {
        if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
        cache.set(key, m);
        rememberSha256(f, m.sha256);
        return m;
      })
      .finally(() => inflight.delete(key));
    inflight.set(key, p);
  }
  return p.then((m) => ({ ...m, name: f.name }));
}

async function compute(shared: SharedFile, minPieceBytes: number, onProgress?: (n: number) => void, signal?: AbortSignal): Promise<Manifest> {
  // A handle of its own: the pass is shared by callers whose handles may close before it ends.
  // Never blocking, regular files only: the name may have been replaced since the jail opened it.
  const { handle, st } = await openRegular(shared.path, { what: shared.name });
  try {
    if (st.size !== shared.size || st.mtimeMs !== shared.mtimeMs || st.ino !== shared.ino) throw new TransferError('changed', `${shared.name} changed while it was opened for hashing`);
    return await hashPieces({ ...shared, handle }, minPieceBytes, onProgress, signal);
  } finally {
    await handle.close();
  }
}

async function hashPieces(f: SharedFile, minPieceBytes: number, onProgress?: (n: number) => void, signal?: AbortSignal): Promise<Manifest> {
  const pieceSize = pieceSizeFor(f.size, minPieceBytes);
  const whole = createHash('sha256');
  const pieces: string[] = [];
  const buf = Buffer.allocUnsafe(Math.min(pieceSize, 1024 * 1024));
  let pos = 0;
  let piece = createHash('sha256');
  let inPiece = 0;
  while (pos < f.size) {
    if (signal?.aborted) throw new TransferError('aborted', `hashing ${f.name} stopped after ${pos} of ${f.size} bytes`);
    const want = Math.min(buf.length, pieceSize - inPiece, f.size - pos);
    const { bytesRead } = await f.handle.read(buf, 0, want, pos);
    if (bytesRead === 0) throw new TransferError('truncated', `${f.name} shrank while being hashed (${pos} of ${f.size} bytes)`);
    const b = buf.subarray(0, bytesRead);
    whole.update(b);
    piece.update(b);
    pos += bytesRead;
    inPiece += bytesRead;
    if (inPiece === pieceSize || pos === f.size) {
      pieces.push(piece.digest('hex'));
      piece = createHash('sha256');
      inPiece = 0;
    }
    onProgress?.(pos);
  }
  manifestStats.computed++;
  return { name: f.name, size: f.size, sha256: whole.digest('hex'), pieceSize, pieces };
}

/** Forgets cached manifests, as a restarted process would (tests). */
export function forgetManifests(): void {
  cache.clear();
}

/**
 * An upload cap for a whole peer (its uplink): every upload connection takes
 * its bytes from this one schedule, first come first served, so n connections
 * share `bytesPerSec` and opening more of them gains nothing.
 *
 * A slice leaves once it is paid for in full (its bytes at the rate, after
 * those granted before it), so the bytes sent in any window of W ms never
 * exceed bytesPerSec × (W + slackMs) whatever the number of connections.
 * `slackMs` (10 ms) is there so a timer firing late does not cost throughput;
 * it is also the largest burst after idleness. One timer per slice, and
 * slices of about 1/50 s (sliceBytes: 64 KiB to 1 MiB), so a 20 MB/s uplink
 * is about 50 timers a second; nothing is allocated per slice.
 */
export class UploadBucket {
  /** Time (ms, this clock) at which every byte granted so far is paid for. */
  private next = -Infinity;
  constructor(
    /** May be changed while uploads run (0: no cap). */
    public bytesPerSec: number,
    private readonly clock: { now(): number; sleep(ms: number, signal?: AbortSignal): Promise<void> },
    private readonly slackMs = 10,
  ) {}

  /** Bytes a sender should take at once: about 1/50 s at this rate, a multiple of 64 KiB from 64 KiB to 1 MiB; unlimited without a cap. */
  sliceBytes(): number {
    if (!(this.bytesPerSec > 0)) return Number.POSITIVE_INFINITY;
    const k = 64 * 1024;
    return Math.min(16 * k, Math.max(k, Math.floor(this.bytesPerSec / 50 / k) * k));
  }

  /** Waits until `n` more bytes may be sent. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    if (!(this.bytesPerSec > 0)) return;
    const now = this.clock.now();
    const at = Math.max(this.next, now - this.slackMs) + (n * 1000) / this.bytesPerSec;
    this.next = at;
    if (at > now) await this.clock.sleep(at - now, signal);
  }
}
