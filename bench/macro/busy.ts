/**
 * Macro: is a peer still responsive while it moves bytes both ways?
 *
 * Peer X (its own process, bench/fixtures/receiver.ts) downloads a 1 GiB
 * file from holder H while peer Y downloads another 1 GiB file from X (so X
 * receives, hashes and writes one file while reading and sending another).
 * Meanwhile X searches for a small file held by H, one search at a time,
 * every 10 ms; each search's completion time (call → all replies in) is
 * measured inside X, as is X's event-loop delay. The same searches on the
 * idle tree first are the baseline. H, Y and the metaserver run in this
 * process; both holders have hashed their file beforehand (as a running or
 * restarted holder with its hash cache has).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Metaserver, Peer } from '../../core/index.ts';
import { openShared, sha256Of } from '../../core/transfer/jail.ts';
import { registerCloser, removeDir, tempDir } from '../../testnet/cleanup.ts';
import { Child } from '../lib/child.ts';
import { makeFile, nodeArgs, type Ctx } from '../lib/context.ts';
import { GiB, mbps, MiB, percentile, sizeLabel } from '../lib/stats.ts';

interface LoopResult {
  searchMs: number[];
  misses: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export async function busyBench(ctx: Ctx): Promise<void> {
  const size = ctx.quick ? 256 * MiB : GiB;
  const label = sizeLabel(size);
  const dir = tempDir('treeshare-bench-');
  const hShare = path.join(dir, 'H');
  const xShare = path.join(dir, 'X');
  const yShare = path.join(dir, 'Y');
  for (const d of [hShare, xShare, yShare]) fs.mkdirSync(d);
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, peerTimeoutMs: 0 });
  const peers: Peer[] = [];
  let x: Child | undefined;
  const close = registerCloser(async () => {
    await x?.close();
    await Promise.allSettled(peers.map((p) => p.stop()));
    await meta.stop();
    removeDir(dir);
  });
  try {
    ctx.log(`busy peer: generating two ${label} files`);
    makeFile(path.join(hShare, 'down.bin'), size);
    makeFile(path.join(xShare, 'up.bin'), size);
    fs.writeFileSync(path.join(hShare, 'needle.txt'), 'found me\n');
    await meta.start();
    const add = async (id: string, share: string) => {
      const p = new Peer({ id, host: '127.0.0.1', port: 0, share, meta: meta.address, announceMs: 0 });
      peers.push(p);
      await p.start();
      await p.join();
      return p;
    };
    await add('H', hShare);
    x = await Child.start('busy peer X', 'receiver.ts', { mode: 'peer', dir: xShare, peer: { id: 'X', meta: meta.address } }, { nodeArgs: nodeArgs(ctx, 'busy-peer-x') });
    const y = await add('Y', yShare);
    const f = await openShared(hShare, 'down.bin');
    try {
      await sha256Of(f);
    } finally {
      await f.handle.close();
    }
    await x.call({ cmd: 'prehash', names: ['up.bin'] });

    const loop = async (what: string, during: () => Promise<unknown>): Promise<LoopResult> => {
      await x!.call({ cmd: 'search-loop', name: 'needle.txt', everyMs: 10 });
      let r: LoopResult;
      try {
        await during();
      } finally {
        r = await x!.call<LoopResult>({ cmd: 'search-stop' });
      }
      if (r.misses) throw new Error(`${what}: ${r.misses} of ${r.searchMs.length} searches did not find the file`);
      return r;
    };
    ctx.log('busy peer: searches on the idle tree');
    const idle = await loop('idle', () => new Promise((res) => setTimeout(res, ctx.quick ? 1000 : 2000)));
    ctx.log(`busy peer: searches while X downloads ${label} and uploads ${label}`);
    let down = 0;
    let up = 0;
    const busy = await loop('busy', async () => {
      const [d, u] = await Promise.all([
        x!.call<{ results: { bytes: number; durationMs: number }[] }>({ cmd: 'download', names: ['down.bin'] }, 300_000),
        y.download('up.bin'),
      ]);
      down = mbps(d.results[0]!.bytes, d.results[0]!.durationMs);
      up = mbps(u.bytes, u.durationMs);
      if (d.results[0]!.bytes !== size || u.bytes !== size || !u.verified) throw new Error('a transfer came back incomplete');
    });
    const g = `peer responsiveness: search from peer X while X downloads ${label} and uploads ${label} (loopback)`;
    ctx.report.add({ id: 'busy.search.idle', group: g, label: 'search completion at X, idle tree', short: 'idle', unit: 'ms', better: 'lower', samples: idle.searchMs, p95: true });
    ctx.report.add({ id: 'busy.search.busy', group: g, label: `search completion at X during both transfers (p99 ${percentile(busy.searchMs, 99).toFixed(1)} ms)`, unit: 'ms', better: 'lower', samples: busy.searchMs, p95: true, baselines: ['busy.search.idle'] });
    ctx.report.add({ id: 'busy.loopdelay.p99', group: g, label: `X event-loop delay p99 during both transfers (max ${busy.loopDelayMaxMs.toFixed(1)} ms)`, unit: 'ms', better: 'lower', samples: [busy.loopDelayP99Ms] });
    ctx.report.add({ id: 'busy.down', group: g, label: 'X downloading from H meanwhile (ack → renamed)', unit: 'MB/s', better: 'higher', samples: [down] });
    ctx.report.add({ id: 'busy.up', group: g, label: 'Y downloading from X meanwhile (ack → renamed)', unit: 'MB/s', better: 'higher', samples: [up] });
    ctx.report.target({ id: 'busy.search.p99<=20', text: `search p99 at a peer moving ${label} each way ≤ 20 ms`, measured: percentile(busy.searchMs, 99), required: 20, op: '<=', unit: 'ms' });
    if (ctx.quick) ctx.report.note('busy peer: --quick moves 256 MiB each way; the full run moves 1 GiB each way.');
  } finally {
    await close();
  }
}
