/**
 * Macro (3): search completion time and messages for N = 10, 100, 1,000 peers.
 *
 * All peers run in this process over real TCP on loopback (one listener per
 * peer, one connection per tree edge: ~3,000 descriptors at 1,000 peers).
 * The tree grows 10 → 100 → 1,000 by joins through a least-loaded metaserver;
 * at each size one peer (the last to join) holds the searched file and
 * searches start from seeded-random peers. Heartbeats and periodic announces
 * are off so nothing but the searches runs.
 *
 * Baseline, measured alternately on the same tree shape from the same
 * origins: BareTree (bare-flood.ts), a minimal JSON-lines flood.
 * The first search on each tree is reported on its own ("cold": share
 * listings not cached yet); two untimed rounds of both then warm the JIT.
 *
 * Messages per search are counted at the transport: the query and
 * query-reply frames every peer's Connections wrote during the search
 * (searches run one at a time), and checked against the peers' own counter.
 */
import fs from 'node:fs';
import path from 'node:path';
import { mulberry32 } from '../../core/index.ts';
import { registerCloser } from '../../testnet/cleanup.ts';
import { createTestnet } from '../../testnet/testnet.ts';
import type { Ctx } from '../lib/context.ts';
import { BareTree } from './bare-flood.ts';

export async function searchBench(ctx: Ctx): Promise<void> {
  const sizes = [10, 100, 1000];
  const runs = ctx.quick ? 7 : 21;
  const net = await createTestnet({ prefix: 'treeshare-bench-', meta: { policy: 'least-loaded', peerTimeoutMs: 0 }, peer: { heartbeatMs: 0, announceMs: 0 } });
  const { meta, peers } = net;
  const close = registerCloser(() => net.close());
  const announced = new Set<string>();
  meta.on('announce', (e) => announced.add(e.id));
  const addPeer = async (i: number) => {
    await net.add(`P${i}`);
  };
  const untilAnnounced = async (ids: string[]) => {
    const t0 = performance.now();
    while (ids.some((id) => !announced.has(id)) && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 5));
  };
  const random = mulberry32(42);
  try {
    for (const n of sizes) {
      const t0 = performance.now();
      // Grow in batches of concurrent joins (the metaserver spreads them over free slots).
      const batch = 16;
      if (peers.length === 0) {
        await addPeer(0);
        await untilAnnounced(['P0']);
      }
      while (peers.length < n) {
        const from = peers.length;
        const ids = Array.from({ length: Math.min(batch, n - from) }, (_, k) => from + k);
        await Promise.all(ids.map(addPeer));
        await untilAnnounced(ids.map((i) => `P${i}`));
      }
      const buildMs = performance.now() - t0;
      const holder = peers[n - 1]!;
      const name = `needle-${n}.txt`;
      fs.writeFileSync(path.join(holder.opts.share, name), 'found me\n');
      // Same tree for the baseline: edges from every peer's parent link.
      const index = new Map(peers.map((p, i) => [p.id, i]));
      const edges: [number, number][] = [];
      for (let i = 0; i < n; i++) {
        const parent = peers[i]!.state().parent;
        if (parent) edges.push([index.get(parent.id)!, i]);
      }
      const tree = net.tree(peers.map((p) => p.id));
      if (!tree.ok) throw new Error(`the ${n} peers do not form one tree: ${tree.why}`);
      const depth = Math.max(...peers.map((p) => p.depth));
      const bare = await BareTree.build(n, edges);
      try {
        ctx.log(`search N=${n}: tree built in ${buildMs.toFixed(0)} ms (depth ${depth}); ${runs} searches + ${runs} bare floods`);
        // First search on a fresh tree: every peer lists its share folder (then cached ~1 s).
        const cold = await peers[Math.floor(random() * n)]!.search(name);
        // Two untimed rounds of each, so both run JIT-compiled code (the first is reported as "cold").
        for (let w = 0; w < 2; w++) {
          const o = Math.floor(random() * n);
          await peers[o]!.search(name);
          await bare.flood(o, name);
        }
        const ms: number[] = [];
        const bareMs: number[] = [];
        const msgs: number[] = [];
        const counted: number[] = [];
        const reached: number[] = [];
        const wireSent = () => {
          let w = 0;
          for (const p of peers) {
            const f = p.wireFrames().sent;
            w += (f.query ?? 0) + (f['query-reply'] ?? 0);
          }
          return w;
        };
        let hitsOk = cold.hits.length >= 1;
        for (let r = 0; r < runs; r++) {
          const origin = Math.floor(random() * n);
          const doPeer = async () => {
            const w0 = wireSent();
            const s = await peers[origin]!.search(name);
            ms.push(s.completionMs);
            msgs.push(wireSent() - w0);
            counted.push(s.messages);
            reached.push(s.reached);
            if (s.hits.length < 1 || s.missing.length > 0) hitsOk = false;
          };
          const doBare = async () => {
            const b = await bare.flood(origin, name);
            if (b.messages !== 2 * (n - 1) || b.reached !== n) throw new Error(`bare flood: ${b.messages} messages, ${b.reached} reached`);
            bareMs.push(b.ms);
          };
          if (r % 2) {
            await doBare();
            await doPeer();
          } else {
            await doPeer();
            await doBare();
          }
        }
        const g = 'search (in-process peers over TCP, loopback)';
        ctx.report.add({ id: `search.${n}.bare`, group: g, label: `N=${n}: bare JSON-lines flood, same tree`, short: 'bare flood', unit: 'ms', better: 'lower', samples: bareMs, p95: true });
        ctx.report.add({ id: `search.${n}.peer`, group: g, label: `N=${n}: treeshare search completion (depth ${depth})`, unit: 'ms', better: 'lower', samples: ms, p95: true, baselines: [`search.${n}.bare`] });
        ctx.report.add({ id: `search.${n}.cold`, group: g, label: `N=${n}: first search on the tree (share listings not cached)`, unit: 'ms', better: 'lower', samples: [cold.completionMs] });
        ctx.report.add({ id: `search.${n}.messages`, group: g, label: `N=${n}: frames per search on the wire (optimum 2(N−1) = ${2 * (n - 1)})`, unit: 'msgs', better: 'lower', samples: msgs });
        const agree = msgs.every((m, i) => m === counted[i]);
        const allExact = msgs.every((m) => m === 2 * (n - 1)) && agree && reached.every((x) => x === n) && hitsOk;
        ctx.report.target({
          id: `search.${n}.messages==2(N-1)`, text: `N=${n}: frames on the wire exactly 2(N−1) = the peers' count, every peer reached, hit found (all ${runs} searches)`,
          measured: allExact ? 2 * (n - 1) : (msgs.find((m) => m !== 2 * (n - 1)) ?? -1), required: 2 * (n - 1), op: '==', unit: 'msgs',
          detail: allExact ? undefined : `wire ${[...new Set(msgs)].join('/')}, counted ${[...new Set(counted)].join('/')}, reached ${[...new Set(reached)].join('/')}, hits ${hitsOk ? 'ok' : 'missing'}`,
        });
        if (n === 1000) ctx.report.target({ id: 'search.1000.median<100ms', text: 'N=1000: search completion median < 100 ms', measured: ctx.report.get('search.1000.peer')!.summary.median, required: 100, op: '<=', unit: 'ms' });
      } finally {
        await bare.close();
      }
    }
  } finally {
    await close();
  }
}
