/**
 * A benchmark fixture in its own Node process (run with tsx), driven by JSON
 * lines: the child prints {"event":"ready",...} once, then answers each
 * command line {"id":n,...} with {"id":n,"ok":true,...} or {"id":n,"ok":false,"error":"..."}.
 * Closing its stdin makes it stop and exit; cleanup kills it by pid otherwise.
 */
import path from 'node:path';
import { tempDir } from '../../testnet/cleanup.ts';
import { LineProcess, REPO } from '../../testnet/driver.ts';

export { REPO };
export const FIXTURES = path.join(REPO, 'bench', 'fixtures');

export interface ChildReply {
  id: number;
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

/** A fixture's reply line: {"id": n, "ok": bool, ...}. */
function asReply(v: Record<string, unknown>): ChildReply | undefined {
  if (typeof v.id !== 'number' || typeof v.ok !== 'boolean') return undefined;
  return { ...v, id: v.id, ok: v.ok, ...(typeof v.error === 'string' ? { error: v.error } : {}) };
}

export class Child {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: ChildReply) => void; reject: (e: Error) => void }>();
  ready!: Record<string, unknown>;

  private constructor(
    readonly name: string,
    readonly proc: LineProcess,
  ) {
    proc.on('json', (v) => {
      const r = asReply(v);
      const p = r && this.pending.get(r.id);
      if (r && p) {
        this.pending.delete(r.id);
        p.resolve(r);
      }
    });
    proc.on('exit', () => {
      const err = new Error(`${name} ${proc.exitReason()}${proc.diagnostics()}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  /**
   * Starts `bench/fixtures/<script>` with `arg` as JSON argv[2]; resolves when
   * it printed ready. Runs the fixture compiled to one JS file (see bundle())
   * so the process holds the program only, not the TypeScript loader (which
   * alone adds ~40 MB of RSS); falls back to tsx when esbuild is unavailable.
   */
  static async start(name: string, script: string, arg: object, o: { nodeArgs?: string[]; timeoutMs?: number } = {}): Promise<Child> {
    const program = (await bundle(script)) ?? path.join(FIXTURES, script);
    const proc = new LineProcess(program, [JSON.stringify(arg)], { what: name, nodeArgs: o.nodeArgs });
    const c = new Child(name, proc);
    try {
      c.ready = await proc.waitFor((l) => readyLine(l), 'ready', { timeoutMs: o.timeoutMs ?? 20_000 });
    } catch (err) {
      await proc.kill();
      throw err;
    }
    return c;
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
      this.proc.send({ ...cmd, id });
    });
    if (!reply.ok) throw new Error(`${this.name}: ${reply.error ?? 'failed'}`);
    // The fixture's reply to this command carries the fields the caller names in T.
    return reply as T & ChildReply;
  }

  /** Ends stdin and waits for a clean exit; kills it (by pid) after `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<void> {
    await this.proc.close(timeoutMs);
  }
}

/** The fixture's first line, {"event":"ready", ...}. */
function readyLine(l: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(l);
    return v && typeof v === 'object' && (v as { event?: unknown }).event === 'ready' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
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
