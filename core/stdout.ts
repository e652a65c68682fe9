/**
 * Leaving a process without losing what it printed. On Linux a write to a
 * pipe is asynchronous: what the pipe (64 KiB) cannot take at once waits in
 * the process, and process.exit() drops it (a `--json` result cut at 64 KiB
 * for `| jq`). Every command that may exit explicitly exits through
 * exitAfterOutput(), and one guard makes a reader that goes away early
 * (`| head`: EPIPE) end the process quietly instead of with a stack trace.
 */

let guarded = false;

/**
 * Installs (once) the handler for errors on stdout: EPIPE (the reader closed) exits 0 at once, with
 * nothing on stderr (the output is nobody's any more); any other error goes to `other`.
 */
export function guardStdout(other: (err: Error) => void = (err) => {
  process.stderr.write(`stdout: ${err.message}\n`);
  process.exit(1);
}): void {
  if (guarded) return;
  guarded = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    other(err);
  });
}

/** Resolves once everything written to `s` so far has been handed to the OS (at once if `s` is gone). */
function flushed(s: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed || !s.writable) return resolve();
    // Write callbacks run in order, so this one runs after every earlier write has been flushed (or failed).
    s.write('', () => resolve());
  });
}

/**
 * Exits with `code` once stdout and stderr have delivered everything written to them; a reader that
 * never reads keeps the process waiting, as it would any other program writing to it.
 */
export async function exitAfterOutput(code: number): Promise<never> {
  guardStdout();
  process.exitCode = code;
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}
