/**
 * Process plumbing shared by both entry points: one line on stderr for any
 * failure (never a stack trace, unless TREESHARE_DEBUG=1), exit statuses
 * (2 for a command-line mistake, 1 for anything else), a quiet exit when
 * whoever reads stdout goes away, and graceful shutdown on SIGINT/SIGTERM
 * (a second signal exits at once).
 */
import { describeError, errorCode } from '../errors.ts';
import { UsageError } from './args.ts';
import type { ControlEvent } from './schema.ts';
import { guardStdout } from '../stdout.ts';

let jsonEvents = false;
let commandName = 'treeshare';

/** In control mode a fatal error is also reported as an `error` event on stdout. */
export function setJsonMode(on: boolean): void {
  jsonEvents = on;
}

/** Writes one event of the control protocol (core/control/schema.ts) as a JSON line on stdout. */
export function emit<E extends ControlEvent>(o: E): void {
  try {
    process.stdout.write(JSON.stringify(o) + '\n');
  } catch {
    /* stdout gone: nothing to tell anyone */
  }
}

/** One line on stderr (and an error event in control mode), then exit. */
export function die(err: unknown): never {
  const usage = err instanceof UsageError;
  const line = usage ? `${err.message} (see --help)` : describeError(err);
  if (jsonEvents) emit<ControlEvent>({ event: 'error', code: errorCode(err), message: line, fatal: true });
  process.stderr.write(`${commandName}: ${line}\n`);
  if (process.env.TREESHARE_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exit(usage ? 2 : 1);
}

/** Runs `main` with every failure path reduced to one line. */
export function runMain(name: string, main: () => Promise<void>): void {
  commandName = name;
  process.on('uncaughtException', (err) => die(err));
  process.on('unhandledRejection', (err) => die(err));
  guardStdout((err) => die(err));
  main().catch(die);
}

/**
 * Calls `shutdown` on the first SIGINT/SIGTERM/SIGHUP (it should leave
 * gracefully and exit); a second signal exits at once with 130.
 */
export function onSignals(shutdown: (signal: string) => void): () => void {
  let seen = false;
  const handler = (signal: NodeJS.Signals) => {
    if (seen) process.exit(130);
    seen = true;
    shutdown(signal);
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, handler);
  return () => handler('SIGINT');
}

/** Resolves with `p`, or rejects after `ms` (used to bound a graceful leave). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    t.unref?.();
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
