/**
 * policies: the metaserver's referral policy (root, random, least-loaded)
 * against join latency, redirects and the shape of the tree, for N = 10,
 * 100 and 1,000 peers. Peers join one after another, so every join sees the
 * tree its predecessors built; each (policy, N) is a fresh overlay. After
 * joining, one topology request and one search (seeded requester, for a file
 * held by a seeded peer) show what the shape costs the floods.
 *
 *   npx tsx scenarios/policies.ts [--sizes 10,100,1000] [--policy P] [--peers N] [--runner inproc|memory|process]
 */
import { POLICIES } from '../core/index.ts';
import { isMain, main, ms, points, sizesOption, summarize, type CommonOptions, type ScenarioDef } from './lib/index.ts';

const sizes = (o: CommonOptions) => sizesOption(o, [10, 100, 1000]);

export const policies: ScenarioDef = {
  name: 'policies',
  summary: 'Referral policy root vs random vs least-loaded: join latency, redirects and tree depth for N = 10, 100, 1,000 (one overlay per policy and N).',
  defaults: { runner: 'inproc', peers: 100, maxChildren: 2, policy: 'least-loaded' },
  options: { sizes: { type: 'string', placeholder: 'LIST', description: 'overlay sizes, comma-separated (default 10,100,1000; --peers N runs only N)' } },
  standard: { joins: 'summary', floods: 'summary', tree: 'off' },
  validate(o) {
    sizes(o);
  },
  async run(s) {
    const Ns = sizes(s.opts);
    const ps = s.opts.given.has('policy') ? [s.opts.policy] : [...POLICIES];
    const rows: (string | number | null)[][] = [];
    for (const { N, policy } of points({ N: Ns, policy: ps })) {
      const round = `${policy} N=${N}`;
      const c = await s.cluster({ round, policy });
      const ids = s.ids('N', N);
      const holder = s.rng.pick(ids);
      const by = s.rng.pick(ids);
      await c.addPeers(ids.map((id) => (id === holder ? { id, files: [{ name: 'needle.txt', bytes: 1024 }] } : { id, folder: 'common' as const })));
      const t = await c.topo(ids[0]!, { expectWhole: true });
      const f = await c.search(by, 'needle.txt', { expectFrom: holder });
      const js = s.records.joins.filter((j) => j.round === round);
      const total = summarize(js.map((j) => j.totalMs))!;
      const red = js.map((j) => j.redirects);
      const phase = s.records.phases.find((p) => p.round === round);
      rows.push([
        N, policy, ms(total.median), ms(total.p95), ms(total.max), (red.reduce((a, b) => a + b, 0) / js.length).toFixed(2), Math.max(...red),
        t.check.depth, t.check.maxChildren, phase ? ms(phase.ms) : null, ms(f.completionMs), f.maxHops,
      ]);
      if (N === Ns[Ns.length - 1] && policy === ps[ps.length - 1] && N <= 200) s.setTree(round, t.nodes);
      await s.closeCluster(c);
    }
    s.table('Referral policies', ['N', 'policy', 'join median ms', 'join p95 ms', 'join max ms', 'redirects mean', 'redirects max', 'tree depth', 'widest', 'join all ms', 'search done ms', 'deepest hop'], rows,
      `max-children ${s.opts.maxChildren}; joins one after another; join = register sent → JOIN accepted (peer's clock); search from a seeded peer.`);
  },
};

if (isMain(import.meta.url)) await main(policies);
