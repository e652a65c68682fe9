/**
 * The interactive peer (through a pipe) where a new user met rough edges:
 * downloading a file it already has is refused before any search; when the
 * root leaves, its child prints one line for the one event; stopping a peer
 * that never joined does not claim it left the overlay.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { Procs } from './proc.ts';

function procs(t: ExecutionContext): Procs {
  const p = new Procs();
  t.teardown(() => p.close());
  return p;
}

test('"you already have pwd1.txt": refused before any search, the file untouched', async (t) => {
  const ps = procs(t);
  const { proc: meta, port } = await ps.metaserver(false);
  const share = ps.share('S1', 'S3'); // S3's share holds pwd1.txt
  const before = fs.readFileSync(path.join(share, 'pwd1.txt'));
  const s1 = ps.start('peer', ['-p0', '-i', 'S1', '--share', share, '--meta', `127.0.0.1:${port}`]);
  s1.child.stdin!.end('1\n2\npwd1.txt\n4\n');
  const r = await s1.exit;
  t.is(r.code, 0, s1.stderr);
  t.regex(s1.stdout, /you already have pwd1\.txt \(.*pwd1\.txt, 87 bytes\): nothing to download; delete it first to fetch it again\n/);
  t.notRegex(s1.stdout, /searching the overlay/);
  t.notRegex(s1.stdout, /already exists/);
  t.deepEqual(fs.readFileSync(path.join(share, 'pwd1.txt')), before);
  t.truthy(meta);
});

test('the root leaves: its child prints one line for it', async (t) => {
  const ps = procs(t);
  const { port } = await ps.metaserver(false);
  const meta = ['--meta', `127.0.0.1:${port}`];
  const root = ps.start('peer', ['--json', '-p0', '-i', 'S1', '--share', ps.share('S1'), ...meta, '--auto-join']);
  await root.waitEvent((e) => e.event === 'joined');
  const child = ps.start('peer', ['-p0', '-i', 'S2', '--share', ps.share('S2'), ...meta]);
  child.child.stdin!.write('1\n');
  await child.waitOut(/joined the overlay: parent S1/);
  root.send({ cmd: 'leave', id: 'bye' });
  await child.waitOut(/parent S1 left.*\n/);
  child.child.stdin!.end('4\n');
  t.is((await child.exit).code, 0, child.stderr);
  const lines = child.stdout.split('\n').filter((l) => l.includes('S1 left') || l.includes('new root'));
  t.deepEqual(lines, ['[info] parent S1 left; this peer is the new root'], child.stdout);
});

test('Ctrl-C on a peer that never joined: "stopped", not "left the overlay"', async (t) => {
  const ps = procs(t);
  const s1 = ps.start('peer', ['-p0', '-i', 'S1', '--share', ps.share('S1'), '--meta', '127.0.0.1:9']);
  await s1.waitOut(/h {2}help\n/);
  s1.child.kill('SIGINT');
  const r = await s1.exit;
  t.is(r.code, 0, s1.stderr);
  t.regex(s1.stdout, /stopping \(SIGINT\)\nS1 stopped \(it had not joined the overlay\)\. Bye\.\n$/);
  t.notRegex(s1.stdout, /left the overlay/);
});
