/**
 * A Cluster is one overlay under test: a runner, a metaserver, peers with
 * their share folders, and the actions a scenario script takes on them
 * (add peers, search, download, topo, leave, crash, wait for the tree to be
 * whole). Every action is a recorded step; every result becomes a record on
 * the Scenario (join timelines, flood fan-out, transfers, repairs).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { errorCode, type Policy, type SimClock, type TopoNode } from '../../core/index.ts';
import { floodNotFound, floodRow, groupBy, joinRow, repairRow, transferRow, type FloodRow, type TransferRow } from './metrics.ts';
import { messageOf, type MemorySample, type MetaHandle, type PeerHandle, type Runner, type RunnerKind } from './runner.ts';
import { createRunner } from './runners.ts';
import type { CommonOptions } from './args.ts';
import type { Progress } from './progress.ts';
import type { Records } from './records.ts';
import type { Rng } from './rng.ts';
import { pool, waitEvent } from './async.ts';
import { leftoverParts, sha256File, Workspace } from './shares.ts';
import { demoShare } from '../../testnet/demo-shares.ts';
import { checkTree, type TreeCheck } from '../../testnet/tree.ts';
import { InvariantChecker, type InvariantSink } from './invariants.ts';
import { loadRegions, regionFor, type Regions } from './regions.ts';
import { FaultUnsupportedError, META, type DiskSpec, type FaultKind, type FaultRow, type LinkSpec, type RegionMatrix, type SkewSpec } from './faults.ts';

/**
 * What a Cluster needs from the scenario that owns it (a Scenario is one).
 * Declared here rather than importing Scenario, so cluster.ts and scenario.ts
 * do not import each other.
 */
export interface ClusterHost {
  readonly opts: CommonOptions;
  readonly rng: Rng;
  readonly records: Records;
  now(): number;
  /** Wall-clock ms since the scenario started (whatever the scenario's clock). */
  wallNow(): number;
  /** Waits `ms` on the scenario clock (simulated under the memory runner). */
  sleep(ms: number): Promise<void>;
  /** The simulated clock shared by memory clusters (created on first use), or undefined. */
  simClock(): SimClock | undefined;
  progress(label: string, total: number): Progress;
  step<T>(name: string, fn: () => Promise<T>, o?: { soft?: boolean }): Promise<T>;
  check(ok: boolean, what: string, detail?: string): boolean;
  /** Where the cluster's invariant checker reports (invariants.ts); absent or undefined: no checker. */
  invariantSink?(): InvariantSink | undefined;
}

export interface ClusterOptions {
  /** Label of this overlay in records and tables (several per scenario). */
  round?: string;
  runner?: RunnerKind;
  maxChildren?: number;
  policy?: Policy;
  latency?: number;
  bandwidth?: number;
  heartbeatMs?: number;
  announceMs?: number;
  floodTimeoutMs?: number;
  /** Process runner: false starts the production entry points, without the fault side channel (RunnerOptions.faults). */
  faults?: boolean;
}

export interface PeerDef {
  id: string;
  /** Copy shares/<from> of the repository into the peer's share folder. */
  from?: string;
  /** 'own' (default): an empty folder of its own; 'common': one empty folder shared by all such peers (large runs, no downloads). */
  folder?: 'own' | 'common';
  maxChildren?: number;
  /** Files generated (seeded pseudo-random bytes) in the peer's own folder before it starts. */
  files?: { name: string; bytes: number }[];
}

export interface AddOptions {
  /** Joins at once (1 = one after another, so the tree is reproducible). Default 1. */
  joinConcurrency?: number;
  /** Peers being started at once. Default 4 for processes, 64 in-process. */
  startConcurrency?: number;
  /**
   * After each join, wait until the metaserver lists the newcomer as joined
   * (its announce arrived), so the next referral sees it: with one join at a
   * time this makes the tree the same under every runner for a seed.
   */
  settle?: boolean;
}

export class Cluster {
  readonly round: string;
  readonly runner: Runner;
  readonly ws: Workspace;
  readonly policy: Policy;
  readonly maxChildren: number;
  meta!: MetaHandle;
  readonly peers = new Map<string, PeerHandle>();
  private readonly joined = new Set<string>();
  /** alive() as last computed; dropped when a peer joins or exits (a churn run asks before every request). */
  private aliveIds: string[] | undefined;
  private common: string | undefined;
  /** SHA-256 of holders' files by absolute path, valid while size and mtime are unchanged (see sourceHash). */
  private readonly sourceHashes = new Map<string, { size: number; mtimeMs: number; sha256: Promise<string> }>();
  /** Peers started with their own maxChildren. */
  private readonly maxOf = new Map<string, number>();
  /** The invariant checker (invariants.ts), told of every tree event and fault; undefined with --no-invariants. */
  readonly inv: InvariantChecker | undefined;

  constructor(private readonly s: ClusterHost, o: ClusterOptions = {}) {
    const so = s.opts;
    this.round = o.round ?? '';
    this.policy = o.policy ?? so.policy;
    this.maxChildren = o.maxChildren ?? so.maxChildren;
    const latency = o.latency ?? so.latency;
    const bandwidth = o.bandwidth ?? so.bandwidth;
    this.runner = createRunner(o.runner ?? so.runner, {
      shape: latency || bandwidth ? { latencyMs: latency || undefined, bandwidthBytesPerSec: bandwidth || undefined } : undefined,
      // One draw from the round's fork: the same metaserver seed (and `random` choices) per scenario seed as ever.
      metaSeed: s.rng.fork(`metaserver:${this.round}`).int(0, 2 ** 32 - 1),
      heartbeatMs: o.heartbeatMs,
      announceMs: o.announceMs,
      floodTimeoutMs: o.floodTimeoutMs,
      faults: o.faults,
      // Query ids and metaserver tokens of the memory runner (simulation only).
      simSeed: s.rng.fork(`sim:${this.round}`).int(0, 2 ** 32 - 1),
      // Memory rounds share the scenario's SimClock (driven by the scenario).
      clock: (o.runner ?? so.runner) === 'memory' ? s.simClock() : undefined,
    });
    this.ws = new Workspace();
    const sink = s.invariantSink?.();
    this.inv = sink ? new InvariantChecker(this, s, sink) : undefined;
  }

  /** Most children `id` accepts. */
  maxChildrenOf(id: string): number {
    return this.maxOf.get(id) ?? this.maxChildren;
  }

  /** The metaserver's registry (the invariant checker compares it with the live peers). */
  registry() {
    return this.meta.status();
  }

  /** Peers keep their files in memory stores (memory runner), not folders. */
  get memoryStores(): boolean {
    return this.runner.kind === 'memory';
  }

  get kind(): RunnerKind {
    return this.runner.kind;
  }

  private tag(what: string): string {
    return this.round ? `[${this.round}] ${what}` : what;
  }

  async start(): Promise<this> {
    this.meta = await this.s.step(this.tag(`metaserver starts (policy ${this.policy}, ${this.runner.kind} runner)`), () => this.runner.startMetaserver({ policy: this.policy }));
    if (this.s.opts.regionsFile !== undefined) {
      this.regions = loadRegions(this.s.opts.regionsFile);
      this.regionOf.set(META, this.regions.metaserver);
    }
    return this;
  }

  /** --regions: the regions read at start, and each node's region (drawn by the seed when the peer starts). */
  private regions: Regions | undefined;
  readonly regionOf = new Map<string, string>();

  /** Gives the started peers their regions (before they join, so their joins cross shaped links). Not a fault: the run's network. */
  private async placeInRegions(ids: readonly string[]): Promise<void> {
    if (!this.regions) return;
    for (const id of ids) this.regionOf.set(id, regionFor(this.regions, this.s.rng, id));
    await this.runner.faults.shapeRegions(this.regionOf, this.regions.matrix);
  }

  peer(id: string): PeerHandle {
    const p = this.peers.get(id);
    if (!p) throw new Error(`no peer ${id} in this scenario`);
    return p;
  }

  /** Ids of peers that joined and are still running, in the order they were added. */
  alive(): string[] {
    this.aliveIds ??= [...this.peers.values()].filter((p) => p.alive && this.joined.has(p.id)).map((p) => p.id);
    return [...this.aliveIds];
  }

  /**
   * Starts counting the query and query-reply frames the peers alive now write, at the
   * transport (PeerHandle.wireFrames). `check` then compares them with the searches and
   * downloads recorded since: each should have put exactly 2(N−1) on the wire (issue 29
   * item 4: a download's first flood went unrecorded). Every counted peer must still be alive.
   */
  async wireFloods(): Promise<{ check(what: string): Promise<boolean> }> {
    const ids = this.alive();
    const count = async () => {
      let n = 0;
      for (const id of ids) {
        const f = await this.peer(id).wireFrames();
        n += (f.query ?? 0) + (f['query-reply'] ?? 0);
      }
      return n;
    };
    const n0 = await count();
    const r0 = this.s.records.floods.length;
    return {
      check: async (what) => {
        const wire = (await count()) - n0;
        const floods = this.s.records.floods.slice(r0).filter((f) => f.kind !== 'topo' && f.treeSize);
        const want = floods.reduce((a, f) => a + 2 * (f.treeSize! - 1), 0);
        return this.s.check(wire === want, `${what}: the ${floods.length} searches and downloads put Σ 2(N−1) = ${want} query frames on the wire`, `${wire} counted at the transport`);
      },
    };
  }

  /** Starts the peers, then joins them (in order unless joinConcurrency > 1). */
  async addPeers(defs: readonly (string | PeerDef)[], o: AddOptions = {}): Promise<PeerHandle[]> {
    const list = defs.map((d) => (typeof d === 'string' ? { id: d } : d));
    const n = list.length;
    const limit = openFileLimit();
    if (this.runner.kind === 'inproc' && (this.peers.size + n) * FDS_PER_PEER > limit) {
      throw new Error(`${this.peers.size + n} in-process TCP peers need about ${(this.peers.size + n) * FDS_PER_PEER} open files, over this process's limit of ${limit}: use --runner memory (or fewer peers)`);
    }
    const bar = this.s.progress(this.tag(`starting ${n} peers`), n);
    const handles = await this.s.step(this.tag(`${n} peer${n === 1 ? '' : 's'} start (${this.runner.kind})`), async () => {
      try {
        return await pool(list, o.startConcurrency ?? (this.runner.kind === 'process' ? 4 : 64), async (d) => {
          let h: PeerHandle;
          if (d.maxChildren !== undefined) this.maxOf.set(d.id, d.maxChildren);
          if (this.runner.kind === 'memory') {
            // No folders: the peer's files live in a memory store (generated from the seed, or copies of shares/<from>).
            const memFiles = [
              ...(d.from ? repoFiles(d.from) : []),
              ...(d.files ?? []).map((f) => ({ name: f.name, bytes: f.bytes, seed: this.s.rng.fork(`file:${d.id}:${f.name}`).int(0, 2 ** 32 - 1) })),
            ];
            h = await this.runner.startPeer({ id: d.id, share: `memory:${d.id}`, maxChildren: d.maxChildren ?? this.maxChildren, memFiles }, this.meta.address);
          } else {
            const share = d.folder === 'common' && !d.files?.length ? this.commonFolder() : this.ws.share(this.round ? `${this.round}-${d.id}` : d.id, d.from);
            for (const f of d.files ?? []) await this.ws.generate(share, f.name, f.bytes, this.s.rng.fork(`file:${d.id}:${f.name}`).next);
            h = await this.runner.startPeer({ id: d.id, share, maxChildren: d.maxChildren ?? this.maxChildren }, this.meta.address);
          }
          this.track(h);
          bar.tick();
          return h;
        });
      } finally {
        bar.done();
      }
    });
    await this.placeInRegions(handles.map((h) => h.id));
    await this.joinAll(handles, o.joinConcurrency ?? 1, o.settle ?? false);
    return handles;
  }

  private commonFolder(): string {
    this.common ??= this.ws.share(`${this.round || 'all'}-common`);
    return this.common;
  }

  private track(h: PeerHandle): void {
    this.peers.set(h.id, h);
    h.on('exit', () => {
      this.aliveIds = undefined;
      this.inv?.event('exit', [h.id]);
    });
    h.on('repaired', (r) => {
      this.s.records.repairs.push(repairRow(this.round, h.id, this.s.now(), r));
      this.inv?.event('repaired', r.newParent ? [h.id, r.newParent.id] : [h.id]);
    });
    if (this.inv) {
      h.on('child-joined', (e) => this.inv!.event('child-joined', [h.id, e.id]));
      h.on('child-left', (e) => this.inv!.event('child-left', [h.id, e.id]));
      h.on('parent-lost', (e) => this.inv!.event('parent-lost', [h.id, e.id]));
    }
  }

  private async joinAll(handles: PeerHandle[], concurrency: number, settle: boolean): Promise<void> {
    const bar = this.s.progress(this.tag(`joining ${handles.length} peers`), handles.length);
    const t0 = this.s.now();
    const w0 = this.s.wallNow();
    await this.s.step(this.tag(`${handles.length} peer${handles.length === 1 ? '' : 's'} join${concurrency > 1 ? ` (${concurrency} at a time)` : ''}`), async () => {
      try {
        await pool(handles, concurrency, async (h) => {
          const at = this.s.now();
          const j = await h.join({ timeoutMs: 60_000 });
          this.s.records.joins.push(joinRow(this.round, h.id, at, j.timeline));
          this.joined.add(h.id);
          this.aliveIds = undefined;
          this.inv?.event('joined', j.timeline.parent ? [h.id, j.timeline.parent.id] : [h.id]);
          if (settle) await this.settled(h.id);
          bar.tick();
        });
      } finally {
        bar.done();
      }
    });
    this.s.records.phases.push({ round: this.round, phase: 'join all', peers: handles.length, ms: this.s.now() - t0, wallMs: this.s.wallNow() - w0 });
  }

  /** Resolves once the metaserver lists `id` as joined (polls its status). */
  private async settled(id: string, timeoutMs = 10_000): Promise<void> {
    const deadline = this.s.now() + timeoutMs;
    while ((await this.meta.status()).find((e) => e.id === id)?.state !== 'joined') {
      if (this.s.now() > deadline) throw new Error(`the metaserver did not list ${id} as joined within ${timeoutMs} ms`);
      await this.s.sleep(5);
    }
  }

  /** A search flood from `by`; `expect` turns the answer into a check. */
  async search(by: string, name: string, o: { label?: string; expect?: 'found' | 'none'; expectFrom?: string } = {}): Promise<FloodRow> {
    const at = this.s.now();
    const treeSize = this.alive().length;
    const label = o.label ?? 'search';
    try {
      const r = await this.s.step(this.tag(`${by} searches ${name}`), () => this.peer(by).search(name, { timeoutMs: 60_000 }));
      const row = floodRow(this.round, 'search', by, label, at, treeSize, r);
      this.s.records.floods.push(row);
      if (o.expect === 'found') this.s.check(row.hits.length > 0, this.tag(`${by} finds ${name}`), row.hits.length ? undefined : floodNotFound(row));
      if (o.expect === 'none') this.s.check(row.hits.length === 0, this.tag(`${by}: definite not-found for ${name}`), row.hits.length ? `found at ${row.hits.join(', ')}` : undefined);
      if (o.expectFrom) this.s.check(row.hits.includes(o.expectFrom), this.tag(`${name} found at ${o.expectFrom}`), `hits: ${row.hits.join(', ') || 'none'}`);
      return row;
    } catch (err) {
      const row: FloodRow = { round: this.round, kind: 'search', by, name, label, at, treeSize, hits: [], hitHops: [], reached: 0, messages: 0, duplicates: 0, maxHops: 0, missing: [], firstHitMs: null, completionMs: this.s.now() - at, answered: false, error: `${messageOf(err)} [${errorCode(err)}]` };
      this.s.records.floods.push(row);
      return row;
    }
  }

  /**
   * `by` downloads `name`: records the transfer and the flood that found it,
   * and re-hashes the file on disk against the holder's copy. A failed
   * download is a failed check unless `mayFail` (then it must fail cleanly:
   * a coded error and no partial file).
   */
  async download(by: string, name: string, o: { label?: string; expectFrom?: string; mayFail?: boolean; timeoutMs?: number } = {}): Promise<TransferRow> {
    const at = this.s.now();
    const treeSize = this.alive().length;
    const label = o.label ?? 'download';
    const h = this.peer(by);
    const what = this.tag(`${by} downloads ${name}`);
    // Progress of a large file, sampled every SAMPLE_EVERY_MS at most (the transfer-rate chart).
    const samples: [number, number][] = [];
    const onProgress = (p: { name: string; bytes: number; size: number }) => {
      if (p.name !== name || p.size < SAMPLE_MIN_BYTES) return;
      const t = this.s.now() - at;
      const last = samples[samples.length - 1];
      if (last && t - last[0] < SAMPLE_EVERY_MS && p.bytes < p.size) return;
      if (samples.length === 0 || p.bytes > last![1]) samples.push([t, p.bytes]);
    };
    h.on('progress', onProgress);
    this.inv?.downloads(by, 1);
    try {
      const d = await this.s.step(what, () => h.download(name, { timeoutMs: o.timeoutMs ?? 60_000 }), { soft: o.mayFail }).finally(() => h.off('progress', onProgress));
      const doneAt = this.s.now();
      this.s.records.floods.push(floodRow(this.round, 'download', by, label, at, treeSize, d.search));
      const holder = this.peers.get(d.holder.id);
      let disk: string | null;
      let src: string | null;
      if (this.runner.kind === 'memory' && h.storedSha256) {
        // Memory stores: the requester's stored content and the holder's, by their own hashes.
        disk = await h.storedSha256(name).catch(() => null);
        src = holder?.storedSha256 ? await holder.storedSha256(name).catch(() => null) : null;
      } else {
        disk = await sha256File(path.join(h.share, name)).catch(() => null);
        src = holder ? await this.sourceHash(path.join(holder.share, name)).catch(() => null) : null;
      }
      const diskOk = disk === null ? false : disk === d.sha256 && (src === null || src === disk);
      const row = transferRow(this.round, by, label, at, doneAt, d, diskOk);
      if (samples.length >= 2) row.samples = samples;
      this.s.records.transfers.push(row);
      this.s.check(row.ok, `${what}: SHA-256 verified`, row.ok ? undefined : `core verified=${d.verified}, disk=${disk?.slice(0, 12)}, offered=${d.sha256.slice(0, 12)}, holder=${src?.slice(0, 12)}`);
      if (o.expectFrom) this.s.check(d.holder.id === o.expectFrom, `${what} from ${o.expectFrom}`, `came from ${d.holder.id}`);
      return row;
    } catch (err) {
      const parts = this.runner.kind === 'memory' && h.openTemps ? Array.from({ length: h.openTemps() }, (_, i) => `temporary #${i + 1}`) : leftoverParts(h.share);
      const row: TransferRow = {
        round: this.round, file: name, from: '', to: by, label, at, doneAt: this.s.now(), bytes: 0, ttfbMs: null, durationMs: this.s.now() - at, mbps: null,
        sha256: null, verified: false, diskSha256Ok: null, ok: false, errorCode: errorCode(err), error: messageOf(err),
      };
      this.s.records.transfers.push(row);
      if (o.mayFail) this.s.check(parts.length === 0 || !h.alive, `${what} failed cleanly`, parts.length ? `left ${parts.join(', ')}` : undefined);
      return row;
    } finally {
      this.inv?.downloads(by, -1);
    }
  }

  /**
   * SHA-256 of a holder's copy, hashed once for a batch of downloads of one
   * file: cached by absolute path and re-hashed when its size or mtime changed.
   */
  private async sourceHash(file: string): Promise<string> {
    const abs = path.resolve(file);
    const { size, mtimeMs } = await fsp.stat(abs);
    const hit = this.sourceHashes.get(abs);
    if (hit && hit.size === size && hit.mtimeMs === mtimeMs) return hit.sha256;
    const entry = { size, mtimeMs, sha256: sha256File(abs) };
    this.sourceHashes.set(abs, entry);
    entry.sha256.catch(() => {
      if (this.sourceHashes.get(abs) === entry) this.sourceHashes.delete(abs);
    });
    return entry.sha256;
  }

  /** Topology flood from `by`; checks it is one tree of every live peer when `expectWhole`. */
  async topo(by: string, o: { label?: string; expectWhole?: boolean } = {}): Promise<{ row: FloodRow; nodes: TopoNode[]; check: TreeCheck }> {
    const at = this.s.now();
    const alive = this.alive();
    const r = await this.s.step(this.tag(`${by} asks for the topology`), () => this.peer(by).topo({ timeoutMs: 60_000 }));
    const row = floodRow(this.round, 'topo', by, o.label ?? 'topo', at, alive.length, r);
    this.s.records.floods.push(row);
    const check = checkTree(r.nodes, alive);
    if (o.expectWhole) this.s.check(check.ok && r.complete, this.tag(`one tree of ${alive.length} peers`), check.why ?? (r.complete ? undefined : `incomplete: missing ${r.missing.join(', ')}`));
    return { row, nodes: r.nodes, check };
  }

  /** Graceful leave; resolves when every orphaned child reported its repair. */
  leave(id: string, o: { timeoutMs?: number } = {}): Promise<{ orphans: string[]; ms: number }> {
    return this.depart(id, 'leaves', (h) => h.leave({ timeoutMs: 20_000 }), o.timeoutMs);
  }

  /** Crash (kill -9 / stop without goodbyes); resolves when every orphan reattached. */
  crash(id: string, o: { timeoutMs?: number } = {}): Promise<{ orphans: string[]; ms: number }> {
    return this.depart(id, 'crashes', (h) => h.crash(), o.timeoutMs);
  }

  private async depart(id: string, verb: string, go: (h: PeerHandle) => Promise<void>, timeoutMs = 30_000): Promise<{ orphans: string[]; ms: number }> {
    const h = this.peer(id);
    return this.s.step(this.tag(`${id} ${verb}; orphans reattach`), async () => {
      const st = await h.status({ timeoutMs: 10_000 });
      const orphans = st.children.map((c) => c.id).filter((c) => this.peers.get(c)?.alive);
      const waits = orphans.map((c) => waitEvent(this.peer(c), 'repaired', (r) => r.lost === id, timeoutMs, `${c} to reattach after ${id} ${verb.replace(/s$/, '')}`));
      waits.forEach((w) => w.catch(() => undefined));
      const t0 = this.s.now();
      this.inv?.event(verb, [id, ...orphans]);
      await go(h);
      await Promise.all(waits);
      return { orphans, ms: this.s.now() - t0 };
    });
  }

  /**
   * Waits until a topology request from a live peer returns one complete tree
   * holding exactly the live peers (re-asking after each repair or join event,
   * or every 250 ms); records that last topo.
   */
  async waitWhole(o: { by?: string; timeoutMs?: number; label?: string } = {}): Promise<TopoNode[]> {
    return this.s.step(this.tag('tree is whole'), async () => {
      const deadline = this.s.now() + (o.timeoutMs ?? 30_000);
      let last = '';
      for (;;) {
        const alive = this.alive();
        const by = o.by && this.peers.get(o.by)?.alive ? o.by : alive[0];
        if (!by) throw new Error('no live peer left');
        const at = this.s.now();
        const r = await this.peer(by).topo({ timeoutMs: 30_000 });
        const check = checkTree(r.nodes, alive);
        if (check.ok && r.complete) {
          this.s.records.floods.push(floodRow(this.round, 'topo', by, o.label ?? 'tree whole', at, alive.length, r));
          return r.nodes;
        }
        last = check.why ?? `incomplete (missing ${r.missing.join(', ')})`;
        if (this.s.now() > deadline) throw new Error(`the tree is not whole: ${last}`);
        await this.nextChange(250);
      }
    });
  }

  /** Resolves on the next repair/join/leave event of any live peer, or after `ms`. */
  private nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const hs = [...this.peers.values()].filter((p) => p.alive);
      const evs = ['repaired', 'child-joined', 'child-left'] as const;
      let fired = false;
      const done = () => {
        if (fired) return;
        fired = true;
        for (const p of hs) for (const e of evs) p.off(e, done);
        resolve();
      };
      void this.s.sleep(ms).then(done);
      for (const p of hs) for (const e of evs) p.on(e, done);
    });
  }

  /** Names some live peer shares and `id` lacks (sorted), with their holders. */
  async lacking(id: string): Promise<{ name: string; holders: string[] }[]> {
    const alive = this.alive();
    const lists = await Promise.all(alive.map(async (p) => [p, await this.peer(p).files()] as const));
    const all = groupBy(lists.flatMap(([p, files]) => files.map((f) => [f.name, p] as const)), ([n]) => n);
    const own = new Set(lists.find(([p]) => p === id)?.[1].map((f) => f.name) ?? []);
    return [...all.entries()].filter(([n]) => !own.has(n)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, hs]) => ({ name, holders: hs.map(([, p]) => p) }));
  }

  // ---- faults (scenarios/lib/faults.ts, docs/FAULTS.md) ----

  /** Open fault rows by what ends them ("partition", "pause:S3", "skew:S3", "disk:S3", "shape:A|B"). */
  private readonly openFaults = new Map<string, FaultRow>();

  /** Refuses a fault this runner cannot apply, applies it, and records it; `ends` names what a later fault of the same key closes. */
  private async fault(kind: FaultKind, targets: string[], detail: string, apply: () => Promise<void>, o: { key?: string; closes?: string; forMs?: number } = {}): Promise<FaultRow> {
    const why = this.runner.faults.unsupported(kind);
    if (why !== null) throw new FaultUnsupportedError(kind, this.runner.kind, why);
    await apply();
    const at = this.s.now();
    if (o.closes) {
      const prev = this.openFaults.get(o.closes);
      if (prev && prev.until === null) prev.until = at;
      this.openFaults.delete(o.closes);
    }
    const row: FaultRow = { round: this.round, at, kind, targets, until: o.forMs !== undefined ? at + o.forMs : null, detail };
    this.s.records.faults.push(row);
    if (o.key) this.openFaults.set(o.key, row);
    this.inv?.event(`fault ${kind}${detail ? ` (${detail})` : ''}`, targets.flatMap((t) => t.split(',')).filter((t) => this.peers.has(t)));
    return row;
  }

  /** True while `id` is paused (c.pause without its c.resume). */
  isPaused(id: string): boolean {
    return this.openFaults.has(`pause:${id}`);
  }

  /** Links between groups carry nothing until heal() (see RunnerFaults.partition). */
  partition(groups: readonly (readonly string[])[], o: { oneWay?: boolean } = {}): Promise<FaultRow> {
    return this.fault('partition', groups.map((g) => g.join(',')), o.oneWay ? 'one way' : 'both ways', () => this.runner.faults.partition(groups, o), { key: 'partition', closes: 'partition' });
  }

  heal(): Promise<FaultRow> {
    return this.fault('heal', [], '', () => this.runner.faults.heal(), { closes: 'partition', forMs: 0 });
  }

  /** The link between a and b gets `spec` (null: the default shape again). */
  shape(a: string, b: string, spec: LinkSpec | null): Promise<FaultRow> {
    const key = `shape:${[a, b].sort().join('|')}`;
    return this.fault('shape', [a, b], spec ? linkWords(spec) : 'default', () => this.runner.faults.shape(a, b, spec), { key: spec ? key : undefined, closes: key });
  }

  /** Every node's region and the matrix between regions (`--regions FILE`). */
  shapeRegions(regionOf: ReadonlyMap<string, string>, m: RegionMatrix): Promise<FaultRow> {
    return this.fault('shape', m.regions, `regions: ${regionOf.size} nodes in ${m.regions.length} regions`, () => this.runner.faults.shapeRegions(regionOf, m));
  }

  /** Bytes between a and b held for `ms`, then delivered in order. */
  stall(a: string, b: string, ms: number): Promise<FaultRow> {
    return this.fault('stall', [a, b], `${ms} ms`, () => this.runner.faults.stall(a, b, ms), { forMs: ms });
  }

  /** Every connection between a and b dies at both ends (ECONNRESET). */
  reset(a: string, b: string): Promise<FaultRow> {
    return this.fault('reset', [a, b], '', () => this.runner.faults.reset(a, b), { forMs: 0 });
  }

  /** Nothing in, nothing out, no timer fires, until resume(id). */
  pause(id: string): Promise<FaultRow> {
    return this.fault('pause', [id], '', () => this.runner.faults.pause(id), { key: `pause:${id}`, closes: `pause:${id}` });
  }

  resume(id: string): Promise<FaultRow> {
    return this.fault('resume', [id], '', () => this.runner.faults.resume(id), { closes: `pause:${id}`, forMs: 0 });
  }

  /** The node's clock runs early/late or fast/slow; an empty spec puts it right. */
  skew(id: string, spec: SkewSpec): Promise<FaultRow> {
    const on = !!(spec.offsetMs || spec.driftPpm);
    const words = on ? [spec.offsetMs ? `${spec.offsetMs > 0 ? '+' : ''}${spec.offsetMs} ms` : '', spec.driftPpm ? `${spec.driftPpm > 0 ? '+' : ''}${spec.driftPpm} ppm` : ''].filter(Boolean).join(', ') : 'true clock';
    return this.fault('skew', [id], words, () => this.runner.faults.skew(id, spec), { key: on ? `skew:${id}` : undefined, closes: `skew:${id}` });
  }

  /** A disk fault on the node's share store (null: healthy again). */
  disk(id: string, spec: DiskSpec | null): Promise<FaultRow> {
    const words = spec ? `${spec.kind}${spec.afterBytes ? ` after ${spec.afterBytes} bytes` : ''}${spec.ms ? ` ${spec.ms} ms` : ''}` : 'healthy';
    return this.fault('disk', [id], words, () => this.runner.faults.disk(id, spec), { key: spec ? `disk:${id}` : undefined, closes: `disk:${id}` });
  }

  async memory(): Promise<MemorySample> {
    const m = await this.runner.memory([...this.peers.values()]);
    this.s.records.memory.push({ round: this.round, ...m });
    return m;
  }

  async close(): Promise<void> {
    await this.inv?.close();
    await this.runner.close();
    await this.ws.remove();
  }
}

/** A link shape in words: "20 ms ± 5 ms, 1.0 MB/s". */
function linkWords(l: LinkSpec): string {
  const parts = [`${l.latencyMs ?? 0} ms${l.jitterMs ? ` ± ${l.jitterMs} ms` : ''}`];
  if (l.bandwidthBytesPerSec) parts.push(`${(l.bandwidthBytesPerSec / 1e6).toFixed(1)} MB/s`);
  return parts.join(', ');
}

/** The files of the repository's shares/<from> (testnet/demo-shares.ts, read once; memory stores copy them). */
function repoFiles(from: string): { name: string; bytes: number; seed: number; data: Buffer }[] {
  return demoShare(from).map((f) => ({ name: f.name, bytes: f.data.length, seed: 0, data: f.data }));
}

/** Sockets an in-process TCP peer holds: its listener and both ends of its tree links, plus short-lived ones. */
/** Downloads of files at least this large keep progress samples, one per SAMPLE_EVERY_MS at most. */
const SAMPLE_MIN_BYTES = 1024 * 1024;
const SAMPLE_EVERY_MS = 50;

const FDS_PER_PEER = 3.5;

/** This process's open-file limit (Linux /proc), or Infinity when unknown. */
export function openFileLimit(): number {
  try {
    const m = /Max open files\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
}
