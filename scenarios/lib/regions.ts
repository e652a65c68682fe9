/**
 * `--regions FILE`: named regions, the share of peers in each, and the link
 * shape between every pair of regions (docs/FAULTS.md, "Regions"). Peers are
 * assigned to regions by the seed; the metaserver sits in one region.
 *
 *   {
 *     "regions": { "eu": 2, "us": 1, "asia": 1 },
 *     "metaserver": "eu",
 *     "links": {
 *       "eu":   { "eu": { "latencyMs": 5 }, "us": { "latencyMs": 45, "jitterMs": 3 }, "asia": { "latencyMs": 110, "bandwidth": "2MB" } },
 *       "us":   { "us": { "latencyMs": 5 }, "asia": { "latencyMs": 80 } },
 *       "asia": { "asia": { "latencyMs": 8 } }
 *     }
 *   }
 *
 * A missing links[a][b] falls back to links[b][a] (links are symmetric unless
 * both are given), and a pair with neither keeps the run's --latency /
 * --bandwidth.
 */
import { z } from 'zod';
import { sizeValue } from '../../core/control/args.ts';
import { UsageError } from './args.ts';
import type { LinkSpec, RegionMatrix } from './faults.ts';

export { regionLink } from './faults.ts';
import { readJsonFile } from './json-file.ts';
import type { Rng } from './rng.ts';

const NAME = /^[A-Za-z0-9_.-]{1,40}$/;
const MAX_REGIONS = 64;

const link = z.object({
  latencyMs: z.number().min(0).max(60_000).optional(),
  jitterMs: z.number().min(0).max(60_000).optional(),
  bandwidth: z.union([z.number().positive().max(1e12), z.string().max(40)]).optional(),
}).strict();

const fileSchema = z.object({
  regions: z.record(z.string().regex(NAME, 'region names are 1-40 letters, digits, _ . -'), z.number().positive().max(1e9)),
  metaserver: z.string().optional(),
  links: z.record(z.string(), z.record(z.string(), link)),
}).strict();

export interface Regions {
  matrix: RegionMatrix;
  /** Region names and their weights, in file order. */
  weights: [string, number][];
  metaserver: string;
}

/** Reads and checks a regions file; every problem is a UsageError naming the field. */
export function loadRegions(file: string): Regions {
  const fail = (m: string) => new UsageError(`--regions: ${m}`);
  const raw = readJsonFile(file, fail);
  const r = fileSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw fail(`${file}: ${i.path.join('.') || '(top)'}: ${i.message}`);
  }
  const weights = Object.entries(r.data.regions);
  if (weights.length === 0 || weights.length > MAX_REGIONS) throw fail(`${file}: regions: give 1 to ${MAX_REGIONS} regions`);
  const names = new Set(weights.map(([n]) => n));
  const links: Record<string, Record<string, LinkSpec>> = {};
  for (const [a, row] of Object.entries(r.data.links)) {
    if (!names.has(a)) throw fail(`${file}: links.${a}: no region named ${JSON.stringify(a)}`);
    for (const [b, l] of Object.entries(row)) {
      if (!names.has(b)) throw fail(`${file}: links.${a}.${b}: no region named ${JSON.stringify(b)}`);
      let bw: number | undefined;
      if (typeof l.bandwidth === 'string') {
        const n = sizeValue(l.bandwidth);
        if (n === null || n <= 0) throw fail(`${file}: links.${a}.${b}.bandwidth: bytes per second like 1000000, 10M or 4MiB, not ${JSON.stringify(l.bandwidth)}`);
        bw = n;
      } else bw = l.bandwidth;
      (links[a] ??= {})[b] = { latencyMs: l.latencyMs, jitterMs: l.jitterMs, bandwidthBytesPerSec: bw };
    }
  }
  const metaserver = r.data.metaserver ?? weights[0]![0];
  if (!names.has(metaserver)) throw fail(`${file}: metaserver: no region named ${JSON.stringify(metaserver)}`);
  return { matrix: { regions: weights.map(([n]) => n), links }, weights, metaserver };
}

/** A region for a peer, drawn from the weights by the peer's own fork of the seed (the same for a peer id whatever the order peers start in). */
export function regionFor(r: Regions, rng: Rng, id: string): string {
  const total = r.weights.reduce((a, [, w]) => a + w, 0);
  let x = rng.fork(`region:${id}`).next() * total;
  for (const [n, w] of r.weights) {
    if (x < w) return n;
    x -= w;
  }
  return r.weights[r.weights.length - 1]![0];
}
