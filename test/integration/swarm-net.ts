/** Shared by the swarm tests: k holders of one file in a cluster of real peers over loopback TCP. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { cluster } from '../helpers.ts';

/** The tests' piece size (their files are a few MiB). */
export const PIECE = 64 * 1024;
export const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** Partial-download files (data and resume state) in a share folder. */
export const partials = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('.treeshare-'));

/** A cluster with `k` holders H1..Hk of `body` as f.bin (closed when the test ends). */
export async function swarmNet(t: ExecutionContext, k: number, body: Buffer, peer: Record<string, unknown> = {}) {
  const c = await cluster({ peer: { minPieceBytes: PIECE, heartbeatMs: 0, announceMs: 0, ...peer } });
  t.teardown(() => c.close());
  const holders = [];
  for (let i = 1; i <= k; i++) {
    const h = await c.add(`H${i}`);
    fs.writeFileSync(path.join(h.opts.share, 'f.bin'), body);
    holders.push(h);
  }
  return { c, holders };
}
