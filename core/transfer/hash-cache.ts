/**
 * SHA-256 of shared files, cached by (name, size, mtime, inode) in memory and
 * on disk, so a restarted holder does not rehash its whole share before its
 * first upload.
 *
 * Each share folder keeps its cache in a hidden file, `.treeshare.hashes.json`
 * (hidden names are never shared), written atomically (temporary file + rename)
 * shortly after a new hash is computed. The file is untrusted input: it is
 * read with a size limit and validated with zod; anything wrong (unreadable,
 * too big, bad JSON, bad shape) makes it ignored as a whole, never fatal.
 * An entry is used only when the open file's size, mtime and inode all match;
 * any change means the file is hashed again. A share folder the peer cannot
 * write to keeps the cache in memory only.
 *
 * Concurrent requests for the same file (several downloads at once) share
 * one hashing pass.
 */
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { TransferError } from '../errors.ts';
import { openRegular } from './share-fs.ts';

/**
 * An open shared file, as far as hashing needs it (jail.ts's SharedFile is
 * one). Declared here so hash-cache.ts and jail.ts do not import each other.
 */
export interface SharedFile {
  name: string;
  path: string;
  size: number;
  handle: fsp.FileHandle;
  mtimeMs: number;
  ino: number;
}

export const HASH_CACHE_FILE = '.treeshare.hashes.json';
/** A cache file larger than this is ignored. */
const MAX_FILE_BYTES = 32 * 1024 * 1024;
/** Most entries kept per share (beyond it the in-memory cache still works, the file is not grown). */
const MAX_ENTRIES = 100_000;

const Entry = z.object({
  size: z.number().int().nonnegative(),
  mtimeMs: z.number().finite(),
  ino: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
type Entry = z.infer<typeof Entry>;
const CacheFile = z.object({ v: z.literal(1), files: z.record(z.string().min(1).max(1024), Entry) });

/** Hashing work done by this process (tests and benchmarks read it). */
export const hashStats = { filesHashed: 0, bytesHashed: 0, cacheFilesIgnored: 0 };

interface ShareCache {
  root: string;
  entries: Map<string, Entry>;
  loaded: Promise<void>;
  saving: Promise<void> | undefined;
  again: boolean;
}

const shares = new Map<string, ShareCache>();
const inflight = new Map<string, Promise<string>>();

function shareCache(root: string): ShareCache {
  let c = shares.get(root);
  if (!c) {
    const created: ShareCache = { root, entries: new Map(), loaded: Promise.resolve(), saving: undefined, again: false };
    created.loaded = load(created);
    c = created;
    shares.set(root, c);
  }
  return c;
}

async function load(c: ShareCache): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    // Never blocking (a FIFO under this name), regular files only (share-fs.ts).
    const { handle, st } = await openRegular(path.join(c.root, HASH_CACHE_FILE));
    fh = handle;
    if (st.size > MAX_FILE_BYTES) throw new Error('not of sane size');
    const parsed = CacheFile.safeParse(JSON.parse(await fh.readFile('utf8')));
    if (!parsed.success) throw new Error('bad shape');
    let n = 0;
    for (const [name, e] of Object.entries(parsed.data.files)) {
      if (++n > MAX_ENTRIES) break;
      // Entries computed in this process meanwhile win.
      if (!c.entries.has(name)) c.entries.set(name, e);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') hashStats.cacheFilesIgnored++;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Writes the cache file (coalesced: one write at a time, one more if entries changed meanwhile). */
function scheduleSave(c: ShareCache): void {
  if (c.saving) {
    c.again = true;
    return;
  }
  c.saving = (async () => {
    do {
      c.again = false;
      const files: Record<string, Entry> = {};
      let n = 0;
      for (const [name, e] of c.entries) {
        if (++n > MAX_ENTRIES) break;
        files[name] = e;
      }
      const tmp = path.join(c.root, `${HASH_CACHE_FILE}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await fsp.writeFile(tmp, JSON.stringify({ v: 1, files }), { flag: 'wx' });
        await fsp.rename(tmp, path.join(c.root, HASH_CACHE_FILE));
      } catch {
        // Read-only share, disk full, folder gone: the in-memory cache still serves.
        await fsp.rm(tmp, { force: true }).catch(() => undefined);
      }
    } while (c.again);
  })().finally(() => {
    c.saving = undefined;
  });
}

/** Waits until every pending cache file write has finished. */
export async function flushHashCache(): Promise<void> {
  await Promise.all([...shares.values()].map((c) => c.saving));
}

/** Forgets the in-memory caches, as a restarted process would (tests). */
export function forgetHashCache(): void {
  shares.clear();
}

export interface HashOptions {
  /** Bytes hashed so far, after each 1 MiB read (a pass of its own, not shared with other callers). */
  onProgress?: (hashed: number) => void;
  /** Stops this caller's hashing pass (TransferError 'aborted'). */
  signal?: AbortSignal;
}

/** The cached SHA-256 of `f` when size, mtime and inode match, else undefined (never hashes). */
export async function knownSha256(f: SharedFile): Promise<string | undefined> {
  const c = shareCache(path.dirname(f.path));
  await c.loaded;
  const hit = c.entries.get(path.basename(f.path));
  return hit && hit.size === f.size && hit.mtimeMs === f.mtimeMs && hit.ino === f.ino ? hit.sha256 : undefined;
}

/** SHA-256 of an open shared file (hex), from the cache when size, mtime and inode match. */
export async function cachedSha256(f: SharedFile, o: HashOptions = {}): Promise<string> {
  const known = await knownSha256(f);
  if (known !== undefined) return known;
  const c = shareCache(path.dirname(f.path));
  const remember = (sha256: string) => {
    c.entries.set(path.basename(f.path), { size: f.size, mtimeMs: f.mtimeMs, ino: f.ino, sha256 });
    scheduleSave(c);
    return sha256;
  };
  // A caller that watches progress or may stop gets a pass of its own.
  if (o.onProgress || o.signal) return remember(await hashHandle(f, o));
  const key = `${f.path}\0${f.size}:${f.mtimeMs}:${f.ino}`;
  let p = inflight.get(key);
  if (!p) {
    p = hashHandle(f).then(remember).finally(() => inflight.delete(key));
    inflight.set(key, p);
  }
  return p;
}

async function hashHandle(f: SharedFile, o: HashOptions = {}): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let pos = 0;
  for (;;) {
    if (o.signal?.aborted) throw new TransferError('aborted', `hashing ${f.name} stopped after ${pos} of ${f.size} bytes`);
    const { bytesRead } = await f.handle.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
    o.onProgress?.(pos);
  }
  hashStats.filesHashed++;
  hashStats.bytesHashed += pos;
  return h.digest('hex');
}

/** Records the SHA-256 of `f` computed elsewhere (a manifest pass), as cachedSha256 would. */
export function rememberSha256(f: SharedFile, sha256: string): void {
  const c = shareCache(path.dirname(f.path));
  void c.loaded.then(() => {
    c.entries.set(path.basename(f.path), { size: f.size, mtimeMs: f.mtimeMs, ino: f.ino, sha256 });
    scheduleSave(c);
  });
}
