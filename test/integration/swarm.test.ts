/**
 * Swarm downloads (issue 15, docs/SWARM.md): pieces from every holder at once,
 * each verified; a corrupting holder is dropped and only its bad piece is
 * fetched again; a holder that leaves loses its pieces to the others; an
 * interrupted download resumes from the pieces verified on disk (even from one
 * holder: a partial makes the download a swarm); one holder and no partial
 * take the offer path unless swarm is 'always'; a protocol-1 peer gets version-mismatch.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { errorCode, FsStore, PROTOCOL_VERSION, tcpTransport, type Message } from '../../core/index.ts';
import { tamperingStore } from '../../scenarios/lib/fault-node.ts';
import { realClock } from '../../core/clock.ts';
import { slotsPerLink, swarmDownload } from '../../core/transfer/swarm.ts';
import { nextEvent, until } from '../helpers.ts';
import { PIECE, partials, sha, swarmNet } from './swarm-net.ts';

test('a file on four capped holders comes from all four, every piece verified', async (t) => {
  // 6 MiB at 4 MB/s per holder: one holder alone would need ~1.6 s, four ~0.4 s. (With 2 MiB a
  // holder whose link started ~0.1 s late on a loaded machine could find only end-game copies left.)
  const body = randomBytes(6 * 1024 * 1024);
  const { c, holders } = await swarmNet(t, 4, body, { uploadRate: 4e6 });
  // Adaptive sources off: every peer of this test shares one event loop with the other tests of
  // the file, so the requester may well be saturated and park a holder (tested on its own below).
  const r = await c.add('R', { swarmAdaptive: false });
  const res = await r.download('f.bin');
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
  t.is(res.sha256, sha(body));
  t.truthy(res.swarm);
  t.is(res.swarm!.pieces, 96);
  const used = res.swarm!.sources.filter((s) => s.pieces > 0);
  t.is(used.length, 4, JSON.stringify(res.swarm!.sources));
  t.is(used.reduce((a, s) => a + s.pieces, 0), 96);
  t.deepEqual(partials(r.opts.share), [], 'no partial or resume file left');
  t.is(holders.length, 4);
});

test('a holder sending a bad piece is dropped; only what it spoiled is fetched again', async (t) => {
  // 4 MiB over two holders capped at 4 MB/s: ~0.5 s, so the uncapped BAD holder is asked for pieces
  // even when its link starts late on a loaded machine (with 1 MiB it sometimes found none left).
  const body = randomBytes(4 * 1024 * 1024);
  const { c } = await swarmNet(t, 2, body, { uploadRate: 4e6 });
  // A third holder that flips a bit of every piece it sends (its store's reads are corrupted; its manifest is true).
  await c.add('BAD', { store: tamperingStore(new FsStore(path.join(c.dir, 'BAD')), realClock) });
  fs.writeFileSync(path.join(c.peer('BAD').opts.share, 'f.bin'), body);
  // Adaptive sources off: a saturated requester (a loaded machine) could park BAD before it sends anything.
  const r = await c.add('R', { swarmAdaptive: false });
  const res = await r.download('f.bin');
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
  const bad = res.swarm!.sources.find((s) => s.id === 'BAD')!;
  t.regex(bad.dropped ?? '', /bad-piece/);
  t.is(bad.pieces, 0);
  // The first bad piece to be verified drops the holder. Pieces are verified off the main thread,
  // so the pieces it sent while that one was being hashed (at most its link's piece buffers) are
  // verified too: they are bad as well here (every piece is tampered with), nothing more.
  t.true(res.swarm!.badPieces >= 1 && res.swarm!.badPieces <= slotsPerLink(PIECE), `bad pieces ${res.swarm!.badPieces}`);
  // Thrown away (end-game copies apart): the bad pieces plus what that holder had in flight,
  // which is at most its pipeline depth (≤ 16 pieces, sized to the link's round trip).
  const lost = res.swarm!.bytesWasted - res.swarm!.bytesDuplicate;
  t.true(lost <= res.swarm!.bytesOutstandingLost + res.swarm!.badPieces * PIECE, `thrown away ${lost}, outstanding at BAD ${res.swarm!.bytesOutstandingLost}`);
  t.true(res.swarm!.bytesOutstandingLost <= 16 * PIECE);
});

test('a holder that leaves mid-download loses its pieces to the other; every holder gone keeps the verified pieces; a later download resumes', async (t) => {
  const body = randomBytes(2 * 1024 * 1024);
  const { c, holders } = await swarmNet(t, 2, body, { uploadRate: 2e6 });
  const r = await c.add('R');
  // H1 leaves after R has some pieces; H2 finishes alone.
  const p = r.download('f.bin');
  await nextEvent(r, 'progress', (x: { bytes: number }) => x.bytes >= 8 * PIECE);
  await holders[0]!.stop();
  const res = await p;
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
  const h1 = res.swarm!.sources.find((s) => s.id === 'H1')!;
  t.truthy(h1.dropped, 'H1 was dropped');
  t.true(res.swarm!.bytesWasted <= res.swarm!.bytesOutstandingLost + 4 * PIECE, JSON.stringify(res.swarm));

  // Now a second requester, and its holders (H2, R) stop at ~half: the error says so and the partial stays.
  const r2 = await c.add('R2');
  const p2 = r2.download('f.bin');
  await nextEvent(r2, 'progress', (x: { bytes: number; size: number }) => x.bytes >= x.size / 2);
  await Promise.all([holders[1]!.stop(), r.stop()]);
  const err = await t.throwsAsync(p2);
  t.is(errorCode(err), 'all-holders-gone', err?.message);
  t.is(partials(r2.opts.share).length, 2, 'partial and resume file kept');
  t.false(fs.existsSync(path.join(r2.opts.share, 'f.bin')));
  // Corrupt one verified piece on disk: the resume must not trust it.
  const part = partials(r2.opts.share).find((n) => n.endsWith('.part'))!;
  const fd = fs.openSync(path.join(r2.opts.share, part), 'r+');
  fs.writeSync(fd, Buffer.from([0x55 ^ body[0]!]), 0, 1, 0);
  fs.closeSync(fd);
  // A new holder appears; R2 resumes.
  const h3 = await c.add('H3');
  fs.writeFileSync(path.join(h3.opts.share, 'f.bin'), body);
  const resumed = nextEvent(r2, 'resume');
  const res2 = await r2.download('f.bin');
  const [info] = (await resumed) as [{ percent: number; pieces: number }];
  t.true(info.percent >= 40, `resumed at ${info.percent}%`);
  t.is(res2.swarm!.resumedPieces, info.pieces);
  t.is(sha(fs.readFileSync(path.join(r2.opts.share, 'f.bin'))), sha(body));
  // Only pieces not verified before (and the corrupted one) were fetched.
  t.true(res2.swarm!.bytesReceived <= body.length - res2.swarm!.resumedBytes + 4 * PIECE, JSON.stringify(res2.swarm));
  t.deepEqual(partials(r2.opts.share), []);
});

test('policy: one holder and no partial takes the offer path (fast receive); swarm "always" swarms from one holder', async (t) => {
  const body = randomBytes(512 * 1024);
  const { c } = await swarmNet(t, 1, body);
  const forced = await c.add('RS', { swarm: 'always' });
  const res2 = await forced.download('f.bin');
  t.deepEqual(res2.swarm?.sources.map((s) => [s.id, s.pieces]), [['H1', 8]]);
  t.is(sha(fs.readFileSync(path.join(forced.opts.share, 'f.bin'))), sha(body));
  fs.rmSync(path.join(forced.opts.share, 'f.bin')); // H1 the only holder again
  const r = await c.add('R');
  const res = await r.download('f.bin');
  t.is(res.swarm, undefined, 'one holder, no partial: the offer path');
  t.is(res.readPath, 'fast');
  t.is(res.holder.id, 'H1');
  t.is(sha(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha(body));
  // Two holders now (H1, R): the default swarms.
  const r3 = await c.add('R3');
  const res3 = await r3.download('f.bin');
  t.truthy(res3.swarm);
  t.is(res3.swarm!.sources.length, 2, JSON.stringify(res3.swarm!.sources));
});

test('a requester that closes mid-piece frees the holder\'s upload slot (the serve loop does not wait for a drain that never comes)', async (t) => {
  const body = randomBytes(1024 * 1024);
  // Capped: the holder sleeps between 64 KiB slices, so the close lands while it waits to write.
  const { holders } = await swarmNet(t, 1, body, { uploadRate: 1e6 });
  const h = holders[0]!;
  const conn = await tcpTransport().connect({ host: '127.0.0.1', port: h.address.port });
  t.teardown(() => conn.destroy());
  const manifest = new Promise<Message>((res) => conn.once('message', res));
  conn.send({ t: 'swarm-open', v: PROTOCOL_VERSION, from: { id: 'X', host: '127.0.0.1', port: 1 }, name: 'f.bin', sha256: null });
  t.is((await manifest).t, 'manifest');
  conn.raw();
  let got = 0;
  const some = new Promise<void>((res) => conn.on('data', (b: Buffer) => (got += b.length) >= 64 * 1024 && res()));
  conn.send({ t: 'want', pieces: [0, 1, 2, 3] });
  await some;
  t.is(h.swarmUploads.count, 1);
  conn.destroy();
  await until(() => h.swarmUploads.count === 0, { what: 'the upload slot to be freed', timeoutMs: 5000 });
  t.pass();
});

test('a protocol-1 requester gets version-mismatch from a swarm holder, not a hang', async (t) => {
  const { holders } = await swarmNet(t, 1, Buffer.alloc(10));
  const conn = await tcpTransport().connect({ host: '127.0.0.1', port: holders[0]!.address.port });
  t.teardown(() => conn.destroy());
  const answer = new Promise<{ t: string; code?: string }>((res) => conn.once('message', (m) => res(m as { t: string; code?: string })));
  conn.send({ t: 'swarm-open', v: 1, from: { id: 'OLD', host: '127.0.0.1', port: 1 }, name: 'f.bin', sha256: null });
  const m = await answer;
  t.is(m.t, 'error');
  t.is(m.code, 'version-mismatch');
});

test('adaptive sources: a saturated requester parks holders and finishes from the rest; parked ones are reported; off without a signal', async (t) => {
  t.timeout(30_000);
  const body = randomBytes(24 * 1024 * 1024);
  // Holders capped at 20 MB/s each, so the download lasts ~0.4 s even with all three (the first
  // trial comes after 150 ms of measured history).
  const { holders } = await swarmNet(t, 3, body, { uploadRate: 20e6 });
  const hits = holders.map((h) => ({ ...h.ref, size: body.length, hops: 1 }));
  const run = async (tag: string, o: { loadSignal?: () => number | undefined; adaptive?: boolean }) => {
    const share = fs.mkdtempSync(path.join(path.dirname(holders[0]!.opts.share), `${tag}-`));
    const res = await swarmDownload({ transport: tcpTransport(), clock: realClock, shareDir: share, self: { id: tag, host: '127.0.0.1', port: 1 }, name: 'f.bin', hits, tmpTag: tag, fsync: false, ...o });
    t.is(sha(fs.readFileSync(path.join(share, 'f.bin'))), sha(body), `${tag}: verified`);
    t.deepEqual(partials(share), [], `${tag}: no partial left`);
    return res;
  };
  // Always saturated: the governor tries; whatever it decided, what it reports adds up.
  const busy = await run('RB', { loadSignal: () => 1 });
  t.true(busy.fanout.windows > 0, 'the governor ran');
  t.true(busy.fanout.parks > 0, JSON.stringify(busy.fanout));
  t.is(busy.fanout.utilisation, 1);
  t.is(busy.fanout.parks - busy.fanout.unparks, busy.sources.filter((s) => s.parked).length, JSON.stringify(busy.sources));
  t.true(busy.sources.some((s) => !s.parked && s.pieces > 0), 'at least one source never stops');
  // Never saturated: nothing parked. No signal, or adaptive off: no governor at all.
  const idle = await run('RI', { loadSignal: () => 0.1 });
  t.is(idle.fanout.parks, 0);
  t.is((await run('RN', { loadSignal: () => undefined })).fanout.parks, 0);
  t.is((await run('RO', { loadSignal: () => 1, adaptive: false })).fanout.windows, 0);
});
