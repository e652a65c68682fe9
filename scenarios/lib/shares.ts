/**
 * Share folders for a scenario: one temporary workspace per run, one folder
 * per peer inside it, copied from the repository's shares/ as git holds them
 * (testnet/demo-shares.ts: never written to, and what a person downloaded
 * there is not copied) or created empty, plus generated files of a given size. The
 * workspace is tracked for cleanup.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { seededBytes } from './rng.ts';
import { tempDir, untrackDir } from '../../testnet/cleanup.ts';
import { copyDemoShare } from '../../testnet/demo-shares.ts';

export const REPO = path.resolve(import.meta.dirname, '..', '..');

export class Workspace {
  readonly dir: string;

  constructor(prefix = 'treeshare-scenario-') {
    this.dir = tempDir(prefix);
  }

  /** Creates the share folder of `id`: a copy of shares/<from> when given, else empty. */
  share(id: string, from?: string): string {
    const dir = path.join(this.dir, 'shares', id);
    fs.mkdirSync(dir, { recursive: true });
    if (from) copyDemoShare(from, dir);
    return dir;
  }

  /** Writes `bytes` seeded pseudo-random bytes to `<share>/<name>`, in 4 MiB chunks. */
  async generate(share: string, name: string, bytes: number, next: () => number): Promise<string> {
    const file = path.join(share, name);
    const fh = await fsp.open(file, 'wx');
    try {
      const chunk = 4 * 1024 * 1024;
      for (let done = 0; done < bytes; ) {
        const n = Math.min(chunk, bytes - done);
        await fh.write(seededBytes(n, next));
        done += n;
      }
    } finally {
      await fh.close();
    }
    return file;
  }

  /** Copies a generated file into a share (a clone where the file system can; never a hard link: shares refuse those). */
  async duplicate(file: string, share: string, name = path.basename(file)): Promise<void> {
    await fsp.copyFile(file, path.join(share, name), fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL);
  }

  async remove(): Promise<void> {
    await fsp.rm(this.dir, { recursive: true, force: true });
    untrackDir(this.dir);
  }
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Names of temporary transfer files (`.treeshare-*.part`) left in a share folder. */
export function leftoverParts(share: string): string[] {
  try {
    return fs.readdirSync(share).filter((f) => f.startsWith('.treeshare-') && f.endsWith('.part'));
  } catch {
    return [];
  }
}
