/**
 * End-to-end test helper: runs the real entry points (core/control/*-main.ts)
 * as child processes, collects their output, and waits on what they print
 * (text matching a pattern, or JSON events), never on fixed sleeps. Every
 * process started through a Procs is killed by `Procs.close()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REPO = path.resolve(import.meta.dirname, '../..');
const MAIN = { peer: 'core/control/peer-main.ts', metaserver: 'core/control/metaserver-main.ts' } as const;

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
  private readonly all: Proc[] = [];
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-e2e-'));

  /** Copies the repository's shares/<id> to a temporary share folder and returns its path. */
  share(id: string, from: string | null = id): string {
    const d = path.join(this.dir, id);
    fs.mkdirSync(d, { recursive: true });
    if (from) fs.cpSync(path.join(REPO, 'shares', from), d, { recursive: true });
    return d;
  }

  start(kind: keyof typeof MAIN, args: string[]): Proc {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN[kind], ...args], {
      cwd: REPO,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TREESHARE_DEBUG: '', TREESHARE_KEY: undefined, NO_COLOR: '1' },
    });
    const listeners = new Set<() => void>();
    const poke = () => {
      for (const l of [...listeners]) l();
    };
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => {
        resolve({ code, signal });
        setImmediate(poke);
      }),
    );
    let exited = false;
    void exit.then(() => (exited = true));
    let partial = '';
    const p: Proc = {
      child,
      stdout: '',
      stderr: '',
      events: [],
      exit,
      waitOut: (re, timeoutMs = 30_000) => wait(() => p.stdout.match(re), `stdout matching ${re}`, timeoutMs),
      waitEvent: (match, timeoutMs = 30_000) => wait(() => p.events.find(match), 'a matching JSON event', timeoutMs),
      send(line) {
        child.stdin!.write((typeof line === 'string' ? line : JSON.stringify(line)) + '\n');
      },
    };
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      p.stdout += s;
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) {
        try {
          const o = JSON.parse(l);
          if (o && typeof o === 'object') p.events.push(o);
        } catch {
          /* a text line */
        }
      }
      poke();
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      p.stderr += s;
      poke();
    });
    child.stdin!.on('error', () => undefined);
    const wait = <T>(check: () => T | null | undefined, what: string, timeoutMs: number): Promise<NonNullable<T>> =>
      new Promise((resolve, reject) => {
        const done = () => {
          listeners.delete(test);
          clearTimeout(timer);
        };
        const test = () => {
          const v = check();
          if (v) {
            done();
            resolve(v as NonNullable<T>);
          } else if (exited) {
            done();
            reject(new Error(`${kind} exited before printing ${what}\nstdout: ${p.stdout}\nstderr: ${p.stderr}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(test);
          reject(new Error(`timed out waiting for ${what}\nstdout: ${p.stdout}\nstderr: ${p.stderr}`));
        }, timeoutMs);
        listeners.add(test);
        test();
      });
    this.all.push(p);
    return p;
  }

  /** A metaserver on 127.0.0.1:0; resolves with it and its port once it is listening. */
  async metaserver(json: boolean, args: string[] = []): Promise<{ proc: Proc; port: number }> {
    const proc = this.start('metaserver', ['--host', '127.0.0.1', '--port', '0', ...(json ? ['--json'] : []), ...args]);
    if (json) return { proc, port: (await proc.waitEvent((e) => e.event === 'ready')).port };
    const m = await proc.waitOut(/listening on 127\.0\.0\.1:(\d+)/);
    return { proc, port: Number(m[1]) };
  }

  /** Kills every process still running and removes the temporary folder. */
  async close(): Promise<void> {
    await Promise.all(
      this.all.map(async (p) => {
        if (p.child.exitCode === null && p.child.signalCode === null) {
          p.child.kill('SIGKILL');
          await p.exit;
        }
      }),
    );
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
