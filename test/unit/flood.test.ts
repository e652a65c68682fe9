/**
 * Flooding with convergecast (core/protocol/flood.ts), pure: who a request is
 * forwarded to, the per-hop time budget, the Convergecast state machine
 * (complete once every neighbour answered, went away or timed out), the
 * bounded duplicate-suppression cache, a whole-tree simulation of the pure
 * logic, and real peers (in-memory transport) whose searches are checked
 * against the frames their Connections actually wrote and read: N−1 requests
 * and N−1 answers on N peers, and the peers' own counters agree with that.
 */
import test from 'ava';
import fc from 'fast-check';
import { childBudget, Convergecast, emptyCounters, floodTargets, mergeCounters, SeenCache, type Completion, type FloodCounters } from '../../core/protocol/flood.ts';
import { chunkNodes } from '../../core/peer/flood-handler.ts';
import fs from 'node:fs';
import path from 'node:path';
import { MemoryNetwork, type Peer } from '../../core/index.ts';
import { cluster } from '../helpers.ts';
import type { TopoNode } from '../../core/protocol/messages.ts';

interface Agg {
  counters: FloodCounters;
  hits: string[];
}
const agg = (o: Partial<FloodCounters> = {}, hits: string[] = []): Agg => ({ counters: { ...emptyCounters(), ...o }, hits });
const cc = () =>
  new Convergecast<Agg>((a, p) => {
    mergeCounters(a.counters, p.counters);
    a.hits.push(...p.hits);
  });

test('floodTargets: every neighbour but the sender', (t) => {
  t.deepEqual(floodTargets(['P', 'A', 'B'], 'P', 1, 255, 1000, 20), { targets: ['A', 'B'], cut: null });
  t.deepEqual(floodTargets(['A', 'B'], null, 0, 255, 1000, 20), { targets: ['A', 'B'], cut: null });
  t.deepEqual(floodTargets(['P'], 'P', 3, 255, 1000, 20), { targets: [], cut: null }, 'a leaf forwards nothing and nothing is cut');
  t.deepEqual(floodTargets([], null, 0, 255, 1000, 20), { targets: [], cut: null });
});

test('floodTargets: the TTL and the time budget cut the flood', (t) => {
  t.deepEqual(floodTargets(['P', 'A'], 'P', 5, 5, 1000, 20), { targets: [], cut: 'ttl' });
  t.deepEqual(floodTargets(['P', 'A'], 'P', 4, 5, 1000, 20).targets, ['A']);
  t.deepEqual(floodTargets(['P', 'A'], 'P', 1, 5, 19, 20), { targets: [], cut: 'budget' });
  t.deepEqual(floodTargets(['P', 'A'], 'P', 1, 5, 20, 20).targets, ['A']);
});

test('childBudget: each hop keeps back its slack, never below zero', (t) => {
  t.is(childBudget(1000, 20), 980);
  t.is(childBudget(10.7, 0), 10);
  t.is(childBudget(10, 20), 0);
});

test('mergeCounters sums counts, keeps the deepest hop and collects missing', (t) => {
  const a: FloodCounters = { reached: 1, messages: 2, duplicates: 0, maxHops: 3, missing: ['X'] };
  mergeCounters(a, { reached: 4, messages: 5, duplicates: 1, maxHops: 2, missing: ['Y', 'Z'] });
  t.deepEqual(a, { reached: 5, messages: 7, duplicates: 1, maxHops: 3, missing: ['X', 'Y', 'Z'] });
});

test('Convergecast: completes at once with no targets', (t) => {
  const c = cc();
  const done = c.begin('q', 'P', [], agg({ reached: 1 }, ['me']));
  t.deepEqual(done, { qid: 'q', to: 'P', acc: agg({ reached: 1 }, ['me']) });
  t.is(c.size, 0);
});

test('Convergecast: completes after the last neighbour answers, merging every answer', (t) => {
  const c = cc();
  t.is(c.begin('q', null, ['A', 'B'], agg({ reached: 1 })), undefined);
  t.true(c.has('q'));
  t.true(c.waitingOn('q', 'A'));
  t.is(c.reply('q', 'A', agg({ reached: 3, messages: 4 }, ['A2'])), undefined);
  t.false(c.waitingOn('q', 'A'));
  const done = c.reply('q', 'B', agg({ reached: 1, messages: 1, maxHops: 1 }));
  t.is(done?.to, null);
  t.deepEqual(done?.acc, agg({ reached: 5, messages: 5, maxHops: 1 }, ['A2']));
  t.false(c.has('q'));
});

test('Convergecast: unknown, repeated and unexpected answers are ignored', (t) => {
  const c = cc();
  c.begin('q', null, ['A', 'B'], agg({ reached: 1 }));
  t.is(c.reply('nope', 'A', agg({ reached: 9 })), undefined);
  t.is(c.reply('q', 'Z', agg({ reached: 9 })), undefined, 'not a neighbour we wait on');
  c.reply('q', 'A', agg({ reached: 1 }));
  t.is(c.reply('q', 'A', agg({ reached: 9 })), undefined, 'second answer from A');
  const done = c.reply('q', 'B', agg({ reached: 1 }));
  t.is(done?.acc.counters.reached, 3);
});

test('Convergecast: partial answers add without completing', (t) => {
  const c = cc();
  c.begin('q', null, ['A'], agg({ reached: 1 }));
  c.partial('q', 'A', agg({}, ['n1', 'n2']));
  c.partial('q', 'Z', agg({}, ['ignored']));
  t.true(c.has('q'));
  const done = c.reply('q', 'A', agg({ reached: 2 }, ['n3']));
  t.deepEqual(done?.acc.hits, ['n1', 'n2', 'n3']);
});

test('Convergecast: begin() leaves the caller\'s targets alone, so answering while iterating them completes', (t) => {
  // bench/micro.ts's flood suite replies inside `for (const t of targets)`: when begin() kept the array and
  // removed each answer from it, every second child was skipped and the flood never completed.
  const c = cc();
  const targets = ['A', 'B', 'C', 'D'];
  let done = c.begin('q', null, targets, agg({ reached: 1 }));
  const answered: string[] = [];
  for (const n of targets) {
    answered.push(n);
    done = c.reply('q', n, agg({ reached: 1 })) ?? done;
  }
  t.deepEqual(targets, ['A', 'B', 'C', 'D']);
  t.deepEqual(answered, ['A', 'B', 'C', 'D']);
  t.is(done?.acc.counters.reached, 5);
});

test('Convergecast: a neighbour going away is recorded missing and may complete entries', (t) => {
  const c = cc();
  c.begin('q1', null, ['A', 'B'], agg({ reached: 1 }));
  c.begin('q2', 'A', ['B'], agg({ reached: 1 }));
  c.begin('q3', 'X', ['C'], agg({ reached: 1 }));
  c.reply('q1', 'A', agg({ reached: 1 }));
  const done = c.neighbourGone('B');
  t.deepEqual(done.map((d) => d.qid).sort(), ['q1', 'q2']);
  t.deepEqual(done.find((d) => d.qid === 'q1')?.acc.counters.missing, ['B']);
  t.true(c.has('q3'));
});

test('Convergecast: when the sender goes away the entry completes with nobody to answer', (t) => {
  const c = cc();
  c.begin('q', 'P', ['A'], agg({ reached: 1 }));
  t.deepEqual(c.neighbourGone('P'), []);
  const done = c.reply('q', 'A', agg({ reached: 1 }));
  t.is(done?.to, null, 'the caller drops an answer for nobody');
});

test('Convergecast: timeout records everything still waited on as missing', (t) => {
  const c = cc();
  c.begin('q', 'P', ['A', 'B', 'C'], agg({ reached: 1 }));
  c.reply('q', 'B', agg({ reached: 2 }));
  const done = c.timeout('q');
  t.deepEqual(done?.acc.counters.missing.sort(), ['A', 'C']);
  t.is(done?.acc.counters.reached, 3);
  t.is(c.timeout('q'), undefined);
});

test('Convergecast: clear completes every open entry', (t) => {
  const c = cc();
  c.begin('q1', null, ['A'], agg());
  c.begin('q2', 'P', ['B'], agg());
  const all = c.clear();
  t.deepEqual(all.map((x) => x.qid).sort(), ['q1', 'q2']);
  t.is(c.size, 0);
});

test('SeenCache: an id is handled once', (t) => {
  const s = new SeenCache();
  t.false(s.checkAndAdd('q1', 0));
  t.true(s.checkAndAdd('q1', 1));
  t.true(s.has('q1', 2));
  t.false(s.checkAndAdd('q2', 3));
  t.is(s.size, 2);
  t.is(s.maxEntries, 10_000);
  t.is(s.ttlMs, 120_000);
});

test('SeenCache: bounded in size, evicting the oldest', (t) => {
  const s = new SeenCache({ maxEntries: 3 });
  for (const id of ['a', 'b', 'c', 'd']) s.checkAndAdd(id, 0);
  t.is(s.size, 3);
  t.false(s.has('a', 0));
  t.true(s.has('d', 0));
  for (let i = 0; i < 10_000; i++) s.checkAndAdd(`x${i}`, i);
  t.is(s.size, 3);
});

test('SeenCache: ids expire after ttlMs', (t) => {
  const s = new SeenCache({ ttlMs: 100 });
  s.checkAndAdd('a', 0);
  s.checkAndAdd('b', 50);
  t.true(s.has('a', 99));
  t.false(s.has('a', 100));
  t.false(s.checkAndAdd('a', 120), 'expired: handled again');
  // b (seen at 50) has expired at 160: it leaves as soon as a call sees it.
  s.checkAndAdd('c', 160);
  t.false(s.has('b', 160));
  t.is(s.size, 2, 'b (50) swept; a (120) and c (160) kept');
  s.checkAndAdd('d', 240);
  t.false(s.has('a', 240));
  t.is(s.size, 2, 'a (120) swept; c (160) and d kept');
  t.true(s.checkAndAdd('c', 250), 'c is still seen 90 ms after it came');
});

test('SeenCache agrees with a plain model (Map of ids, oldest evicted, exact TTL) on any sequence', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 400 }),
      fc.array(fc.record({ id: fc.integer({ min: 0, max: 50 }), dt: fc.integer({ min: 0, max: 4 }), op: fc.constantFrom('add', 'add', 'has') }), { minLength: 50, maxLength: 400 }),
      (maxEntries, ttlMs, ops) => {
        const s = new SeenCache({ maxEntries, ttlMs });
        const model = new Map<string, number>();
        let now = 0;
        for (const { id, dt, op } of ops) {
          now += dt;
          const key = `P${id}:${(id * 7919).toString(16)}`;
          for (const [k, at] of model) if (now - at >= ttlMs) model.delete(k);
          const seen = model.has(key);
          if (op === 'has') {
            if (s.has(key, now) !== seen) return false;
            continue;
          }
          if (s.checkAndAdd(key, now) !== seen) return false;
          if (!seen) {
            if (model.size === maxEntries) model.delete(model.keys().next().value!);
            model.set(key, now);
          }
          if (s.size !== model.size) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('chunkNodes keeps every topo-reply frame under the frame budget and loses nothing', (t) => {
  const nodes: TopoNode[] = Array.from({ length: 3000 }, (_, i) => ({
    id: `peer-with-a-long-name-${i}`, host: '127.0.0.1', port: 10000 + i, parent: i ? `peer-with-a-long-name-${(i - 1) >> 1}` : null,
    children: [`c${2 * i + 1}`, `c${2 * i + 2}`], depth: Math.floor(Math.log2(i + 1)), files: i % 7,
  }));
  const frames = chunkNodes(nodes);
  t.true(frames.length > 1);
  t.deepEqual(frames.flat(), nodes);
  for (const f of frames) t.true(Buffer.byteLength(JSON.stringify(f)) < 60 * 1024);
  t.deepEqual(chunkNodes([]), [[]]);
});

// ---- whole-overlay simulation: every peer runs the pure logic, messages through a queue ----

type SimMsg = { kind: 'req'; qid: string; from: string; to: string; hops: number } | { kind: 'reply'; qid: string; from: string; to: string; part: Agg };

/** Floods one request over `adj` from `origin`, as FloodHandler does, counting messages on the wire. */
function simulate(adj: Map<string, string[]>, origin: string, holders: Set<string>, deliverTwice = new Set<string>()): { result: Agg; wire: { req: number; reply: number } } {
  const seen = new Map([...adj.keys()].map((id) => [id, new SeenCache()]));
  const ccs = new Map([...adj.keys()].map((id) => [id, cc()]));
  const queue: SimMsg[] = [];
  const wire = { req: 0, reply: 0 };
  let result: Agg | undefined;
  const send = (m: SimMsg) => {
    if (m.kind === 'req') wire.req++;
    else wire.reply++;
    queue.push(m);
    if (m.kind === 'req' && deliverTwice.has(`${m.from}>${m.to}`)) queue.push({ ...m });
  };
  const complete = (at: string, c: Completion<Agg> | undefined) => {
    if (!c) return;
    if (c.to === null) {
      result = c.acc;
      return;
    }
    const k = c.acc.counters;
    send({ kind: 'reply', qid: c.qid, from: at, to: c.to, part: { counters: { ...k, missing: [...k.missing], messages: k.messages + 1 }, hits: c.acc.hits } });
  };
  const onReq = (at: string, from: string | null, qid: string, hops: number) => {
    if (seen.get(at)!.checkAndAdd(qid, 0)) {
      send({ kind: 'reply', qid, from: at, to: from!, part: agg({ messages: 1, duplicates: 1, maxHops: hops }) });
      return;
    }
    const own = agg({ reached: 1, maxHops: hops }, holders.has(at) ? [at] : []);
    const { targets } = floodTargets(adj.get(at)!, from, hops, 255, 10_000, 20);
    for (const n of targets) {
      send({ kind: 'req', qid, from: at, to: n, hops: hops + 1 });
      own.counters.messages++;
    }
    complete(at, ccs.get(at)!.begin(qid, from, targets, own));
  };
  onReq(origin, null, 'q1', 0);
  while (queue.length) {
    const m = queue.shift()!;
    if (m.kind === 'req') onReq(m.to, m.from, m.qid, m.hops);
    else complete(m.to, ccs.get(m.to)!.reply(m.qid, m.from, m.part));
  }
  if (!result) throw new Error('no definite answer');
  return { result, wire };
}

function randomTree(n: number, parents: number[]): Map<string, string[]> {
  const adj = new Map<string, string[]>([['P0', []]]);
  for (let i = 1; i < n; i++) {
    const p = `P${parents[i]! % i}`;
    adj.set(`P${i}`, [p]);
    adj.get(p)!.push(`P${i}`);
  }
  return adj;
}

test('on a tree of N peers a flood sends N−1 requests and N−1 answers, reaches all, and finds every holder (property)', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 120 }), fc.array(fc.nat(), { minLength: 120, maxLength: 120 }), fc.nat(), fc.array(fc.nat(), { maxLength: 5 }), (n, parents, o, hs) => {
      const adj = randomTree(n, parents);
      const origin = `P${o % n}`;
      const holders = new Set(hs.map((h) => `P${h % n}`));
      const { result, wire } = simulate(adj, origin, holders);
      t.is(wire.req, n - 1);
      t.is(wire.reply, n - 1);
      t.is(result.counters.reached, n);
      t.is(result.counters.messages, 2 * (n - 1), 'model: the counters match the simulated sends (real frames are counted below)');
      t.is(result.counters.duplicates, 0);
      t.deepEqual(result.counters.missing, []);
      t.deepEqual([...result.hits].sort(), [...holders].sort());
    }),
    { numRuns: 200 },
  );
});

test('a request delivered twice is handled once and counted as one duplicate', (t) => {
  // P0 - P1 - P2, and the request P1→P2 is delivered twice.
  const adj = new Map([['P0', ['P1']], ['P1', ['P0', 'P2']], ['P2', ['P1']]]);
  const { result, wire } = simulate(adj, 'P0', new Set(['P2']), new Set(['P1>P2']));
  t.is(result.counters.reached, 3, 'P2 handled it once');
  t.deepEqual(result.hits, ['P2'], 'one hit, not two');
  // The duplicate is answered too (a sender is never left waiting), but P1 already had
  // P2's real answer, so the extra answer is dropped there.
  t.is(wire.reply, 3);
  t.deepEqual(result.counters.missing, []);
});

test('on a graph with a cycle duplicates are suppressed and the answer is still definite', (t) => {
  // A triangle: each peer hears the request from both others.
  const adj = new Map([['A', ['B', 'C']], ['B', ['A', 'C']], ['C', ['A', 'B']]]);
  const { result } = simulate(adj, 'A', new Set(['C']));
  t.is(result.counters.reached, 3);
  t.is(result.counters.duplicates, 2);
  t.deepEqual(result.hits, ['C']);
});

// ---- real peers: the counters checked against frames counted at the transport ----

test('real peers on random trees: a search writes exactly N−1 queries and N−1 replies on the wire, and the counters agree with the wire', async (t) => {
  const sums = (peers: Peer[]) => {
    const out = { qOut: 0, rOut: 0, qIn: 0, rIn: 0 };
    for (const p of peers) {
      const w = p.wireFrames();
      out.qOut += w.sent.query ?? 0;
      out.rOut += w.sent['query-reply'] ?? 0;
      out.qIn += w.received.query ?? 0;
      out.rIn += w.received['query-reply'] ?? 0;
    }
    return out;
  };
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 24 }),
      fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 24, maxLength: 24 }),
      fc.nat(),
      fc.array(fc.nat(), { maxLength: 3 }),
      async (n, fanout, o, hs) => {
        const c = await cluster({ transport: new MemoryNetwork().transport(), peer: { heartbeatMs: 0 } });
        try {
          for (let i = 0; i < n; i++) await c.add(`P${i}`, { maxChildren: fanout[i]! });
          const holders = new Set(hs.map((h) => `P${h % n}`));
          for (const h of holders) fs.writeFileSync(path.join(c.peer(h).opts.share, 'needle.txt'), 'x');
          const origin = c.peers[o % n]!;
          const before = sums(c.peers);
          const r = await origin.search('needle.txt');
          const after = sums(c.peers);
          const wire = { qOut: after.qOut - before.qOut, rOut: after.rOut - before.rOut, qIn: after.qIn - before.qIn, rIn: after.rIn - before.rIn };
          t.deepEqual(wire, { qOut: n - 1, rOut: n - 1, qIn: n - 1, rIn: n - 1 }, `N=${n}: frames written and read`);
          t.is(r.messages, wire.qOut + wire.rOut, 'the counters agree with the wire');
          t.is(r.reached, n);
          t.deepEqual(r.missing, []);
          t.deepEqual(r.hits.map((h) => h.id).sort(), [...holders].sort());
        } finally {
          await c.close();
        }
      },
    ),
    { numRuns: 8 },
  );
});
