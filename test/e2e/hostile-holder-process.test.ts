/**
 * Issue 22, defect 1, with the peer as a real process in control mode: a hostile holder's
 * manifest (a 100-byte file in pieces of 2^40 bytes) used to make the requester allocate a piece
 * buffer of that size in a socket callback, an uncaught RangeError, and exit fatal. Now the
 * holder is dropped (bad-manifest), the download fails with that reason, and the process goes on
 * answering its control commands.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { FakeSwarmHolder, fakeFile, HostileMember, manifestFrame } from '../integration/hostile-holder.ts';
import { Procs, START_TIMEOUT_MS } from './proc.ts';

test('a peer process downloading from a holder with a hostile manifest drops it and keeps answering its control', async (t) => {
  t.timeout(START_TIMEOUT_MS * 2);
  const ps = new Procs();
  t.teardown(() => ps.close());
  const { port: metaPort } = await ps.metaserver(true);
  const share = path.join(ps.dir, 'R');
  fs.mkdirSync(share);
  const peer = ps.start('peer', ['--json', '-p0', '-i', 'R', '--share', share, '--meta', `127.0.0.1:${metaPort}`, '--auto-join', '--swarm', 'always']);
  const ready = await peer.waitEvent((e) => e.event === 'ready', START_TIMEOUT_MS);
  await peer.waitEvent((e) => e.event === 'joined', START_TIMEOUT_MS);
  const small = fakeFile('f.bin', randomBytes(100));
  const evil = await FakeSwarmHolder.open(t, 'EVIL', (c) => {
    c.send(manifestFrame(small, { pieceSize: 2 ** 40 }));
    void c.wanted().then(() => c.write(small.body), () => undefined);
  });
  await HostileMember.join(t, { host: '127.0.0.1', port: ready.port }, { hits: () => [evil.hit(small.size)] });
  await peer.waitEvent((e) => e.event === 'child-joined' && e.child?.id === 'EVIL');
  peer.send({ cmd: 'download', name: 'f.bin', id: 1 });
  const failed = await peer.waitEvent((e) => e.id === 1);
  t.is(failed.event, 'error', JSON.stringify(failed));
  t.is(failed.code, 'all-holders-gone');
  t.regex(failed.message, /EVIL: bad-manifest: /);
  t.falsy(failed.fatal);
  peer.send({ cmd: 'status', id: 2 });
  const status = await peer.waitEvent((e) => e.id === 2);
  t.is(status.event, 'status', JSON.stringify(status));
  t.is(status.state.id, 'R');
  t.is(peer.child.exitCode, null, 'still running');
  t.false(peer.events.some((e) => e.fatal), 'no fatal event');
});
