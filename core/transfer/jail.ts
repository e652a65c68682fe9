/**
 * The share jail: the only way transfer code reaches the file system for a
 * shared name. A name must pass checkFileName, and the file must be a regular
 * file whose real path lies directly inside the share folder's real path
 * (symlinks that escape are refused; hard links are refused outright, as a
 * second name of a file elsewhere cannot be told apart). The resolved path is
 * opened with O_NOFOLLOW and O_NONBLOCK (a FIFO never holds the open) and
 * checked again on the open handle (share-fs.ts).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { LocalError } from '../errors.ts';
import { checkFileName } from '../protocol/names.ts';
import { cachedSha256 as hashCached, type HashOptions, type SharedFile } from './hash-cache.ts';
import { JailError, openRegular } from './share-fs.ts';

export { JailError };

export function assertName(name: string): void {
  const c = checkFileName(name);
  if (!c.ok) throw new JailError('bad-name', `refused file name ${JSON.stringify(name.slice(0, 80))}: ${c.reason}`);
}

/** Real path of the share folder, checked to be a directory. */
export async function shareRoot(dir: string): Promise<string> {
  let real: string;
  try {
    real = await fs.realpath(dir);
  } catch {
    throw new JailError('no-share', `share folder ${dir} does not exist`);
  }
  const st = await fs.stat(real);
  if (!st.isDirectory()) throw new JailError('no-share', `share folder ${dir} is not a directory`);
  return real;
}

export type { SharedFile };

/** Opens `name` inside `dir` for reading, or throws JailError / a not-found LocalError. */
export async function openShared(dir: string, name: string): Promise<SharedFile> {
  assertName(name);
  const root = await shareRoot(dir);
  const p = path.join(root, name);
  let real: string;
  try {
    real = await fs.realpath(p);
  } catch {
    throw new LocalError('not-found', `${name} is not in the share folder`);
  }
  if (path.dirname(real) !== root) throw new JailError('outside-share', `${name} resolves outside the share folder`);
  const { handle, st } = await openRegular(real, { what: name, singleLink: true });
  return { name, path: real, size: st.size, handle, mtimeMs: st.mtimeMs, ino: st.ino };
}

/** True when `name` is a regular file served from `dir` (for answering queries). */
export async function hasShared(dir: string, name: string): Promise<{ size: number } | null> {
  if (!checkFileName(name).ok) return null;
  try {
    const f = await openShared(dir, name);
    await f.handle.close();
    return { size: f.size };
  } catch {
    return null;
  }
}

/** Names of shared regular files (hidden and refused names left out), sorted. */
export async function listShared(dir: string): Promise<{ name: string; size: number }[]> {
  const root = await shareRoot(dir);
  const out: { name: string; size: number }[] = [];
  for (const ent of await fs.readdir(root, { withFileTypes: true })) {
    if (!checkFileName(ent.name).ok) continue;
    if (!ent.isFile() && !ent.isSymbolicLink()) continue;
    try {
      const real = await fs.realpath(path.join(root, ent.name));
      if (path.dirname(real) !== root) continue;
      const st = await fs.stat(real);
      if (st.isFile() && st.nlink === 1) out.push({ name: ent.name, size: st.size });
    } catch {
      /* vanished or dangling: not shared */
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * SHA-256 of an open shared file, cached by (path, size, mtime, inode) in
 * memory and in the share folder's hidden cache file (see hash-cache.ts).
 * `onProgress` gets the bytes hashed so far after each 1 MiB read; `signal`
 * stops hashing (TransferError 'aborted').
 */
export function sha256Of(f: SharedFile, o: HashOptions = {}): Promise<string> {
  return hashCached(f, o);
}
