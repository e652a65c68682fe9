/**
 * The `process` runner: every node is a real OS process started as
 * `node --import tsx core/control/{metaserver,peer}-main.ts --json …` (the
 * pid we hold is the node process itself, so kill -9 hits the peer and
 * nothing else), driven through the control protocol. Link shaping is passed
 * on as --latency/--bandwidth; memory is each process's RSS from /proc.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { DownloadResult, HostPort, JoinTimeline, PeerState, Policy, RegistryEntry, RepairRecord, SearchResult, TopoResult } from '../../core/index.ts';
import { onCleanup } from './cleanup.ts';
import { ControlProcess, type Line } from './control-client.ts';
import { OpError, type MemorySample, type MetaHandle, type Op, type PeerHandle, type PeerHandleEvents, type PeerSpec, type Runner, type RunnerOptions } from './runner.ts';
import { REPO } from './shares.ts';

export const PEER_MAIN = path.join(REPO, 'core/control/peer-main.ts');
export const META_MAIN = path.join(REPO, 'core/control/metaserver-main.ts');
/** Spawning a node+tsx process on a busy 2-core machine can take seconds. */
const READY_TIMEOUT_MS = 30_000;

function field<T>(l: Line, key: string, what: string): T {
  if (!(key in l)) throw new OpError('bad-reply', `${what}: reply has no "${key}": ${JSON.stringify(l).slice(0, 200)}`);
  return l[key] as T;
}

function idOf(v: unknown): string {
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of ['id', 'child', 'parent', 'peer']) {
      const x = o[k];
      if (typeof x === 'string') return x;
      if (x && typeof x === 'object' && typeof (x as { id?: unknown }).id === 'string') return (x as { id: string }).id;
    }
  }
  return '?';
}

/** Shaping flags shared by both entry points. */
function shapeArgs(o: RunnerOptions): string[] {
  const a: string[] = [];
  if (o.shape?.latencyMs) a.push('--latency', String(o.shape.latencyMs));
  if (o.shape?.bandwidthBytesPerSec) a.push('--bandwidth', String(o.shape.bandwidthBytesPerSec));
  return a;
}

class ProcPeer extends EventEmitter<PeerHandleEvents> implements PeerHandle {
  constructor(readonly proc: ControlProcess, readonly id: string, readonly share: string, readonly address: HostPort) {
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

  private onEvent(l: Line): void {
    switch (l.event) {
      case 'repaired':
        this.emit('repaired', (l.record ?? l) as RepairRecord);
        return;
      case 'parent-lost':
        this.emit('parent-lost', { id: idOf(l), reason: String(l.reason ?? '') });
        return;
      case 'child-left':
        this.emit('child-left', { id: idOf(l), reason: String(l.reason ?? '') });
        return;
      case 'child-joined':
        this.emit('child-joined', { id: idOf(l) });
        return;
      case 'progress':
        if (typeof l.name === 'string' && typeof l.bytes === 'number' && typeof l.size === 'number') this.emit('progress', { name: l.name, bytes: l.bytes, size: l.size });
        return;
    }
  }

  async join(o?: Op) {
    return { timeline: field<JoinTimeline>(await this.proc.command({ cmd: 'join' }, ['joined'], o), 'timeline', 'join') };
  }
  async search(name: string, o?: Op) {
    return field<SearchResult>(await this.proc.command({ cmd: 'search', name }, ['searched'], o), 'result', 'search');
  }
  async download(name: string, o?: Op) {
    return field<DownloadResult>(await this.proc.command({ cmd: 'download', name }, ['downloaded'], o), 'result', 'download');
  }
  async topo(o?: Op) {
    return field<TopoResult>(await this.proc.command({ cmd: 'topo' }, ['topo'], o), 'result', 'topo');
  }
  async status(o?: Op) {
    return field<PeerState>(await this.proc.command({ cmd: 'status' }, ['status'], o), 'state', 'status');
  }
  async files(o?: Op) {
    return field<{ name: string; size: number }[]>(await this.proc.command({ cmd: 'files' }, ['files'], o), 'files', 'files');
  }
  async leave(o?: Op) {
    await this.proc.command({ cmd: 'leave' }, ['left'], o);
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
  constructor(readonly proc: ControlProcess, readonly address: HostPort, readonly policy: Policy) {}
  get pid() {
    return this.proc.pid;
  }
  async status(o?: Op) {
    return field<RegistryEntry[]>(await this.proc.command({ cmd: 'status' }, ['status'], o), 'peers', 'metaserver status');
  }
  async dispose() {
    await this.proc.kill('SIGKILL');
  }
}

export class ProcessRunner implements Runner {
  readonly kind = 'process' as const;
  private readonly procs = new Set<ControlProcess>();
  private readonly unregister: () => void;

  constructor(private readonly o: RunnerOptions = {}) {
    for (const f of [PEER_MAIN, META_MAIN]) {
      if (!fs.existsSync(f)) throw new OpError('no-entry-point', `the process runner needs ${path.relative(REPO, f)}, which does not exist yet (use --runner inproc)`);
    }
    this.unregister = onCleanup(() => this.close());
  }

  private async spawnReady(script: string, args: string[], what: string): Promise<{ proc: ControlProcess; ready: Line }> {
    const proc = new ControlProcess(script, args, what);
    this.procs.add(proc);
    proc.once('exit', () => this.procs.delete(proc));
    try {
      const ready = await proc.waitEvent('ready', READY_TIMEOUT_MS);
      return { proc, ready };
    } catch (err) {
      await proc.kill();
      throw err;
    }
  }

  async startMetaserver(o: { policy: Policy }): Promise<MetaHandle> {
    // The `random` policy gets the same seed as under the in-process runners (RunnerOptions.metaSeed);
    // links are shaped on the peers' side only (as the in-process runner does).
    const args = ['--json', '--host', '127.0.0.1', '--port', '0', '--policy', o.policy];
    if (this.o.metaSeed !== undefined) args.push('--seed', String(this.o.metaSeed));
    const { proc, ready } = await this.spawnReady(META_MAIN, args, 'metaserver');
    const host = typeof ready.host === 'string' && ready.host !== '0.0.0.0' && ready.host !== '::' ? ready.host : '127.0.0.1';
    return new ProcMeta(proc, { host, port: Number(ready.port) }, o.policy);
  }

  async startPeer(spec: PeerSpec, meta: HostPort): Promise<PeerHandle> {
    const args = [
      '--json', '--id', spec.id, '--host', '127.0.0.1', '--port', '0', '--share', spec.share,
      '--meta', `${meta.host}:${meta.port}`, '--max-children', String(spec.maxChildren), ...shapeArgs(this.o),
    ];
    const { proc, ready } = await this.spawnReady(PEER_MAIN, args, `peer ${spec.id}`);
    const host = typeof ready.host === 'string' ? ready.host : '127.0.0.1';
    return new ProcPeer(proc, spec.id, spec.share, { host, port: Number(ready.port) });
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
