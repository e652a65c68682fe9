/**
 * A benchmark fixture in its own Node process (run with tsx), driven by JSON
 * lines: the child prints {"event":"ready",...} once, then answers each
 * command line {"id":n,...} with {"id":n,"ok":true,...} or {"id":n,"ok":false,"error":"..."}.
 * Closing its stdin makes it stop and exit; cleanup kills it by pid otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { isAlive, killChild, tempDir, trackProcess } from '../../scenarios/lib/cleanup.ts';

export const REPO = path.resolve(import.meta.dirname, '..', '..');
export const FIXTURES = path.join(REPO, 'bench', 'fixtures');

export interface ChildReply {
  id: number;
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

export class Child {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: ChildReply) => void; reject: (e: Error) => void }>();
  private stderr = '';
  ready!: Record<string, unknown>;

  private constructor(readonly name: string, readonly proc: ChildProcess) {}

  /**
   * Starts `bench/fixtures/<script>` with `arg` as JSON argv[2]; resolves when
   * it printed ready. Runs the fixture compiled to one JS file (see bundle())
   * so the process holds the program only, not the TypeScript loader (which
   * alone adds ~40 MB of RSS); falls back to tsx when esbuild is unavailable.
   */
  static async start(name: string, script: string, arg: object, o: { nodeArgs?: string[]; timeoutMs?: number } = {}): Promise<Child> {
    const js = await bundle(script);
    const entry = js ? [js] : ['--import', 'tsx', path.join(FIXTURES, script)];
    const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), ...entry, JSON.stringify(arg)], {
      cwd: REPO,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    trackProcess(proc);
    const c = new Child(name, proc);
    proc.stderr!.on('data', (b: Buffer) => {
      c.stderr = (c.stderr + b.toString()).slice(-4000);
    });
    const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name}: not ready within ${o.timeoutMs ?? 20_000} ms${c.stderrTail()}`)), o.timeoutMs ?? 20_000);
      const rl = readline.createInterface({ input: proc.stdout! });
      rl.on('line', (line) => {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line);
        } catch {
          return;
        }
        if (m.event === 'ready') {
          clearTimeout(t);
          resolve(m);
          return;
        }
        if (typeof m.id === 'number') {
          const p = c.pending.get(m.id);
          if (p) {
            c.pending.delete(m.id);
            p.resolve(m as ChildReply);
          }
        }
      });
      proc.once('exit', (code, sig) => {
        clearTimeout(t);
        const err = new Error(`${name} exited (${sig ?? code})${c.stderrTail()}`);
        reject(err);
        for (const p of c.pending.values()) p.reject(err);
        c.pending.clear();
      });
    });
    c.ready = await ready;
    return c;
  }

  private stderrTail(): string {
    const s = this.stderr.trim();
    return s ? `:\n${s.split('\n').slice(-12).join('\n')}` : '';
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** Sends a command and waits for its reply; rejects on ok:false, exit or timeout. */
  async call<T extends object = Record<string, unknown>>(cmd: object, timeoutMs = 120_000): Promise<T & ChildReply> {
    const id = this.nextId++;
    const reply = await new Promise<ChildReply>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: no answer to ${JSON.stringify(cmd).slice(0, 100)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (r) => (clearTimeout(t), resolve(r)),
        reject: (e) => (clearTimeout(t), reject(e)),
      });
      this.proc.stdin!.write(JSON.stringify({ ...cmd, id }) + '\n');
    });
    if (!reply.ok) throw new Error(`${this.name}: ${reply.error ?? 'failed'}`);
    return reply as T & ChildReply;
  }

  /** Ends stdin and waits for a clean exit; kills it (by pid) after `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<void> {
    if (!isAlive(this.proc)) return;
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.stdin!.end();
    const t = setTimeout(() => void killChild(this.proc), timeoutMs);
    await exited;
    clearTimeout(t);
  }
}

const bundles = new Map<string, Promise<string | null>>();

/** True when fixtures run as compiled JS (false: through tsx). */
export async function fixturesCompiled(): Promise<boolean> {
  return (await bundle('receiver.ts')) !== null;
}

/**
 * Compiles a fixture and what it imports (core, zod) into one ES module in a
 * temporary folder with esbuild (installed with tsx), once per run.
 */
function bundle(script: string): Promise<string | null> {
  let p = bundles.get(script);
  if (!p) {
    p = (async () => {
      let esbuild: typeof import('esbuild');
      try {
        esbuild = await import('esbuild');
      } catch {
        return null;
      }
      const out = path.join(tempDir('treeshare-bench-js-'), script.replace(/\.ts$/, '.mjs'));
      await esbuild.build({ entryPoints: [path.join(FIXTURES, script)], outfile: out, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'silent' });
      return out;
    })();
    bundles.set(script, p);
  }
  return p;
}
