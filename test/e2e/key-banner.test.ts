/**
 * A person sees that the network key is on: the peer's and the metaserver's
 * first line says so (and says nothing about a key when there is none).
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { Procs, START_TIMEOUT_MS } from './proc.ts';

test('the peer and metaserver banners say when the network key is on', async (t) => {
  const ps = new Procs();
  t.teardown(() => ps.close());
  const keyFile = path.join(ps.dir, 'net.key');
  fs.writeFileSync(keyFile, 'ab'.repeat(32) + '\n', { mode: 0o600 });
  const meta = ps.start('metaserver', ['--host', '127.0.0.1', '--port', '0', '--key-file', keyFile]);
  const plain = ps.start('metaserver', ['--host', '127.0.0.1', '--port', '0']);
  await meta.waitOut(/listening on .*\n/, START_TIMEOUT_MS);
  await plain.waitOut(/listening on .*\n/, START_TIMEOUT_MS);
  t.regex(meta.stdout.split('\n')[0]!, /network key on/);
  t.notRegex(plain.stdout.split('\n')[0]!, /key/);
  // A peer reading its menu choices from a pipe: the input ends at once, so it prints its banner and stops.
  const peer = ps.start('peer', ['-p0', '-i', 'S1', '--share', ps.share('S1'), '--meta', '127.0.0.1:9', '--key-file', keyFile]);
  peer.child.stdin!.end();
  t.is((await peer.exit).code, 0, peer.stderr);
  t.regex(peer.stdout.split('\n')[0]!, /^treeshare peer S1 .*network key on/);
});
