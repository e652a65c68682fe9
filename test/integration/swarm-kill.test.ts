/**
 * Swarm resume after a crash (issue 15, docs/SWARM.md): a requester running
 * in its own OS process (test/fixtures/peer-proc.ts) is killed with SIGKILL
 * halfway through a swarm download, then started again with the same id and
 * share folder. It must resume from the pieces verified before the kill
 * (re-hashed on disk; the bound is two fetched again, and since the resume
 * file is saved before a piece is reported, none is), never show the name
 * before the whole file is verified, and end with the right bytes. Every process is killed by its
 * pid in teardown.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { cluster, spawnPeer, type ProcPeer } from '../helpers.ts';

const PIECE = 256 * 1024;
const SIZE = 16 * 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function reap(pp: ProcPeer): Promise<void> {
  if (pp.proc.exitCode !== null || pp.proc.signalCode !== null) return;
  const exited = new Promise((r) => pp.proc.once('exit', r));
  process.kill(pp.proc.pid!, 'SIGKILL');
  await exited;
}

test('a requester process killed with SIGKILL at ~50% resumes from its verified pieces after a restart', async (t) => {
  t.timeout(60_000);
  const body = randomBytes(SIZE);
  // Two holders at 8 MB/s each: the download takes about a second, so the kill lands mid-way.
  const c = await cluster({ peer: { minPieceBytes: PIECE, uploadRate: 8e6 } });
  t.teardown(() => c.close());
  for (const id of ['H1', 'H2']) {
    const h = await c.add(id);
    fs.writeFileSync(path.join(h.opts.share, 'f.bin'), body);
  }
  const share = path.join(c.dir, 'R');
  fs.mkdirSync(share, { recursive: true });
  const opts = { id: 'R', host: '127.0.0.1', port: 0, share, meta: { host: '127.0.0.1', port: c.meta.address.port }, progress: true, minPieceBytes: PIECE };

  const r1 = await spawnPeer(opts);
  t.teardown(() => reap(r1));
  await r1.next('joined');
  r1.send({ cmd: 'download', name: 'f.bin' });
  // Progress lines arrive as pieces are verified; kill at the first one past half.
  for (;;) {
    const p = await r1.next('progress');
    if (Number(p.bytes) >= SIZE / 2) break;
  }
  const exited = new Promise<void>((r) => r1.proc.once('exit', () => r()));
  process.kill(r1.proc.pid!, 'SIGKILL');
  await exited;
  t.is(r1.proc.signalCode, 'SIGKILL');
  // Every line printed before death has been read by now (stdout writes to a pipe are synchronous).
  const verifiedAtKill = Math.max(...r1.lines.filter((l) => l.event === 'progress').map((l) => Number(l.bytes)));
  t.true(verifiedAtKill >= SIZE / 2 && verifiedAtKill < SIZE, `killed with ${verifiedAtKill} of ${SIZE} bytes verified`);
  t.false(r1.lines.some((l) => l.event === 'downloaded'), 'killed before the end');
  // Nothing under the final name; the partial and its resume file are there.
  const left = fs.readdirSync(share);
  t.false(left.includes('f.bin'), 'no file under the final name before it is verified');
  t.true(left.some((n) => n.endsWith('.swarm.part')) && left.some((n) => n.endsWith('.swarm.json')), left.join(', '));

  const r2 = await spawnPeer(opts);
  t.teardown(() => reap(r2));
  await r2.next('joined');
  r2.send({ cmd: 'download', name: 'f.bin' });
  const resume = await r2.next('resume');
  const done = await r2.next('downloaded');
  const res = done.result as { sha256: string; swarm: { resumedPieces: number; resumedBytes: number; bytesReceived: number; bytesWasted: number; pieces: number; pieceSize: number } };
  t.is(res.swarm.pieceSize, PIECE);
  t.is(Number(resume.pieces), res.swarm.resumedPieces);
  const refetched = Math.max(0, (verifiedAtKill - res.swarm.resumedBytes) / PIECE);
  t.log(`killed at ${((100 * verifiedAtKill) / SIZE).toFixed(0)}% (${verifiedAtKill / PIECE} pieces verified); resumed ${res.swarm.resumedPieces} pieces (${resume.percent}%); ${refetched} fetched again; ${res.swarm.bytesReceived} bytes received after the restart`);
  t.true(refetched <= 2, `${refetched} verified pieces fetched again (at most 2)`);
  // Saved before reported: every piece reported verified was resumed (at most the one being
  // saved when the kill came is resumed without having been reported).
  t.true(res.swarm.resumedBytes >= verifiedAtKill && res.swarm.resumedBytes <= verifiedAtKill + PIECE, `${res.swarm.resumedBytes} resumed, ${verifiedAtKill} reported`);
  // After the restart only the missing pieces (and end-game copies) came over the wire.
  t.true(res.swarm.bytesReceived - res.swarm.bytesWasted === SIZE - res.swarm.resumedBytes);
  t.is(res.sha256, sha(body));
  t.is(sha(fs.readFileSync(path.join(share, 'f.bin'))), sha(body));
  t.deepEqual(fs.readdirSync(share).filter((n) => n.startsWith('.treeshare-')), [], 'no partial left');
  r2.send({ cmd: 'leave' });
  await new Promise<void>((r) => (r2.proc.exitCode !== null ? r() : r2.proc.once('exit', () => r())));
});
