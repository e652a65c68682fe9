/**
 * Shared test helpers: a metaserver and peers on ephemeral ports with share
 * folders copied into a temporary directory, all torn down by `close()`.
 * Waiting is event-based (`until`), never fixed sleeps.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Metaserver, Peer, type MetaserverOptions, type PeerOptions, type Transport } from '../core/index.ts';

export const REPO = path.resolve(import.meta.dirname, '..');

export function tmpDir(prefix = 'treeshare-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Cluster {
  meta: Metaserver;
  peers: Peer[];
  dir: string;
  transport?: Transport;
  /** Starts and joins one more peer (share folder created empty unless `from` names a repo share). */
  add(id: string, o?: Partial<PeerOptions> & { from?: string }): Promise<Peer>;
  peer(id: string): Peer;
  close(): Promise<void>;
}

export interface ClusterOptions {
  meta?: MetaserverOptions;
  peer?: Partial<PeerOptions>;
  transport?: Transport;
}

/** A metaserver on 127.0.0.1:0 and no peers yet. */
export async function cluster(o: ClusterOptions = {}): Promise<Cluster> {
  const dir = tmpDir();
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, transport: o.transport, ...o.meta });
  const ma = await meta.start();
  const peers: Peer[] = [];
  const c: Cluster = {
    meta,
    peers,
    dir,
    transport: o.transport,
    async add(id, po = {}) {
      const share = path.join(dir, id);
      fs.mkdirSync(share, { recursive: true });
      if (po.from) fs.cpSync(path.join(REPO, 'shares', po.from), share, { recursive: true });
      const { from: _f, ...rest } = po;
      const p = new Peer({ id, host: '127.0.0.1', port: 0, share, meta: { host: '127.0.0.1', port: ma.port }, transport: o.transport, ...o.peer, ...rest });
      peers.push(p);
      await p.start();
      await p.join();
      return p;
    },
    peer(id) {
      const p = peers.find((x) => x.id === id);
      if (!p) throw new Error(`no peer ${id}`);
      return p;
    },
    async close() {
      await Promise.allSettled(peers.map((p) => p.stop()));
      await meta.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return c;
}

/** The demo: S1..S5 with the repository's shares, joined in order. */
export async function demoCluster(o: ClusterOptions = {}): Promise<Cluster> {
  const c = await cluster(o);
  try {
    for (let i = 1; i <= 5; i++) await c.add(`S${i}`, { from: `S${i}` });
  } catch (err) {
    await c.close();
    throw err;
  }
  return c;
}

/** Resolves when `check()` is truthy, re-checking on every event of `emitters` and every `pollMs` as a fallback; rejects after `timeoutMs`. */
export async function until<T>(check: () => T | Promise<T>, o: { timeoutMs?: number; what?: string; pollMs?: number } = {}): Promise<NonNullable<T>> {
  const deadline = performance.now() + (o.timeoutMs ?? 15_000);
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${o.what ?? 'condition'}`);
    await new Promise((r) => setTimeout(r, o.pollMs ?? 20));
  }
}

/** Resolves with the first `event` on `emitter` whose arguments satisfy `pred`; rejects after `timeoutMs`. */
export function nextEvent<A extends unknown[]>(emitter: { on(e: string, f: (...a: A) => void): unknown; off(e: string, f: (...a: A) => void): unknown }, event: string, pred: (...a: A) => boolean = () => true, timeoutMs = 15_000): Promise<A> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, f);
      reject(new Error(`timed out waiting for event ${event}`));
    }, timeoutMs);
    const f = (...a: A) => {
      if (!pred(...a)) return;
      clearTimeout(t);
      emitter.off(event, f);
      resolve(a);
    };
    emitter.on(event, f);
  });
}

import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';

export interface ProcPeer {
  proc: ChildProcess;
  /** Every JSON line printed so far. */
  lines: Record<string, unknown>[];
  /** Next line (after those already seen by this call) whose event is `event`. */
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  send(cmd: object): void;
  kill(sig?: NodeJS.Signals): void;
}

const procs = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of procs) p.kill('SIGKILL');
});

/** Spawns test/fixtures/peer-proc.ts with `opts`; resolves once it printed `ready`. Killed at process exit if still alive. */
export async function spawnPeer(opts: object): Promise<ProcPeer> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'test/fixtures/peer-proc.ts'), JSON.stringify(opts)], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] });
  procs.add(proc);
  proc.on('exit', () => procs.delete(proc));
  const lines: Record<string, unknown>[] = [];
  const waiters: { event: string; from: number; resolve: (l: Record<string, unknown>) => void }[] = [];
  const cursor = new Map<string, number>();
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(l);
    } catch {
      return;
    }
    lines.push(o);
    for (const w of [...waiters]) {
      if (o.event === w.event && lines.length - 1 >= w.from) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(o);
      }
    }
  });
  const pp: ProcPeer = {
    proc,
    lines,
    next(event, timeoutMs = 30_000) {
      const from = cursor.get(event) ?? 0;
      const idx = lines.findIndex((l, i) => i >= from && l.event === event);
      if (idx >= 0) {
        cursor.set(event, idx + 1);
        return Promise.resolve(lines[idx]!);
      }
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          proc.off('exit', onExit);
          reject(new Error(`peer process: no ${event} within ${timeoutMs} ms`));
        }, timeoutMs);
        const onExit = () => {
          clearTimeout(t);
          reject(new Error(`peer process exited before ${event}`));
        };
        proc.once('exit', onExit);
        waiters.push({
          event,
          from: lines.length,
          resolve: (l) => {
            clearTimeout(t);
            proc.off('exit', onExit);
            cursor.set(event, lines.indexOf(l) + 1);
            resolve(l);
          },
        });
      });
    },
    send(cmd) {
      proc.stdin!.write(JSON.stringify(cmd) + '\n');
    },
    kill(sig = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    },
  };
  await pp.next('ready');
  return pp;
}
