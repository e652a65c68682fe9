/**
 * The peer's side of floods (docs/PROTOCOL.md, flows E–H): runs topology requests and file
 * queries through the pure Convergecast state machine, forwards to every
 * neighbour but the sender, answers the sender with its subtree's aggregate,
 * and resolves the requester's promise with a definite result.
 *
 * Duplicates (a query id already handled) are answered at once with an
 * empty aggregate counting one duplicate, so the sender is never left waiting.
 * Each hop waits at most the budget the request carries, and forwards a
 * smaller one, so answers get home before the requester's deadline.
 */
import type { TimerHandle } from '../clock.ts';
import { TreeshareError } from '../errors.ts';
import { childBudget, Convergecast, floodCut, emptyCounters, mergeCounters, SeenCache, type Completion, type FloodCounters } from '../protocol/flood.ts';
import { frameOf } from '../protocol/codec.ts';
import { addrKey, type Hit, type Msg, type TopoNode } from '../protocol/messages.ts';
import { abortError } from '../transport/connection.ts';
import { TokenBucket } from '../protocol/ratelimit.ts';
import type { Link } from './links.ts';
import type { PeerContext } from './context.ts';
import type { SearchResult, TopoResult } from './types.ts';

interface QueryAgg {
  counters: FloodCounters;
  hits: Hit[];
  /** Ids and addresses of `hits` (made on the first merge): a holder counts once. */
  keys?: Set<string>;
}

/** Unspecified addresses: a hit there would make the requester connect to itself. */
const UNSPECIFIED = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

/**
 * Why a hit in a neighbour's query-reply does not count, or null (checked at the edge, before it
 * is merged or reported): it claims this peer's id, names an unspecified address, or is more hops
 * away than the reply's own maxHops.
 */
export function badHit(h: Hit, selfId: string, maxHops: number): string | null {
  if (h.id === selfId) return `claims this peer's id ${h.id}`;
  if (UNSPECIFIED.has(h.host)) return `${h.id} at the unspecified address ${h.host}`;
  if (h.hops > maxHops) return `${h.id} ${h.hops} hops away in a reply of at most ${maxHops}`;
  return null;
}

/** Adds `h` to `a` unless its id or its address is there already (one holder, one hit). */
function addHit(a: QueryAgg, h: Hit): void {
  const keys = (a.keys ??= new Set(a.hits.flatMap((x) => [`id ${x.id}`, `at ${addrKey(x)}`])));
  const id = `id ${h.id}`;
  const at = `at ${addrKey(h)}`;
  if (keys.has(id) || keys.has(at) || a.hits.length >= MAX_HITS) return;
  keys.add(id).add(at);
  a.hits.push(h);
}
interface TopoAgg {
  counters: FloodCounters;
  nodes: TopoNode[];
}

interface Local {
  t0: number;
  /** The searched name (queries only), for `hit` events. */
  name: string;
  firstHitAt: number | null;
  done: (c: Completion<QueryAgg> | Completion<TopoAgg>) => void;
}

/** Largest payload of one topo-reply frame, bytes (kept under the 64 KiB frame limit). */
const TOPO_FRAME_BUDGET = 48 * 1024;
const MAX_HITS = 1000;

/** What the flood handler needs from the rest of the peer (wired by peer.ts). */
export interface FloodDeps {
  /** Does this peer share `name` (transfers.ts)? */
  /** At once when the store can tell (most searches, and every one in the memory runner), else a promise. */
  localHas(name: string): { size: number } | null | Promise<{ size: number } | null>;
  /** The number of shared files when known at once (topology replies), else undefined. */
  fileCount?(): number | undefined;
  /** A local hit on a download query: offer the file to its origin (transfers.ts). */
  serveHit(q: Msg<'query'>): void;
  /** The shared files (for topology answers). */
  files(): Promise<{ name: string; size: number }[]>;
}

export class FloodHandler {
  readonly seen: SeenCache;
  private readonly queries = new Convergecast<QueryAgg>((a, p) => {
    mergeCounters(a.counters, p.counters);
    for (const h of p.hits) addHit(a, h);
  });
  private readonly topos = new Convergecast<TopoAgg>((a, p) => {
    mergeCounters(a.counters, p.counters);
    for (const n of p.nodes) a.nodes.push(n);
  });
  private readonly local = new Map<string, Local>();
  /**
   * One timer per peer for the floods' time budgets (not one per flood): armed for the earliest
   * deadline of the floods waiting here; when it fires, the floods past their deadline complete
   * with whoever has not answered as missing, and it is armed again for the next one.
   */
  private budgetTimer: TimerHandle | undefined;
  private budgetAt = Infinity;
  /** Floods refused by the per-neighbour rate limit since start. */
  throttledCount = 0;
  private lastThrottleLog = -Infinity;

  constructor(
    private readonly ctx: PeerContext,
    private readonly deps: FloodDeps,
  ) {
    this.seen = new SeenCache({ maxEntries: ctx.opts.seenCacheSize });
  }

  search(name: string, want: 'search' | 'download', qid: string, o: { signal?: AbortSignal } = {}): Promise<SearchResult> {
    const q: Msg<'query'> = { t: 'query', qid, name, origin: this.ctx.ref(), ttl: this.ctx.opts.ttl, hops: 0, budget: this.ctx.opts.floodTimeoutMs, want };
    return this.run(qid, name, o.signal, `search for ${name}`, () => void this.onQuery(null, q), (c, l) => {
      const acc = c.acc as QueryAgg;
      const r: SearchResult = { qid, name, hits: acc.hits, ...acc.counters, firstHitMs: l.firstHitAt === null ? null : l.firstHitAt - l.t0, completionMs: this.ctx.clock.now() - l.t0 };
      this.ctx.emit('search-done', r);
      return r;
    });
  }

  topo(o: { signal?: AbortSignal } = {}): Promise<TopoResult> {
    const qid = this.ctx.newQid();
    const m: Msg<'topo'> = { t: 'topo', qid, origin: this.ctx.ref(), hops: 0, ttl: this.ctx.opts.ttl, budget: this.ctx.opts.floodTimeoutMs };
    return this.run(qid, '', o.signal, 'topology', () => void this.onTopo(null, m), (c, l) => {
      const acc = c.acc as TopoAgg;
      const r: TopoResult = { qid, nodes: acc.nodes, complete: acc.counters.missing.length === 0, ...acc.counters, firstHitMs: l.firstHitAt === null ? null : l.firstHitAt - l.t0, completionMs: this.ctx.clock.now() - l.t0 };
      this.ctx.emit('topo-done', r);
      return r;
    });
  }

  /** A download's first offer counts as its first hit. */
  noteHit(qid: string): void {
    const l = this.local.get(qid);
    if (l && l.firstHitAt === null) l.firstHitAt = this.ctx.clock.now();
  }

  private run<R>(qid: string, name: string, signal: AbortSignal | undefined, what: string, start: () => void, finish: (c: Completion<QueryAgg> | Completion<TopoAgg>, l: Local) => R): Promise<R> {
    if (!this.ctx.life.joined) return Promise.reject(new TreeshareError('not-joined', `peer ${this.ctx.id} has not joined the overlay yet`));
    return new Promise<R>((resolve, reject) => {
      const onAbort = () => {
        this.local.delete(qid);
        reject(abortError(signal!, what));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const l: Local = {
        t0: this.ctx.clock.now(),
        name,
        firstHitAt: null,
        done: (c) => {
          signal?.removeEventListener('abort', onAbort);
          this.local.delete(qid);
          resolve(finish(c, l));
        },
      };
      this.local.set(qid, l);
      start();
    });
  }

  onMessage(link: Link, m: Msg<'topo' | 'query' | 'topo-reply' | 'query-reply'>): void {
    switch (m.t) {
      case 'query':
        if (this.throttled(link, m)) return;
        void this.onQuery(link, m);
        return;
      case 'topo':
        if (this.throttled(link, m)) return;
        void this.onTopo(link, m);
        return;
      case 'query-reply': {
        const l = this.local.get(m.qid);
        const maxHops = m.maxHops;
        const bad: string[] = [];
        const good = m.hits.filter((h) => {
          const why = badHit(h, this.ctx.id, maxHops);
          if (why !== null) bad.push(why);
          return why === null;
        });
        if (bad.length) {
          this.ctx.log('warn', `ignored ${bad.length} hit(s) in a query-reply from ${link.ref.id}: ${bad.slice(0, 3).join('; ')}`);
          m = { ...m, hits: good };
        }
        if (l && m.hits.length) {
          if (l.firstHitAt === null) l.firstHitAt = this.ctx.clock.now();
          for (const h of m.hits) this.ctx.emit('hit', { qid: m.qid, name: l.name, holder: h });
        }
        this.complete(this.queries.reply(m.qid, link.ref.id, { counters: countersOf(m), hits: m.hits }), 'query');
        return;
      }
      case 'topo-reply': {
        const l = this.local.get(m.qid);
        if (l && l.firstHitAt === null) l.firstHitAt = this.ctx.clock.now();
        if (!m.final) this.topos.partial(m.qid, link.ref.id, { counters: emptyCounters(), nodes: m.nodes });
        else this.complete(this.topos.reply(m.qid, link.ref.id, { counters: countersOf(m), nodes: m.nodes }), 'topo');
        return;
      }
    }
  }

  /**
   * Per-neighbour rate limit on incoming floods: over the limit, the request
   * is answered at once as "this subtree not searched" (missing: this peer),
   * so the requester still gets a definite answer and others are not starved.
   */
  private throttled(link: Link, m: Msg<'topo' | 'query'>): boolean {
    const now = this.ctx.clock.now();
    const b = (link.floods ??= new TokenBucket(this.ctx.opts.queryRatePerSec, this.ctx.opts.queryBurst, now));
    if (b.take(now)) return false;
    this.throttledCount++;
    if (now - this.lastThrottleLog > 1000) {
      this.lastThrottleLog = now;
      this.ctx.log('warn', `throttling floods from ${link.ref.id} (over ${this.ctx.opts.queryRatePerSec}/s; ${this.throttledCount} dropped so far)`);
    }
    const base = { qid: m.qid, missing: [this.ctx.id], reached: 0, messages: 1, duplicates: 0, maxHops: m.hops };
    if (m.t === 'query') link.conn.send({ t: 'query-reply', hits: [], ...base });
    else link.conn.send({ t: 'topo-reply', nodes: [], final: true, ...base });
    return true;
  }

  neighbourGone(id: string): void {
    for (const c of this.queries.neighbourGone(id)) this.complete(c, 'query');
    for (const c of this.topos.neighbourGone(id)) this.complete(c, 'topo');
  }

  clear(): void {
    this.ctx.clock.clearTimeout(this.budgetTimer);
    this.budgetTimer = undefined;
    this.budgetAt = Infinity;
    for (const c of this.queries.clear()) this.complete(c, 'query');
    for (const c of this.topos.clear()) this.complete(c, 'topo');
  }

  private onQuery(from: Link | null, q: Msg<'query'>): void {
    const now = this.ctx.clock.now();
    if (this.seen.checkAndAdd(q.qid, now)) {
      from?.conn.send({ t: 'query-reply', qid: q.qid, hits: [], missing: [], reached: 0, messages: 1, duplicates: 1, maxHops: q.hops });
      return;
    }
    // Answered at once when the store can tell (no promise and no turn of the loop per peer and flood).
    const has = this.deps.localHas(q.name);
    if (has instanceof Promise) void has.then((h) => this.queryWith(from, q, h));
    else this.queryWith(from, q, has);
  }

  private queryWith(from: Link | null, q: Msg<'query'>, has: { size: number } | null): void {
    const own: QueryAgg = { counters: { reached: 1, messages: 0, duplicates: 0, maxHops: q.hops, missing: [] }, hits: [] };
    if (has) {
      own.hits.push({ ...this.ctx.ref(), size: has.size, hops: q.hops });
      if (q.want === 'download' && q.origin.id !== this.ctx.id) this.deps.serveHit(q);
    }
    // Written out rather than spread ({...q, hops, budget}: a slow object clone per peer and flood), in the
    // order search() builds it.
    const fwd: Msg<'query'> = { t: 'query', qid: q.qid, name: q.name, origin: q.origin, ttl: q.ttl, hops: q.hops + 1, budget: childBudget(q.budget, this.ctx.opts.hopSlackMs), want: q.want };
    const targets = this.forward(from, q.hops, q.ttl, q.budget, fwd, own.counters);
    this.begin(this.queries, q.qid, from, targets, own, q.budget, 'query');
  }

  private async onTopo(from: Link | null, m: Msg<'topo'>): Promise<void> {
    const now = this.ctx.clock.now();
    if (this.seen.checkAndAdd(m.qid, now)) {
      from?.conn.send({ t: 'topo-reply', qid: m.qid, nodes: [], missing: [], final: true, reached: 0, messages: 1, duplicates: 1, maxHops: m.hops });
      return;
    }
    let files = this.deps.fileCount?.() ?? -1;
    if (files < 0) {
      try {
        files = (await this.deps.files()).length;
      } catch {
        files = 0; // share folder gone: report 0
      }
    }
    const p = this.ctx;
    const self: TopoNode = {
      ...p.ref(), parent: p.links.parent?.ref.id ?? null, children: [...p.links.children.keys()], depth: p.depth, files,
    };
    const own: TopoAgg = { counters: { reached: 1, messages: 0, duplicates: 0, maxHops: m.hops, missing: [] }, nodes: [self] };
    const fwd: Msg<'topo'> = { t: 'topo', qid: m.qid, origin: m.origin, hops: m.hops + 1, ttl: m.ttl, budget: childBudget(m.budget, p.opts.hopSlackMs) };
    const targets = this.forward(from, m.hops, m.ttl, m.budget, fwd, own.counters);
    this.begin(this.topos, m.qid, from, targets, own, m.budget, 'topo');
  }

  /**
   * Sends `fwd` to every neighbour but the sender unless floodCut() (TTL or budget) says no, with no
   * id lists made per peer; the frame is encoded once for all of them. Returns the neighbours to wait on.
   */
  private forward(from: Link | null, hops: number, ttl: number, budget: number, fwd: Msg<'query'> | Msg<'topo'>, counters: FloodCounters): string[] {
    const links = this.ctx.links;
    const cut = floodCut(hops, ttl, budget, this.ctx.opts.hopSlackMs);
    const fromId = from?.ref.id;
    const sent: string[] = [];
    let frame;
    for (let i = -1, it = links.children.values(); ; i++) {
      const l = i < 0 ? links.parent : (it.next().value as Link | undefined);
      if (i >= 0 && !l) break;
      if (!l || l.ref.id === fromId) continue;
      // Neighbours beyond the TTL or the time budget are reported as not answering.
      if (cut) {
        counters.missing.push(l.ref.id);
        continue;
      }
      // send() returning false is backpressure, not failure: the frame is queued and will be
      // delivered, so the neighbour is waited on. The queue is bounded by the Connection
      // (maxBufferedBytes): past it the link is destroyed, and its close records the subtree
      // missing (neighbourGone). Only a link already closed is missing at once.
      if (!l.conn.closed) {
        l.conn.sendFrame((frame ??= frameOf(fwd)));
        sent.push(l.ref.id);
        counters.messages++;
      } else counters.missing.push(l.ref.id);
    }
    return sent;
  }

  private begin<P extends QueryAgg | TopoAgg>(cc: Convergecast<P>, qid: string, from: Link | null, targets: string[], own: P, budget: number, kind: 'query' | 'topo'): void {
    // A leaf (nobody to wait on) answers at once: no entry to make and drop.
    if (targets.length === 0) return this.complete({ qid, to: from?.ref.id ?? null, acc: own } as Completion<QueryAgg> & Completion<TopoAgg>, kind);
    const now = this.ctx.clock.now();
    const deadline = now + Math.max(1, budget);
    const c = cc.begin(qid, from?.ref.id ?? null, targets, own, deadline);
    if (c) return this.complete(c as Completion<QueryAgg> & Completion<TopoAgg>, kind);
    this.armBudget(deadline, now);
  }

  private armBudget(at: number, now: number): void {
    if (at >= this.budgetAt) return;
    this.ctx.clock.clearTimeout(this.budgetTimer);
    this.budgetAt = at;
    this.budgetTimer = this.ctx.clock.setTimeout(onBudget, at - now, this).unref();
  }

  /** The budget timer fired: floods past their deadline here complete (whoever has not answered is missing). */
  budgetSpent(): void {
    this.budgetTimer = undefined;
    this.budgetAt = Infinity;
    const now = this.ctx.clock.now();
    for (const c of this.queries.expire(now)) this.complete(c, 'query');
    for (const c of this.topos.expire(now)) this.complete(c, 'topo');
    const next = Math.min(this.queries.nextDeadline(), this.topos.nextDeadline());
    if (next < Infinity) this.armBudget(next, now);
  }

  private complete(c: Completion<QueryAgg> | Completion<TopoAgg> | undefined, kind: 'query' | 'topo'): void {
    if (!c) return;
    if (c.to === null) {
      this.local.get(c.qid)?.done(c);
      return;
    }
    const link = this.ctx.links.get(c.to);
    if (!link) return;
    const k = c.acc.counters;
    if (kind === 'query') {
      const acc = c.acc as QueryAgg;
      link.conn.send({ t: 'query-reply', qid: c.qid, hits: acc.hits, missing: k.missing.length > 5000 ? k.missing.slice(0, 5000) : k.missing, reached: k.reached, messages: k.messages + 1, duplicates: k.duplicates, maxHops: k.maxHops });
      return;
    }
    const frames = chunkNodes((c.acc as TopoAgg).nodes);
    for (let i = 0; i < frames.length - 1; i++) {
      link.conn.send({ t: 'topo-reply', qid: c.qid, nodes: frames[i]!, missing: [], final: false, reached: 0, messages: 0, duplicates: 0, maxHops: 0 });
    }
    link.conn.send({ t: 'topo-reply', qid: c.qid, nodes: frames[frames.length - 1]!, missing: k.missing.slice(0, 5000), final: true, reached: k.reached, messages: k.messages + frames.length, duplicates: k.duplicates, maxHops: k.maxHops });
  }
}

function countersOf(m: Msg<'query-reply'> | Msg<'topo-reply'>): FloodCounters {
  // The message is ours alone (decoded for this call): its missing list is taken, not copied.
  return { reached: m.reached, messages: m.messages, duplicates: m.duplicates, maxHops: m.maxHops, missing: m.missing };
}

const onBudget = (h: FloodHandler): void => h.budgetSpent();

/** Splits nodes into groups whose JSON stays under TOPO_FRAME_BUDGET (at least one group). */
export function chunkNodes(nodes: TopoNode[]): TopoNode[][] {
  const out: TopoNode[][] = [[]];
  let size = 0;
  for (const n of nodes) {
    const s = JSON.stringify(n).length + 1;
    if (size + s > TOPO_FRAME_BUDGET && out[out.length - 1]!.length > 0) {
      out.push([]);
      size = 0;
    }
    out[out.length - 1]!.push(n);
    size += s;
  }
  return out;
}
