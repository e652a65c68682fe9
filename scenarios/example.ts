/**
 * The example of docs/SCENARIOS.md (that page shows this file in full, and
 * test/scenarios/docs-example.test.ts checks the two are the same and runs
 * it on the memory runner).
 *
 * A chain-ish tree of seven peers; P7 (the last to join, deepest) holds a
 * generated file; P1 (the root) finds it and downloads it; then the holder's
 * parent crashes, the tree repairs, and P1 downloads the file again.
 *
 *   npx tsx scenarios/example.ts [--runner memory] [--file-kib 256] [--seed N]
 */
import { intOption, isMain, main, ms, type ScenarioDef } from './lib/index.ts';

export const example: ScenarioDef = {
  name: 'example',
  summary: 'Docs example: seven peers, the deepest one holds a file; the root downloads it, the holder\'s parent crashes, the root downloads it again.',
  defaults: { runner: 'memory', peers: 7, maxChildren: 2, policy: 'least-loaded' },
  options: { 'file-kib': { type: 'string', placeholder: 'KIB', description: 'size of the shared file, KiB (default 256)' } },
  validate(o) {
    intOption(o, 'file-kib', 256, 1024 * 1024);
  },
  async run(s) {
    const kib = intOption(s.opts, 'file-kib', 256, 1024 * 1024);
    const ids = s.ids('P', s.opts.peers);
    const holder = ids[ids.length - 1]!;

    const c = await s.cluster();
    // One at a time with settle: the same seed gives the same tree under every runner.
    await c.addPeers(
      ids.map((id) => (id === holder ? { id, files: [{ name: 'data.bin', bytes: kib * 1024 }] } : id)),
      { settle: true },
    );
    const first = await c.topo('P1', { expectWhole: true });
    s.snapshot(c.round, 'at the start', first.nodes);

    const found = await c.search('P1', 'data.bin', { expectFrom: holder });
    s.check(found.hitHops[0] === first.nodes.find((n) => n.id === holder)?.depth, 'the hit is as many hops away as the holder is deep');
    const before = await c.download('P1', 'data.bin', { expectFrom: holder });

    // The holder's parent crashes; its children reattach.
    const parent = first.nodes.find((n) => n.id === holder)!.parent!;
    const { orphans } = await c.crash(parent);
    s.check(orphans.includes(holder), `${holder} was a child of ${parent}`);
    const tree = await c.waitWhole({ by: 'P1' });
    s.setTree(c.round, tree);
    s.snapshot(c.round, `after ${parent} crashed`, tree);

    // P1 already has data.bin now: P2 downloads it, from P1 or the holder, whichever offers first.
    const again = await s.step('P2 downloads data.bin after the repair', () => c.download('P2', 'data.bin'));
    s.check(again.ok && again.verified, 'the download after the repair is verified');

    s.table('Example: the same file before and after the crash', ['download', 'from', 'bytes', 'duration', 'verified'], [
      ['P1, before', before.from, before.bytes, ms(before.durationMs), before.verified ? 'yes' : 'no'],
      ['P2, after', again.from, again.bytes, ms(again.durationMs), again.verified ? 'yes' : 'no'],
    ]);
    s.summary.crashed = parent;
    s.summary.orphans = orphans;
    s.summary.repairMs = Math.max(0, ...s.records.repairs.filter((r) => r.lost === parent).map((r) => r.ms ?? 0));
  },
};

if (isMain(import.meta.url)) await main(example);
