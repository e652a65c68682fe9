/**
 * Cleanup of everything a test, scenario or benchmark started: child
 * processes (by the pid we spawned, never by name), temporary folders, and
 * in-process resources (peers, metaservers, servers) registered as async
 * closers.
 *
 * `cleanupAll()` runs them all (closers first, then SIGKILL of any process
 * still alive, then folder removal). A last-resort synchronous pass on
 * process 'exit' kills tracked pids and removes tracked folders, so even an
 * uncaught exception leaves nothing behind. `installSignalHandlers()` makes
 * Ctrl-C and SIGTERM clean up and exit (130 / 143).
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const procs = new Map<number, ChildProcess>();
const dirs = new Set<string>();
const closers = new Set<() => Promise<void>>();

export function trackProcess(cp: ChildProcess): void {
  if (cp.pid === undefined) return;
  const pid = cp.pid;
  procs.set(pid, cp);
  cp.once('exit', () => procs.delete(pid));
}

export function isAlive(cp: ChildProcess): boolean {
  return cp.exitCode === null && cp.signalCode === null;
}

/** True while a process with this pid exists (signal 0 probe). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function trackDir(dir: string): void {
  dirs.add(dir);
}

export function untrackDir(dir: string): void {
  dirs.delete(dir);
}

/** A fresh temporary folder, removed by cleanupAll() or at exit. */
export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  trackDir(d);
  return d;
}

/** Removes a folder now and stops tracking it. */
export function removeDir(d: string): void {
  fs.rmSync(d, { recursive: true, force: true });
  untrackDir(d);
}

/** Registers an async closer; returns a function that unregisters it (true if it still was registered). */
export function onCleanup(fn: () => Promise<void>): () => boolean {
  closers.add(fn);
  return () => closers.delete(fn);
}

/**
 * Registers an async closer; returns a function that unregisters and runs it
 * (a no-op when cleanupAll() has run it already).
 */
export function registerCloser(fn: () => Promise<void>): () => Promise<void> {
  const unregister = onCleanup(fn);
  return async () => {
    if (!unregister()) return;
    await fn();
  };
}

/**
 * Kills one child we spawned, by its pid, and waits for its exit (a stopped
 * child is continued after any signal but SIGKILL, or it would wait). No process
 * groups: every program we start is a single node process that starts no
 * children of its own, so its pid is the whole of it. (zx's kill would fork
 * `ps` to walk a process tree on every call, for nothing; see testnet/driver.ts.)
 */
export async function killChild(cp: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 5000): Promise<void> {
  if (!isAlive(cp)) return;
  const exited = new Promise<void>((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    cp.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
  try {
    cp.kill(signal);
    // A stopped process (SIGSTOP, a paused node) acts on any signal but SIGKILL only once continued.
    if (signal !== 'SIGKILL') cp.kill('SIGCONT');
  } catch {
    /* already gone */
  }
  await exited;
}

let cleaning: Promise<void> | undefined;

export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    try {
      const fns = [...closers];
      closers.clear();
      await Promise.allSettled(fns.map((f) => withTimeout(f(), 10_000)));
      await Promise.allSettled([...procs.values()].map((cp) => killChild(cp)));
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
      dirs.clear();
    } finally {
      cleaning = undefined;
    }
  })();
  return cleaning;
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.then(
      () => (clearTimeout(t), resolve()),
      () => (clearTimeout(t), resolve()),
    );
  });
}

function syncCleanup(): void {
  for (const cp of procs.values()) {
    try {
      if (isAlive(cp)) cp.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const d of dirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

process.on('exit', syncCleanup);

let installed = false;

/** Ctrl-C / SIGTERM / SIGHUP: clean up, then exit 130 / 143 / 129. */
export function installSignalHandlers(onSignal?: (sig: NodeJS.Signals) => void): void {
  if (installed) return;
  installed = true;
  const codes: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const sig of Object.keys(codes) as NodeJS.Signals[]) {
    process.on(sig, () => {
      onSignal?.(sig);
      void cleanupAll().finally(() => process.exit(codes[sig]));
    });
  }
}
