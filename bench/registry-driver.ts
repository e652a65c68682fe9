/**
 * Registry scale, one size at a time (for profiling the bench's step):
 *   npx tsx bench/registry-driver.ts --size=100000 --steps=300000 [--warm=30000] [--prof=FILE.cpuprofile]
 * (--prof profiles the timed steps only; read it with bench/profile-top.ts)
 * Builds an overlay of `size` peers as bench/macro/registry-scale.ts does,
 * runs `warm` steps (JIT), then `steps` of its churn step (newcomer registers + announces +
 * parent announces; the previous newcomer, if a leaf, leaves) and prints CPU µs per step.
 */
import { build, churnStep } from './macro/registry-scale.ts';
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { forceGc } from '../testnet/gc.ts';

const arg = (k: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3) ?? d);
const size = arg('size', 100_000);
const steps = arg('steps', 200_000);
const warm = arg('warm', 30_000);
const o = await build(size, 'least-loaded');
const run = async (n: number) => {
  for (let j = 0; j < n; j++) await churnStep(o);
};
// JIT warm-up (the 100-peer build alone is too short for it).
await run(warm);
forceGc();
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const profFile = process.argv.find((a) => a.startsWith('--prof='))?.slice(7);
const session = profFile ? new Session() : undefined;
if (session) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
}
// GC time during the timed steps, by kind (minor = scavenge, major = mark-compact).
const gcMs = { minor: 0, major: 0, nMinor: 0, nMajor: 0 };
const count = (entries: readonly PerformanceEntry[]) => {
  for (const e of entries) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) (gcMs.major += e.duration), gcMs.nMajor++;
    else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) (gcMs.minor += e.duration), gcMs.nMinor++;
  }
};
const obs = new PerformanceObserver((list) => count(list.getEntries()));
obs.observe({ entryTypes: ['gc'] });
const t = cpu();
await run(steps);
const ms = cpu() - t;
await new Promise((r) => setTimeout(r, 100));
count(obs.takeRecords());
obs.disconnect();
if (session) {
  const { profile } = await session.post('Profiler.stop');
  fs.writeFileSync(profFile!, JSON.stringify(profile));
  session.disconnect();
}
const per = (x: number) => ((1000 * x) / steps).toFixed(2);
console.log(`size ${size}: ${steps} steps, ${per(ms)} µs CPU per step (${Math.round((1000 * steps) / ms)}/s); GC (wall) per step: minor ${per(gcMs.minor)} µs (${gcMs.nMinor}), major ${per(gcMs.major)} µs (${gcMs.nMajor})`);
