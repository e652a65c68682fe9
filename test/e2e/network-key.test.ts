/**
 * The network key across real processes: keyed metaserver and peers work; an
 * outsider process that speaks the protocol but lacks the key, and one with
 * a wrong key, can neither join nor get any file.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Procs, REPO } from './proc.ts';

const run = promisify(execFile);

test('outsider processes without the key or with a wrong key are refused; insiders share files', async (t) => {
  const ps = new Procs();
  t.teardown(() => ps.close());
  // The key comes from `npm run keygen`: 32 random bytes as 64 hex digits, different every time.
  const KEY = (await run('npm', ['run', '-s', 'keygen'], { cwd: REPO })).stdout.trim();
  t.regex(KEY, /^[0-9a-f]{64}$/);
  const keyFile = path.join(ps.dir, 'key');
  await run(process.execPath, ['--import', 'tsx', 'core/bin/keygen-main.ts', '--out', keyFile], { cwd: REPO });
  t.is(fs.statSync(keyFile).mode & 0o777, 0o600);
  const fileKey = fs.readFileSync(keyFile, 'utf8').trim();
  t.regex(fileKey, /^[0-9a-f]{64}$/);
  t.not(fileKey, KEY);
  fs.writeFileSync(keyFile, KEY + '\n');
  const { port } = await ps.metaserver(true, ['--key-file', keyFile]);
  const meta = ['--meta', `127.0.0.1:${port}`];
  const s3 = ps.start('peer', ['--json', '-p0', '-i', 'S3', '--share', ps.share('S3'), ...meta, '--key-file', keyFile, '--auto-join']);
  await s3.waitEvent((e) => e.event === 'joined');
  // An insider with the key given directly.
  const s1share = ps.share('S1');
  const s1 = ps.start('peer', ['--json', '-p0', '-i', 'S1', '--share', s1share, ...meta, '--network-key', KEY, '--auto-join']);
  await s1.waitEvent((e) => e.event === 'joined');
  s1.send({ cmd: 'download', name: 'pwd1.txt', id: 1 });
  const d = await s1.waitEvent((e) => e.event === 'downloaded' || e.event === 'error');
  t.is(d.event, 'downloaded', JSON.stringify(d));
  t.true(d.result?.verified);
  // No key: a clear refusal, exit 1, no file.
  const noKeyShare = ps.share('X1', null);
  const noKey = ps.start('peer', ['-p0', '-i', 'X1', '--share', noKeyShare, ...meta, '--auto-join']);
  const r1 = await noKey.exit;
  t.is(r1.code, 1);
  t.regex(noKey.stderr, /network key|key/);
  t.notRegex(noKey.stderr, /\n\s+at /);
  // Wrong key: refused as well.
  const wrongShare = ps.share('X2', null);
  const wrong = ps.start('peer', ['-p0', '-i', 'X2', '--share', wrongShare, ...meta, '--network-key', 'some other key, also at least 32 bytes long', '--auto-join']);
  const r2 = await wrong.exit;
  t.is(r2.code, 1);
  t.regex(wrong.stderr, /network key/);
  // A short key: a usage error (exit 2) naming the fix, before anything starts.
  const short = ps.start('peer', ['-p0', '-i', 'X3', '--share', ps.share('X3', null), ...meta, '--network-key', 'hunter2hunter2']);
  t.is((await short.exit).code, 2);
  t.regex(short.stderr, /network key in --network-key is too short \(14 bytes; at least 32 are needed\).*npm run keygen/);
  t.deepEqual(fs.readdirSync(noKeyShare), []);
  t.deepEqual(fs.readdirSync(wrongShare), []);
  // The insiders' tree holds only insiders.
  s3.send({ cmd: 'topo', id: 2 });
  const topo = await s3.waitEvent((e) => e.event === 'topo');
  t.deepEqual(topo.result.nodes.map((n: { id: string }) => n.id).sort(), ['S1', 'S3']);
});
