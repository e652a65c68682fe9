/**
 * Client side of the JSON-lines control protocol (README, "Control protocol
 * (`--json`)"): spawns one node process, reads its stdout as JSON lines,
 * sends commands with an `id` and resolves each with the result event that
 * echoes the id (or rejects with the `error` event's code). Unprompted events
 * are re-emitted as 'event'. Anything that is not JSON on stdout, and the
 * tail of stderr, is kept for error messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import readline from 'node:readline';
import { isAlive, killChild, trackProcess } from './cleanup.ts';
import { OpError, type Op } from './runner.ts';
import { REPO } from './shares.ts';

export type Line = Record<string, unknown> & { event?: string; id?: string | number };

interface Pending {
  expect: readonly string[];
  resolve: (l: Line) => void;
  reject: (e: Error) => void;
}

export interface ControlEvents {
  event: [Line];
  exit: [{ code: number | null; signal: string | null }];
}

export class ControlProcess extends EventEmitter<ControlEvents> {
  readonly cp: ChildProcess;
  readonly what: string;
  private pending = new Map<string, Pending>();
  private seq = 0;
  private stderrTail: string[] = [];
  private junk: string[] = [];
  exitInfo: { code: number | null; signal: string | null } | null = null;

  constructor(script: string, args: readonly string[], what: string) {
    super();
    this.what = what;
    this.cp = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    trackProcess(this.cp);
    this.cp.stdin!.on('error', () => {
      /* the process died; pending commands are rejected on exit */
    });
    readline.createInterface({ input: this.cp.stdout! }).on('line', (l) => this.onLine(l));
    readline.createInterface({ input: this.cp.stderr! }).on('line', (l) => {
      this.stderrTail.push(l);
      if (this.stderrTail.length > 20) this.stderrTail.shift();
    });
    this.cp.on('error', (err) => this.onExit(null, null, err.message));
    this.cp.on('exit', (code, signal) => this.onExit(code, signal));
  }

  get pid(): number | null {
    return this.cp.pid ?? null;
  }

  get alive(): boolean {
    return this.exitInfo === null && isAlive(this.cp);
  }

  /** Last lines of stderr and non-JSON stdout, for error messages. */
  diagnostics(): string {
    const tail = [...this.junk.slice(-5), ...this.stderrTail.slice(-5)].join(' | ');
    return tail ? ` (${this.what} said: ${tail.slice(0, 600)})` : '';
  }

  private onLine(raw: string): void {
    let l: Line;
    try {
      const v = JSON.parse(raw) as unknown;
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      l = v as Line;
    } catch {
      this.junk.push(raw);
      if (this.junk.length > 20) this.junk.shift();
      return;
    }
    const id = l.id === undefined ? undefined : String(l.id);
    const p = id === undefined ? undefined : this.pending.get(id);
    if (p && l.event === 'error') {
      this.pending.delete(id!);
      p.reject(new OpError(typeof l.code === 'string' ? l.code : 'error', typeof l.message === 'string' ? l.message : JSON.stringify(l)));
      return;
    }
    if (p && typeof l.event === 'string' && p.expect.includes(l.event)) {
      this.pending.delete(id!);
      p.resolve(l);
      return;
    }
    this.emit('event', l);
  }

  private onExit(code: number | null, signal: string | null, err?: string): void {
    if (this.exitInfo) return;
    this.exitInfo = { code, signal };
    const why = err ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
    for (const p of this.pending.values()) p.reject(new OpError('exited', `${this.what} ${why}${this.diagnostics()}`));
    this.pending.clear();
    this.emit('exit', this.exitInfo);
  }

  /** Sends `cmd` with a fresh id; resolves with the first event in `expect` echoing it. */
  command(cmd: Record<string, unknown>, expect: readonly string[], o: Op = {}): Promise<Line> {
    if (!this.alive) return Promise.reject(new OpError('exited', `${this.what} is not running`));
    const id = `h${++this.seq}`;
    return new Promise<Line>((resolve, reject) => {
      const ms = o.timeoutMs ?? 30_000;
      const cleanup = () => {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
      };
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new OpError('timeout', `${this.what}: no answer to ${String(cmd.cmd)} within ${ms} ms${this.diagnostics()}`));
      }, ms);
      const onAbort = () => {
        cleanup();
        this.pending.delete(id);
        reject(new OpError('aborted', `${this.what}: ${String(cmd.cmd)} aborted`));
      };
      o.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        expect,
        resolve: (l) => (cleanup(), resolve(l)),
        reject: (e) => (cleanup(), reject(e)),
      });
      this.cp.stdin!.write(JSON.stringify({ ...cmd, id }) + '\n');
    });
  }

  /** The next unprompted event named `name` (matching `pred`), or rejects on exit/timeout. */
  waitEvent(name: string, timeoutMs: number, pred: (l: Line) => boolean = () => true): Promise<Line> {
    return new Promise((resolve, reject) => {
      if (!this.alive) return reject(new OpError('exited', `${this.what} exited before ${name}${this.diagnostics()}`));
      const done = () => {
        clearTimeout(t);
        this.off('event', onEvent);
        this.off('exit', onExit);
      };
      const t = setTimeout(() => {
        done();
        reject(new OpError('timeout', `${this.what}: no ${name} within ${timeoutMs} ms${this.diagnostics()}`));
      }, timeoutMs);
      const onEvent = (l: Line) => {
        if (l.event === name && pred(l)) {
          done();
          resolve(l);
        }
      };
      const onExit = () => {
        done();
        reject(new OpError('exited', `${this.what} exited before ${name}${this.diagnostics()}`));
      };
      this.on('event', onEvent);
      this.on('exit', onExit);
    });
  }

  /** Resolves when the process has exited (rejects after timeoutMs). */
  exited(timeoutMs = 10_000): Promise<{ code: number | null; signal: string | null }> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new OpError('timeout', `${this.what} did not exit within ${timeoutMs} ms`)), timeoutMs);
      this.once('exit', (e) => {
        clearTimeout(t);
        resolve(e);
      });
    });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return killChild(this.cp, signal);
  }
}
