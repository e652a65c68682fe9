/**
 * The share jail under attack: links out of the folder, look-alike names, a
 * file replaced while it is being sent, a share folder that disappears.
 */
import test, { type ExecutionContext } from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errorCode, tcpTransport } from '../../core/index.ts';
import { cluster, demoCluster, nextEvent, tmpDir } from '../helpers.ts';

function noTemp(dir: string): boolean {
  return !fs.readdirSync(dir).some((n) => n.startsWith('.treeshare-'));
}

test('hard links and symlinks pointing out of the folder are neither listed, found nor sent', async (t) => {
  const c = await demoCluster();
  t.teardown(() => c.close());
  const outside = tmpDir();
  t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'outside the share');
  const s3 = path.join(c.dir, 'S3');
  fs.linkSync(path.join(outside, 'secret.txt'), path.join(s3, 'hard.txt'));
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(s3, 'soft.txt'));
  const names = (await c.peer('S3').files()).map((f) => f.name);
  t.false(names.includes('hard.txt'));
  t.false(names.includes('soft.txt'));
  for (const n of ['hard.txt', 'soft.txt']) {
    const err = await t.throwsAsync(c.peer('S1').download(n));
    t.is(errorCode(err), 'not-found', n);
    t.false(fs.existsSync(path.join(c.dir, 'S1', n)));
  }
});

test('look-alike, non-NFC and trailing-dot names are refused or do not match', async (t) => {
  const c = await demoCluster();
  t.teardown(() => c.close());
  // U+2024 ONE DOT LEADER looks like "." but is another name: exact match only.
  const r = await c.peer('S1').search('pwd1\u2024txt');
  t.deepEqual(r.hits, []);
  t.is(r.reached, 5);
  for (const bad of ['pwd1.txt.', 'pwd1.txt ', 'e\u0301.txt', 'pwd1\u202e.txt', '.hidden']) {
    const err = await t.throwsAsync(c.peer('S1').download(bad));
    t.is(errorCode(err), 'bad-name', JSON.stringify(bad));
  }
});

/**
 * A holder H (uplink capped so the transfer is still running) and a requester R with `opts`:
 * R starts downloading an 8 MiB file and, once 512 KiB arrived, H's file is rewritten in place
 * (same size, other bytes). Returns the download's error and what the retry needs.
 */
async function replacedWhileSent(t: ExecutionContext, opts: Parameters<Awaited<ReturnType<typeof cluster>>['add']>[1] = {}) {
  const c = await cluster();
  t.teardown(() => c.close());
  await c.add('H', { transport: tcpTransport({ shape: { bandwidthBytesPerSec: 8 * 1024 * 1024 } }) });
  const req = await c.add('R', opts);
  const file = path.join(c.dir, 'H', 'big.bin');
  fs.writeFileSync(file, crypto.randomBytes(8 * 1024 * 1024));
  const progress = nextEvent(req, 'progress', (p: { bytes: number }) => p.bytes > 512 * 1024);
  const dl = req.download('big.bin');
  await progress;
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, crypto.randomBytes(8 * 1024 * 1024), 0, 8 * 1024 * 1024, 0);
  fs.closeSync(fd);
  const err = await t.throwsAsync(dl);
  return { c, req, file, err };
}

test('a file replaced while it is being sent fails the SHA-256 check cleanly; a retry gets the new file', async (t) => {
  // The offer's hash no longer matches.
  const { c, req, file, err } = await replacedWhileSent(t);
  t.is(errorCode(err), 'hash-mismatch');
  t.false(fs.existsSync(path.join(c.dir, 'R', 'big.bin')));
  t.true(noTemp(path.join(c.dir, 'R')));
  const again = await req.download('big.bin');
  t.true(again.verified);
  t.is(again.sha256, crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
});

test('swarm "always": a file replaced while it is being sent fails piece verification cleanly; a retry gets the new file', async (t) => {
  // The pieces no longer match the manifest.
  const { c, req, file, err } = await replacedWhileSent(t, { swarm: 'always' });
  t.is(errorCode(err), 'all-holders-gone');
  t.regex(err!.message, /bad-piece/);
  t.false(fs.existsSync(path.join(c.dir, 'R', 'big.bin')));
  const again = await req.download('big.bin');
  t.true(again.verified);
  t.is(again.sha256, crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
  // The partial of the old version, which no holder offers any more, went with the success.
  t.true(noTemp(path.join(c.dir, 'R')));
});

test('a share folder that disappears: its peer answers "no" and keeps routing; the requester gets a clear error', async (t) => {
  const c = await demoCluster();
  t.teardown(() => c.close());
  fs.rmSync(path.join(c.dir, 'S3'), { recursive: true, force: true });
  const err = await t.throwsAsync(c.peer('S1').download('pwd1.txt'));
  t.is(errorCode(err), 'not-found');
  t.regex(err!.message, /searched 5 peers/);
  const topo = await c.peer('S3').topo();
  t.is(topo.nodes.length, 5);
  fs.rmSync(path.join(c.dir, 'S1'), { recursive: true, force: true });
  const e2 = await t.throwsAsync(c.peer('S1').download('fox.txt'));
  t.is(errorCode(e2), 'no-share');
});
