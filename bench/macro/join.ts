/**
 * Macro (2): join latency with least-loaded referral, against its floor.
 *
 * Peers join one by one (in this process, with the metaserver and the tree)
 * and each join's timeline (register sent → JOIN accepted, core's clock) is
 * one sample. The floor, measured alternately in the same process: one TCP
 * connect plus one request/response to a metaserver-like echo, then one
 * connect plus one request/response to a parent-like echo — the least any
 * register-then-join can cost here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Metaserver, Peer, PROTOCOL_VERSION } from '../../core/index.ts';
import { registerCloser, removeDir, tempDir } from '../../testnet/cleanup.ts';
import type { Ctx } from '../lib/context.ts';
import { echoServer, exchange } from '../lib/echo.ts';

function waitAnnounce(meta: Metaserver, id: string, ms = 5000): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function on(e: { id: string }) {
      if (e.id === id) done();
    }
    function done() {
      clearTimeout(t);
      meta.off('announce', on);
      resolve();
    }
    meta.on('announce', on);
  });
}

export async function joinBench(ctx: Ctx): Promise<void> {
  const joins = ctx.quick ? 40 : 150;
  const dir = tempDir('treeshare-bench-');
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, policy: 'least-loaded', peerTimeoutMs: 0 });
  await meta.start();
  const peers: Peer[] = [];
  const metaEcho = await echoServer(JSON.stringify({ t: 'registered', id: 'J000', referral: { id: 'J001', host: '127.0.0.1', port: 40001 }, peers: 2 }), true);
  const parentEcho = await echoServer(JSON.stringify({ t: 'accept', id: 'J001', host: '127.0.0.1', port: 40001, depth: 3 }), false);
  const close = registerCloser(async () => {
    await Promise.allSettled(peers.map((p) => p.stop()));
    await metaEcho.close();
    await parentEcho.close();
    await meta.stop();
    removeDir(dir);
  });
  const newPeer = async (id: string) => {
    const share = path.join(dir, id);
    fs.mkdirSync(share);
    const p = new Peer({ id, host: '127.0.0.1', port: 0, share, meta: meta.address, heartbeatMs: 0, announceMs: 0 });
    peers.push(p);
    await p.start();
    return p;
  };
  const floorOnce = async (i: number) => {
    const t0 = performance.now();
    const m = await exchange(metaEcho.port, JSON.stringify({ t: 'register', v: PROTOCOL_VERSION, id: `J${i}`, host: '127.0.0.1', port: 40000 + i, maxChildren: 2 }));
    const p = await exchange(parentEcho.port, JSON.stringify({ t: 'join', v: PROTOCOL_VERSION, id: `J${i}`, host: '127.0.0.1', port: 40000 + i, subtree: 1 }));
    const ms = performance.now() - t0;
    m.destroy();
    p.destroy();
    return ms;
  };
  try {
    ctx.log(`join: ${joins} peers one by one, alternating with the floor`);
    const root = await newPeer('J0');
    const ann = waitAnnounce(meta, 'J0');
    await root.join();
    await ann;
    const total: number[] = [];
    const metaRtt: number[] = [];
    const final: number[] = [];
    const floor: number[] = [];
    let redirects = 0;
    for (let i = 1; i <= joins; i++) {
      const p = await newPeer(`J${i}`);
      const measureJoin = async () => {
        const a = waitAnnounce(meta, p.id);
        const t = await p.join();
        await a;
        total.push(t.totalMs);
        metaRtt.push(t.metaRttMs);
        final.push(t.finalConnectMs);
        redirects += t.redirects.length;
      };
      if (i % 2) {
        floor.push(await floorOnce(i));
        await measureJoin();
      } else {
        await measureJoin();
        floor.push(await floorOnce(i));
      }
    }
    const g = 'join latency (least-loaded referral, in-process over TCP)';
    ctx.report.add({ id: 'join.floor', group: g, label: 'floor: connect + req/resp to a metaserver-like echo, then connect + req/resp to a parent-like echo', short: 'floor', unit: 'ms', better: 'lower', samples: floor, p95: true });
    ctx.report.add({ id: 'join.total', group: g, label: 'join: register sent → JOIN accepted', unit: 'ms', better: 'lower', samples: total, p95: true, baselines: ['join.floor'] });
    ctx.report.add({ id: 'join.metaRtt', group: g, label: '  of which metaserver round trip (connect + register)', unit: 'ms', better: 'lower', samples: metaRtt, p95: true });
    ctx.report.add({ id: 'join.finalConnect', group: g, label: '  of which final connect + JOIN → accept', unit: 'ms', better: 'lower', samples: final, p95: true });
    ctx.report.add({ id: 'join.redirects', group: g, label: 'redirects followed (all joins together)', unit: 'redirects', better: 'lower', samples: [redirects] });
    ctx.report.target({ id: 'join.median<=2xfloor', text: 'join median ≤ 2× floor (least-loaded)', measured: ctx.report.ratio('join.total', 'join.floor'), required: 2, op: '<=', unit: '×' });
  } finally {
    await close();
  }
}
