/**
 * The one child-process driver of tests, scenarios and benchmarks: starts a
 * Node program (TypeScript through tsx, or a compiled .mjs), reads its stdout
 * as JSON lines and its stderr as text, writes JSON lines to its stdin, and
 * waits on what it prints (never on fixed sleeps). Every process is tracked
 * by testnet/cleanup.ts and stopped by its pid only.
 *
 * Protocols sit on top: ControlProcess (testnet/control.ts) speaks the
 * `--json` control protocol of the peer and metaserver, validated with
 * core/control/schema.ts; bench/lib/child.ts speaks the benchmark fixtures'
 * `{id, ok}` replies.
 *
 * Why node:child_process and not zx here: zx always starts a command through
 * a shell, so the pid it holds is the shell's, not the program's. The process
 * runner must SIGKILL the peer itself (crash scenarios) and read the peer's
 * own RSS from /proc/<pid>; a shell in between breaks both. zx's kill() also
 * forks `ps` to walk the process tree on every call, which is slow with a
 * hundred peers on a busy machine, and our programs start no children of
 * their own. zx is built for commands that run to an end; runScript() below,
 * which is exactly that, uses it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import type { Duplex } from 'node:stream';
import { isAlive, killChild, trackProcess } from './cleanup.ts';

export const REPO = path.resolve(import.meta.dirname, '..');

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export class DriverError extends Error {
  constructor(
    /** `timeout`, `exited` or `aborted`. */
    readonly code: 'timeout' | 'exited' | 'aborted',
    message: string,
  ) {
    super(message);
    this.name = 'DriverError';
  }
}

export interface StartOptions {
  /** Shown in error messages, e.g. `peer S1`. */
  what: string;
  /** Arguments to node before the program (e.g. --max-old-space-size). */
  nodeArgs?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Keep everything printed in `stdout` / `stderr` (for tests that match text). Default false: only a tail. */
  keepOutput?: boolean;
  /** A fourth pipe, fd 3 of the child (the process runner's fault side channel, testnet/fault-channel.ts); `side` holds our end. */
  sideChannel?: boolean;
}

interface ProcessEvents {
  /** One stdout line that parsed as a JSON object. */
  json: [Record<string, unknown>];
  /** Any stdout line (JSON or not), after the 'json' listeners ran. */
  line: [string];
  /** Some output arrived on stdout or stderr (only with keepOutput). */
  output: [];
  exit: [ExitInfo];
}

/** argv for a TypeScript program run through tsx, or a compiled .mjs/.js as is. */
export function programArgs(program: string, args: readonly string[]): string[] {
  return /\.[mc]?js$/.test(program) ? [program, ...args] : ['--import', 'tsx', program, ...args];
}

export class LineProcess extends EventEmitter<ProcessEvents> {
  readonly cp: ChildProcess;
  readonly what: string;
  exitInfo: ExitInfo | null = null;
  /** Everything printed, as it arrived (with keepOutput), else ''. */
  stdout = '';
  stderr = '';
  private readonly keep: boolean;
  private readonly stderrTail: string[] = [];
  private readonly junk: string[] = [];
  readonly exit: Promise<ExitInfo>;

  constructor(program: string, args: readonly string[], o: StartOptions) {
    super();
    this.what = o.what;
    this.keep = o.keepOutput ?? false;
    this.cp = spawn(process.execPath, [...(o.nodeArgs ?? []), ...programArgs(program, args)], {
      cwd: REPO,
      stdio: o.sideChannel ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
      ...(o.env ? { env: o.env } : {}),
    });
    trackProcess(this.cp);
    this.exit = new Promise((resolve) => this.once('exit', resolve));
    this.cp.stdin!.on('error', () => {
      /* the process died; waiters are rejected on exit */
    });
    this.cp.stdout!.setEncoding('utf8');
    if (this.keep) {
      this.cp.stdout!.on('data', (s: string) => {
        this.stdout += s;
        this.emit('output');
      });
    }
    readline.createInterface({ input: this.cp.stdout! }).on('line', (l) => this.onLine(l));
    this.cp.stderr!.setEncoding('utf8').on('data', (s: string) => {
      if (this.keep) {
        this.stderr += s;
        this.emit('output');
      }
      for (const l of s.split('\n')) if (l) this.stderrTail.push(l);
      if (this.stderrTail.length > 20) this.stderrTail.splice(0, this.stderrTail.length - 20);
    });
    this.cp.on('error', (err) => this.onExit(null, null, err.message));
    // 'close' (not 'exit'): every line of stdout has been read by then.
    this.cp.on('close', (code, signal) => this.onExit(code, signal));
  }

  get pid(): number | null {
    return this.cp.pid ?? null;
  }

  /** Our end of fd 3 (StartOptions.sideChannel), else null. */
  get side(): Duplex | null {
    return (this.cp.stdio[3] as Duplex | null | undefined) ?? null;
  }

  get alive(): boolean {
    return this.exitInfo === null && isAlive(this.cp);
  }

  /** Last lines of stderr and of non-JSON stdout, for error messages. */
  diagnostics(): string {
    const tail = [...this.junk.slice(-5), ...this.stderrTail.slice(-5)].join(' | ');
    return tail ? ` (${this.what} said: ${tail.slice(0, 600)})` : '';
  }

  /** Keeps a line for diagnostics (the protocol layer calls it for lines it rejects). */
  noteJunk(line: string): void {
    this.junk.push(line);
    if (this.junk.length > 20) this.junk.shift();
  }

  private onLine(raw: string): void {
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      v = undefined;
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) this.emit('json', v as Record<string, unknown>);
    else this.noteJunk(raw);
    this.emit('line', raw);
  }

  private onExit(code: number | null, signal: string | null, err?: string): void {
    if (this.exitInfo) return;
    this.exitInfo = { code, signal };
    if (err) this.stderrTail.push(err);
    this.emit('exit', this.exitInfo);
  }

  /** Why the process is gone, for error messages. */
  exitReason(): string {
    const e = this.exitInfo;
    if (!e) return 'is running';
    return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
  }

  /** Writes one line (an object is sent as JSON). */
  send(line: string | object): void {
    if (!this.alive) throw new DriverError('exited', `${this.what} ${this.exitReason()}${this.diagnostics()}`);
    this.cp.stdin!.write((typeof line === 'string' ? line : JSON.stringify(line)) + '\n');
  }

  /**
   * Resolves with the first value `match` returns (not undefined) for a stdout
   * line that arrives from now on; rejects on exit, timeout or abort.
   */
  waitFor<T>(match: (line: string) => T | undefined, what: string, o: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.alive) return reject(new DriverError('exited', `${this.what} ${this.exitReason()} before ${what}${this.diagnostics()}`));
      const ms = o.timeoutMs ?? 30_000;
      const done = () => {
        clearTimeout(t);
        this.off('line', onLine);
        this.off('exit', onExit);
        o.signal?.removeEventListener('abort', onAbort);
      };
      const t = setTimeout(() => (done(), reject(new DriverError('timeout', `${this.what}: no ${what} within ${ms} ms${this.diagnostics()}`))), ms);
      const onLine = (l: string) => {
        const v = match(l);
        if (v !== undefined) {
          done();
          resolve(v);
        }
      };
      const onExit = () => (done(), reject(new DriverError('exited', `${this.what} ${this.exitReason()} before ${what}${this.diagnostics()}`)));
      const onAbort = () => (done(), reject(new DriverError('aborted', `${this.what}: waiting for ${what} aborted`)));
      this.on('line', onLine);
      this.on('exit', onExit);
      o.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Resolves with what `check` returns once it is not undefined: checked now,
   * after every stdout line and every output chunk, and once more at exit
   * (then it rejects). For waiting on state the caller keeps (events seen so
   * far, all output) rather than on one new line.
   */
  until<T>(check: () => T | undefined, what: string, o: { timeoutMs?: number } = {}): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const ms = o.timeoutMs ?? 30_000;
      const done = () => {
        clearTimeout(t);
        this.off('line', test);
        this.off('output', test);
        this.off('exit', onExit);
      };
      const test = () => {
        const v = check();
        if (v !== undefined) {
          done();
          resolve(v);
        }
      };
      const t = setTimeout(() => (done(), reject(new DriverError('timeout', `${this.what}: no ${what} within ${ms} ms${this.diagnostics()}`))), ms);
      const onExit = () => {
        test();
        done();
        reject(new DriverError('exited', `${this.what} ${this.exitReason()} before ${what}${this.diagnostics()}`));
      };
      this.on('line', test);
      this.on('output', test);
      this.on('exit', onExit);
      if (!this.alive && this.exitInfo) onExit();
    });
  }

  /** Resolves when the process has exited (rejects after timeoutMs). */
  exited(timeoutMs = 10_000): Promise<ExitInfo> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new DriverError('timeout', `${this.what} did not exit within ${timeoutMs} ms`)), timeoutMs);
      this.once('exit', (e) => {
        clearTimeout(t);
        resolve(e);
      });
    });
  }

  /** Sends `signal` to this process (by its pid) and waits for it to exit. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return killChild(this.cp, signal);
  }

  /** Ends stdin (the programs take that as "finish and exit") and waits; kills it by pid after `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<ExitInfo | null> {
    if (this.alive) {
      this.cp.stdin!.end();
      const t = setTimeout(() => void this.kill(), timeoutMs);
      await this.exit;
      clearTimeout(t);
    }
    return this.exitInfo;
  }
}

/**
 * Runs a TypeScript program to its end and collects its output (zx: a
 * command that finishes is what it is for; `nothrow` because a non-zero exit
 * is a result the caller checks). `signal` kills it.
 */
export async function runScript(program: string, args: readonly string[], o: { signal?: AbortSignal } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { $ } = await import('zx');
  const ac = new AbortController();
  // The signal may have fired while zx was loading (the await above): a listener added now would never run.
  if (o.signal?.aborted) ac.abort();
  else o.signal?.addEventListener('abort', () => ac.abort(), { once: true });
  const r = await $({ cwd: REPO, nothrow: true, quiet: true, ac, stdio: ['ignore', 'pipe', 'pipe'] })`${process.execPath} ${programArgs(program, args)}`;
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}
