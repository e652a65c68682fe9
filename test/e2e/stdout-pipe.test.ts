/**
 * Machine-readable output through a pipe (core/stdout.ts): a command that
 * exits on its own still delivers everything it printed to a pipe (Linux
 * pipes are asynchronous: process.exit() used to drop what the 64 KiB pipe
 * had not taken yet), a slow reader gets all of it, and a reader that closes
 * early ends the command quietly (exit 0, nothing on stderr, no stack trace).
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { programArgs, REPO } from '../../testnet/driver.ts';
import { killChild, trackProcess } from '../../testnet/cleanup.ts';
import { tmpDir } from '../helpers.ts';

interface Run {
  cp: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

/** Starts a TypeScript program of the repository with stdout on a pipe that the test reads as it likes. */
function start(t: { teardown(fn: () => Promise<void> | void): void }, program: string, args: string[], input?: string): Run {
  const cp = spawn(process.execPath, programArgs(path.join(REPO, program), args), { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TREESHARE_DEBUG: '', NO_COLOR: '1' } });
  trackProcess(cp);
  t.teardown(() => killChild(cp));
  let err = '';
  cp.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  cp.stdin!.on('error', () => undefined);
  cp.stdin!.end(input ?? '');
  // 'close': stdout and stderr have ended as well.
  const exit = new Promise<number | null>((resolve) => cp.on('close', (code) => resolve(code)));
  return { cp, stderr: () => err, exit };
}

async function readAll(s: Readable): Promise<string> {
  let out = '';
  for await (const chunk of s) out += String(chunk);
  return out;
}

/** Reads at about 400 KB/s, far slower than the writer: every chunk is followed by a pause as long as its size asks. */
async function readSlowly(s: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of s) {
    parts.push(chunk as Buffer);
    await new Promise((r) => setTimeout(r, Math.ceil((chunk as Buffer).length / 40_000))); // the slowness under test, not a wait for something
  }
  return Buffer.concat(parts).toString('utf8');
}

const STACK = /\n\s+at |node:internal|Unhandled 'error'/;

test('a scenario\'s --json piped to a reader is whole (churn, 1,000 peers, memory runner: more than 64 KiB)', async (t) => {
  const out = tmpDir('treeshare-pipe-');
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const r = start(t, 'scenarios/churn.ts', ['--runner', 'memory', '--peers', '1000', '--events', '2', '--seed', '42', '--json', '--out', out, '--no-html']);
  const text = await readAll(r.cp.stdout!);
  t.is(await r.exit, 0, r.stderr());
  t.true(text.length > 65_536, `${text.length} bytes`);
  const result = JSON.parse(text) as { scenario: string; ok: boolean; records: { joins: unknown[] } };
  t.is(result.scenario, 'churn');
  t.true(result.ok);
  t.true(result.records.joins.length >= 1000);
});

test('a slow reader gets every event of the peer\'s --json control mode before it exits', async (t) => {
  const share = tmpDir('treeshare-pipe-share-');
  t.teardown(() => fs.rmSync(share, { recursive: true, force: true }));
  const n = 5000; // ~1 MB of events: far more than the pipe and the reader's buffer hold
  const input = Array.from({ length: n }, (_, i) => JSON.stringify({ cmd: 'status', id: i + 1 })).join('\n') + '\n';
  // Nothing listens on the metaserver address: the peer never joins, it answers status and leaves when stdin ends.
  const r = start(t, 'core/bin/peer-main.ts', ['-i', 'S1', '-p', '0', '--host', '127.0.0.1', '--meta', '127.0.0.1:1', '--share', share, '--json'], input);
  const text = await readSlowly(r.cp.stdout!);
  t.is(await r.exit, 0, r.stderr());
  const events = text.trimEnd().split('\n').map((l) => JSON.parse(l) as { event: string; id?: number });
  t.is(events.filter((e) => e.event === 'status').length, n);
  t.is(events.at(-1)?.event, 'left', 'the last event, written just before the exit, arrived');
});

test('a reader that closes early: the command exits 0 at once, with nothing on stderr', async (t) => {
  const out = tmpDir('treeshare-pipe-');
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const a = start(t, 'scenarios/five-peers.ts', ['--runner', 'memory', '--seed', '1', '--json', '--out', out, '--no-html']);
  const b = start(t, 'scenarios/five-peers.ts', ['--runner', 'memory', '--seed', '2', '--json', '--out', out, '--no-html']);
  const [ta, tb] = await Promise.all([readAll(a.cp.stdout!), readAll(b.cp.stdout!)]);
  t.is(await a.exit, 0, a.stderr());
  t.is(await b.exit, 0, b.stderr());
  const files = [ta, tb].map((text, i) => {
    const f = path.join(out, `run-${i}.json`);
    fs.writeFileSync(f, text);
    return f;
  });
  // compare.ts exits by itself (no process.exit): its pending write met EPIPE and threw a stack trace.
  const c = start(t, 'scenarios/compare.ts', [...files, '--json', '--no-html']);
  c.cp.stdout!.destroy();
  t.is(await c.exit, 0);
  t.is(c.stderr(), '');
  // A scenario waits for its output to drain before it exits: a reader gone must end that wait quietly.
  const s = start(t, 'scenarios/five-peers.ts', ['--runner', 'memory', '--seed', '3', '--json', '--out', out, '--no-html']);
  s.cp.stdout!.destroy();
  t.is(await s.exit, 0);
  t.notRegex(s.stderr(), STACK);
});
