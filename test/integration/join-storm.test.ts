/**
 * Join storm (issue 13): many joins in flight at once, placed by redirects.
 * Children report their subtree sizes one link round trip late, so a parent
 * that redirected newcomers by reported size alone sent every concurrent
 * newcomer down the same branch: a chain grew and joins gave up after their
 * redirect bound. A parent now counts the newcomers it redirected into a
 * child's subtree until that child's reports show them (core/peer/peer.ts,
 * core/protocol/placement.ts). Simulated clock, memory transport, 10 ms links.
 */
import test from 'ava';
import { SimClock } from '../../core/clock.ts';
import { Metaserver } from '../../core/metaserver/metaserver.ts';
import { Peer } from '../../core/peer/peer.ts';
import { MemoryShares } from '../../core/transfer/store.ts';
import { MemoryNetwork } from '../../core/transport/memory.ts';

async function storm(n: number, o: { maxRedirects: number }) {
  const clock = new SimClock();
  const transport = new MemoryNetwork({ latencyMs: 10 }, { clock }).transport();
  const world = new MemoryShares();
  // The root policy refers every newcomer to the root: placement is by redirects alone.
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, policy: 'root', transport, clock, peerTimeoutMs: 0, maxConnections: 100_000 });
  const addr = await meta.start();
  const peers: Peer[] = [];
  for (let i = 0; i < n; i++) {
    const id = `S${String(i).padStart(4, '0')}`;
    peers.push(new Peer({ id, host: '127.0.0.1', port: 0, meta: addr, maxChildren: 2, transport, clock, store: world.store(id), heartbeatMs: 0, announceMs: 0, maxRedirects: o.maxRedirects, joinRetries: 0 }));
  }
  for (const p of peers) await p.start();
  await clock.drive(peers[0]!.join());
  // Everyone else at once.
  const results = await clock.drive(Promise.allSettled(peers.slice(1).map((p) => p.join())));
  const depths = peers.map((p) => p.depth);
  await Promise.all(peers.map((p) => p.stop()));
  await meta.stop();
  return { results, depths };
}

test('300 concurrent joins through redirects all succeed and spread (tree depth stays logarithmic)', async (t) => {
  const { results, depths } = await storm(300, { maxRedirects: 24 });
  const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason?.message));
  t.deepEqual(failed.slice(0, 3), [], `${failed.length} joins failed`);
  const redirects = results.map((r) => (r.status === 'fulfilled' ? r.value.redirects.length : Infinity));
  // A balanced binary tree of 300 has depth 8; a storm sent down one branch makes a chain.
  const maxDepth = Math.max(...depths);
  t.log(`depth ${maxDepth}, max redirects ${Math.max(...redirects)}`);
  t.true(maxDepth <= 11, `tree depth ${maxDepth}`);
  t.true(Math.max(...redirects) <= 11, `max redirects ${Math.max(...redirects)}`);
});
