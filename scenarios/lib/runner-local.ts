/**
 * The in-process runners: `inproc` (core Peers over real loopback TCP, one
 * Node process) and `memory` (the same Peers over core's MemoryNetwork).
 * They differ in the transport and in the clock: the memory runner runs on a
 * SimClock (simulated time: when nothing is runnable, time jumps to the next
 * timer), shared by the MemoryNetwork, the metaserver and every peer, and
 * driven in the background (`clock.start()`) from creation to close, so
 * heartbeats, periodic announces, the metaserver's stale-entry sweep and
 * every timeout run there too, at their defaults, and a crash is detected by
 * silence as over TCP. Operation timeouts (Op.timeoutMs) are simulated ms
 * there. Real disk work of the peers is held (see Clock.hold): it takes no
 * simulated time.
 *
 * Open files (inproc): each peer holds a listening socket and one socket per
 * tree link end, about 3 per peer, so one process holds roughly 6,000 peers
 * under a 20,000 file limit; bigger runs belong to the memory runner.
 */
import { EventEmitter } from 'node:events';
import { errorCode, FsStore, Metaserver, MemoryNetwork, MemoryShares, metaStatus, mulberry32, Peer, tcpTransport, type HostPort, type MemoryStore, type Policy, type ShareStore, type Transport } from '../../core/index.ts';
import { realClock, SimClock, timeoutReason, type Clock } from '../../core/clock.ts';
import { onCleanup } from '../../testnet/cleanup.ts';
import { forceGc } from '../../testnet/gc.ts';
import { META, noFaults, type FaultKind, type RunnerFaults } from './faults.ts';
import { NodeFaults } from './fault-node.ts';
import { FaultPlane, planeFaults } from './fault-plane.ts';
import { messageOf, OpError, type MemorySample, type MetaHandle, type Op, type PeerHandle, type PeerHandleEvents, type PeerSpec, type Runner, type RunnerKind, type RunnerOptions } from './runner.ts';


/**
 * Runs `fn` with the operation's signal: `o.signal` or its timeout on
 * `clock`, whichever fires first. The timeout's timer is cancelled when the
 * operation ends, so a finished run leaves no timer that would carry a
 * simulated clock up to it.
 */
async function withOp<T>(clock: Clock, o: Op | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const ms = o?.timeoutMs ?? 30_000;
  const h = clock.setTimeout(() => ac.abort(timeoutReason()), ms).unref();
  try {
    return await fn(o?.signal ? AbortSignal.any([o.signal, ac.signal]) : ac.signal);
  } finally {
    clock.clearTimeout(h);
  }
}

/** Re-throws a core error as an OpError with its stable code. */
async function coded<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new OpError(errorCode(err), messageOf(err));
  }
}

class LocalPeer extends EventEmitter<PeerHandleEvents> implements PeerHandle {
  readonly pid = null;
  alive = true;

  /** `mem`: the peer's memory store under its fault wrapper (memory runner), read by storedSha256 and openTemps. */
  constructor(readonly peer: Peer, readonly share: string, readonly address: HostPort, private readonly clock: Clock, private readonly mem?: MemoryStore) {
    super();
    peer.on('repaired', (r) => this.emit('repaired', r));
    peer.on('parent-lost', (e) => this.emit('parent-lost', e));
    peer.on('child-left', (e) => this.emit('child-left', e));
    peer.on('child-joined', (r) => this.emit('child-joined', { id: r.id }));
    peer.on('progress', (p) => this.emit('progress', { name: p.name, bytes: p.bytes, size: p.size }));
  }

  get id(): string {
    return this.peer.id;
  }

  async join(o?: Op) {
    return { timeline: await coded(withOp(this.clock, o, (signal) => this.peer.join({ signal }))) };
  }
  search(name: string, o?: Op) {
    return coded(withOp(this.clock, o, (signal) => this.peer.search(name, { signal })));
  }
  download(name: string, o?: Op) {
    return coded(withOp(this.clock, o, (signal) => this.peer.download(name, { signal })));
  }
  topo(o?: Op) {
    return coded(withOp(this.clock, o, (signal) => this.peer.topo({ signal })));
  }
  async status() {
    return this.peer.state();
  }
  async wireFrames() {
    return this.peer.wireFrames().sent;
  }
  files() {
    return coded(this.peer.files());
  }
  async leave() {
    await coded(this.peer.leave());
    this.gone();
  }
  async crash() {
    await this.peer.stop();
    this.gone();
  }
  async storedSha256(name: string): Promise<string | null> {
    return this.mem ? this.mem.sha256(name) : null;
  }
  openTemps(): number {
    return this.mem ? this.mem.temps : 0;
  }
  async dispose() {
    if (!this.alive) return;
    await this.peer.stop().catch(() => undefined);
    this.gone();
  }
  private gone(): void {
    if (!this.alive) return;
    this.alive = false;
    this.emit('exit', { code: null, signal: null });
  }
}

class LocalMeta implements MetaHandle {
  readonly pid = null;
  constructor(readonly ms: Metaserver, readonly address: HostPort, readonly policy: Policy, private readonly transport: Transport, private readonly clock: Clock) {}
  status(o?: Op) {
    return coded(withOp(this.clock, o, (signal) => metaStatus(this.transport, this.address, { signal, clock: this.clock })));
  }
  async dispose() {
    await this.ms.stop().catch(() => undefined);
  }
}

export class LocalRunner implements Runner {
  private readonly transport: Transport;
  private readonly peers = new Set<LocalPeer>();
  private readonly metas = new Set<LocalMeta>();
  private readonly baselineHeap: number;
  private readonly baselineRss: number;
  private readonly unregister: () => void;
  /** Peers started so far (memory runner: their simulated host). */
  private started = 0;
  /** Memory runner: the simulated contents every peer's memory store shares. */
  private readonly world = new MemoryShares();
  /** Memory runner with simSeed: one seeded source for every peer's query ids (one closure, not one per peer). */
  private readonly qidRng: (() => number) | undefined;
  /** The time of this runner's nodes: a SimClock (memory) or realClock (inproc). */
  readonly clock: Clock;
  /** True when this runner started the SimClock's driver (and stops it at close). */
  private readonly drives: boolean;
  // ---- node faults (fault-node.ts): every node runs on its NodeFaults clock and store wrapper ----
  /** Each node's clock and store faults, by peer id and META (the latest node of that id). */
  private readonly nodes = new Map<string, NodeFaults>();
  private nodeFaults(id: string): NodeFaults {
    const n = new NodeFaults(id, this.clock);
    this.nodes.set(id, n);
    return n;
  }
  private faultsOf(id: string, kind: FaultKind): NodeFaults {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`${kind}: no node ${id} in this ${this.kind} runner`);
    if (kind === 'disk' && id === META) throw new Error('disk: the metaserver has no share store');
    return n;
  }
  /** The link faults of every node here (fault-plane.ts): each peer's and the metaserver's transport go through it. None with `linkFaults: false`. */
  readonly plane: FaultPlane | undefined;
  /** Link faults from the plane, node faults from each node's NodeFaults; a pause is both (timers held, links isolated). */
  readonly faults: RunnerFaults;

  constructor(readonly kind: Extract<RunnerKind, 'inproc' | 'memory'>, private readonly o: RunnerOptions = {}) {
    if (kind === 'memory') {
      const sim = o.clock ?? new SimClock();
      this.clock = sim;
      // A clock handed in is driven by its owner (the Scenario); our own we drive here.
      this.drives = !o.clock;
      if (this.drives) sim.start();
    } else {
      this.clock = realClock;
      this.drives = false;
    }
    this.transport = kind === 'memory' ? new MemoryNetwork(o.shape ?? {}, { clock: this.clock }).transport() : tcpTransport({ shape: o.shape });
    // Jitter draws from the run's seed: a simulated run stays a function of it.
    this.plane = o.linkFaults === false ? undefined : new FaultPlane(this.clock, mulberry32((o.simSeed ?? Math.floor(Math.random() * 2 ** 32)) ^ 0x2c1b3c6d));
    const noPlane = 'this runner was created without link faults (linkFaults: false)';
    const link = this.plane ? planeFaults(this.plane, () => noPlane) : noFaults(() => noPlane);
    const nodeKinds = new Set<FaultKind>(['skew', 'disk', ...(this.plane ? (['pause', 'resume'] as const) : [])]);
    this.faults = {
      ...link,
      unsupported: (kind) => (nodeKinds.has(kind) ? null : link.unsupported(kind)),
      pause: async (id) => {
        this.faultsOf(id, 'pause').setPaused(true);
        this.isolate(id, true);
      },
      resume: async (id) => {
        this.faultsOf(id, 'resume').setPaused(false);
        this.isolate(id, false);
      },
      skew: async (id, sk) => this.faultsOf(id, 'skew').setSkew(sk),
      disk: async (id, d) => this.faultsOf(id, 'disk').setDisk(d),
    };
    forceGc();
    const m0 = process.memoryUsage();
    this.baselineHeap = m0.heapUsed;
    this.baselineRss = m0.rss;
    this.unregister = onCleanup(() => this.close());
    this.qidRng = kind === 'memory' && o.simSeed !== undefined ? mulberry32(o.simSeed) : undefined;
  }

  /** Seeded register tokens (32 hex) for the simulated metaserver; undefined outside the memory runner. */
  private tokenSource(): (() => string) | undefined {
    if (this.kind !== 'memory' || this.o.simSeed === undefined) return undefined;
    const r = mulberry32(this.o.simSeed ^ 0x5bd1e995);
    const w = () => Math.floor(r() * 0x100000000).toString(16).padStart(8, '0');
    return () => w() + w() + w() + w();
  }

  /** The peer's memory store (memory runner), or undefined (its share folder). */
  private memStoreFor(spec: PeerSpec): MemoryStore | undefined {
    if (this.kind !== 'memory') return undefined;
    const files = (spec.memFiles ?? []).map((f) => ({ name: f.name, content: f.data ? this.world.bytes(f.data) : this.world.content(f.bytes, f.seed) }));
    return this.world.store(spec.id, files);
  }

  async startMetaserver(o: { policy: Policy }): Promise<MetaHandle> {
    const ms = new Metaserver({
      host: '127.0.0.1',
      port: 0,
      policy: o.policy,
      // Shaped like every other link (one network model on every runner, docs/SCENARIOS.md).
      transport: this.plane?.transportFor(META, this.transport) ?? this.transport,
      rng: this.o.metaSeed !== undefined ? mulberry32(this.o.metaSeed) : undefined,
      // Without periodic announces the stale-entry sweep would drop live peers.
      peerTimeoutMs: this.announceMs() === 0 ? 0 : undefined,
      clock: this.nodeFaults(META).clock,
      maxConnections: 100_000,
      tokenSource: this.tokenSource(),
    });
    const address = await ms.start();
    const h = new LocalMeta(ms, { host: '127.0.0.1', port: address.port }, o.policy, this.transport, this.clock);
    this.metas.add(h);
    return h;
  }

  private announceMs(): number {
    return this.o.announceMs ?? 5000;
  }

  async startPeer(spec: PeerSpec, meta: HostPort): Promise<PeerHandle> {
    const nf = this.nodeFaults(spec.id);
    const mem = this.memStoreFor(spec);
    const store: ShareStore = nf.wrapStore(mem ?? new FsStore(spec.share));
    const peer = new Peer({
      id: spec.id,
      // Memory peers: 40,000 per simulated host (127.0.0.1, 127.0.1.1, ...), as a host has 65,535 ports.
      host: this.kind === 'memory' ? `127.0.${Math.floor(this.started++ / 40_000)}.1` : '127.0.0.1',
      port: 0,
      share: spec.share,
      meta,
      maxChildren: spec.maxChildren,
      transport: this.plane?.transportFor(spec.id, this.transport) ?? this.transport,
      store,
      rng: this.qidRng,
      heartbeatMs: spec.heartbeatMs ?? this.o.heartbeatMs ?? 1000,
      announceMs: this.announceMs(),
      clock: nf.clock,
      ...(this.o.floodTimeoutMs ? { floodTimeoutMs: this.o.floodTimeoutMs } : {}),
    });
    let address: HostPort;
    try {
      address = await peer.start();
    } catch (err) {
      await peer.stop().catch(() => undefined);
      throw new OpError(errorCode(err), messageOf(err));
    }
    const h = new LocalPeer(peer, spec.share, address, this.clock, mem);
    this.peers.add(h);
    h.once('exit', () => this.peers.delete(h));
    return h;
  }

  /** Pause's network half (FaultPlane.isolate): nothing into or out of node `id` while on. */
  isolate(id: string, on: boolean): void {
    if (!this.plane) throw new Error('this runner was created without link faults (linkFaults: false)');
    this.plane.isolate(id, on);
  }

  async memory(peers: readonly PeerHandle[]): Promise<MemorySample> {
    forceGc();
    const m = process.memoryUsage();
    const total = Math.max(0, m.heapUsed - this.baselineHeap);
    const n = peers.filter((p) => p.alive).length;
    return { kind: 'heap', peers: n, totalBytes: total, perPeerBytes: n ? total / n : 0, rssBytes: m.rss, rssPerPeerBytes: n ? Math.max(0, m.rss - this.baselineRss) / n : null };
  }

  async close(): Promise<void> {
    this.unregister();
    await Promise.allSettled([...this.peers].map((p) => p.dispose()));
    this.peers.clear();
    await Promise.allSettled([...this.metas].map((m) => m.dispose()));
    this.metas.clear();
    this.plane?.close();
    if (this.drives) (this.clock as SimClock).stop();
  }
}
