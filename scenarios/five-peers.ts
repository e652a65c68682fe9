/**
 * The original demo, scripted: a metaserver and S1..S5 sharing shares/S1..S5
 * (copied to a temporary folder). S1 downloads pwd1.txt (found at S3); every
 * peer searches for a file it lacks and downloads it (all at once); one
 * search for a name nobody has; S3 leaves gracefully and the tree repairs;
 * S1 searches and downloads again.
 *
 *   npx tsx scenarios/five-peers.ts [--runner process|inproc|memory] [--seed N] …
 *
 * Policy `root` by default, as in the original (every newcomer is referred to
 * the first peer, and redirected down when it is full), so the run shows
 * redirects and S3 has a child to hand over when it leaves.
 */
import { isMain, main, UsageError, type ScenarioDef } from './lib/index.ts';

export const fivePeers: ScenarioDef = {
  name: 'five-peers',
  summary: 'The original demo: metaserver + S1..S5 (shares/S1..S5), downloads, a not-found search, S3 leaves, the tree repairs, S1 downloads again.',
  defaults: { runner: 'process', peers: 5, maxChildren: 2, policy: 'root' },
  validate(o) {
    if (o.peers < 5) throw new UsageError('--peers must be at least 5 (S1..S5 hold the demo shares)');
  },
  async run(s) {
    const c = await s.cluster();
    // S1..S5 get the repository's shares; extra peers (--peers > 5) start empty.
    const ids = s.ids('S', s.opts.peers);
    await c.addPeers(ids.map((id, i) => ({ id, from: i < 5 ? id : undefined })));
    await c.topo('S1', { expectWhole: true });
    // What the floods cost, counted on the wire (the 2(N−1) checks below take the peers' word).
    let wire = await c.wireFloods();

    await c.search('S1', 'pwd1.txt', { expectFrom: 'S3' });
    await c.download('S1', 'pwd1.txt', { expectFrom: 'S3' });

    // Every peer picks (seeded) a file it lacks, searches for it, then all download at once.
    const lacks = await Promise.all(ids.map((id) => c.lacking(id)));
    const wants = ids.map((id, i) => [id, s.rng.pick(lacks[i]!).name] as const);
    for (const [id, name] of wants) await c.search(id, name, { expect: 'found' });
    await Promise.all(wants.map(([id, name]) => c.download(id, name)));

    await c.search('S1', 'no-such-file.txt', { expect: 'none', label: 'not-found' });

    await wire.check('before S3 leaves');
    const before = await c.topo('S1', { label: 'before S3 leaves', expectWhole: true });
    s.snapshot(c.round, 'before S3 leaves', before.nodes);
    await c.leave('S3');
    const tree = await c.waitWhole({ by: 'S1' });
    s.setTree(c.round, tree);
    s.snapshot(c.round, 'after S3 left and the tree repaired', tree);

    wire = await c.wireFloods();
    const again = s.rng.pick(await c.lacking('S1')).name;
    await c.search('S1', again, { expect: 'found', label: 'after repair' });
    await c.download('S1', again, { label: 'after repair' });
    await wire.check('after repair');

    // Consistency the tables rely on: on a tree, a search costs 2(N−1) messages and reaches N peers.
    for (const f of s.records.floods.filter((x) => x.kind !== 'topo' && x.answered && x.treeSize)) {
      s.check(f.messages === 2 * (f.treeSize! - 1) && f.reached === f.treeSize && f.duplicates === 0, `fan-out of ${f.by}'s ${f.kind} for ${f.name} is 2(N−1) = ${2 * (f.treeSize! - 1)}`, `messages ${f.messages}, reached ${f.reached}, duplicates ${f.duplicates}`);
    }
    const repairs = s.records.repairs.filter((r) => r.lost === 'S3');
    s.summary.repair = { orphans: repairs.map((r) => r.peer), maxMs: repairs.length ? Math.max(...repairs.map((r) => r.ms ?? 0)) : null };
  },
};

if (isMain(import.meta.url)) await main(fivePeers);
