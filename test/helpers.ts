/**
 * Shared test helpers: a metaserver and peers on ephemeral ports with share
 * folders copied into a temporary directory, all torn down by `close()`.
 * Waiting is event-based (`until`), never fixed sleeps.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LineProcess } from '../testnet/driver.ts';
import { START_TIMEOUT_MS } from './e2e/proc.ts';
import { createTestnet, type Testnet, type TestnetOptions } from '../testnet/testnet.ts';

export const REPO = path.resolve(import.meta.dirname, '..');

export function tmpDir(prefix = 'treeshare-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Tests build overlays with testnet's createTestnet; these names stay for the many tests that use them. */
export type Cluster = Testnet;
export type ClusterOptions = TestnetOptions;

/** A metaserver on 127.0.0.1:0 and no peers yet. */
export function cluster(o: ClusterOptions = {}): Promise<Cluster> {
  return createTestnet({ prefix: 'treeshare-test-', ...o });
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

export interface ProcPeer {
  proc: ChildProcess;
  /** Every JSON line printed so far. */
  lines: Record<string, unknown>[];
  /** Next line (after those already returned by this call for `event`) whose event is `event`. */
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  send(cmd: object): void;
  kill(sig?: NodeJS.Signals): void;
}

/** Spawns test/fixtures/peer-proc.ts with `opts`; resolves once it printed `ready`. Killed at process exit if still alive. */
export async function spawnPeer(opts: object): Promise<ProcPeer> {
  const lp = new LineProcess(path.join(REPO, 'test/fixtures/peer-proc.ts'), [JSON.stringify(opts)], { what: 'peer process' });
  const lines: Record<string, unknown>[] = [];
  lp.on('json', (o) => lines.push(o));
  const cursor = new Map<string, number>();
  const pp: ProcPeer = {
    proc: lp.cp,
    lines,
    next(event, timeoutMs = 30_000) {
      const from = cursor.get(event) ?? 0;
      return lp.until(
        () => {
          const idx = lines.findIndex((l, i) => i >= from && l.event === event);
          if (idx < 0) return undefined;
          cursor.set(event, idx + 1);
          return lines[idx]!;
        },
        event,
        { timeoutMs },
      );
    },
    send: (cmd) => lp.send(cmd),
    kill(sig = 'SIGKILL') {
      if (lp.alive) lp.cp.kill(sig);
    },
  };
  await pp.next('ready', START_TIMEOUT_MS);
  return pp;
}
