/**
 * Hashing off the requester's main thread (core/transfer/hash-pool.ts, docs/SWARM.md "Hashing off
 * the main thread"): with `pieceThreads`, pieces are verified and written on worker threads while
 * the link fills its next buffer. A piece counts, and goes into the resume file, only once its
 * verification and write have answered; a bad piece drops its holder; a failed write fails the
 * download and keeps only pieces verified and written.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { errorCode, FsStore, tcpTransport } from '../../core/index.ts';
import { tamperingStore } from '../../scenarios/lib/fault-node.ts';
import { realClock } from '../../core/clock.ts';
import { hashPool, type HashBackend } from '../../core/transfer/hash-pool.ts';
import { slotsPerLink, swarmDownload, type SwarmDownloadOptions } from '../../core/transfer/swarm.ts';
import { until } from '../helpers.ts';
import { PIECE, partials, sha, swarmNet } from './swarm-net.ts';

async function holdersOf(t: import('ava').ExecutionContext, k: number, body: Buffer, peer: Record<string, unknown> = {}) {
  const { c, holders } = await swarmNet(t, k, body, peer);
  const hits = holders.map((h) => ({ ...h.ref, size: body.length, hops: 1 }));
  const dir = path.dirname(holders[0]!.opts.share);
  const get = (tag: string, o: Partial<SwarmDownloadOptions> = {}) => {
    const share = path.join(dir, tag);
    fs.mkdirSync(share, { recursive: true });
    const p = swarmDownload({ transport: tcpTransport(), clock: realClock, shareDir: share, self: { id: tag, host: '127.0.0.1', port: 1 }, name: 'f.bin', hits, tmpTag: tag, fsync: false, adaptive: false, pieceThreads: true, wholeThreadMinBytes: 0, ...o });
    return { share, p };
  };
  return { c, holders, hits, get };
}

/** The piece indexes a resume file lists (none if there is no resume file yet). */
function listed(share: string): number[] {
  const f = partials(share).find((n) => n.endsWith('.swarm.json'));
  return f ? (JSON.parse(fs.readFileSync(path.join(share, f), 'utf8')) as { have: number[] }).have : [];
}

test('pieces verified and written on worker threads: the file is right, every piece from the pool', async (t) => {
  const body = randomBytes(2 * 1024 * 1024 + 1000);
  const { get } = await holdersOf(t, 3, body);
  let calls = 0;
  const pool = hashPool();
  const counting: HashBackend = { verifyWrite: (...a) => (calls++, pool.verifyWrite(...a)), whole: () => pool.whole() };
  const { share, p } = get('RT', { hashing: counting });
  const res = await p;
  t.is(sha(fs.readFileSync(path.join(share, 'f.bin'))), sha(body));
  t.is(res.sha256, sha(body));
  t.is(res.pieces, 33);
  t.true(calls > 0 && calls <= 33 + res.bytesDuplicate / PIECE, `${calls} verifications off the main thread`);
  t.deepEqual(partials(share), []);
});

test('pieces on worker threads: a holder sending bad pieces is dropped; only its pieces are fetched again', async (t) => {
  const body = randomBytes(1024 * 1024);
  const { c, hits, get } = await holdersOf(t, 2, body, { uploadRate: 4e6 });
  const bad = await c.add('BAD', { store: tamperingStore(new FsStore(path.join(c.dir, 'BAD')), realClock) });
  fs.writeFileSync(path.join(bad.opts.share, 'f.bin'), body);
  hits.unshift({ ...bad.ref, size: body.length, hops: 1 });
  const { share, p } = get('RB');
  const res = await p;
  t.is(sha(fs.readFileSync(path.join(share, 'f.bin'))), sha(body));
  const b = res.sources.find((s) => s.id === 'BAD')!;
  t.regex(b.dropped ?? '', /bad-piece/);
  t.is(b.pieces, 0);
  t.true(res.badPieces >= 1 && res.badPieces <= slotsPerLink(PIECE), `bad pieces ${res.badPieces}`);
  t.true(res.bytesWasted - res.bytesDuplicate <= res.bytesOutstandingLost + res.badPieces * PIECE, JSON.stringify(res));
});

test('a piece is in the resume file only after its verification and write answered; meanwhile it is asked of nobody else', async (t) => {
  const body = randomBytes(1024 * 1024);
  const { get } = await holdersOf(t, 2, body);
  const pool = hashPool();
  const HELD = 3;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let heldWritten = false;
  let heldCalls = 0;
  const held: HashBackend = {
    verifyWrite: async (buf, sum, fd, at) => {
      const ok = await pool.verifyWrite(buf, sum, fd, at);
      if (at === HELD * PIECE) {
        heldCalls++;
        heldWritten = true;
        await gate; // written and verified, but not answered yet
      }
      return ok;
    },
    whole: () => pool.whole(),
  };
  let progress = 0;
  const { share, p } = get('RH', { hashing: held, onProgress: (b) => (progress = b) });
  // Every other piece counts; the held one does not, and nothing asked for it again.
  await until(() => progress >= body.length - PIECE, { what: 'all but the held piece verified' });
  t.true(heldWritten);
  const l = listed(share);
  t.false(l.includes(HELD), `resume file lists the held piece: ${l}`);
  t.is(l.length, 15);
  release();
  await p;
  t.is(sha(fs.readFileSync(path.join(share, 'f.bin'))), sha(body));
  t.is(heldCalls, 1, 'the held piece came once');
});

test('a write that fails while other pieces are in flight fails the download; the resume file lists only pieces verified and written; a later download resumes from them', async (t) => {
  const body = randomBytes(2 * 1024 * 1024);
  const { get } = await holdersOf(t, 2, body);
  const pool = hashPool();
  const FAIL = 9;
  const failing: HashBackend = {
    verifyWrite: async (buf, sum, fd, at) => {
      if (at !== FAIL * PIECE) return pool.verifyWrite(buf, sum, fd, at);
      await new Promise((r) => setTimeout(r, 20)); // others land and verify meanwhile
      throw new Error('EIO: injected write failure');
    },
    whole: () => pool.whole(),
  };
  const { share, p } = get('RF', { hashing: failing });
  const err = await t.throwsAsync(p);
  t.is(errorCode(err), 'io', err?.message);
  t.regex(err!.message, /injected write failure/);
  const l = listed(share);
  t.false(l.includes(FAIL));
  // Every piece listed is on disk, verified.
  const part = fs.readFileSync(path.join(share, partials(share).find((n) => n.endsWith('.part'))!));
  for (const i of l) t.is(sha(part.subarray(i * PIECE, (i + 1) * PIECE)), sha(body.subarray(i * PIECE, (i + 1) * PIECE)), `piece ${i}`);
  t.false(fs.existsSync(path.join(share, 'f.bin')));
  // Again, with the default backend: resumes from the listed pieces.
  const again = await get('RF').p;
  t.is(again.resumedPieces, new Set(l).size);
  t.is(sha(fs.readFileSync(path.join(share, 'f.bin'))), sha(body));
  t.deepEqual(partials(share), []);
});

test('default: pieces verified on the main thread, the whole-file hash on its worker (from a size on, or once it runs)', async (t) => {
  const body = randomBytes(1024 * 1024 + 5);
  const { get } = await holdersOf(t, 2, body);
  const pool = hashPool();
  const seen = { verify: 0, whole: 0 };
  const counting = (running: boolean): HashBackend => ({
    verifyWrite: (...a) => (seen.verify++, pool.verifyWrite(...a)),
    whole: () => (seen.whole++, pool.whole()),
    wholeRunning: running,
  });
  const a = get('RD', { pieceThreads: false, hashing: counting(false) });
  t.is((await a.p).sha256, sha(body));
  t.deepEqual(seen, { verify: 0, whole: 1 });
  t.is(sha(fs.readFileSync(path.join(a.share, 'f.bin'))), sha(body));
  // Below wholeThreadMinBytes and the worker not running: hashed here.
  const b = get('RS', { pieceThreads: false, hashing: counting(false), wholeThreadMinBytes: 2 * body.length });
  t.is((await b.p).sha256, sha(body));
  t.deepEqual(seen, { verify: 0, whole: 1 });
  // Running already: used whatever the size.
  const c = get('RR', { pieceThreads: false, hashing: counting(true), wholeThreadMinBytes: 2 * body.length });
  t.is((await c.p).sha256, sha(body));
  t.deepEqual(seen, { verify: 0, whole: 2 });
});
