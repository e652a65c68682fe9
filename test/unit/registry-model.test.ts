/**
 * Model test of issue 11 item 2: random interleavings of register, JOIN,
 * announce (fresh and stale), leave, dead reports, crash, freeze/thaw, sweep
 * and forged messages (announce, leave, register, reports from a client that
 * holds no peer's token), run against the real metaserver rules
 * (core/metaserver/service.ts), registry (registry.ts) and placement
 * (core/protocol/placement.ts decideJoin with the root-path check).
 *
 * Peers are modelled: each step is one atomic protocol action; probes answer
 * from the model (dead or frozen peers do not answer, a leaving one says so,
 * a peer proves its token). After every step the peers' parent pointers form
 * a forest (no cycle) and the registry's attached set is cycle-free. Once
 * forging stops, honest rounds (frozen peers thaw, neighbours detect the
 * dead, orphans rejoin, everyone announces, the sweep runs) must reach one
 * tree of all live peers, as the registry also records it.
 *
 * Simplification (stated): a parent's new root path reaches its subtree in
 * the same step as the change (on a real link it follows as a `depth` frame).
 */
import test from 'ava';
import fc from 'fast-check';
import type { ProbeResult } from '../../core/metaserver/client.ts';
import { Registry } from '../../core/metaserver/registry.ts';
import { MetaService } from '../../core/metaserver/service.ts';
import { decideJoin } from '../../core/protocol/placement.ts';
import { POLICIES, type Policy } from '../../core/protocol/referral.ts';
import { FUZZ_MODEL_RUNS, FUZZ_SEED } from '../fuzz-config.ts';

type Life = 'up' | 'crashed' | 'frozen' | 'gone';

interface MPeer {
  id: string;
  port: number;
  maxChildren: number;
  life: Life;
  token?: string;
  stopping: boolean;
  parent: string | null;
  children: Set<string>;
  /** Ancestor ids, root first (what the root-path tags encode). */
  path: string[];
  inTree: boolean;
  /** Where the next JOIN goes (a referral, redirect or hand-over), if any. */
  target: string | null;
  /** The last announce sent (replayed later as a stale one). */
  lastAnnounce?: Parameters<MetaService['announce']>[0];
}

type Action =
  | { k: 'add' }
  | { k: 'register' | 'join' | 'announce' | 'stale' | 'leave' | 'crash' | 'freeze' | 'thaw' | 'detect'; p: number }
  | { k: 'sweep' }
  | { k: 'forge-announce'; id: number; at: number; parent: number; children: number; own: boolean }
  | { k: 'forge-leave'; id: number; withToken: boolean }
  | { k: 'forge-register'; id: number; at: number };

const hex32 = (n: number) => (n >>> 0).toString(16).padStart(8, '0').repeat(4);

class World {
  peers = new Map<string, MPeer>();
  byPort = new Map<number, MPeer>();
  order: string[] = [];
  clock = 0;
  nextPort = 1000;
  reg = new Registry(50);
  svc: MetaService;
  /** Forger-owned ids and their tokens (it may register its own ids). */
  forgerTokens = new Map<string, string>();
  cycleRefusals = 0;

  constructor(policy: Policy, seed: number) {
    let s = seed >>> 0 || 1;
    const rng = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    this.svc = new MetaService(this.reg, { policy, rng, probe: (a, e) => this.probe(a, e), now: () => this.clock, wallNow: () => this.clock });
  }

  async probe(addr: { host: string; port: number }, expect: { id: string; token?: string }): Promise<ProbeResult> {
    const p = this.byPort.get(addr.port);
    if (!p || p.life !== 'up') return 'dead';
    if (p.stopping) return 'leaving';
    if (p.id !== expect.id) return 'other';
    if (expect.token !== undefined && p.token !== expect.token) return 'other';
    return 'alive';
  }

  live(): MPeer[] {
    return this.order.map((id) => this.peers.get(id)!).filter((p) => p.life === 'up' || p.life === 'frozen');
  }

  pick(i: number, ok: (p: MPeer) => boolean): MPeer | undefined {
    const c = this.order.map((id) => this.peers.get(id)!).filter(ok);
    return c.length ? c[i % c.length] : undefined;
  }

  add(): void {
    if (this.order.length >= 9) return;
    const id = `P${this.order.length}`;
    const p: MPeer = { id, port: this.nextPort++, maxChildren: 1 + (this.order.length % 3), life: 'up', stopping: false, parent: null, children: new Set(), path: [], inTree: false, target: null };
    this.peers.set(id, p);
    this.byPort.set(p.port, p);
    this.order.push(id);
  }

  subtree(p: MPeer): number {
    let n = 1;
    for (const c of p.children) {
      const q = this.peers.get(c);
      if (q) n += this.subtree(q);
    }
    return n;
  }

  depth(p: MPeer): number {
    return p.path.length;
  }

  /** Sets `p`'s root path and passes it down (the `depth` frames). */
  setPath(p: MPeer, path: string[]): void {
    p.path = path;
    for (const c of p.children) {
      const q = this.peers.get(c);
      if (q && q.parent === p.id) this.setPath(q, [...path, p.id]);
    }
  }

  /** Closes the link between parent `a` and child `b` from both ends. */
  unlink(parent: MPeer, child: MPeer): void {
    parent.children.delete(child.id);
    if (child.parent === parent.id) {
      child.parent = null;
      child.inTree = false;
      this.setPath(child, []);
    }
  }

  async register(p: MPeer): Promise<void> {
    if (p.life !== 'up' || p.stopping || p.inTree || p.parent !== null || p.target) return;
    try {
      const r = await this.svc.register({ t: 'register', v: 1, id: p.id, host: '127.0.0.1', port: p.port, maxChildren: p.maxChildren, ...(p.token ? { token: p.token } : {}) });
      p.token = r.token;
      if (!r.referral) {
        p.inTree = true;
        this.setPath(p, []);
      } else p.target = r.referral.id;
    } catch {
      /* duplicate-id / address-in-use: tries again later */
    }
  }

  async join(p: MPeer): Promise<void> {
    if (p.life !== 'up' || p.stopping || !p.target) return;
    const q = this.peers.get(p.target);
    p.target = null;
    const fail = async () => {
      // Report the bad referral; the metaserver probes it before acting.
      if (q) await this.svc.leave({ t: 'leave', v: 1, id: q.id });
    };
    if (!q || q.life !== 'up' || q.stopping) return fail();
    const children = [...q.children].map((c) => this.peers.get(c)!).filter((c) => c.parent === q.id).map((c) => ({ ref: { id: c.id, host: '127.0.0.1', port: c.port }, subtree: this.subtree(c) }));
    const d = decideJoin({ id: q.id, maxChildren: q.maxChildren, ancestors: { has: (id) => id === q.parent || q.path.includes(id) } }, children, { id: p.id, host: '127.0.0.1', port: p.port });
    if (d.kind === 'refuse') {
      if (d.code === 'cycle') this.cycleRefusals++;
      return fail();
    }
    if (d.kind === 'redirect') {
      p.target = d.to.id;
      return;
    }
    if (p.parent !== null) return; // attached meanwhile
    q.children.add(p.id);
    p.parent = q.id;
    p.inTree = true;
    this.setPath(p, [...q.path, q.id]);
  }

  async announce(p: MPeer, stale = false): Promise<void> {
    if (p.life !== 'up' || p.stopping || !p.token) return;
    let m = p.lastAnnounce;
    if (!stale) {
      if (!p.inTree) return;
      m = { t: 'announce', v: 1, id: p.id, host: '127.0.0.1', port: p.port, parent: p.parent, depth: this.depth(p), children: p.children.size, maxChildren: p.maxChildren, token: p.token };
      p.lastAnnounce = m;
    }
    if (!m) return;
    try {
      await this.svc.announce(m);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // Told it roots a second tree: it rejoins through the metaserver with its subtree.
      if (code === 'second-root' && p.parent === null && p.inTree) p.inTree = false;
      // Its id was taken over while it was frozen: it registers the id again, in place (peer.ts reclaim).
      if (code === 'bad-token' && !stale) {
        try {
          p.token = (await this.svc.register({ t: 'register', v: 1, id: p.id, host: '127.0.0.1', port: p.port, maxChildren: p.maxChildren })).token;
          await this.announce(p);
        } catch {
          /* held by a live peer elsewhere */
        }
      }
    }
  }

  async leave(p: MPeer): Promise<void> {
    if (p.life !== 'up' || p.stopping) return;
    p.stopping = true;
    const parent = p.parent ? this.peers.get(p.parent) : undefined;
    const wasRoot = p.parent === null && p.inTree;
    if (parent) this.unlink(parent, p);
    if (p.token) await this.svc.leave({ t: 'leave', v: 1, id: p.id, token: p.token }).catch(() => undefined);
    const kids = [...p.children].map((c) => this.peers.get(c)!).filter((c) => c.parent === p.id).sort((a, b) => this.subtree(b) - this.subtree(a));
    for (const c of kids) this.unlink(p, c);
    if (parent) for (const c of kids) c.target = parent.id;
    else if (wasRoot && kids.length) {
      kids[0]!.inTree = true; // the successor root
      for (const c of kids.slice(1)) c.target = kids[0]!.id;
    }
    p.life = 'gone';
    this.byPort.delete(p.port);
  }

  /** `p` notices dead or frozen neighbours (heartbeats), closes those links and reports them. */
  async detect(p: MPeer): Promise<void> {
    if (p.life !== 'up') return;
    const dead = (q: MPeer | undefined) => !q || q.life !== 'up';
    if (p.parent !== null) {
      const q = this.peers.get(p.parent);
      if (dead(q)) {
        if (q) this.unlink(q, p);
        else {
          p.parent = null;
          p.inTree = false;
          this.setPath(p, []);
        }
        await this.svc.leave({ t: 'leave', v: 1, id: q?.id ?? 'gone' });
      }
    }
    for (const c of [...p.children]) {
      const q = this.peers.get(c);
      if (q && q.parent !== p.id) {
        p.children.delete(c); // it moved on; its link to us is closed
        continue;
      }
      if (dead(q)) {
        if (q) this.unlink(p, q);
        else p.children.delete(c);
        await this.svc.leave({ t: 'leave', v: 1, id: c });
      }
    }
  }

  sweep(): void {
    for (const e of this.reg.stale(this.clock, 40)) this.svc.drop(e.id, 'stale');
  }

  thaw(p: MPeer): void {
    if (p.life !== 'frozen') return;
    p.life = 'up';
    // Links its neighbours closed while it slept are closed on its side too.
    if (p.parent !== null) {
      const q = this.peers.get(p.parent);
      if (!q || !q.children.has(p.id)) {
        p.parent = null;
        p.inTree = false;
        this.setPath(p, []);
      }
    }
    for (const c of [...p.children]) if (this.peers.get(c)?.parent !== p.id) p.children.delete(c);
  }

  async step(a: Action): Promise<void> {
    this.clock++;
    const up = (p: MPeer) => p.life === 'up';
    switch (a.k) {
      case 'add':
        return this.add();
      case 'register': {
        const p = this.pick(a.p, up);
        return p && this.register(p);
      }
      case 'join': {
        const p = this.pick(a.p, (q) => up(q) && q.target !== null);
        return p && this.join(p);
      }
      case 'announce': {
        const p = this.pick(a.p, up);
        return p && this.announce(p);
      }
      case 'stale': {
        const p = this.pick(a.p, up);
        return p && this.announce(p, true);
      }
      case 'leave': {
        const p = this.pick(a.p, up);
        return p && this.leave(p);
      }
      case 'crash': {
        const p = this.pick(a.p, up);
        if (p) {
          p.life = 'crashed';
          this.byPort.delete(p.port);
        }
        return;
      }
      case 'freeze': {
        const p = this.pick(a.p, (q) => up(q) && !q.stopping);
        if (p) p.life = 'frozen';
        return;
      }
      case 'thaw': {
        const p = this.pick(a.p, (q) => q.life === 'frozen');
        if (p) this.thaw(p);
        return;
      }
      case 'detect': {
        const p = this.pick(a.p, up);
        return p && this.detect(p);
      }
      case 'sweep':
        return this.sweep();
      case 'forge-announce': {
        // The forger knows every id and address, but only its own ids' tokens.
        const ids = [...this.order, 'EVIL', 'EVIL2'];
        const id = ids[a.id % ids.length]!;
        const ports = [...this.order.map((x) => this.peers.get(x)!.port), 1, 2];
        const port = ports[a.at % ports.length]!;
        const parents = [null, ...this.order, 'EVIL'];
        const own = this.forgerTokens.get(id);
        const token = a.own && own ? own : hex32(a.children * 7919 + a.id);
        await this.svc.announce({ t: 'announce', v: 1, id, host: '127.0.0.1', port, parent: parents[a.parent % parents.length]!, depth: a.children % 5, children: a.children, maxChildren: 1 + (a.children % 1024), token }).catch(() => undefined);
        return;
      }
      case 'forge-leave': {
        const ids = [...this.order, 'EVIL'];
        const id = ids[a.id % ids.length]!;
        await this.svc.leave({ t: 'leave', v: 1, id, ...(a.withToken ? { token: this.forgerTokens.get(id) ?? hex32(a.id + 1) } : {}) }).catch(() => undefined);
        return;
      }
      case 'forge-register': {
        const ids = [...this.order, 'EVIL', 'EVIL2'];
        const id = ids[a.id % ids.length]!;
        const ports = [...this.order.map((x) => this.peers.get(x)!.port), 1, 2];
        try {
          const r = await this.svc.register({ t: 'register', v: 1, id, host: '127.0.0.1', port: ports[a.at % ports.length]!, maxChildren: 2 });
          this.forgerTokens.set(id, r.token);
        } catch {
          /* refused */
        }
        return;
      }
    }
  }

  /** The peers' parent pointers form a forest, and the registry's attached chains reach a root. */
  checkForest(): string | null {
    for (const p of this.peers.values()) {
      if (p.life === 'gone' || p.life === 'crashed') continue;
      const seen = new Set<string>();
      for (let cur: MPeer | undefined = p; cur && cur.parent !== null; cur = this.peers.get(cur.parent)) {
        if (seen.has(cur.id)) return `cycle through ${cur.id}: ${[...seen].join('<-')}`;
        seen.add(cur.id);
      }
    }
    const list = new Map(this.reg.list().map((e) => [e.id, e]));
    for (const id of this.reg.attached('')) {
      const seen = new Set<string>();
      let cur = list.get(id);
      while (cur && cur.parent !== null) {
        if (seen.has(cur.id)) return `registry: attached ${id} loops`;
        seen.add(cur.id);
        cur = list.get(cur.parent);
      }
      if (!cur || cur.state !== 'joined') return `registry: attached ${id} does not reach a root`;
    }
    return null;
  }

  /** One tree of every live peer, with the registry agreeing; null when so, else why not. */
  oneTree(): string | null {
    const live = this.live();
    if (live.length === 0) return this.reg.attached('').size ? 'registry lists peers that are all gone' : null;
    const roots = live.filter((p) => p.parent === null);
    if (roots.length !== 1) return `${roots.length} roots (${roots.map((r) => r.id).join(',')})`;
    for (const p of live) {
      if (!p.inTree) return `${p.id} not in the tree`;
      if (p.parent !== null && !this.peers.get(p.parent)?.children.has(p.id)) return `${p.id}'s parent ${p.parent} does not know it`;
    }
    const attached = this.reg.attached('');
    const ids = live.map((p) => p.id).sort();
    if ([...attached].sort().join() !== ids.join()) return `registry attached ${[...attached].sort().join()} vs live ${ids.join()}`;
    for (const p of live) if (this.reg.get(p.id)?.parent !== p.parent) return `registry parent of ${p.id}`;
    return null;
  }

  /** Honest rounds after forging stopped; returns the rounds taken. */
  async converge(maxRounds = 40): Promise<number> {
    for (const p of this.peers.values()) if (p.life === 'frozen') this.thaw(p);
    for (let round = 0; round < maxRounds; round++) {
      if (this.oneTree() === null) return round;
      for (const p of this.live()) await this.detect(p);
      for (const p of this.live()) {
        await this.register(p);
        for (let hops = 0; p.target && hops < 20; hops++) await this.join(p);
        const err = this.checkForest();
        if (err) throw new Error(err);
      }
      for (const p of this.live()) await this.announce(p);
      this.clock += 20;
      this.sweep();
    }
    const why = this.oneTree();
    if (why) throw new Error(`no single tree after ${maxRounds} honest rounds: ${why}`);
    return maxRounds;
  }
}

const peerAction = (k: 'register' | 'join' | 'announce' | 'stale' | 'leave' | 'crash' | 'freeze' | 'thaw' | 'detect') => fc.nat(50).map((p) => ({ k, p }) as Action);
const honest: fc.Arbitrary<Action> = fc.oneof(
  { arbitrary: fc.constant({ k: 'add' } as Action), weight: 3 },
  { arbitrary: peerAction('register'), weight: 4 },
  { arbitrary: peerAction('join'), weight: 5 },
  { arbitrary: peerAction('announce'), weight: 4 },
  { arbitrary: peerAction('stale'), weight: 1 },
  { arbitrary: peerAction('leave'), weight: 1 },
  { arbitrary: peerAction('crash'), weight: 1 },
  { arbitrary: peerAction('freeze'), weight: 1 },
  { arbitrary: peerAction('thaw'), weight: 1 },
  { arbitrary: peerAction('detect'), weight: 2 },
  { arbitrary: fc.constant({ k: 'sweep' } as Action), weight: 1 },
);
const forged: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ k: fc.constant('forge-announce' as const), id: fc.nat(20), at: fc.nat(20), parent: fc.nat(20), children: fc.nat(200), own: fc.boolean() }),
  fc.record({ k: fc.constant('forge-leave' as const), id: fc.nat(20), withToken: fc.boolean() }),
  fc.record({ k: fc.constant('forge-register' as const), id: fc.nat(20), at: fc.nat(20) }),
);
const action = fc.oneof({ arbitrary: honest, weight: 3 }, { arbitrary: forged, weight: 1 });

test('model: any interleaving keeps parents a forest; once forging stops, one tree', async (t) => {
  // About 10-20 ms per interleaving on a quiet machine: the long fuzz run needs more than ava's 120 s.
  t.timeout(Math.max(120_000, FUZZ_MODEL_RUNS * 100));
  let runs = 0;
  let steps = 0;
  let rounds = 0;
  let cycles = 0;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...POLICIES), fc.nat(), fc.array(action, { minLength: 1, maxLength: 80, size: 'max' }), async (policy, seed, actions) => {
      runs++;
      const w = new World(policy, seed);
      w.add();
      w.add();
      for (const a of actions) {
        await w.step(a);
        steps++;
        const err = w.checkForest();
        if (err) throw new Error(`after ${JSON.stringify(a)}: ${err}`);
      }
      rounds += await w.converge();
      cycles += w.cycleRefusals;
    }),
    { seed: FUZZ_SEED, numRuns: FUZZ_MODEL_RUNS, reporter: (out) => {
      if (out.failed) throw new Error(`${fc.defaultReportMessage(out)}\nError: ${(out.errorInstance as Error | undefined)?.message}`);
    } },
  );
  t.true(runs >= FUZZ_MODEL_RUNS);
  t.log(`${runs} interleavings, ${steps} steps, ${rounds} honest rounds to converge in all, ${cycles} JOINs refused by the root-path check`);
});

test('model: the reproduction (R→A→B, one forged EVIL announce at B\'s address) changes nothing', async (t) => {
  const w = new World('least-loaded', 1);
  for (let i = 0; i < 3; i++) w.add();
  for (const p of w.peers.values()) p.maxChildren = 1;
  const [R, A, B] = [...w.peers.values()] as [MPeer, MPeer, MPeer];
  for (const p of [R, A, B]) {
    await w.register(p);
    while (p.target) await w.join(p);
    await w.announce(p);
  }
  t.deepEqual([A.parent, B.parent], [R.id, A.id]);
  await w.step({ k: 'forge-announce', id: 3, at: 2, parent: 0, children: 100, own: false });
  t.is(w.reg.get('EVIL'), undefined);
  await w.announce(R);
  t.true(R.inTree, 'R is not told it roots a second tree');
  t.is(w.oneTree(), null);
});
