/**
 * The holder's SHA-256 cache survives a restart (persisted in the share
 * folder's hidden cache file), is invalidated by any change of size, mtime or
 * inode, and treats a corrupt cache file as absent. "Restart" = the
 * in-memory cache forgotten (forgetHashCache), as in a new process; hashing
 * work is counted by hashStats. Serial: hashStats is per process.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { flushHashCache, forgetHashCache, HASH_CACHE_FILE, hashStats } from '../../core/transfer/hash-cache.ts';
import { listShared, openShared, sha256Of } from '../../core/transfer/jail.ts';
import { tmpDir } from '../helpers.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function share(t: ExecutionContext): string {
  const dir = tmpDir('treeshare-hashcache-');
  t.teardown(async () => {
    await flushHashCache();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Hash of `name` through the jail, and how many files were hashed (not cached) for it. */
async function hashOf(dir: string, name: string): Promise<{ sha256: string; hashed: number }> {
  const before = hashStats.filesHashed;
  const f = await openShared(dir, name);
  try {
    const sha256 = await sha256Of(f);
    return { sha256, hashed: hashStats.filesHashed - before };
  } finally {
    await f.handle.close();
  }
}

test.serial('a restarted holder takes the hash from the cache file instead of rehashing', async (t) => {
  const dir = share(t);
  const content = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
  fs.writeFileSync(path.join(dir, 'big.bin'), content);
  const first = await hashOf(dir, 'big.bin');
  t.is(first.sha256, sha(content));
  t.is(first.hashed, 1);
  t.is((await hashOf(dir, 'big.bin')).hashed, 0, 'cached in memory');
  await flushHashCache();
  t.true(fs.existsSync(path.join(dir, HASH_CACHE_FILE)));
  t.deepEqual((await listShared(dir)).map((f) => f.name), ['big.bin'], 'the cache file is hidden, not shared');
  forgetHashCache(); // a new process
  const bytesBefore = hashStats.bytesHashed;
  const again = await hashOf(dir, 'big.bin');
  t.is(again.sha256, sha(content));
  t.is(again.hashed, 0, 'no rehash after a restart');
  t.is(hashStats.bytesHashed, bytesBefore);
});

test.serial('a change of mtime, size or inode makes the file be hashed again, also after a restart', async (t) => {
  const dir = share(t);
  const p = path.join(dir, 'f.txt');
  fs.writeFileSync(p, 'one two three\n');
  t.is((await hashOf(dir, 'f.txt')).hashed, 1);
  await flushHashCache();
  forgetHashCache();

  // Same content and size, newer mtime.
  const st = fs.statSync(p);
  fs.utimesSync(p, st.atime, new Date(st.mtimeMs + 5000));
  t.is((await hashOf(dir, 'f.txt')).hashed, 1, 'mtime changed');
  t.is((await hashOf(dir, 'f.txt')).hashed, 0);

  // Same size and mtime, different content and inode (replaced by rename).
  const st2 = fs.statSync(p);
  const q = path.join(dir, 'g.tmp');
  fs.writeFileSync(q, 'one two THREE\n');
  fs.utimesSync(q, st2.atime, st2.mtime);
  fs.renameSync(q, p);
  t.not(fs.statSync(p).ino, st2.ino);
  t.is(fs.statSync(p).mtimeMs, st2.mtimeMs);
  await flushHashCache();
  forgetHashCache();
  const r = await hashOf(dir, 'f.txt');
  t.is(r.hashed, 1, 'inode changed');
  t.is(r.sha256, sha('one two THREE\n'));

  // Different size.
  fs.appendFileSync(p, 'four\n');
  const r2 = await hashOf(dir, 'f.txt');
  t.is(r2.hashed, 1, 'size changed');
  t.is(r2.sha256, sha('one two THREE\nfour\n'));
});

test.serial('a corrupt, hostile or unreadable cache file is ignored, never fatal', async (t) => {
  const dir = share(t);
  fs.writeFileSync(path.join(dir, 'a.txt'), 'alpha\n');
  const st = fs.statSync(path.join(dir, 'a.txt'));
  const wrongButValid = { v: 1, files: { 'a.txt': { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: 'zz' } } };
  const bad: [string, string | (() => void)][] = [
    ['not JSON', '{"v":1,"files":{'],
    ['wrong version', JSON.stringify({ v: 2, files: {} })],
    ['wrong shape', JSON.stringify({ v: 1, files: [1, 2, 3] })],
    ['bad entry', JSON.stringify(wrongButValid)],
    ['null', 'null'],
    ['a folder', () => fs.mkdirSync(path.join(dir, HASH_CACHE_FILE))],
    ['a symlink', () => fs.symlinkSync('/etc/hostname', path.join(dir, HASH_CACHE_FILE))],
  ];
  for (const [what, content] of bad) {
    await flushHashCache();
    fs.rmSync(path.join(dir, HASH_CACHE_FILE), { recursive: true, force: true });
    if (typeof content === 'string') fs.writeFileSync(path.join(dir, HASH_CACHE_FILE), content);
    else content();
    forgetHashCache();
    const ignored = hashStats.cacheFilesIgnored;
    const r = await hashOf(dir, 'a.txt');
    t.is(r.sha256, sha('alpha\n'), what);
    t.is(r.hashed, 1, `${what}: hashed afresh`);
    t.is(hashStats.cacheFilesIgnored, ignored + 1, `${what}: counted as ignored`);
  }
  // The hash computed in the last round was saved over the symlink (rename replaces the link, never follows it).
  await flushHashCache();
  t.false(fs.lstatSync(path.join(dir, HASH_CACHE_FILE)).isSymbolicLink());
  forgetHashCache();
  t.is((await hashOf(dir, 'a.txt')).hashed, 0, 'a valid cache file is used again');
});

test.serial('several offers of one file at once share one hashing pass', async (t) => {
  const dir = share(t);
  fs.writeFileSync(path.join(dir, 'c.bin'), Buffer.alloc(2 * 1024 * 1024, 3));
  forgetHashCache();
  const before = hashStats.filesHashed;
  const rs = await Promise.all([1, 2, 3, 4].map(() => hashOf(dir, 'c.bin')));
  t.is(new Set(rs.map((r) => r.sha256)).size, 1);
  t.is(hashStats.filesHashed - before, 1);
});
