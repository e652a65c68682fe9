/**
 * Macro (5b): does a registration cost the same in a small and a huge
 * overlay (issue 13 item 1)? In-process, no sockets: the metaserver's own
 * register/announce rules (core/metaserver/service.ts) over its Registry.
 *
 * An overlay of N peers is built first (untimed), each peer registering and
 * announcing under its referral as a real peer does. Then newcomers join in
 * batches of 50, each one timed as: register (referral chosen), the
 * newcomer's announce (it joined its referral), and the parent's announce
 * (its children changed). For N = 100 every batch goes into a fresh overlay
 * of 100 (so it stays 100–150 peers); for N = 100,000 the batches go one
 * after another into the same overlay (100,000 → 100,000 + 1,000 × groups).
 * Samples are registrations per CPU-second of this process over groups of
 * 1,000, the two sizes alternating group by group.
 */
import { Registry } from '../../core/metaserver/registry.ts';
import { MetaService } from '../../core/metaserver/service.ts';
import type { Policy } from '../../core/protocol/referral.ts';
import type { Ctx } from '../lib/context.ts';

interface Overlay {
  svc: MetaService;
  n: number;
  depth: Map<string, number>;
  kids: Map<string, number>;
  tokens: Map<string, string>;
  parentOf: Map<string, string>;
}

function overlay(policy: Policy): Overlay {
  const reg = new Registry(5000);
  let seed = 7;
  const rng = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  // Probes never happen on this path (fresh ids and addresses, announces with the issued token).
  const svc = new MetaService(reg, { policy, rng, now: () => performance.now(), wallNow: () => Date.now(), probe: async () => 'dead' });
  return { svc, n: 0, depth: new Map(), kids: new Map(), tokens: new Map(), parentOf: new Map() };
}

/** One newcomer, as a real peer does it: register, announce under the referral, the parent announces its new child count. */
async function newcomer(o: Overlay): Promise<void> {
  const i = o.n++;
  const id = `p${i}`;
  const host = `127.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const port = 1 + (i % 60000);
  const r = await o.svc.register({ t: 'register', v: 1, id, host, port, maxChildren: 2 });
  o.tokens.set(id, r.token);
  const parent = r.referral;
  const depth = parent ? o.depth.get(parent.id)! + 1 : 0;
  o.depth.set(id, depth);
  await o.svc.announce({ t: 'announce', v: 1, id, host, port, parent: parent?.id ?? null, depth, children: 0, maxChildren: 2, token: r.token });
  if (!parent) return;
  o.parentOf.set(id, parent.id);
  const k = (o.kids.get(parent.id) ?? 0) + 1;
  o.kids.set(parent.id, k);
  await o.svc.announce({ t: 'announce', v: 1, id: parent.id, host: parent.host, port: parent.port, parent: o.parentOf.get(parent.id) ?? null, depth: o.depth.get(parent.id)!, children: k, maxChildren: 2, token: o.tokens.get(parent.id)! });
}

/**
 * This process's CPU time (user + system), ms. The rows count registrations
 * per CPU-second: on a shared machine wall time mostly measures the other
 * processes (both rows are single-threaded JS; GC threads count too).
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function build(size: number, policy: Policy): Promise<Overlay> {
  const o = overlay(policy);
  for (let i = 0; i < size; i++) await newcomer(o);
  return o;
}

/**
 * Registrations per second into overlays of `small` and `big` peers,
 * alternating groups of 1,000 (so both see the same machine load): into
 * `small`, 20 batches of 50, each into a freshly built overlay; into `big`,
 * 20 batches of 50 into the one growing overlay. One sample per group.
 */
export async function measureScale(small: number, big: number, groups: number, policy: Policy = 'least-loaded'): Promise<{ small: number[]; big: number[]; buildMs: number }> {
  const t0 = performance.now();
  const large = await build(big, policy);
  const buildMs = performance.now() - t0;
  const out = { small: [] as number[], big: [] as number[], buildMs };
  // One warm-up group each (JIT), not counted.
  for (let g = -1; g < groups; g++) {
    let ms = 0;
    for (let b = 0; b < 20; b++) {
      const o = await build(small, policy);
      const t = cpuMs();
      for (let j = 0; j < 50; j++) await newcomer(o);
      ms += cpuMs() - t;
    }
    if (g >= 0) out.small.push(1000 / (ms / 1000));
    const t = cpuMs();
    for (let j = 0; j < 1000; j++) await newcomer(large);
    if (g >= 0) out.big.push(1000 / ((cpuMs() - t) / 1000));
  }
  return out;
}

export async function registryScaleBench(ctx: Ctx): Promise<void> {
  const groups = ctx.quick ? 5 : 20;
  const g = 'registrations per CPU-second into a live overlay (in-process: MetaService + Registry, no sockets; each newcomer registers, announces, and its parent announces)';
  const m = await measureScale(100, 100_000, groups);
  ctx.log(`registry scale: overlay of 100,000 built in ${(m.buildMs / 1000).toFixed(1)} s; medians ${median(m.small).toFixed(0)}/s at 100, ${median(m.big).toFixed(0)}/s at 100,000`);
  ctx.report.add({ id: 'registrations.overlay100', group: g, label: 'into an overlay of 100 (in-process Registry, no sockets)', short: 'overlay of 100', unit: '/s', better: 'higher', samples: m.small });
  ctx.report.add({ id: 'registrations.overlay100k', group: g, label: `into an overlay of 100,000 → ${(100_000 + (groups + 1) * 1000).toLocaleString('en-US')} (in-process Registry, no sockets)`, short: 'overlay of 100,000', unit: '/s', better: 'higher', samples: m.big, baselines: ['registrations.overlay100'] });
  const ratio = median(m.big) / median(m.small);
  ctx.log(`registry scale: ratio 100,000 / 100 = ${ratio.toFixed(2)}`);
  ctx.report.target({ id: 'registrations.scale>=0.8', text: 'registrations/s at 100,000 peers ≥ 0.8 × at 100 peers', measured: ratio, required: 0.8, op: '>=', unit: '×' });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : 0;
}
