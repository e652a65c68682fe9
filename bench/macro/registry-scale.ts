/**
 * Macro (5b): does a registration cost the same in a small and a huge
 * overlay (issue 13 item 1)? In-process, no sockets: the metaserver's own
 * register/announce rules (core/metaserver/service.ts) over its Registry.
 *
 * An overlay of N peers is built first (untimed), each peer registering and
 * announcing under its referral as a real peer does. Then each timed step
 * is one newcomer (register, its announce under the referral, its parent's
 * announce) and, when the previous newcomer is still a leaf, that one's
 * leave (leave with its token, its parent's announce), so the overlay stays
 * at N. The two sizes alternate in groups of 500 steps (which goes first
 * alternates too), after a full GC and a warm-up pair; samples are
 * registrations per CPU-second of this process (the machine is shared, and
 * wall time there mostly measures the other processes). The ratio is the
 * median over the pairs of big ÷ small, each pair measured back to back
 * (under the same load from the rest of the machine).
 */
import { Registry } from '../../core/metaserver/registry.ts';
import { MetaService } from '../../core/metaserver/service.ts';
import type { Policy } from '../../core/protocol/referral.ts';
import type { Ctx } from '../lib/context.ts';
import { forceGc } from '../../testnet/gc.ts';
import { PROTOCOL_VERSION } from '../../core/protocol/messages.ts';

/** The simulated peers' own state, by number (what each real peer keeps about itself). */
interface Sim {
  id: string;
  host: string;
  port: number;
  token: string;
  depth: number;
  parent: number;
  kids: number;
}

export interface Overlay {
  svc: MetaService;
  /** By number; a peer's number is in its id (`p<n>`), so finding a referred peer costs the same at every size. */
  peers: Sim[];
  /** The previous churn step's newcomer (churnStep). */
  last?: number;
}

/** The number in a simulated peer's id. */
const numberOf = (id: string): number => Number(id.slice(1));

function overlay(policy: Policy): Overlay {
  const reg = new Registry(5000);
  let seed = 7;
  const rng = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  // Probes never happen on this path (fresh ids and addresses, announces with the issued token).
  const svc = new MetaService(reg, { policy, rng, now: () => performance.now(), wallNow: () => Date.now(), probe: async () => 'dead' });
  return { svc, peers: [] };
}

/**
 * One newcomer, as a real peer does it: register, announce under the
 * referral, the parent announces its new child count. Returns its number.
 */
async function newcomer(o: Overlay): Promise<number> {
  const i = o.peers.length;
  const id = `p${i}`;
  const host = `127.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const port = 1 + (i % 60000);
  const r = await o.svc.register({ t: 'register', v: PROTOCOL_VERSION, id, host, port, maxChildren: 2 });
  const pi = r.referral ? numberOf(r.referral.id) : -1;
  const parent = pi >= 0 ? o.peers[pi]! : undefined;
  const me: Sim = { id, host, port, token: r.token, depth: parent ? parent.depth + 1 : 0, parent: pi, kids: 0 };
  o.peers.push(me);
  await announceOf(o, me);
  if (!parent) return i;
  parent.kids++;
  await announceOf(o, parent);
  return i;
}

function announceOf(o: Overlay, p: Sim): Promise<void> {
  return o.svc.announce({ t: 'announce', v: PROTOCOL_VERSION, id: p.id, host: p.host, port: p.port, parent: p.parent >= 0 ? o.peers[p.parent]!.id : null, depth: p.depth, children: p.kids, maxChildren: 2, token: p.token });
}

/** A leaf leaves as a real peer does: its own leave (with its token), then its parent announces one child less. */
async function leaveLeaf(o: Overlay, i: number): Promise<void> {
  const p = o.peers[i]!;
  await o.svc.leave({ t: 'leave', v: PROTOCOL_VERSION, id: p.id, token: p.token });
  if (p.parent < 0) return;
  const parent = o.peers[p.parent]!;
  parent.kids--;
  await announceOf(o, parent);
}

export async function build(size: number, policy: Policy): Promise<Overlay> {
  const o = overlay(policy);
  for (let i = 0; i < size; i++) await newcomer(o);
  return o;
}

/** One timed step: the previous newcomer leaves if it is still a leaf, then a newcomer joins (the overlay stays its size). */
export async function churnStep(o: Overlay): Promise<void> {
  if (o.last !== undefined && o.peers[o.last]!.kids === 0) await leaveLeaf(o, o.last);
  o.last = await newcomer(o);
}

/**
 * Registrations per CPU-second into overlays of `small` and `big` peers that
 * stay that size: each timed step is one newcomer (register, announce,
 * parent's announce) and, when the previous newcomer is still a leaf, its
 * leave (leave, parent's announce), as in a live overlay with churn. The two
 * sizes alternate in groups of `stepsPerGroup` steps, one sample per group.
 */
export async function measureScale(small: number, big: number, groups: number, policy: Policy = 'least-loaded', stepsPerGroup = 500): Promise<{ small: number[]; big: number[]; ratios: number[]; buildMs: number }> {
  const t0 = performance.now();
  const large = await build(big, policy);
  const buildMs = performance.now() - t0;
  const little = await build(small, policy);
  const out = { small: [] as number[], big: [] as number[], ratios: [] as number[], buildMs };
  // The build's garbage is not charged to the first groups.
  forceGc();
  const steps = async (o: Overlay, n: number) => {
    const t = cpuMs();
    for (let j = 0; j < n; j++) await churnStep(o);
    return (1000 * n) / (cpuMs() - t);
  };
  // One warm-up pair (JIT), not counted.
  for (let g = -1; g < groups; g++) {
    let a: number, b: number;
    if (g % 2 === 0) {
      a = await steps(little, stepsPerGroup);
      b = await steps(large, stepsPerGroup);
    } else {
      b = await steps(large, stepsPerGroup);
      a = await steps(little, stepsPerGroup);
    }
    if (g >= 0) {
      out.small.push(a);
      out.big.push(b);
      out.ratios.push(b / a);
    }
  }
  return out;
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

export async function registryScaleBench(ctx: Ctx): Promise<void> {
  const groups = ctx.quick ? 10 : 60;
  const g = 'registrations per CPU-second into a live overlay with churn (in-process: MetaService + Registry, no sockets; each newcomer registers, announces, its parent announces; the previous newcomer, if a leaf, leaves)';
  const m = await measureScale(100, 100_000, groups);
  ctx.log(`registry scale: overlay of 100,000 built in ${(m.buildMs / 1000).toFixed(1)} s; medians ${median(m.small).toFixed(0)}/s at 100, ${median(m.big).toFixed(0)}/s at 100,000`);
  ctx.report.add({ id: 'registrations.overlay100', group: g, label: 'into an overlay of 100 (in-process Registry, no sockets)', short: 'overlay of 100', unit: '/s', better: 'higher', samples: m.small });
  ctx.report.add({ id: 'registrations.overlay100k', group: g, label: 'into an overlay of 100,000 (in-process Registry, no sockets)', short: 'overlay of 100,000', unit: '/s', better: 'higher', samples: m.big, baselines: ['registrations.overlay100'] });
  const ratio = median(m.ratios);
  ctx.log(`registry scale: ratio 100,000 / 100 = ${ratio.toFixed(2)} (median of ${m.ratios.length} back-to-back pairs; ratio of the medians ${(median(m.big) / median(m.small)).toFixed(2)})`);
  ctx.report.target({ id: 'registrations.scale>=0.8', text: 'registrations/s at 100,000 peers ≥ 0.8 × at 100 peers', measured: ratio, required: 0.8, op: '>=', unit: '×' });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : 0;
}
