/**
 * The `--json` control protocol against its schemas (core/control/schema.ts):
 * a metaserver and three peers run as real processes through a session that
 * makes every event of both processes appear at least once (join, search,
 * download, a swarm download resuming a kept partial, topo, status, files, bad commands, a refused download, a junk
 * connection to each side, a graceful leave that makes a child repair, an id
 * taken over from a dead address, a fatal start), and every line either process
 * prints must validate against PeerEvent / MetaserverEvent.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MetaserverEvent, PeerEvent } from '../../core/control/schema.ts';
import { encode } from '../../core/protocol/codec.ts';
import { PROTOCOL_VERSION } from '../../core/protocol/messages.ts';
import { busyPort, freePort, Procs, type Proc } from './proc.ts';
import { demoFile } from '../../testnet/demo-shares.ts';

/** Opens a TCP connection to 127.0.0.1:port, writes `bytes` (by default no frame at all), and waits for the other side to close. */
async function junk(port: number, bytes: Buffer = Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])): Promise<void> {
  const s = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => s.write(bytes));
    s.once('error', reject);
    s.on('data', () => undefined);
    s.once('close', () => resolve());
  });
}

const names = (schema: typeof PeerEvent | typeof MetaserverEvent) => schema.options.map((o) => o.shape.event.value);

test('every line both processes print in --json mode is an event of the schema, and every event appears', async (t) => {
  const ps = new Procs();
  t.teardown(() => ps.close());
  const { proc: meta, port } = await ps.metaserver(true);
  await junk(port);
  await meta.waitEvent((e) => e.event === 'protocol-error');

  const metaArg = ['--meta', `127.0.0.1:${port}`, '--max-children', '1'];
  const start = (id: string, share = id): Proc => ps.start('peer', ['--json', '-p0', '-i', id, '--share', ps.share(id, share), ...metaArg, '--auto-join']);
  const s3 = start('S3');
  await s3.waitEvent((e) => e.event === 'joined');
  const s1 = start('S1');
  await s1.waitEvent((e) => e.event === 'joined');
  // A kept swarm partial of S3's notes.txt in S5's share (its one piece not what the manifest says):
  // S5's download of notes.txt resumes it as a swarm (`resuming`, 0 of 1 pieces good) and fetches the piece.
  const notes = demoFile('S3', 'notes.txt');
  const notesSha = createHash('sha256').update(notes).digest('hex');
  const s5share = ps.share('S5');
  const resume = { v: 1, name: 'notes.txt', manifest: { size: notes.length, sha256: notesSha, pieceSize: 1024 * 1024, pieces: [notesSha] }, have: [0] };
  fs.writeFileSync(path.join(s5share, `.treeshare-S5-${notesSha.slice(0, 16)}.swarm.json`), JSON.stringify(resume));
  fs.writeFileSync(path.join(s5share, `.treeshare-S5-${notesSha.slice(0, 16)}.swarm.part`), Buffer.alloc(notes.length));
  const s5 = start('S5');
  t.like(await s5.waitEvent((e) => e.event === 'joined'), { parent: { id: 'S1' }, depth: 2 });

  // Results of every command, and the unprompted events a download makes.
  let n = 0;
  const ask = async (p: Proc, cmd: object): Promise<Record<string, any>> => {
    const id = ++n;
    p.send({ ...cmd, id });
    return p.waitEvent((e) => e.id === id);
  };
  t.is((await ask(s5, { cmd: 'search', name: 'pwd1.txt' })).event, 'searched');
  t.like(await ask(s5, { cmd: 'download', name: 'pwd1.txt' }), { event: 'downloaded', result: { verified: true } });
  await s3.waitEvent((e) => e.event === 'uploaded');
  t.like(await ask(s5, { cmd: 'download', name: 'pwd1.txt' }), { event: 'error', code: 'exists', cmd: 'download' });
  const resumed = await ask(s5, { cmd: 'download', name: 'notes.txt' });
  t.like(resumed, { event: 'downloaded', result: { verified: true, swarm: { pieces: 1, resumedPieces: 0 } } });
  t.like(s5.events.find((e) => e.event === 'resuming'), { name: 'notes.txt', pieces: 0, of: 1, percent: 0 });
  t.deepEqual(fs.readFileSync(path.join(s5share, 'notes.txt')), notes);
  t.like(await ask(s5, { cmd: 'download', name: 'none.txt' }), { event: 'error', code: 'not-found', searched: 3 });
  t.like(await ask(s5, { cmd: 'topo' }), { event: 'topo', result: { complete: true, reached: 3 } });
  t.like(await ask(s5, { cmd: 'status' }), { event: 'status', state: { id: 'S5', joined: true } });
  t.like(await ask(s5, { cmd: 'files' }), { event: 'files' });
  t.like(await ask(s5, { cmd: 'fly' }), { event: 'error', code: 'bad-command' });
  t.like(await ask(s5, { cmd: 'search' }), { event: 'error', code: 'bad-command' });
  t.like(await ask(meta, { cmd: 'status' }), { event: 'status' });
  t.like(await ask(meta, { cmd: 'reboot' }), { event: 'error', code: 'bad-command' });

  // A junk connection to a peer is logged; a graceful leave makes the child repair.
  await junk(s5.events.find((e) => e.event === 'ready')!.port);
  await s5.waitEvent((e) => e.event === 'log' && e.level === 'warn');
  t.like(await ask(s1, { cmd: 'leave' }), { event: 'left' });
  t.like(await s5.waitEvent((e) => e.event === 'parent-lost'), { parent: 'S1', reason: 'left' });
  t.like(await s5.waitEvent((e) => e.event === 'repaired'), { record: { newParent: { id: 'S3' } } });
  await s3.waitEvent((e) => e.event === 'child-left' && e.child === 'S1');
  await meta.waitEvent((e) => e.event === 'leave' && e.peer === 'S1');

  // An id registered at an address where nothing answers is dropped when someone else registers it.
  const register = (p: number) => encode({ t: 'register', v: PROTOCOL_VERSION, id: 'Z9', host: '127.0.0.1', port: p, maxChildren: 1 });
  await junk(port, register(await freePort()));
  await junk(port, register(await freePort()));
  t.like(await meta.waitEvent((e) => e.event === 'drop'), { peer: 'Z9', reason: 'not answering; id taken over' });

  // A fatal start: an error event with fatal: true, then exit 1.
  const busy = await busyPort();
  t.teardown(() => busy.close());
  const fatal = ps.start('peer', ['--json', '-p', String(busy.port), '-i', 'S2', '--share', ps.share('S2'), ...metaArg]);
  t.is((await fatal.exit).code, 1);
  t.like(fatal.events.at(-1), { event: 'error', code: 'port-in-use', fatal: true });

  // Ending stdin leaves (peers) and stops (metaserver).
  for (const p of [s5, s3]) {
    p.child.stdin!.end();
    await p.waitEvent((e) => e.event === 'left');
    t.is((await p.exit).code, 0);
  }
  t.like(await ask(meta, { cmd: 'stop' }), { event: 'stopped' });
  t.is((await meta.exit).code, 0);

  // Every line validates; every event name of both schemas was seen.
  const seen = { peer: new Set<string>(), meta: new Set<string>() };
  const check = (p: Proc, schema: typeof PeerEvent | typeof MetaserverEvent, into: Set<string>) => {
    const lines = p.stdout.trimEnd().split('\n');
    t.true(lines.length > 0);
    for (const line of lines) {
      const r = schema.safeParse(JSON.parse(line));
      t.true(r.success, `${line}\n${r.error?.message ?? ''}`);
      if (r.success) into.add(r.data.event);
    }
  };
  for (const p of [s1, s3, s5, fatal]) check(p, PeerEvent, seen.peer);
  check(meta, MetaserverEvent, seen.meta);
  t.deepEqual([...seen.peer].sort(), names(PeerEvent).sort());
  t.deepEqual([...seen.meta].sort(), names(MetaserverEvent).sort());

  // The schema is strict: a field it does not list, or a code outside ErrorCode, fails.
  t.false(PeerEvent.safeParse({ event: 'left', extra: 1 }).success);
  t.false(PeerEvent.safeParse({ event: 'error', code: 'ENOENT', message: 'x' }).success);
});
