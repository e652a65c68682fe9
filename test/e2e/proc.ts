/**
 * End-to-end test helper: runs the real entry points (core/bin/*-main.ts)
 * as child processes through the one driver (testnet/driver.ts), collects
 * their output, and waits on what they print
 * (text matching a pattern, or JSON events), never on fixed sleeps. Every
 * process started through a Procs is killed by `Procs.close()`.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LineProcess, REPO } from '../../testnet/driver.ts';
import { copyDemoShare } from '../../testnet/demo-shares.ts';

export { REPO };
/**
 * How long a process may take to print its first line. Starting node + tsx costs seconds of CPU;
 * with several tests starting processes at once on a loaded 2-core machine it took over 30 s.
 */
export const START_TIMEOUT_MS = 90_000;
const MAIN = { peer: 'core/bin/peer-main.ts', metaserver: 'core/bin/metaserver-main.ts' } as const;

export type Json = Record<string, any>;

export interface Proc {
  child: ChildProcess;
  /** Everything printed so far. */
  stdout: string;
  stderr: string;
  /** stdout lines that parsed as JSON objects, in order. */
  events: Json[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when stdout matches `re` (returns the match). */
  waitOut(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the first JSON event (seen so far or later) for which `match` is true. */
  waitEvent(match: (e: Json) => boolean, timeoutMs?: number): Promise<Json>;
  send(line: string | object): void;
}

export class Procs {
  private readonly procs: LineProcess[] = [];
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-e2e-'));

  /** Copies the repository's shares/<id> to a temporary share folder and returns its path. */
  share(id: string, from: string | null = id): string {
    const d = path.join(this.dir, id);
    fs.mkdirSync(d, { recursive: true });
    if (from) copyDemoShare(from, d);
    return d;
  }

  start(kind: keyof typeof MAIN, args: string[]): Proc {
    const lp = new LineProcess(path.join(REPO, MAIN[kind]), args, {
      what: kind,
      keepOutput: true,
      // XDG_STATE_HOME: a metaserver keeps its token key in this run's folder, not the user's.
      env: { ...process.env, TREESHARE_DEBUG: '', TREESHARE_KEY: undefined, NO_COLOR: '1', XDG_STATE_HOME: this.dir },
    });
    const events: Json[] = [];
    lp.on('json', (o) => events.push(o));
    const wait = <T>(check: () => T | null | undefined, what: string, timeoutMs: number): Promise<NonNullable<T>> =>
      lp.until(() => check() ?? undefined, what, { timeoutMs }).catch((err: Error) => {
        throw new Error(`${err.message}\nstdout: ${lp.stdout}\nstderr: ${lp.stderr}`);
      });
    const p: Proc = {
      child: lp.cp,
      get stdout() {
        return lp.stdout;
      },
      get stderr() {
        return lp.stderr;
      },
      events,
      exit: lp.exit.then((e) => ({ code: e.code, signal: e.signal as NodeJS.Signals | null })),
      waitOut: (re, timeoutMs = 30_000) => wait(() => lp.stdout.match(re), `stdout matching ${re}`, timeoutMs),
      waitEvent: (match, timeoutMs = 30_000) => wait(() => events.find(match), 'a matching JSON event', timeoutMs),
      // Like a write to a closed pipe: a line sent after the process ended goes nowhere (tests then see its exit).
      send: (line) => {
        if (lp.alive) lp.send(line);
      },
    };
    this.procs.push(lp);
    return p;
  }

  /** A metaserver on 127.0.0.1:0; resolves with it and its port once it is listening. */
  async metaserver(json: boolean, args: string[] = []): Promise<{ proc: Proc; port: number }> {
    const proc = this.start('metaserver', ['--host', '127.0.0.1', '--port', '0', ...(json ? ['--json'] : []), ...args]);
    if (json) return { proc, port: (await proc.waitEvent((e) => e.event === 'ready', START_TIMEOUT_MS)).port };
    const m = await proc.waitOut(/listening on 127\.0\.0\.1:(\d+)/, START_TIMEOUT_MS);
    return { proc, port: Number(m[1]) };
  }

  /** A peer in control mode (--json) sharing a copy of shares/<id>, auto-joined through the metaserver on `metaPort`; resolves once joined. */
  async joinedPeer(id: string, metaPort: number): Promise<Proc> {
    const p = this.start('peer', ['--json', '-p0', '-i', id, '--share', this.share(id), '--meta', `127.0.0.1:${metaPort}`, '--auto-join']);
    await p.waitEvent((e) => e.event === 'joined', START_TIMEOUT_MS);
    return p;
  }

  /** Kills every process still running (by pid) and removes the temporary folder. */
  async close(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.kill()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A port that was free a moment ago (for "nothing listens there"). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A port held by a plain TCP server until `close()`. */
export async function busyPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => s.close(() => r())) };
}
