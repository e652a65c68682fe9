/**
 * The share-store seam: what a peer shares and where downloads land.
 * Five operations (list, stat, read a range, write a temporary, commit) and
 * two implementations:
 *
 * - FsStore: a share folder, through the jail (jail.ts) unchanged in its
 *   checks: names checked, regular singly-linked files directly inside the
 *   folder, O_NOFOLLOW; downloads go to a hidden temporary file, fsynced and
 *   hard-linked into place (never overwriting), the folder fsynced after.
 *   This is what every real peer uses (PeerOptions.share).
 * - MemoryStore: simulation only (the memory runner, 100,000 peers, no
 *   folders). A file is a name, a size and a content seed: its bytes are
 *   generated on demand (a counter-based generator, so any range can be read
 *   without the rest) and its SHA-256 is computed once per content and
 *   shared by every store holding it. A download's bytes still cross the
 *   memory link and are hashed by the receiver; at commit the receiving
 *   store records the content with that hash (looked up in the shared
 *   MemoryShares), so it holds no bytes either.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { LocalError, TransferError } from '../errors.ts';
import { checkFileName } from '../protocol/names.ts';
import type { HashOptions } from './hash-cache.ts';
import { knownSha256 } from './hash-cache.ts';
import { assertName, hasShared, listShared, openShared, sha256Of, shareRoot } from './jail.ts';
import { linkOwn, openDir } from './share-fs.ts';
import { cachedManifest, manifestOf, type Manifest } from './manifest.ts';

export type { HashOptions };

/** An open shared file. */
export interface StoreFile {
  readonly name: string;
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `buf` at `offset` (FileHandle.read's contract). */
  read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  /** The SHA-256 when already known (cached), else undefined; never hashes. */
  knownSha256(): Promise<string | undefined>;
  /** The SHA-256, hashing the file if needed (`onProgress`, `signal` as in hash-cache.ts). */
  sha256(o?: HashOptions): Promise<string>;
  /** Its piece manifest when already known (cached), else undefined; never reads (swarm serving). Absent: the store serves no swarm pieces. */
  cachedManifest?(minPieceBytes?: number): Manifest | undefined;
  /** Its piece manifest, hashing the file if needed (manifest.ts's manifestOf). Absent: the store serves no swarm pieces. */
  manifest?(o: { minPieceBytes?: number; onProgress?: (hashed: number) => void }): Promise<Manifest>;
  close(): Promise<void>;
}

/** A download being written: invisible until committed. */
export interface TempFile {
  /** Appends `b` synchronously (throws on an I/O error). */
  write(b: Buffer): void;
  /** Every byte written is durable (fsync when asked) and the file closed; returns the fsync time, ms. */
  seal(): Promise<number>;
  /** Makes the sealed file visible as `name` (TransferError `exists` if the name is taken); returns the fsync time, ms. */
  commit(name: string, sha256: string): Promise<number>;
  /** Removes it unless committed (idempotent; always called at the end). */
  discard(): Promise<void>;
}

export interface ShareStore {
  readonly kind: 'fs' | 'memory';
  /** For messages: the folder, or `memory:<label>`. */
  readonly label: string;
  /**
   * The share folder, when the store is one: swarm downloads, their partials and resume state
   * work there directly through the file system, not through this seam (issue 27). Undefined: no
   * folder (downloads take the offer path).
   */
  readonly dir?: string;
  /** Forgets what the store cached of the folder: a file arrived by another path (a swarm download). */
  changed?(): void;
  /** Before a peer starts: checks the share exists and removes `ownerId`'s leftover temporaries; returns their names. */
  prepare(ownerId: string): Promise<string[]>;
  /** Shared files (refused names left out), sorted by name. */
  list(): Promise<{ name: string; size: number }[]>;
  /** The size of `name` when it is served (answering queries); null otherwise, never throws. */
  stat(name: string): Promise<{ size: number } | null>;
  /**
   * stat() answered at once when the store can (a memory store always; the folder store for a
   * name its fresh listing does not have); undefined when only stat() can tell.
   */
  statNow?(name: string): { size: number } | null | undefined;
  /** How many files list() would return, when the store knows at once; undefined otherwise. */
  countNow?(): number | undefined;
  /** Any entry under `name`, served or not (a download must not overwrite it). Throws `no-share` without a share. */
  exists(name: string): Promise<boolean>;
  /** Opens a served file (JailError / `not-found` LocalError otherwise). */
  open(name: string): Promise<StoreFile>;
  /** Bytes a download may still take. */
  freeBytes(): Promise<number>;
  /** A new temporary file for a download (`tag`: the peer id, for the start-up sweep). */
  createTemp(o: { tag?: string; fsync: boolean }): Promise<TempFile>;
}

// ---------------------------------------------------------------- file system

/** Free bytes on the file system holding `dir`, or Infinity when unknown. */
export async function freeBytes(dir: string): Promise<number> {
  try {
    const s = await fsp.statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return Infinity;
  }
}

/** `.treeshare-<tag>-<12 hex>.part` (tag: the peer id), or `.treeshare-<12 hex>.part` without one. */
export function tempName(tag: string | undefined): string {
  const hex = randomBytes(6).toString('hex');
  return tag ? `.treeshare-${tag}-${hex}.part` : `.treeshare-${hex}.part`;
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


/** Written bytes between background flushes of a durable download. */
const FLUSH_BYTES = 8 * 1024 * 1024;

/** Writes all of `b` at the file's current position. */
function writeAll(fd: number, b: Buffer): void {
  let off = 0;
  while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off);
}

/** A share folder behind the jail. */
export class FsStore implements ShareStore {
  readonly kind = 'fs' as const;
  /** Names in the folder, at most 1 s old (refreshed after each download): absent names are answered without the jail. */
  private names: { at: number; names: Promise<Set<string> | null>; set?: Set<string> } | undefined;

  constructor(readonly dir: string) {}

  /** Forgets the cached folder listing: a file arrived by another path (a swarm download). */
  changed(): void {
    this.names = undefined;
  }

  get label(): string {
    return this.dir;
  }

  async prepare(ownerId: string): Promise<string[]> {
    const root = await shareRoot(this.dir);
    // Leftovers of downloads a crash cut short (nothing of ours is being written yet).
    return sweepTemps(root, ownerId);
  }

  list(): Promise<{ name: string; size: number }[]> {
    return listShared(this.dir);
  }

  statNow(name: string): { size: number } | null | undefined {
    // Absent from a listing under a second old: not shared (the common answer to a search).
    return this.names?.set && performance.now() - this.names.at <= 1000 && !this.names.set.has(name) ? null : undefined;
  }

  async stat(name: string): Promise<{ size: number } | null> {
    const now = performance.now();
    if (!this.names || now - this.names.at > 1000) {
      const entry: { at: number; names: Promise<Set<string> | null>; set?: Set<string> } = {
        at: now,
        names: fsp.readdir(this.dir).then(
          (n) => (entry.set = new Set(n)),
          () => null,
        ),
      };
      this.names = entry;
    }
    const names = await this.names.names;
    if (names && !names.has(name)) return null;
    return hasShared(this.dir, name);
  }

  async exists(name: string): Promise<boolean> {
    assertName(name);
    const root = await shareRoot(this.dir);
    try {
      await fsp.lstat(path.join(root, name));
      return true;
    } catch {
      return false;
    }
  }

  async open(name: string): Promise<StoreFile> {
    const f = await openShared(this.dir, name);
    return {
      name: f.name,
      size: f.size,
      read: (buf, offset, length, position) => f.handle.read(buf, offset, length, position),
      knownSha256: () => knownSha256(f),
      sha256: (o) => sha256Of(f, o),
      cachedManifest: (min) => cachedManifest(f, min),
      manifest: (o) => manifestOf(f, o),
      close: () => f.handle.close(),
    };
  }

  freeBytes(): Promise<number> {
    return freeBytes(this.dir);
  }

  async createTemp(o: { tag?: string; fsync: boolean }): Promise<TempFile> {
    const root = await shareRoot(this.dir);
    const tmp = path.join(root, tempName(o.tag));
    let fh: fsp.FileHandle | undefined = await fsp.open(tmp, 'wx');
    const fd = fh.fd;
    const durable = o.fsync;
    let bytes = 0;
    // The written file's fstat (at seal): commit links only this very file into place.
    let st: fs.Stats | undefined;
    let committed = false;
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
    return {
      write: (b) => {
        writeAll(fd, b);
        bytes += b.length;
        flush();
      },
      seal: async () => {
        let ms = 0;
        try {
          await flushing;
          if (durable) {
            const ts = performance.now();
            await fh!.sync();
            ms += performance.now() - ts;
          }
          st = await fh!.stat();
          await fh!.close();
        } finally {
          fh = undefined;
        }
        return ms;
      },
      commit: async (name) => {
        if (!st) throw new TransferError('io', `internal: ${name} committed before it was sealed`);
        await linkOwn(st, tmp, path.join(root, name), name, this.dir);
        committed = true;
        this.names = undefined;
        // The new name reaches the disk (a temporary name surviving a crash is swept at the next start).
        return durable ? syncPath(root, name) : 0;
      },
      discard: async () => {
        await flushing;
        await fh?.close().catch(() => undefined);
        fh = undefined;
        await fsp.rm(tmp, { force: true });
        void committed;
      },
    };
  }
}

/** fsync of a folder by path; returns the time it took, ms. */
async function syncPath(p: string, name: string): Promise<number> {
  const t = performance.now();
  let h: fsp.FileHandle | undefined;
  try {
    h = await openDir(p);
    await h.sync();
  } catch (err) {
    throw new TransferError('io', `cannot make ${name} durable (fsync ${path.basename(p)}): ${(err as Error).message}`);
  } finally {
    await h?.close();
  }
  return performance.now() - t;
}

// ---------------------------------------------------------------- memory (simulation)

/** One content: size and seed; its bytes are generated, its SHA-256 computed once. */
export class MemoryContent {
  sha?: string;
  private hashing?: Promise<string>;
  /** `data`: fixed bytes (a copy of a real file) instead of generated ones. */
  constructor(readonly size: number, readonly seed: number, private readonly data?: Buffer) {}

  /** Fills `buf[offset, offset+length)` with this content's bytes from `position`; returns the count. */
  fill(buf: Buffer, offset: number, length: number, position: number): number {
    const n = Math.max(0, Math.min(length, this.size - position));
    if (this.data) return this.data.copy(buf, offset, position, position + n);
    const seed = this.seed;
    let w = 0;
    for (let k = 0; k < n; k++) {
      const j = position + k;
      const sh = (j & 3) << 3;
      if (sh === 0 || k === 0) w = word(seed, j >>> 2);
      buf[offset + k] = (w >>> sh) & 255;
    }
    return n;
  }

  /** SHA-256 of the generated bytes (1 MiB at a time, yielding between chunks), once per content. */
  hash(world: MemoryShares, o: HashOptions = {}): Promise<string> {
    if (this.sha) return Promise.resolve(this.sha);
    if (!o.onProgress && !o.signal && this.hashing) return this.hashing;
    const p = (async () => {
      const h = createHash('sha256');
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(1, this.size)));
      for (let pos = 0; pos < this.size; ) {
        if (o.signal?.aborted) throw new TransferError('aborted', `hashing stopped after ${pos} of ${this.size} bytes`);
        const n = this.fill(buf, 0, buf.length, pos);
        h.update(n === buf.length ? buf : buf.subarray(0, n));
        pos += n;
        o.onProgress?.(pos);
        if (pos < this.size) await Promise.resolve();
      }
      const sha = h.digest('hex');
      this.sha = sha;
      world.known(this);
      return sha;
    })();
    if (!o.onProgress && !o.signal) this.hashing = p;
    return p;
  }
}

/** 32 pseudo-random bits for word `i` of content `seed` (lowbias32 of seed ⊕ i·φ). */
function word(seed: number, i: number): number {
  let x = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * The contents of a simulated world (one per memory runner): every
 * MemoryStore of the run shares it, so a downloaded file becomes the same
 * content (found by its SHA-256) without keeping any bytes.
 */
export class MemoryShares {
  private readonly bySha = new Map<string, MemoryContent>();
  /**
   * Who holds what, by file name and store number: a search asks every peer in turn for the same
   * name, so this one entry stays in the cache, where a walk of each store's own list touched
   * three scattered objects per peer (measured: ~3 % of a 10,000-peer churn run).
   */
  private readonly held = new Map<string, Map<number, MemoryContent>>();
  private stores = 0;
  /** Bytes of content generated for hashing so far (each content once). */
  hashedBytes = 0;

  content(size: number, seed: number): MemoryContent {
    if (!Number.isInteger(size) || size < 0) throw new LocalError('bad-option', `content size must be a non-negative integer, not ${size}`);
    return new MemoryContent(size, seed >>> 0);
  }

  /** Content with fixed bytes (e.g. a copy of one of the repository's demo files). */
  bytes(data: Buffer): MemoryContent {
    return new MemoryContent(data.length, 0, data);
  }

  /** A store holding `files` (empty: no allocation beyond the store itself). */
  store(label: string, files: readonly { name: string; content: MemoryContent }[] = []): MemoryStore {
    for (const f of files) assertName(f.name);
    const store = new MemoryStore(this, label, ++this.stores);
    // The first of two files of one name is the one held (as a listing would show one).
    for (const f of files) if (!this.lookup(store.no, f.name)) store.adopt(f.name, f.content);
    return store;
  }

  /** Store `no` holds `name` (a name it does not hold yet). */
  add(no: number, name: string, content: MemoryContent): void {
    let m = this.held.get(name);
    if (!m) this.held.set(name, (m = new Map()));
    m.set(no, content);
  }

  /** What store `no` holds under `name`, if anything. */
  lookup(no: number, name: string): MemoryContent | undefined {
    return this.held.get(name)?.get(no);
  }


  known(c: MemoryContent): void {
    this.hashedBytes += c.size;
    if (c.sha && !this.bySha.has(c.sha)) this.bySha.set(c.sha, c);
  }

  bySha256(sha: string): MemoryContent | undefined {
    return this.bySha.get(sha);
  }
}

const NO_NAMES: string[] = [];

/** A peer's simulated share: names → contents, no folder, no bytes held. */
export class MemoryStore implements ShareStore {
  readonly kind = 'memory' as const;
  /** Downloads being written (not yet committed or discarded). */
  temps = 0;

  /** The names held, in the order they came (for listings; lookups go through the world's index). */
  private names: string[] = NO_NAMES;

  /** `no`: this store's number in its world (MemoryShares.store). */
  constructor(private readonly world: MemoryShares, private readonly name: string, readonly no: number) {}

  /** Holds `content` under `name` from now on (a name not held yet). */
  adopt(name: string, content: MemoryContent): void {
    this.world.add(this.no, name, content);
    this.names = [...this.names, name];
  }

  get label(): string {
    return `memory:${this.name}`;
  }

  async prepare(): Promise<string[]> {
    return [];
  }

  private find(name: string): MemoryContent | undefined {
    return this.names.length === 0 ? undefined : this.world.lookup(this.no, name);
  }

  async list(): Promise<{ name: string; size: number }[]> {
    return this.names.map((name) => ({ name, size: this.find(name)!.size })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(name: string): Promise<{ size: number } | null> {
    return this.statNow(name);
  }

  statNow(name: string): { size: number } | null {
    if (this.names.length === 0 || !checkFileName(name).ok) return null;
    const c = this.find(name);
    return c ? { size: c.size } : null;
  }

  countNow(): number {
    return this.names.length;
  }

  async exists(name: string): Promise<boolean> {
    assertName(name);
    return this.find(name) !== undefined;
  }

  async open(name: string): Promise<StoreFile> {
    assertName(name);
    const c = this.find(name);
    if (!c) throw new LocalError('not-found', `${name} is not in the share ${this.label}`);
    const world = this.world;
    return {
      name,
      size: c.size,
      read: async (buf, offset, length, position) => ({ bytesRead: c.fill(buf, offset, length, position) }),
      knownSha256: async () => c.sha,
      sha256: (o) => c.hash(world, o),
      close: async () => undefined,
    };
  }

  async freeBytes(): Promise<number> {
    return Infinity;
  }

  /** The SHA-256 of a held file (the memory runner's check of a download), or null. */
  async sha256(name: string): Promise<string | null> {
    const c = this.find(name);
    return c ? c.hash(this.world) : null;
  }

  async createTemp(): Promise<TempFile> {
    let bytes = 0;
    let open = true;
    this.temps++;
    const close = () => {
      if (open) {
        open = false;
        this.temps--;
      }
    };
    return {
      write: (b) => {
        bytes += b.length;
      },
      seal: async () => 0,
      commit: async (name, sha256) => {
        if (this.find(name)) throw new TransferError('exists', `${name} already exists in ${this.label}; not overwritten`);
        const c = this.world.bySha256(sha256);
        if (!c || c.size !== bytes) throw new TransferError('io', `${name}: the memory store knows no content of ${bytes} bytes with SHA-256 ${sha256.slice(0, 12)}…`);
        this.adopt(name, c);
        close();
        return 0;
      },
      discard: async () => close(),
    };
  }
}
