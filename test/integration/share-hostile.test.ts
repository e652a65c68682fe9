/**
 * A hostile local user of the share folder (issue 22, items 3, 6, 7, 12): real
 * FIFOs, hard links, symlinks and over-long partials planted in a temporary
 * share. Nothing there may block the peer (a FIFO opened without O_NONBLOCK
 * holds one of libuv's four threads for good), redirect a write to a file
 * elsewhere, make a download fail for good, or make a download visible with
 * other bytes than those verified. The FIFO cases run the peer in its own
 * process (test/fixtures/peer-proc.ts): a peer that froze can still be killed
 * by its pid, and "leaves when asked" is about a process.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { errorCode, type Peer } from '../../core/index.ts';
import { manifestOf, pieceCount, pieceSizeFor } from '../../core/transfer/manifest.ts';
import { openShared } from '../../core/transfer/jail.ts';
import { FsStore } from '../../core/transfer/store.ts';
import { sweepPartials } from '../../core/transfer/swarm.ts';
import { HASH_CACHE_FILE } from '../../core/transfer/hash-cache.ts';
import { cluster, nextEvent, spawnPeer, tmpDir, type Cluster, type ProcPeer } from '../helpers.ts';
import { PIECE, partials, sha, swarmNet } from './swarm-net.ts';

const mkfifo = (p: string) => execFileSync('mkfifo', [p]);

/** The swarm partial's and resume file's names of `body` for peer `tag` (swarm.ts). */
const partialNames = (tag: string, body: Buffer) => {
  const stem = `.treeshare-${tag}-${sha(body).slice(0, 16)}.swarm`;
  return { part: `${stem}.part`, json: `${stem}.json` };
};

/** A valid resume file for `body` (as the swarm tests' holders hash it) listing `have`. */
function resumeFile(body: Buffer, have: number[]): string {
  const pieceSize = pieceSizeFor(body.length, PIECE);
  const pieces: string[] = [];
  for (let i = 0; i < pieceCount({ size: body.length, pieceSize }); i++) pieces.push(sha(body.subarray(i * pieceSize, (i + 1) * pieceSize)));
  return JSON.stringify({ v: 1, name: 'f.bin', manifest: { size: body.length, sha256: sha(body), pieceSize, pieces }, have });
}

/** A peer in its own process, sharing `share` (made, and filled by `plant`, before it starts), joined to `c`. */
async function procPeer(t: ExecutionContext, c: Cluster, id: string, plant: (share: string) => void = () => undefined): Promise<ProcPeer & { share: string }> {
  const share = path.join(c.dir, id);
  fs.mkdirSync(share, { recursive: true });
  plant(share);
  const pp = await spawnPeer({ id, host: '127.0.0.1', port: 0, share, meta: { host: '127.0.0.1', port: c.meta.address.port }, minPieceBytes: PIECE, offerTimeoutMs: 5000 });
  t.teardown(() => pp.kill());
  await pp.next('joined');
  return Object.assign(pp, { share });
}

/** Closes the process's stdin (the fixture then stops the peer) and waits for it to exit: exit code. */
async function leaveByStdin(pp: ProcPeer): Promise<number | null> {
  const exited = new Promise<number | null>((r) => (pp.proc.exitCode !== null ? r(pp.proc.exitCode) : pp.proc.once('exit', (code) => r(code))));
  pp.proc.stdin!.end();
  return exited;
}

test('a FIFO named like a shared file: searches for it answer "no" and the holder keeps searching, serving, downloading and leaving', async (t) => {
  t.timeout(120_000);
  const c = await cluster({ peer: { minPieceBytes: PIECE, floodTimeoutMs: 5000, offerTimeoutMs: 5000 } });
  t.teardown(() => c.close());
  const good = randomBytes(100_000);
  const h = await procPeer(t, c, 'H', (share) => {
    fs.writeFileSync(path.join(share, 'good.bin'), good);
    mkfifo(path.join(share, 'fifo.bin'));
  });
  const r = await c.add('R');
  const mine = randomBytes(50_000);
  fs.writeFileSync(path.join(r.opts.share, 'mine.bin'), mine);
  // More searches for the FIFO's name than libuv has threads (4): each one used to hold a thread for good.
  const fifo = await Promise.all(Array.from({ length: 8 }, () => r.search('fifo.bin')));
  for (const s of fifo) {
    t.deepEqual(s.hits, []);
    t.is(s.reached, 2, 'H answered');
  }
  const s = await r.search('good.bin');
  t.deepEqual(s.hits.map((x) => x.id), ['H']);
  const got = await r.download('good.bin');
  t.true(got.verified);
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'good.bin'))), sha(good));
  h.send({ cmd: 'download', name: 'mine.bin' });
  await h.next('downloaded');
  t.is(sha(fs.readFileSync(path.join(h.share, 'mine.bin'))), sha(mine));
  t.is(await leaveByStdin(h), 0);
});

test('a FIFO named like a resume file: the peer still downloads (also that name\'s file) and leaves when its input ends', async (t) => {
  t.timeout(120_000);
  const body = randomBytes(512 * 1024);
  const other = randomBytes(100_000);
  const { c, holders } = await swarmNet(t, 1, body, { offerTimeoutMs: 5000 });
  fs.writeFileSync(path.join(holders[0]!.opts.share, 'g.bin'), other);
  const h = await procPeer(t, c, 'R');
  // Planted after the start (the start-up sweep would remove them): the name f.bin's resume file has, and another.
  mkfifo(path.join(h.share, partialNames('R', body).json));
  mkfifo(path.join(h.share, '.treeshare-R-0123456789abcdef.swarm.json'));
  for (const [name, b] of [['f.bin', body], ['g.bin', other]] as const) {
    h.send({ cmd: 'download', name });
    await h.next('downloaded');
    t.is(sha(fs.readFileSync(path.join(h.share, name))), sha(b), name);
  }
  t.is(await leaveByStdin(h), 0);
});

test('a FIFO named like the hash cache: the holder still hashes, offers and serves its files', async (t) => {
  t.timeout(120_000);
  const c = await cluster({ peer: { offerTimeoutMs: 5000 } });
  t.teardown(() => c.close());
  const body = randomBytes(200_000);
  const h = await procPeer(t, c, 'H', (share) => {
    fs.writeFileSync(path.join(share, 'f.bin'), body);
    mkfifo(path.join(share, HASH_CACHE_FILE));
  });
  const r = await c.add('R');
  const res = await r.download('f.bin');
  t.true(res.verified);
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
  t.is(await leaveByStdin(h), 0);
});

/** Swarm download of f.bin (`body`, one holder) by a requester R whose share `plant` prepared. */
async function swarmInto(t: ExecutionContext, body: Buffer, plant: (share: string) => void): Promise<{ r: Peer; res: Awaited<ReturnType<Peer['download']>> }> {
  const { c } = await swarmNet(t, 1, body);
  fs.mkdirSync(path.join(c.dir, 'R'), { recursive: true });
  const r = await c.add('R', { swarm: 'always', join: false });
  // Planted after the start: the start-up sweep does not get the chance to tidy up first.
  plant(r.opts.share);
  await r.join();
  const res = await r.download('f.bin');
  return { r, res };
}

test('a resumed partial longer than the file is cut to size: the visible file is exactly the verified bytes', async (t) => {
  const body = randomBytes(16 * PIECE + 1000);
  const { part, json } = partialNames('R', body);
  const { r, res } = await swarmInto(t, body, (share) => {
    fs.writeFileSync(path.join(share, part), Buffer.concat([body, Buffer.alloc(5000, 0x41)]));
    fs.writeFileSync(path.join(share, json), resumeFile(body, [0, 1, 2, 16]));
  });
  t.is(res.swarm!.resumedPieces, 4, 'the listed pieces were resumed');
  const got = fs.readFileSync(path.join(r.opts.share, 'f.bin'));
  t.is(got.length, body.length);
  t.is(sha(got), res.sha256);
  t.true(res.verified);
  t.deepEqual(partials(r.opts.share), []);
});

// Planting a file of another user needs root (chown): that case runs only there.
const plantedKinds = ['hard link', 'hard link with a resume file', ...(process.getuid?.() === 0 ? ['file of another user with a resume file'] : [])];
for (const kind of plantedKinds) {
  test(`a ${kind} at the swarm partial's name is never written through or taken as the download`, async (t) => {
    const body = randomBytes(16 * PIECE);
    const outside = tmpDir();
    t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
    const victim = path.join(outside, 'victim.txt');
    // Another user's copy holds the right bytes: it would even verify.
    const before = kind.startsWith('file of another') ? body : Buffer.from('precious data outside the share\n');
    fs.writeFileSync(victim, before);
    const { part, json } = partialNames('R', body);
    const { r, res } = await swarmInto(t, body, (share) => {
      if (kind.startsWith('file of another')) {
        fs.writeFileSync(path.join(share, part), body);
        fs.chownSync(path.join(share, part), 65534, 65534);
      } else fs.linkSync(victim, path.join(share, part));
      if (kind.endsWith('resume file')) fs.writeFileSync(path.join(share, json), resumeFile(body, [0, 1, 2, 3]));
    });
    t.true(res.verified);
    t.is(res.swarm!.resumedPieces, 0, 'nothing resumed from the planted file');
    t.deepEqual(fs.readFileSync(victim), before, 'the outside file is untouched');
    const got = path.join(r.opts.share, 'f.bin');
    t.is(sha(fs.readFileSync(got)), sha(body));
    const st = fs.statSync(got);
    t.not(st.ino, fs.statSync(victim).ino, 'the download is a file of its own');
    t.is(st.nlink, 1);
    t.is(st.uid, process.getuid!());
    t.deepEqual(partials(r.opts.share), []);
  });
}

test('a symlink at the swarm partial\'s or resume file\'s name is replaced, never followed; the download succeeds', async (t) => {
  const body = randomBytes(8 * PIECE);
  const outside = tmpDir();
  t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
  const target = path.join(outside, 'target.txt');
  fs.writeFileSync(target, 'target');
  const { part, json } = partialNames('R', body);
  const { r, res } = await swarmInto(t, body, (share) => {
    fs.symlinkSync(target, path.join(share, part));
    fs.symlinkSync(path.join(outside, 'dangling'), path.join(share, json));
  });
  t.true(res.verified);
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
  t.is(fs.readFileSync(target, 'utf8'), 'target');
  t.false(fs.existsSync(path.join(outside, 'dangling')));
  t.deepEqual(partials(r.opts.share), []);
});

test('a folder at the swarm partial\'s name: the download writes under a fresh name and succeeds', async (t) => {
  const body = randomBytes(8 * PIECE);
  const { part } = partialNames('R', body);
  const { r, res } = await swarmInto(t, body, (share) => fs.mkdirSync(path.join(share, part)));
  t.true(res.verified);
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
  t.deepEqual(partials(r.opts.share), [part], 'only the folder is left');
});

test('a partial that grows past the file\'s size while it is written is not made visible; the retry cuts it to size', async (t) => {
  const body = randomBytes(32 * PIECE);
  // 2 MiB at 1 MB/s: still running when the bytes are added.
  const { c } = await swarmNet(t, 1, body, { uploadRate: 1e6 });
  const r = await c.add('R', { swarm: 'always' });
  const p = r.download('f.bin');
  await nextEvent(r, 'progress', (x: { bytes: number }) => x.bytes >= 4 * PIECE);
  const fd = fs.openSync(path.join(r.opts.share, partialNames('R', body).part), 'r+');
  fs.writeSync(fd, Buffer.from('bytes past the end'), 0, 18, body.length);
  fs.closeSync(fd);
  const err = await t.throwsAsync(p);
  t.is(errorCode(err), 'io', err?.message);
  t.regex(err!.message, new RegExp(`${body.length + 18} bytes, not ${body.length}`));
  t.false(fs.existsSync(path.join(r.opts.share, 'f.bin')));
  const res = await r.download('f.bin');
  t.true(res.swarm!.resumedPieces > 0);
  const got = fs.readFileSync(path.join(r.opts.share, 'f.bin'));
  t.is(got.length, body.length);
  t.is(sha(got), sha(body));
});

test('the partial sweep removes symlinks and FIFOs at this peer\'s partial names (the entries, not their targets), at start too', async (t) => {
  const dir = tmpDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const outside = tmpDir();
  t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
  fs.writeFileSync(path.join(outside, 'target.txt'), 'target');
  const a = '0123456789abcdef';
  const b = 'fedcba9876543210';
  fs.symlinkSync(path.join(outside, 'target.txt'), path.join(dir, `.treeshare-P-${a}.swarm.part`));
  fs.symlinkSync(outside, path.join(dir, `.treeshare-P-${a}.swarm.json`));
  mkfifo(path.join(dir, `.treeshare-P-${b}.swarm.json`));
  // Another peer's, and a folder under one of our names: left alone.
  fs.symlinkSync(path.join(outside, 'target.txt'), path.join(dir, `.treeshare-Q-${a}.swarm.part`));
  fs.mkdirSync(path.join(dir, `.treeshare-P-${b}.swarm.part`));
  const removed = await sweepPartials(dir, 'P', 7 * 24 * 3600_000);
  t.deepEqual(removed.sort(), [`.treeshare-P-${a}.swarm.json`, `.treeshare-P-${a}.swarm.part`, `.treeshare-P-${b}.swarm.json`].sort());
  t.deepEqual(fs.readdirSync(dir).sort(), [`.treeshare-P-${b}.swarm.part`, `.treeshare-Q-${a}.swarm.part`].sort());
  t.is(fs.readFileSync(path.join(outside, 'target.txt'), 'utf8'), 'target');

  // The same at a peer's start.
  const c = await cluster();
  t.teardown(() => c.close());
  const share = path.join(c.dir, 'P');
  fs.mkdirSync(share);
  fs.symlinkSync(path.join(outside, 'target.txt'), path.join(share, `.treeshare-P-${a}.swarm.part`));
  mkfifo(path.join(share, `.treeshare-P-${a}.swarm.json`));
  await c.add('P', { join: false });
  t.deepEqual(partials(share), []);
  t.is(fs.readFileSync(path.join(outside, 'target.txt'), 'utf8'), 'target');
});

test('an offer-path download whose temporary file is replaced after it was written is not made visible', async (t) => {
  const dir = tmpDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = new FsStore(dir);
  const tmp = await store.createTemp({ tag: 'R', fsync: false });
  t.teardown(() => tmp.discard());
  tmp.write(Buffer.from('the verified bytes'));
  await tmp.seal();
  // Another file moved over the temporary name between the seal (hash checked) and the commit.
  const name = fs.readdirSync(dir).find((n) => n.endsWith('.part'))!;
  fs.writeFileSync(path.join(dir, 'other'), 'planted bytes');
  fs.renameSync(path.join(dir, 'other'), path.join(dir, name));
  const err = await t.throwsAsync(tmp.commit('f.txt', sha(Buffer.from('the verified bytes'))));
  t.is(errorCode(err), 'io', err?.message);
  t.regex(err!.message, /replaced/);
  t.false(fs.existsSync(path.join(dir, 'f.txt')));
});

test('a shared file replaced by a FIFO before its manifest pass: the pass refuses it at once instead of blocking', async (t) => {
  t.timeout(15_000);
  const dir = tmpDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = path.join(dir, 'a.bin');
  fs.writeFileSync(p, randomBytes(10_000));
  const f = await openShared(dir, 'a.bin');
  t.teardown(() => f.handle.close());
  fs.rmSync(p);
  mkfifo(p);
  // Should an open be waiting for a writer (the defect), this lets it go, so the process can end.
  t.teardown(() => {
    try {
      fs.closeSync(fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    } catch {
      /* no reader waiting: nothing blocked */
    }
  });
  const err = await t.throwsAsync(manifestOf(f));
  t.is(errorCode(err), 'not-regular', err?.message);
});
