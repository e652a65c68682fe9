/**
 * Crash leftovers and durability (issue 11 item 7): a peer sweeps its own
 * stale `.treeshare-*.part` files at start, and a downloaded file is durable
 * before it is visible (the file is fsynced before it is linked into place,
 * the folder after).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { Peer } from '../../core/index.ts';
import { cluster, tmpDir } from '../helpers.ts';

test('a starting peer removes its own temporary files left by a crash, and only those', async (t) => {
  const share = tmpDir();
  t.teardown(() => fs.rmSync(share, { recursive: true, force: true }));
  const put = (n: string) => fs.writeFileSync(path.join(share, n), 'partial');
  const own = ['.treeshare-A-0123456789ab.part', '.treeshare-A-ffffffffffff.part'];
  const oldUntagged = '.treeshare-00112233aabb.part';
  const keep = [
    '.treeshare-B-0123456789ab.part', // another peer sharing the folder
    '.treeshare-A-b-0123456789ab.part', // peer "A-b", not "A"
    '.treeshare-aabbccddeeff.part', // untagged (older version) but recent: may still be written
    '.treeshare-A-0123.part', // not our pattern
    'keep.txt',
  ];
  for (const n of [...own, oldUntagged, ...keep]) put(n);
  const hoursAgo = new Date(Date.now() - 2 * 3600_000);
  fs.utimesSync(path.join(share, oldUntagged), hoursAgo, hoursAgo);
  const p = new Peer({ id: 'A', host: '127.0.0.1', port: 0, share, heartbeatMs: 0, announceMs: 0 });
  const logs: string[] = [];
  p.on('log', (l) => logs.push(l.message));
  await p.start();
  t.teardown(() => p.stop());
  t.deepEqual(fs.readdirSync(share).sort(), [...keep].sort());
  t.true(logs.some((l) => /removed 3 temporary file/.test(l)), logs.join('\n'));
});

test('a downloaded file is fsynced before it becomes visible, and the folder after; the time is reported', async (t) => {
  // Watch every fsync made through a FileHandle in this process.
  const probe = await fsp.open(import.meta.filename, 'r');
  const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void>; stat: () => Promise<fs.Stats> };
  await probe.close();
  const orig = proto.sync;
  let final = '';
  const syncs: { dir: boolean; visible: boolean; size: number }[] = [];
  proto.sync = async function (this: typeof proto) {
    const st = await this.stat();
    syncs.push({ dir: st.isDirectory(), visible: final !== '' && fs.existsSync(final), size: st.size });
    return orig.call(this);
  };
  t.teardown(() => {
    proto.sync = orig;
  });
  const c = await cluster({ peer: { heartbeatMs: 0 } });
  t.teardown(() => c.close());
  const holder = await c.add('H');
  const body = Buffer.alloc(300_000, 7);
  fs.writeFileSync(path.join(holder.opts.share, 'data.bin'), body);
  const r = await c.add('R');
  final = path.join(r.opts.share, 'data.bin');
  const d = await r.download('data.bin');
  t.deepEqual(fs.readFileSync(final), body);
  t.deepEqual(syncs, [
    { dir: false, visible: false, size: body.length }, // the whole file, under its temporary name
    { dir: true, visible: true, size: syncs[1]?.size ?? -1 }, // the folder, after the link
  ]);
  t.true(d.fsyncMs > 0 && d.fsyncMs <= d.durationMs, `fsyncMs ${d.fsyncMs}`);
  t.deepEqual(fs.readdirSync(r.opts.share).filter((n) => n.startsWith('.treeshare-')), []);
  // fsync off (the bench's comparison): no fsync at all, reported as 0.
  syncs.length = 0;
  const r2 = await c.add('R2', { fsync: false });
  final = path.join(r2.opts.share, 'data.bin');
  const d2 = await r2.download('data.bin');
  t.deepEqual(syncs, []);
  t.is(d2.fsyncMs, 0);
});
