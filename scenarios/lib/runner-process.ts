/**
 * The `process` runner: every node is a real OS process started as
 * `node --import tsx core/bin/{metaserver,peer}-main.ts --json …` (the
 * pid we hold is the node process itself, so kill -9 hits the peer and
 * nothing else), driven through the control protocol. Link shaping is passed
 * on as --latency/--bandwidth; memory is each process's RSS from /proc.
 *
 * Faults (ProcessFaults below): pause/resume are SIGSTOP/SIGCONT of the
 * node's pid; link, clock and disk faults are commands on each process's
 * fault side channel (fd 3, testnet/fault-channel.ts), which the nodes have
 * when started from the faulty entry points (RunnerOptions.faults, default
 * true): testnet/faulty-{peer,metaserver}-main.ts, the production mains with
 * the harness's fault plane, clock and store around them.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { addrKey, type HostPort, type Policy } from '../../core/index.ts';
import type { PeerEvent } from '../../core/control/schema.ts';
import { onCleanup, tempDir } from '../../testnet/cleanup.ts';
import { ControlError, ControlProcess, FAULTY_META_MAIN, FAULTY_PEER_MAIN, META_MAIN, PEER_MAIN } from '../../testnet/control.ts';
import { DriverError, REPO } from '../../testnet/driver.ts';
import { FaultChannel, type FaultRequest } from '../../testnet/fault-channel.ts';
import { META, type DiskSpec, type FaultKind, type LinkSpec, type RegionMatrix, type RunnerFaults, type SkewSpec } from './faults.ts';
import { OpError, type MemorySample, type MetaHandle, type Op, type PeerHandle, type PeerHandleEvents, type PeerSpec, type Runner, type RunnerOptions } from './runner.ts';

export { META_MAIN, PEER_MAIN };
/** Spawning a node+tsx process on a busy 2-core machine can take seconds. */
const READY_TIMEOUT_MS = 30_000;

/** Re-throws a driver or control error as an OpError with its code. */
async function coded<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ControlError || err instanceof DriverError) throw new OpError(err.code, err.message);
    throw err;
  }
}

/** Shaping flags shared by both entry points. */
function shapeArgs(o: RunnerOptions): string[] {
  const a: string[] = [];
  if (o.shape?.latencyMs) a.push('--latency', String(o.shape.latencyMs));
  if (o.shape?.bandwidthBytesPerSec) a.push('--bandwidth', String(o.shape.bandwidthBytesPerSec));
  return a;
}

class ProcPeer extends EventEmitter<PeerHandleEvents> implements PeerHandle {
  constructor(readonly proc: ControlProcess<'peer'>, readonly id: string, readonly share: string, readonly address: HostPort) {
    super();
    proc.on('event', (l) => this.onEvent(l));
    proc.on('exit', (e) => this.emit('exit', e));
  }

  get pid() {
    return this.proc.pid;
  }
  get alive() {
    return this.proc.alive;
  }

  private onEvent(e: PeerEvent): void {
    switch (e.event) {
      case 'repaired':
        this.emit('repaired', e.record);
        return;
      case 'parent-lost':
        this.emit('parent-lost', { id: e.parent, reason: e.reason });
        return;
      case 'child-left':
        this.emit('child-left', { id: e.child, reason: e.reason });
        return;
      case 'child-joined':
        this.emit('child-joined', { id: e.child.id });
        return;
      case 'progress':
        this.emit('progress', { name: e.name, bytes: e.bytes, size: e.size });
        return;
    }
  }

  async join(o?: Op) {
    return { timeline: (await coded(this.proc.command({ cmd: 'join' }, o))).timeline };
  }
  async search(name: string, o?: Op) {
    return (await coded(this.proc.command({ cmd: 'search', name }, o))).result;
  }
  async download(name: string, o?: Op) {
    return (await coded(this.proc.command({ cmd: 'download', name }, o))).result;
  }
  async topo(o?: Op) {
    return (await coded(this.proc.command({ cmd: 'topo' }, o))).result;
  }
  async status(o?: Op) {
    return (await coded(this.proc.command({ cmd: 'status' }, o))).state;
  }
  async wireFrames(o?: Op) {
    return (await coded(this.proc.command({ cmd: 'status' }, o))).frames ?? {};
  }
  async files(o?: Op) {
    return (await coded(this.proc.command({ cmd: 'files' }, o))).files;
  }
  async leave(o?: Op) {
    await coded(this.proc.command({ cmd: 'leave' }, o));
    await this.proc.exited(o?.timeoutMs ?? 10_000).catch(() => this.proc.kill());
  }
  async crash() {
    await this.proc.kill('SIGKILL');
  }
  async dispose() {
    await this.proc.kill('SIGKILL');
  }
}

class ProcMeta implements MetaHandle {
  constructor(readonly proc: ControlProcess<'metaserver'>, readonly address: HostPort, readonly policy: Policy) {}
  get pid() {
    return this.proc.pid;
  }
  async status(o?: Op) {
    return (await coded(this.proc.command({ cmd: 'status' }, o))).peers;
  }
  async dispose() {
    await this.proc.kill('SIGKILL');
  }
}

type AnyProc = ControlProcess<'peer'> | ControlProcess<'metaserver'>;

/** One running node as the faults see it. */
interface ProcNode {
  readonly id: string;
  readonly proc: AnyProc;
  /** Its fault side channel (null: started from a production entry point). */
  readonly chan: FaultChannel | null;
  /** host:port it listens at. */
  readonly addr: string;
  paused: boolean;
  /** Fault commands sent while it was stopped: answered once it is continued. */
  held: Promise<unknown>[];
}

/** A stopped process answers nothing: commands sent to it wait (without a timeout) for resume; this long for the answers after SIGCONT. */
const HELD_ANSWER_MS = 10_000;

/** The process state letter of /proc/<pid>/stat (R, S, T for stopped, Z…), or null when gone. */
export function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || null;
  } catch {
    return null;
  }
}

/** Waits (polling /proc every ms, at most `ms`) until the process is stopped (`stopped` true) or not. */
async function waitStopped(pid: number, stopped: boolean, ms = 2000): Promise<void> {
  const until = performance.now() + ms;
  for (;;) {
    const st = procState(pid);
    if (st === null || (st === 'T') === stopped) return;
    if (performance.now() > until) throw new OpError('timeout', `process ${pid} did not ${stopped ? 'stop' : 'continue'} within ${ms} ms (state ${st})`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * RunnerFaults of the process runner: pause/resume by signal, everything
 * else by side-channel commands, to every process for link faults (each
 * process's plane applies them to its own connections) and to the one node
 * for skew and disk; each resolves once every process answered. A new node
 * learns every node's address and the link faults in force before its
 * handle is returned, and every other process learns its address.
 */
export class ProcessFaults implements RunnerFaults {
  private readonly nodes = new Map<string, ProcNode>();
  /** Link state a node started later must get: the partition, per-pair shapes, the regions. */
  private partitionCmd: FaultRequest | null = null;
  private readonly shapes = new Map<string, FaultRequest>();
  private regionsCmd: FaultRequest | null = null;

  constructor(private readonly sideChannels: boolean) {}

  unsupported(kind: FaultKind): string | null {
    if (kind === 'pause' || kind === 'resume' || this.sideChannels) return null;
    return 'its nodes run the production entry points, without the fault side channel (RunnerOptions.faults false); only pause and resume (SIGSTOP/SIGCONT) work';
  }

  /** Tracks a node that is ready and introduces it to the others (see the class comment). */
  async add(n: ProcNode): Promise<void> {
    this.nodes.set(n.id, n);
    n.proc.once('exit', () => {
      n.chan?.close();
      if (this.nodes.get(n.id) === n) this.nodes.delete(n.id);
    });
    if (!n.chan) return;
    const others = [...this.nodes.values()].filter((o) => o !== n);
    const state = [this.regionsCmd, ...this.shapes.values(), this.partitionCmd].filter((c) => c !== null);
    await Promise.all([
      ...[n, ...others].map((o) => this.tell(n, { cmd: 'knowAddress', addr: o.addr, node: o.id })),
      ...state.map((c) => this.tell(n, c)),
      ...others.map((o) => this.tell(o, { cmd: 'knowAddress', addr: n.addr, node: n.id })),
    ]);
  }

  /** Node `id`'s fault side channel (null: not running, or started without one). */
  channel(id: string): FaultChannel | null {
    return this.nodes.get(id)?.chan ?? null;
  }

  private node(id: string): ProcNode {
    const n = this.nodes.get(id);
    if (!n || !n.proc.alive) throw new OpError('no-node', `no running node ${id} on this process runner`);
    return n;
  }

  /** Sends one command to one node: resolves when it answered (at once for a stopped node: see `held`); a node gone meanwhile needs nothing. */
  private async tell(n: ProcNode, c: FaultRequest): Promise<void> {
    if (!n.chan || !n.proc.alive) return;
    const gone = (err: unknown) => {
      if (!(err instanceof DriverError && err.code === 'exited')) throw err;
    };
    if (n.paused) {
      const p = n.chan.request(c, { timeoutMs: 0 }).catch(gone);
      p.catch(() => undefined);
      n.held.push(p);
      return;
    }
    await n.chan.request(c).catch(gone);
  }

  private all(c: FaultRequest): Promise<void> {
    return Promise.all([...this.nodes.values()].map((n) => this.tell(n, c))).then(() => undefined);
  }

  partition(groups: readonly (readonly string[])[], o: { oneWay?: boolean } = {}): Promise<void> {
    this.partitionCmd = { cmd: 'partition', groups: groups.map((g) => [...g]), ...(o.oneWay !== undefined ? { oneWay: o.oneWay } : {}) };
    return this.all(this.partitionCmd);
  }
  heal(): Promise<void> {
    this.partitionCmd = null;
    return this.all({ cmd: 'heal' });
  }
  shape(a: string, b: string, spec: LinkSpec | null): Promise<void> {
    const c: FaultRequest = { cmd: 'shape', a, b, spec };
    const key = [a, b].sort().join('|');
    if (spec) this.shapes.set(key, c);
    else this.shapes.delete(key);
    return this.all(c);
  }
  shapeRegions(regionOf: ReadonlyMap<string, string>, m: RegionMatrix): Promise<void> {
    this.regionsCmd = { cmd: 'shapeRegions', regionOf: Object.fromEntries(regionOf), matrix: { regions: [...m.regions], links: m.links } };
    return this.all(this.regionsCmd);
  }
  stall(a: string, b: string, ms: number): Promise<void> {
    return this.all({ cmd: 'stall', a, b, ms });
  }
  reset(a: string, b: string): Promise<void> {
    return this.all({ cmd: 'reset', a, b });
  }
  skew(id: string, spec: SkewSpec): Promise<void> {
    return this.tell(this.node(id), { cmd: 'skew', spec: { ...spec } });
  }
  disk(id: string, spec: DiskSpec | null): Promise<void> {
    return this.tell(this.node(id), { cmd: 'disk', spec: spec && { ...spec } });
  }

  /** SIGSTOP of the node's own pid; resolves once the kernel reports it stopped. Neighbours notice by silence only. */
  async pause(id: string): Promise<void> {
    const n = this.node(id);
    if (n.paused) return;
    n.paused = true;
    n.proc.proc.cp.kill('SIGSTOP');
    await waitStopped(n.proc.pid!, true);
  }

  /** SIGCONT; resolves once it runs again and has answered every fault command sent while it was stopped. */
  async resume(id: string): Promise<void> {
    const n = this.node(id);
    if (!n.paused) return;
    n.paused = false;
    n.proc.proc.cp.kill('SIGCONT');
    await waitStopped(n.proc.pid!, false);
    const held = n.held.splice(0);
    let t: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new OpError('timeout', `${n.proc.what}: no answer to the fault commands sent while it was paused within ${HELD_ANSWER_MS} ms after resume`)), HELD_ANSWER_MS);
    });
    try {
      await Promise.race([Promise.all(held), late]);
    } finally {
      clearTimeout(t);
    }
  }
}

export class ProcessRunner implements Runner {
  readonly kind = 'process' as const;
  readonly faults: ProcessFaults;
  private readonly procs = new Set<AnyProc>();
  private readonly unregister: () => void;
  private readonly peerMain: string;
  private readonly metaMain: string;
  private readonly sideChannels: boolean;

  constructor(private readonly o: RunnerOptions = {}) {
    this.sideChannels = o.faults ?? true;
    this.faults = new ProcessFaults(this.sideChannels);
    this.peerMain = this.sideChannels ? FAULTY_PEER_MAIN : PEER_MAIN;
    this.metaMain = this.sideChannels ? FAULTY_META_MAIN : META_MAIN;
    for (const f of [this.peerMain, this.metaMain]) {
      if (!fs.existsSync(f)) throw new OpError('no-entry-point', `the process runner needs ${path.relative(REPO, f)}, which does not exist yet (use --runner inproc)`);
    }
    this.unregister = onCleanup(() => this.close());
  }

  /** Tracks a started process and waits for `ready` (killing it when that fails). */
  private async ready<R>(proc: AnyProc, ready: () => Promise<R>): Promise<R> {
    this.procs.add(proc);
    proc.once('exit', () => this.procs.delete(proc));
    try {
      return await coded(ready());
    } catch (err) {
      await proc.kill();
      throw err;
    }
  }

  /** Starts a node process from this runner's entry point for `kind`. */
  private spawn<K extends 'peer' | 'metaserver'>(kind: K, args: string[], what: string): ControlProcess<K> {
    return new ControlProcess(kind, args, { what, program: kind === 'peer' ? this.peerMain : this.metaMain, sideChannel: this.sideChannels });
  }

  /** Hands a ready node to the faults (its side channel, its address); kills it when that fails. */
  private async track(id: string, proc: AnyProc, a: HostPort): Promise<void> {
    const side = proc.proc.side;
    const node: ProcNode = { id, proc, chan: side ? new FaultChannel(side, proc.what) : null, addr: addrKey(a), paused: false, held: [] };
    await this.ready(proc, () => this.faults.add(node));
  }

  async startMetaserver(o: { policy: Policy }): Promise<MetaHandle> {
    // The `random` policy gets the same seed as under the in-process runners (RunnerOptions.metaSeed);
    // its link is shaped like every peer's (--latency/--bandwidth: one network model on every runner).
    // Its token key in a temporary folder (removed at cleanup), not the user's state folder.
    const args = ['--json', '--host', '127.0.0.1', '--port', '0', '--policy', o.policy, '--token-key-file', path.join(tempDir('treeshare-meta-'), 'token.key'), ...shapeArgs(this.o)];
    if (this.o.metaSeed !== undefined) args.push('--seed', String(this.o.metaSeed));
    const proc = this.spawn('metaserver', args, 'metaserver');
    const ready = await this.ready(proc, () => proc.waitReady(READY_TIMEOUT_MS));
    const host = ready.host !== '0.0.0.0' && ready.host !== '::' ? ready.host : '127.0.0.1';
    await this.track(META, proc, { host, port: ready.port });
    return new ProcMeta(proc, { host, port: ready.port }, o.policy);
  }

  async startPeer(spec: PeerSpec, meta: HostPort): Promise<PeerHandle> {
    const args = [
      '--json', '--id', spec.id, '--host', '127.0.0.1', '--port', '0', '--share', spec.share,
      '--meta', `${meta.host}:${meta.port}`, '--max-children', String(spec.maxChildren), ...shapeArgs(this.o),
    ];
    const proc = this.spawn('peer', args, `peer ${spec.id}`);
    const ready = await this.ready(proc, () => proc.waitReady(READY_TIMEOUT_MS));
    await this.track(spec.id, proc, { host: ready.host, port: ready.port });
    return new ProcPeer(proc, spec.id, spec.share, { host: ready.host, port: ready.port });
  }

  async memory(peers: readonly PeerHandle[]): Promise<MemorySample> {
    let total = 0;
    let n = 0;
    for (const p of peers) {
      if (!p.alive || p.pid === null) continue;
      const rss = readRss(p.pid);
      if (rss === null) continue;
      total += rss;
      n++;
    }
    return { kind: 'rss', peers: n, totalBytes: total, perPeerBytes: n ? total / n : 0, rssBytes: process.memoryUsage().rss, rssPerPeerBytes: n ? total / n : null };
  }

  async close(): Promise<void> {
    this.unregister();
    await Promise.allSettled([...this.procs].map((p) => p.kill()));
    this.procs.clear();
  }
}

/** Resident set size of a process we started, bytes (Linux /proc), or null. */
export function readRss(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
