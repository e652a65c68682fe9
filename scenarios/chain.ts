/**
 * chain: max-children 1, so the overlay is a line C1 → C2 → … → Cn. Every
 * peer shares one small file of its own; the head searches for each in turn,
 * so search time is shown against the holder's depth. Then a middle peer
 * leaves gracefully and another crashes: each time the chain heals (the
 * orphan's part of the line reattaches), and the head still reaches the tail.
 *
 *   npx tsx scenarios/chain.ts [--peers 8] [--runner process|inproc|memory] [--policy root]
 */
import { isMain, main, ms, int, type ScenarioDef } from './lib/index.ts';

const fileOf = (id: string) => `${id.toLowerCase()}.txt`;

export const chain: ScenarioDef = {
  name: 'chain',
  summary: 'max-children 1: a chain of peers; search time by holder depth from the head; a middle peer leaves, another crashes, the chain heals.',
  defaults: { runner: 'process', peers: 8, maxChildren: 1, policy: 'least-loaded' },
  async run(s) {
    const c = await s.cluster();
    const ids = s.ids('C', s.opts.peers);
    await c.addPeers(ids.map((id) => ({ id, files: [{ name: fileOf(id), bytes: 4096 }] })));
    const head = ids[0]!;
    const first = await c.topo(head, { expectWhole: true });
    const depth = new Map(first.nodes.map((n) => [n.id, n.depth]));
    if (s.opts.maxChildren === 1) s.check(first.check.depth === ids.length - 1, `the tree is a chain of depth ${ids.length - 1}`, `depth ${first.check.depth}`);

    const rows: (string | number)[][] = [];
    for (const id of ids.slice(1)) {
      const f = await c.search(head, fileOf(id), { expectFrom: id, label: 'by depth' });
      rows.push([id, depth.get(id) ?? '—', f.hitHops[0] ?? '—', ms(f.firstHitMs), ms(f.completionMs), int(f.messages), int(f.reached)]);
    }
    s.table(`Search from the head (${head}) for each peer's file`, ['holder', 'holder depth', 'hit at hop', 'first hit ms', 'done ms', 'messages', 'reached'], rows);

    const tail = ids[ids.length - 1]!;
    await c.download(head, fileOf(tail), { expectFrom: tail });
    if (ids.length >= 4) {
      await c.leave(ids[Math.floor(ids.length / 2)]!);
      await c.waitWhole({ by: head });
      await c.crash(ids[Math.floor(ids.length / 2) - 1]!);
      await c.waitWhole({ by: head });
      const after = await c.search(head, fileOf(tail), { expectFrom: tail, label: 'after repair' });
      s.summary.afterRepair = { reached: after.reached, messages: after.messages, maxHops: after.maxHops, completionMs: after.completionMs };
    }
    const end = await c.topo(head, { expectWhole: true, label: 'final' });
    s.setTree(c.round, end.nodes);
    s.summary.depth = end.check.depth;
  },
};

if (isMain(import.meta.url)) await main(chain);
