/**
 * star: max-children 64, so with up to 65 peers every peer is a child of the
 * first. Every peer shares one small file. The hub searches a leaf's file
 * (1 hop), a leaf searches another leaf's (2 hops), then every leaf searches
 * at once and eight leaves download the hub's file at once. Then the hub
 * leaves: its largest child becomes the root and every other leaf reattaches
 * through it (63 repairs with the defaults).
 *
 *   npx tsx scenarios/star.ts [--peers 65] [--runner inproc|process|memory]
 */
import { isMain, main, ms, summarize, type ScenarioDef } from './lib/index.ts';

const fileOf = (id: string) => `${id.toLowerCase()}.txt`;

export const star: ScenarioDef = {
  name: 'star',
  summary: 'max-children 64: a star around the first peer; single and concurrent searches and downloads; the hub leaves and every leaf reattaches.',
  defaults: { runner: 'inproc', peers: 65, maxChildren: 64, policy: 'least-loaded' },
  standard: { floods: 'summary' },
  async run(s) {
    const c = await s.cluster();
    const ids = s.ids('P', s.opts.peers);
    await c.addPeers(ids.map((id) => ({ id, files: [{ name: fileOf(id), bytes: 4096 }] })));
    const hub = ids[0]!;
    const leaves = ids.slice(1);
    const t = await c.topo(hub, { expectWhole: true });
    if (ids.length <= s.opts.maxChildren + 1) s.check(t.check.depth <= 1 && t.check.roots[0] === hub, `a star around ${hub}`, `depth ${t.check.depth}, root ${t.check.roots[0]}`);
    if (leaves.length < 2) return;

    const a = s.rng.pick(leaves);
    const b = s.rng.pick(leaves.filter((x) => x !== a));
    const one = await c.search(hub, fileOf(a), { expectFrom: a, label: 'hub → leaf' });
    const two = await c.search(a, fileOf(b), { expectFrom: b, label: 'leaf → leaf' });

    // Every leaf at once, each for another (seeded) leaf's file.
    const at = s.records.floods.length;
    await Promise.all(leaves.map((id) => c.search(id, fileOf(s.rng.pick(ids.filter((x) => x !== id))), { expect: 'found', label: 'all at once' })));
    const burst = s.records.floods.slice(at);
    const q = summarize(burst.map((f) => f.completionMs))!;
    s.table('Searches', ['what', 'searches', 'messages each', 'reached', 'deepest hop', 'median done ms', 'max done ms'], [
      ['hub → leaf', 1, one.messages, one.reached, one.maxHops, ms(one.completionMs), ms(one.completionMs)],
      ['leaf → leaf', 1, two.messages, two.reached, two.maxHops, ms(two.completionMs), ms(two.completionMs)],
      [`${burst.length} leaves at once`, burst.length, [...new Set(burst.map((f) => f.messages))].join(', '), [...new Set(burst.map((f) => f.reached))].join(', '), Math.max(...burst.map((f) => f.maxHops)), ms(q.median), ms(q.max)],
    ]);

    await Promise.all(s.rng.shuffle(leaves).slice(0, 8).map((id) => c.download(id, fileOf(hub), { expectFrom: hub, label: 'concurrent' })));

    const gone = await c.leave(hub);
    s.summary.hubLeave = { orphans: gone.orphans.length, harnessMs: gone.ms, maxRepairMs: Math.max(0, ...s.records.repairs.map((r) => r.ms ?? 0)) };
    const tree = await c.waitWhole();
    s.setTree(c.round, tree);
  },
};

if (isMain(import.meta.url)) await main(star);
