/**
 * How transfer code opens, creates and links anything inside a share folder,
 * where a local user may have put any kind of entry under any name: a FIFO, a
 * symlink, a hard link to a file elsewhere, a directory.
 *
 * - Nothing is opened in a way that can block: every open carries O_NONBLOCK
 *   (a FIFO without a writer opens at once instead of holding one of libuv's
 *   four threads forever) and O_NOFOLLOW, and the open descriptor must be a
 *   regular file (fstat), else it is closed and refused.
 * - Files we write are created new under a fresh name with
 *   O_CREAT|O_EXCL|O_NOFOLLOW, so no existing entry can redirect the write,
 *   then renamed over the name they are meant to have (a rename replaces the
 *   entry, never what it points to).
 * - A file becomes visible by a hard link from its temporary name, and is then
 *   checked to be the very file we wrote and verified (same device and inode).
 *
 * No imports from the rest of transfer/: jail.ts, hash-cache.ts and swarm.ts all use it.
 */
import { constants, type Stats } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { LocalError, TransferError } from '../errors.ts';

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

/** The share jail refused a name or a file (jail.ts). */
export class JailError extends LocalError {}

export interface RegularOptions {
  /** Open flags (O_NONBLOCK and O_NOFOLLOW are always added). Default O_RDONLY. */
  flags?: number;
  /** The file's name in messages. Default: the path's last component. */
  what?: string;
  /** Refuse a file with more than one name (JailError 'hard-link'). */
  singleLink?: boolean;
  /** Refuse a file owned by another user than this process's (JailError 'permission-denied'). */
  own?: boolean;
}

/**
 * Opens `p` without blocking and without following a final symlink (ELOOP), and
 * returns it with its fstat only when it is a regular file passing `o`'s checks;
 * anything else is closed and refused (JailError 'not-regular', 'hard-link',
 * 'permission-denied'). Errors of the open itself (ENOENT, ELOOP, ENXIO, ...) pass through.
 */
export async function openRegular(p: string, o: RegularOptions = {}): Promise<{ handle: FileHandle; st: Stats }> {
  const handle = await fsp.open(p, (o.flags ?? O_RDONLY) | O_NONBLOCK | O_NOFOLLOW);
  try {
    const st = await handle.stat();
    const what = o.what ?? path.basename(p);
    if (!st.isFile()) throw new JailError('not-regular', `${what} is not a regular file`);
    // A hard link may be another name of a file outside the folder: indistinguishable, so refused.
    if (o.singleLink && st.nlink > 1) throw new JailError('hard-link', `${what} has ${st.nlink} hard links; only singly-linked files are used`);
    const uid = process.getuid?.();
    if (o.own && uid !== undefined && st.uid !== uid) throw new JailError('permission-denied', `${what} belongs to user ${st.uid}, not to this process (${uid})`);
    return { handle, st };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Opens the folder `dir` (to fsync it), without blocking whatever is there. */
export function openDir(dir: string): Promise<FileHandle> {
  return fsp.open(dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
}

/**
 * A new, empty file of ours, open for reading and writing, meant to be at `target`
 * whatever is there now. It is created as `fresh` (a name of the same folder no
 * one else uses) with O_CREAT|O_EXCL|O_NOFOLLOW, then renamed over `target`.
 * When the rename fails (a directory holds the name), the file keeps its fresh
 * name: `path` says where it is.
 */
export async function createFresh(target: string, fresh: string): Promise<{ handle: FileHandle; path: string }> {
  const handle = await fsp.open(fresh, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  try {
    await fsp.rename(fresh, target);
    return { handle, path: target };
  } catch {
    return { handle, path: fresh };
  }
}

/**
 * Makes our file `st` (the fstat of its open descriptor), now named `from`, visible
 * as `to` (never overwriting: TransferError 'exists'), and checks that `to` is
 * that very file. Should `from` have been replaced meanwhile, `to` (the link
 * just made) is removed again and the move fails (TransferError 'io'). `name`
 * and `dir` are for the messages.
 */
export async function linkOwn(st: Stats, from: string, to: string, name: string, dir: string): Promise<void> {
  try {
    await fsp.link(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new TransferError('exists', `${name} already exists in ${dir}; not overwritten`);
    throw new TransferError('io', `cannot move ${name} into place: ${(err as Error).message}`);
  }
  const now = await fsp.lstat(to).catch(() => undefined);
  if (!now || now.ino !== st.ino || now.dev !== st.dev) {
    if (now) await fsp.unlink(to).catch(() => undefined);
    throw new TransferError('io', `cannot move ${name} into place: its temporary file ${path.basename(from)} was replaced by another file`);
  }
}
