/**
 * The `process` runner: every node is a real OS process started as
 * `node --import tsx core/bin/{metaserver,peer}-main.ts --json …` (the
 * pid we hold is the node process itself, so kill -9 hits the peer and
 * nothing else), driven through the control protocol. Link shaping is passed
 * on as --latency/--bandwidth; memory is each process's RSS from /proc.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { HostPort, Policy } from '../../core/index.ts';
import type { PeerEvent } from '../../core/control/schema.ts';
import { onCleanup, tempDir } from '../../testnet/cleanup.ts';
import { ControlError, ControlProcess, META_MAIN, PEER_MAIN } from '../../testnet/control.ts';
import { DriverError, REPO } from '../../testnet/driver.ts';
import { noFaults, type RunnerFaults } from './faults.ts';
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

export class ProcessRunner implements Runner {
  readonly kind = 'process' as const;
  readonly faults: RunnerFaults = noFaults(() => 'not built yet');
  private readonly procs = new Set<ControlProcess<'peer'> | ControlProcess<'metaserver'>>();
  private readonly unregister: () => void;

  constructor(private readonly o: RunnerOptions = {}) {
    for (const f of [PEER_MAIN, META_MAIN]) {
      if (!fs.existsSync(f)) throw new OpError('no-entry-point', `the process runner needs ${path.relative(REPO, f)}, which does not exist yet (use --runner inproc)`);
    }
    this.unregister = onCleanup(() => this.close());
  }

  /** Tracks a started process and waits for `ready` (killing it when that fails). */
  private async ready<R>(proc: ControlProcess<'peer'> | ControlProcess<'metaserver'>, ready: () => Promise<R>): Promise<R> {
    this.procs.add(proc);
    proc.once('exit', () => this.procs.delete(proc));
    try {
      return await coded(ready());
    } catch (err) {
      await proc.kill();
      throw err;
    }
  }

  async startMetaserver(o: { policy: Policy }): Promise<MetaHandle> {
    // The `random` policy gets the same seed as under the in-process runners (RunnerOptions.metaSeed);
    // its link is shaped like every peer's (--latency/--bandwidth: one network model on every runner).
    // Its token key in a temporary folder (removed at cleanup), not the user's state folder.
    const args = ['--json', '--host', '127.0.0.1', '--port', '0', '--policy', o.policy, '--token-key-file', path.join(tempDir('treeshare-meta-'), 'token.key'), ...shapeArgs(this.o)];
    if (this.o.metaSeed !== undefined) args.push('--seed', String(this.o.metaSeed));
    const proc = new ControlProcess('metaserver', args, { what: 'metaserver' });
    const ready = await this.ready(proc, () => proc.waitReady(READY_TIMEOUT_MS));
    const host = ready.host !== '0.0.0.0' && ready.host !== '::' ? ready.host : '127.0.0.1';
    return new ProcMeta(proc, { host, port: ready.port }, o.policy);
  }

  async startPeer(spec: PeerSpec, meta: HostPort): Promise<PeerHandle> {
    const args = [
      '--json', '--id', spec.id, '--host', '127.0.0.1', '--port', '0', '--share', spec.share,
      '--meta', `${meta.host}:${meta.port}`, '--max-children', String(spec.maxChildren), ...shapeArgs(this.o),
    ];
    const proc = new ControlProcess('peer', args, { what: `peer ${spec.id}` });
    const ready = await this.ready(proc, () => proc.waitReady(READY_TIMEOUT_MS));
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
