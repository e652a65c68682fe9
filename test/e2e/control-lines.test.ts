/**
 * Issue 22 defect 11: a control line of hundreds of MB without a newline,
 * fed through a pipe to a real process. The 64 KiB limit holds while the
 * line is buffered: the process answers one error, its memory stays bounded
 * (peak RSS from /proc, where there is one) and it answers the next command.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { Procs, type Proc } from './proc.ts';

const HUGE_BYTES = 256 * 1024 * 1024;

function procs(t: ExecutionContext): Procs {
  const p = new Procs();
  t.teardown(() => p.close());
  return p;
}

function drained(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
  });
}

/** Writes `bytes` of `{` without a newline into `w`, respecting backpressure. */
async function feedHugeLine(w: Writable, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(1024 * 1024, '{');
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!w.write(chunk)) await drained(w);
    if (w.destroyed) return;
  }
}

/** Peak resident memory of a process in bytes (Linux), or undefined. */
function peakRss(p: Proc): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p.child.pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Peak RSS grew by less than a quarter of the line (it grew by more than twice the line before the fix). */
function boundedGrowth(t: ExecutionContext, before: number | undefined, after: number | undefined): void {
  if (before === undefined || after === undefined) return t.log('no /proc here: memory not measured');
  t.true(after - before < HUGE_BYTES / 4, `peak RSS grew ${after - before} bytes`);
  t.log(`peak RSS ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB after a ${HUGE_BYTES / 2 ** 20} MiB line`);
}

test('metaserver --json: a 256 MiB line without newline gets one bad-command error, memory stays bounded, the next command is answered', async (t) => {
  const ps = procs(t);
  const { proc } = await ps.metaserver(true);
  const before = peakRss(proc);
  await feedHugeLine(proc.child.stdin!, HUGE_BYTES);
  proc.child.stdin!.write('\n{"cmd":"status","id":"after"}\n');
  const status = await proc.waitEvent((e) => e.event === 'status' && e.id === 'after', 120_000);
  t.deepEqual(status.peers, []);
  const errors = proc.events.filter((e) => e.event === 'error');
  t.is(errors.length, 1, JSON.stringify(errors));
  t.is(errors[0]!.code, 'bad-command');
  t.regex(errors[0]!.message, /longer than 65536 characters/);
  boundedGrowth(t, before, peakRss(proc));
  proc.child.stdin!.end();
  t.is((await proc.exit).code, 0, proc.stderr);
});

test('peer menu from a pipe: a 256 MiB line is ignored with one message and the next choice runs', async (t) => {
  const ps = procs(t);
  const s1 = ps.start('peer', ['-p0', '-i', 'S1', '--share', ps.share('S1'), '--meta', '127.0.0.1:9']);
  await s1.waitOut(/h {2}help\n/);
  const before = peakRss(s1);
  await feedHugeLine(s1.child.stdin!, HUGE_BYTES);
  s1.child.stdin!.write('\n5\n');
  await s1.waitOut(/input line of \d+ characters ignored \(at most 65536\)\n[\s\S]*alpha\.txt/, 120_000);
  boundedGrowth(t, before, peakRss(s1));
  s1.child.stdin!.end();
  t.is((await s1.exit).code, 0, s1.stderr);
});
