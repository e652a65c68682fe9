/**
 * The process runner's link and disk faults with the real fault classes in
 * every node process (FaultPlane, NodeFaults: testnet/fault-factories.ts),
 * not the recording stand-ins of faults-process.test.ts: a partition really
 * cuts the chain S1 ← S2 ← S3 ← S4 between S2 and S3 (a search from S1
 * reaches two peers, names the rest unreachable, and finds nothing), the
 * heal makes one tree again; a reset of S1 ↔ S2 makes S2 repair; ENOSPC in
 * S1's store fails its download cleanly, and a healthy disk lets it through.
 */
import test from 'ava';
import { run, waitEvent, type ScenarioDef } from '../../scenarios/lib/index.ts';
import { META } from '../../scenarios/lib/faults.ts';

const IDS = ['S1', 'S2', 'S3', 'S4'];

test('process runner, real fault plane and store wrapper in every process: partition, heal, reset and a full disk change what the peers do', async (t) => {
  t.timeout(180_000, 'four peer processes on a loaded two-core machine');
  const def: ScenarioDef = {
    name: 'faults-process-real',
    summary: 'link and disk faults with the real fault classes in four peer processes',
    defaults: { runner: 'process', peers: 4, maxChildren: 1, policy: 'least-loaded' },
    async run(s) {
      const c = await s.cluster();
      await c.addPeers(IDS.map((id) => (id === 'S4' ? { id, files: [{ name: 's4.dat', bytes: 64 * 1024 }, { name: 'big.dat', bytes: 1024 * 1024 }] } : id)), { settle: true });
      const first = await c.topo('S1', { expectWhole: true });
      t.deepEqual(['S2', 'S3', 'S4'].map((id) => first.nodes.find((n) => n.id === id)?.parent), ['S1', 'S2', 'S3']);

      // The cut between S2 and S3: S2 drops its silent child after deadAfterMs.
      const dropped = waitEvent(c.peer('S2'), 'child-left', (e) => e.id === 'S3', 30_000, 'S2 drops S3 across the partition');
      await c.partition([[META, 'S1', 'S2'], ['S3', 'S4']]);
      await dropped;
      const during = await c.search('S1', 's4.dat');
      t.deepEqual(during.hits, [], 'nothing found across the cut');
      t.is(during.reached, 2, 'the search reached S1 and S2 only');
      t.true(during.answered && !during.error, 'a definite answer');

      await c.heal();
      const tree = await c.waitWhole({ by: 'S1', timeoutMs: 60_000 });
      t.deepEqual(tree.map((n) => n.id).sort(), IDS);
      const after = await c.search('S1', 's4.dat');
      t.deepEqual(after.hits, ['S4'], 'found once healed');

      // A reset of the link S1 ↔ S2: both ends see it die; S2 repairs.
      const repaired = waitEvent(c.peer('S2'), 'repaired', (r) => r.lost === 'S1', 30_000, 'S2 repairs after the reset');
      await c.reset('S1', 'S2');
      await repaired;

      // S1's disk is full after 256 KiB: its download of 1 MiB fails cleanly; healthy again, it succeeds.
      await c.waitWhole({ by: 'S1', timeoutMs: 60_000 });
      await c.disk('S1', { kind: 'enospc', afterBytes: 256 * 1024 });
      const bad = await c.download('S1', 'big.dat', { mayFail: true });
      t.false(bad.ok, 'the download into a full disk fails');
      t.is(bad.errorCode, 'io', bad.error);
      await c.disk('S1', null);
      const good = await c.download('S1', 'big.dat', { mayFail: true });
      t.true(good.ok && good.verified, good.error);
      t.deepEqual(s.records.faults.map((f) => f.kind), ['partition', 'heal', 'reset', 'disk', 'disk']);
    },
  };
  const r = await run(def, ['--runner', 'process', '--seed', '2', '--quiet', '--no-html'], { write: false });
  t.true(r.ok, r.failures.join('\n'));
  t.is((r.summary.invariants as { violations: number } | undefined)?.violations, 0);
});
