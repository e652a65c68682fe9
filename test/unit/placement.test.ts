/**
 * Tree placement (core/protocol/placement.ts): accept while a slot is free,
 * otherwise redirect to the child with the fewest descendants; refuse
 * self-joins and cycles; the newcomer's redirect bound and loop detection.
 * A pure simulation of many joins checks the tree they build.
 */
import test from 'ava';
import fc from 'fast-check';
import { decideJoin, DEFAULT_MAX_REDIRECTS, RedirectTracker, smallestChild, type ChildInfo } from '../../core/protocol/placement.ts';
import { checkTree } from '../../testnet/tree.ts';

const ref = (id: string, port = 5000) => ({ id, host: '127.0.0.1', port });
const child = (id: string, subtree: number): ChildInfo => ({ ref: ref(id), subtree });
const req = (id: string) => ({ id, host: '127.0.0.9', port: 6000 });

test('a peer with a free slot accepts', (t) => {
  t.deepEqual(decideJoin({ id: 'P', maxChildren: 2 }, [], req('N')), { kind: 'accept' });
  t.deepEqual(decideJoin({ id: 'P', maxChildren: 2 }, [child('A', 5)], req('N')), { kind: 'accept' });
  t.deepEqual(decideJoin({ id: 'P', maxChildren: 3 }, [child('A', 1), child('B', 1)], req('N')), { kind: 'accept' });
});

test('a full peer redirects to the child with the fewest descendants', (t) => {
  t.deepEqual(decideJoin({ id: 'P', maxChildren: 2 }, [child('A', 5), child('B', 2)], req('N')), { kind: 'redirect', to: ref('B') });
  t.deepEqual(decideJoin({ id: 'P', maxChildren: 3 }, [child('A', 3), child('B', 7), child('C', 1)], req('N')), { kind: 'redirect', to: ref('C') });
  t.deepEqual(decideJoin({ id: 'P', maxChildren: 1 }, [child('A', 9)], req('N')), { kind: 'redirect', to: ref('A') });
});

test('ties go to the child that joined first', (t) => {
  t.deepEqual(decideJoin({ id: 'P', maxChildren: 2 }, [child('A', 3), child('B', 3)], req('N')), { kind: 'redirect', to: ref('A') });
  t.is(smallestChild([child('X', 2), child('Y', 1), child('Z', 1)])?.ref.id, 'Y');
  t.is(smallestChild([]), undefined);
});

test('a peer cannot join itself or one of its ancestors', (t) => {
  const self = decideJoin({ id: 'P', maxChildren: 2 }, [], req('P'));
  t.is(self.kind, 'refuse');
  t.is(self.kind === 'refuse' ? self.code : '', 'self-join');
  const cyc = decideJoin({ id: 'P', maxChildren: 2, ancestors: new Set(['G', 'Q']) }, [], req('Q'));
  t.is(cyc.kind === 'refuse' ? cyc.code : '', 'cycle');
  // Not an ancestor: fine.
  t.is(decideJoin({ id: 'P', maxChildren: 2, ancestors: new Set(['G']) }, [], req('Q')).kind, 'accept');
});

test('a child rejoining (its old link broke) is accepted even when full', (t) => {
  t.deepEqual(decideJoin({ id: 'P', maxChildren: 2 }, [child('A', 1), child('B', 1)], req('A')), { kind: 'accept' });
});

test('RedirectTracker: refuses a loop and more than the bound', (t) => {
  const tr = new RedirectTracker(3);
  t.true(tr.visit('a:1').ok);
  t.true(tr.visit('b:1').ok);
  const loop = tr.visit('a:1');
  t.false(loop.ok);
  t.regex(loop.ok ? '' : loop.reason, /loop/);
  t.true(tr.redirect().ok);
  t.true(tr.redirect().ok);
  t.true(tr.redirect().ok);
  const over = tr.redirect();
  t.false(over.ok);
  t.regex(over.ok ? '' : over.reason, /3 redirects/);
  t.is(new RedirectTracker().max, DEFAULT_MAX_REDIRECTS);
});

/** Pure simulation: every newcomer enters at `entry(tree)` and follows redirects until accepted. */
interface SimNode {
  id: string;
  parent: string | null;
  children: string[];
}
function subtree(nodes: Map<string, SimNode>, id: string): number {
  let n = 1;
  for (const c of nodes.get(id)!.children) n += subtree(nodes, c);
  return n;
}
function simulate(n: number, maxChildren: number, entry: (ids: string[]) => string): { nodes: Map<string, SimNode>; redirects: number[] } {
  const nodes = new Map<string, SimNode>([['N0', { id: 'N0', parent: null, children: [] }]]);
  const redirects: number[] = [];
  for (let i = 1; i < n; i++) {
    const id = `N${i}`;
    let at = entry([...nodes.keys()]);
    const tr = new RedirectTracker(n); // a chain (maxChildren 1) needs up to n-2 redirects
    let hops = 0;
    for (;;) {
      const v = tr.visit(at);
      if (!v.ok) throw new Error(v.reason);
      const p = nodes.get(at)!;
      const d = decideJoin({ id: at, maxChildren }, p.children.map((c) => child(c, subtree(nodes, c))), req(id));
      if (d.kind === 'accept') {
        p.children.push(id);
        nodes.set(id, { id, parent: at, children: [] });
        break;
      }
      if (d.kind === 'refuse') throw new Error(d.message);
      if (!tr.redirect().ok) throw new Error('too many redirects');
      hops++;
      at = d.to.id;
    }
    redirects.push(hops);
  }
  return { nodes, redirects };
}

test('joining always at the root builds a balanced tree of bounded degree', (t) => {
  const { nodes } = simulate(63, 2, () => 'N0');
  const list = [...nodes.values()];
  t.true(checkTree(list).ok);
  t.true(list.every((n) => n.children.length <= 2));
  // Redirecting to the smallest subtree fills level by level: 63 = a complete binary tree of depth 5.
  const depth = (id: string): number => (nodes.get(id)!.parent ? 1 + depth(nodes.get(id)!.parent!) : 0);
  t.is(Math.max(...list.map((n) => depth(n.id))), 5);
});

test('any join order and degree gives one tree with no node over max-children (property)', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: 5 }), fc.array(fc.nat(), { minLength: 80, maxLength: 80 }), (n, maxChildren, picks) => {
      let i = 0;
      const { nodes, redirects } = simulate(n, maxChildren, (ids) => ids[picks[i++]! % ids.length]!);
      const list = [...nodes.values()];
      t.is(list.length, n);
      t.true(checkTree(list).ok);
      t.true(list.every((x) => x.children.length <= maxChildren));
      // Each redirect goes one level down, so it is bounded by the tree's height.
      t.true(redirects.every((r) => r < n));
    }),
    { numRuns: 150 },
  );
});
