/**
 * The registry's repair rules (issue 4), pure: orphaned subtrees are never
 * referral targets, a re-registering subtree is not referred into itself, a
 * second (smaller) root is named for merging, stale entries are found.
 */
import test from 'ava';
import { Registry } from '../../core/metaserver/registry.ts';

const rng = () => 0;

/** root R with children A, B; A has A1, A2; B has B1. All announced. */
function tree(): Registry {
  const r = new Registry();
  const at = (id: string, parent: string | null, depth: number, children: number, now = 0) =>
    r.announce({ id, host: '127.0.0.1', port: 1000 + r.size, parent, depth, children, maxChildren: 2 }, now, now);
  at('R', null, 0, 2);
  at('A', 'R', 1, 2);
  at('B', 'R', 1, 1);
  at('A1', 'A', 2, 0);
  at('A2', 'A', 2, 0);
  at('B1', 'B', 2, 0);
  return r;
}

test('attached: only peers whose chain reaches a root; an orphaned subtree is not attached', (t) => {
  const r = tree();
  t.deepEqual([...r.attached('')].sort(), ['A', 'A1', 'A2', 'B', 'B1', 'R']);
  r.remove('A'); // A crashed: A1, A2 are orphans
  t.deepEqual([...r.attached('')].sort(), ['B', 'B1', 'R']);
  // A re-registering peer is excluded with everything below it.
  t.deepEqual([...r.attached('B')].sort(), ['R']);
});

test('an orphan re-registering is referred into the attached tree, never to another orphan or into its own subtree', (t) => {
  const r = tree();
  r.remove('A');
  for (const orphan of ['A1', 'A2']) {
    const { referral } = r.register({ id: orphan, host: '127.0.0.1', port: 2000, maxChildren: 2 }, 'least-loaded', 1, 1, rng);
    t.truthy(referral);
    t.true(['R', 'B', 'B1'].includes(referral!.id), `${orphan} → ${referral!.id}`);
  }
});

test('when no attached peer is left (the root died), the first orphan is made root and the next is referred to it', (t) => {
  const r = tree();
  r.remove('R');
  const a = r.register({ id: 'A', host: '127.0.0.1', port: 1001, maxChildren: 2 }, 'least-loaded', 1, 1, rng);
  t.is(a.referral, null);
  const b = r.register({ id: 'B', host: '127.0.0.1', port: 1002, maxChildren: 2 }, 'least-loaded', 2, 2, rng);
  t.truthy(b.referral);
  t.not(b.referral!.id, 'B1', 'never into its own subtree');
});

test('rivalRoot names the larger tree to a second, smaller root; ties go to the smaller id', (t) => {
  const r = tree();
  t.is(r.rivalRoot('R'), undefined, 'one root, no rival');
  r.announce({ id: 'X', host: '127.0.0.1', port: 3000, parent: null, depth: 0, children: 0, maxChildren: 2 }, 5, 5);
  t.is(r.rivalRoot('X')?.id, 'R');
  t.is(r.rivalRoot('R'), undefined, 'the larger root is not asked to yield');
  t.is(r.rivalRoot('A'), undefined, 'only roots are asked');
  // While a registry is rebuilt, a root's announced children count before they announce themselves.
  const q = new Registry();
  q.announce({ id: 'N', host: '127.0.0.1', port: 1, parent: null, depth: 0, children: 0, maxChildren: 2 }, 0, 0);
  q.announce({ id: 'Z', host: '127.0.0.1', port: 2, parent: null, depth: 0, children: 2, maxChildren: 2 }, 0, 0);
  t.is(q.rivalRoot('N')?.id, 'Z', 'N (alone) yields to Z (3 by its children) although N sorts first');
  t.is(q.rivalRoot('Z'), undefined);
  const e = new Registry();
  e.announce({ id: 'M', host: '127.0.0.1', port: 1, parent: null, depth: 0, children: 0, maxChildren: 2 }, 0, 0);
  e.announce({ id: 'K', host: '127.0.0.1', port: 2, parent: null, depth: 0, children: 0, maxChildren: 2 }, 0, 0);
  t.is(e.rivalRoot('M')?.id, 'K', 'equal trees: the smaller id stays root');
  t.is(e.rivalRoot('K'), undefined);
  // A root told to rejoin is no root (nor its subtree a referral target) until it registers again.
  e.markRejoining('M');
  t.is(e.rivalRoot('K'), undefined);
  t.deepEqual([...e.attached('')], ['K']);
});

test('stale: entries not announced within the timeout', (t) => {
  const r = new Registry();
  r.announce({ id: 'old', host: '127.0.0.1', port: 1, parent: null, depth: 0, children: 1, maxChildren: 2 }, 0, 0);
  r.announce({ id: 'new', host: '127.0.0.1', port: 2, parent: 'old', depth: 1, children: 0, maxChildren: 2 }, 900, 900);
  t.deepEqual(r.stale(1000, 500).map((e) => e.id), ['old']);
  t.deepEqual(r.stale(1000, 5000), []);
});
