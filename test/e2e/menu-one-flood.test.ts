/**
 * Issue 29 item 4, as a person sees it: a one-holder download in the menu
 * floods once, so "found at S3" is printed once (it was printed twice, one
 * line per flood).
 */
import test from 'ava';
import { Procs } from './proc.ts';

test('menu download from one holder: "found at S3" once, then the download', async (t) => {
  const ps = new Procs();
  t.teardown(() => ps.close());
  const { port } = await ps.metaserver(false);
  await ps.joinedPeer('S3', port); // the one holder of pwd1.txt
  const s1 = ps.start('peer', ['-p0', '-i', 'S1', '--share', ps.share('S1'), '--meta', `127.0.0.1:${port}`]);
  s1.child.stdin!.end('1\n2\npwd1.txt\n4\n');
  t.is((await s1.exit).code, 0, s1.stderr);
  t.regex(s1.stdout, /downloaded pwd1\.txt from S3/);
  t.is(s1.stdout.match(/found at S3/g)?.length, 1, s1.stdout);
});
