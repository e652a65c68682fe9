/**
 * latency: added one-way link latency 0, 5, 20, 50 ms per hop (user-space
 * link emulation, both runners), on a chain (max-children 1) joined with the
 * `root` policy, so a newcomer at depth d is redirected d−1 times down the
 * chain. For each latency:
 *
 * - join time by depth: each level costs one more JOIN round trip (2 × L);
 * - search time by the requester's farthest hop e (a flood on a tree ends
 *   when the farthest peer has answered, so done ≈ 2 × e × L + processing):
 *   every peer searches for the tail's file in turn.
 *
 * The last columns fit the measured growth per level and divide it by the
 * latency: about 2 (one hop out, one back) when the emulation works.
 *
 *   npx tsx scenarios/latency.ts [--latencies 0,5,20,50] [--peers 6] [--runner inproc|process|memory]
 */
import { isMain, main, ms, numberList, points, type ScenarioDef } from './lib/index.ts';

/** Least-squares slope of y over x. */
function slope(pts: readonly [number, number][]): number | null {
  if (pts.length < 2) return null;
  const mx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
  const my = pts.reduce((a, p) => a + p[1], 0) / pts.length;
  const sxx = pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return sxx === 0 ? null : pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / sxx;
}

/**
 * Rows of a latency → level → ms table: one per level (ascending), then the
 * fitted growth per level (over levels ≥ fitFrom) and that growth ÷ latency.
 */
function levelRows(lats: readonly number[], by: ReadonlyMap<number, ReadonlyMap<number, number>>, fitFrom = 0): { rows: (string | number)[][]; perLevel: (number | null)[] } {
  const levels = [...new Set([...by.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
  const rows: (string | number)[][] = levels.map((e) => [e, ...lats.map((L) => ms(by.get(L)!.get(e)))]);
  const perLevel = lats.map((L) => slope([...by.get(L)!.entries()].filter(([e]) => e >= fitFrom)));
  rows.push(['ms per level (fit)', ...perLevel.map((x) => ms(x))]);
  rows.push(['÷ latency', ...lats.map((L, i) => (L > 0 && perLevel[i] !== null ? perLevel[i]! / L : null)).map((x) => (x === null ? '—' : x.toFixed(2)))]);
  return { rows, perLevel };
}

function latencies(o: { extra: Record<string, string | boolean | undefined>; given: ReadonlySet<string>; latency: number }): number[] {
  if (o.given.has('latency')) return [...new Set([0, o.latency])];
  return numberList('latencies', o.extra.latencies, [0, 5, 20, 50]);
}

export const latency: ScenarioDef = {
  name: 'latency',
  summary: 'Added link latency per hop (0, 5, 20, 50 ms): join time by depth and search time by farthest hop grow by about 2 × latency per level.',
  defaults: { runner: 'inproc', peers: 6, maxChildren: 1, policy: 'root' },
  options: { latencies: { type: 'string', placeholder: 'LIST', description: 'latencies to compare, ms, comma-separated (default 0,5,20,50; --latency L compares 0 and L)' } },
  standard: { joins: 'summary', floods: 'summary', tree: 'auto' },
  validate(o) {
    latencies(o);
  },
  async run(s) {
    const lats = latencies(s.opts);
    const ids = s.ids('L', Math.max(2, s.opts.peers));
    const tail = ids[ids.length - 1]!;
    const joinBy = new Map<number, Map<number, number>>(); // latency → depth → join ms
    const searchBy = new Map<number, Map<number, number>>(); // latency → farthest hop → done ms
    const heads: { L: number; D: number; done: number | null }[] = [];
    await s.warmup(async () => {
      const c = await s.cluster({ round: 'warm-up', latency: 0 });
      await c.addPeers(ids.map((id) => ({ id, files: id === tail ? [{ name: 'tail.txt', bytes: 1024 }] : [] })));
      await c.search(ids[0]!, 'tail.txt');
      await s.closeCluster(c);
    });
    for (const { L } of points({ L: lats })) {
      const round = `${L} ms`;
      const c = await s.cluster({ round, latency: L });
      const hs = await c.addPeers(ids.map((id) => ({ id, files: id === tail ? [{ name: 'tail.txt', bytes: 1024 }] : [] })));
      const { nodes, check } = await c.topo(ids[0]!, { expectWhole: true });
      const depth = new Map(nodes.map((n) => [n.id, n.depth]));
      const D = check.depth;
      const jm = new Map<number, number>();
      for (const j of s.records.joins.filter((x) => x.round === round)) jm.set(j.depth, j.totalMs);
      joinBy.set(L, jm);
      const sm = new Map<number, number>();
      let head: number | null = null;
      for (const h of hs) {
        if (h.id === tail) continue;
        const f = await c.search(h.id, 'tail.txt', { expectFrom: tail, label: 'by farthest hop' });
        if (!f.answered) continue;
        if (h.id === ids[0]) head = f.completionMs;
        const d = depth.get(h.id) ?? 0;
        const far = Math.max(d, D - d);
        if (!sm.has(far) || sm.get(far)! > f.completionMs) sm.set(far, f.completionMs);
      }
      searchBy.set(L, sm);
      heads.push({ L, D, done: head });
      if (L === lats[lats.length - 1]) s.setTree(round, nodes);
      await s.closeCluster(c);
    }
    const h0 = heads[0]!;
    s.table('Search from the head of the chain, by latency', ['latency ms', 'tree depth D', 'done ms', 'model 2·D·L ms', `added vs ${h0.L} ms`, 'added per level ms'],
      heads.map(({ L, D, done }) => {
        const added = done !== null && h0.done !== null && L !== h0.L ? done - h0.done : null;
        return [L, D, ms(done), ms(2 * D * L), ms(added), added !== null && D > 0 ? ms(added / D) : null];
      }),
      'A search ends when the farthest peer has answered: each level adds one hop out and one back, 2 × L.');
    s.summary.fromHead = heads;

    const { rows: srows, perLevel } = levelRows(lats, searchBy);
    s.table('Search done ms by the requester\'s farthest hop e (rows) and latency (columns)', ['farthest hop e', ...lats.map((L) => `${L} ms`)], srows,
      '÷ latency: growth per level / L; ≈ 2 means each level costs one round trip (a little more: processing). After one unrecorded warm-up round.');

    // The root (depth 0) is left out of the fit.
    const { rows: jrows, perLevel: jLevel } = levelRows(lats, joinBy, 1);
    s.table('Join ms by the newcomer\'s depth (rows) and latency (columns)', ['depth', ...lats.map((L) => `${L} ms`)], jrows,
      `Policy ${s.opts.policy}: with root, a newcomer at depth d follows d−1 redirects, each one JOIN round trip (2 × L) more.`);
    s.summary.searchPerLevelMs = Object.fromEntries(lats.map((L, i) => [L, perLevel[i]]));
    s.summary.joinPerLevelMs = Object.fromEntries(lats.map((L, i) => [L, jLevel[i]]));
  },
};

if (isMain(import.meta.url)) await main(latency);
