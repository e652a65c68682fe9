/**
 * Small things a new user meets on the command line: one parser for sizes
 * and rates (peer and scenarios), one rate format (none below 1 MB), the
 * metaserver command printed with the right port, each command's own
 * --max-connections default, scenario options under their own heading, and
 * Ctrl-C at a prompt keeping the prompt line.
 */
import { PassThrough } from 'node:stream';
import test from 'ava';
import { parseSize, sizeValue, UsageError } from '../../core/control/args.ts';
import { METASERVER_HELP } from '../../core/control/metaserver-args.ts';
import { parsePeerArgs, PEER_HELP } from '../../core/control/peer-args.ts';
import { formatRate, formatTransfer, metaserverCommand, transferRate } from '../../core/cli/format.ts';
import { mbpsCell, NO_SIMULATED_TIME, standardTables } from '../../scenarios/lib/output.ts';
import { Term } from '../../core/cli/term.ts';
import { confirmLeave } from '../../core/cli/peer-menu.ts';
import { helpText, parseOptions, parseRate } from '../../scenarios/lib/args.ts';
import { scale } from '../../scenarios/scale.ts';

test('one size/rate parser: the peer takes --bandwidth 10M like the scenarios do', (t) => {
  t.is(sizeValue('10M'), 10_000_000);
  t.is(sizeValue('4MiB'), 4 * 1024 * 1024);
  t.is(sizeValue('1.5k'), 1500);
  t.is(sizeValue('500kB/s'), 500_000);
  t.is(sizeValue('64GiB'), 64 * 1024 ** 3);
  t.is(sizeValue('fast'), null);
  for (const v of ['10M', '4MiB', '2500', '1.5k']) t.is(parseRate(v), sizeValue(v)!);
  t.is(parseOptions(['--bandwidth', '10M', '--seed', '1'], {}).bandwidth, 10_000_000);
  t.notThrows(() => parsePeerArgs(['-i', 'S1', '--bandwidth', '10M']));
  t.is(parsePeerArgs(['-i', 'S1', '--max-file-bytes', '1GiB']).options.maxFileBytes, 1024 ** 3);
  t.throws(() => parsePeerArgs(['-i', 'S1', '--bandwidth', 'fast']), { instanceOf: UsageError, message: /--bandwidth must be a number of bytes per second .* like 1000000, 10M or 4MiB, not "fast"/ });
  t.throws(() => parseSize('--x', '2G', 1e9), { instanceOf: UsageError });
  t.is(parsePeerArgs(['-i', 'S1', '--min-rate', '4KiB']).options.minRateBytesPerSec, 4096);
  t.is(parsePeerArgs(['-i', 'S1', '--min-rate', '0']).options.minRateBytesPerSec, 0);
  t.is(parsePeerArgs(['-i', 'S1']).options.minRateBytesPerSec, undefined);
  t.throws(() => parsePeerArgs(['-i', 'S1', '--min-rate', 'slow']), { instanceOf: UsageError, message: /--min-rate must be a number of bytes per second/ });
  t.regex(PEER_HELP, /--min-rate RATE/);
});

test('--swarm auto|always|never and --no-swarm', (t) => {
  t.is(parsePeerArgs(['-i', 'S1']).options.swarm, undefined);
  t.is(parsePeerArgs(['-i', 'S1', '--swarm', 'auto']).options.swarm, true);
  t.is(parsePeerArgs(['-i', 'S1', '--swarm', 'always']).options.swarm, 'always');
  t.is(parsePeerArgs(['-i', 'S1', '--swarm', 'never']).options.swarm, false);
  t.is(parsePeerArgs(['-i', 'S1', '--no-swarm']).options.swarm, false);
  t.throws(() => parsePeerArgs(['-i', 'S1', '--swarm', 'sometimes']), { instanceOf: UsageError, message: /--swarm must be auto, always or never/ });
  t.throws(() => parsePeerArgs(['-i', 'S1', '--no-swarm', '--swarm', 'always']), { instanceOf: UsageError, message: /contradicts/ });
});

test('one rate format; below 1 MB, bytes and time only', (t) => {
  t.is(formatTransfer(87, 3.21), '87 bytes in 3.21 ms');
  t.notRegex(formatTransfer(999_999, 500), /\/s/);
  t.is(formatTransfer(12_000_000, 1200), '12.0 MB (12,000,000 bytes) in 1.20 s (10.0 MB/s)');
  t.is(formatRate(9_500_000), '9.50 MB/s');
  t.is(formatRate(10_000), '10 kB/s');
  t.is(formatRate(9_500), '10 kB/s');
  t.is(formatRate(95), '95 B/s');
});

test('scenario tables follow the menu\'s rate rule: small or ~0 ms transfers show bytes and time, no rate', (t) => {
  const row = (file: string, bytes: number, durationMs: number) => ({
    round: '', to: 'S1', label: '', at: 0, doneAt: durationMs, file, from: 'S3', bytes, ttfbMs: 1, durationMs, mbps: bytes / 1e6 / (durationMs / 1000), sha256: null, verified: true, diskSha256Ok: true, ok: true,
  });
  const records = { joins: [], floods: [], repairs: [], steps: [], checks: [], memory: [], phases: [], faults: [], transfers: [row('pwd1.txt', 87, 6.5), row('zero.bin', 4_194_304, 0), row('big.bin', 12_000_000, 1200)] };
  const table = standardTables({}, records as never, undefined as never).find((x) => x.title === 'Transfers')!;
  const col = table.head.indexOf('MB/s');
  // Before: 0.013 for 87 bytes (the menu says "87 bytes in 6.50 ms") and 4194304.0 for a 0 ms simulated transfer,
  // which now says why it has no rate.
  t.deepEqual(table.rows.map((r) => r[col]), ['—', NO_SIMULATED_TIME, '10.0']);
  t.is(transferRate(87, 6.5), null);
  t.is(transferRate(4_194_304, 0), null);
  t.is(mbpsCell(9.5), '9.50');
  t.notRegex(formatTransfer(4_194_304, 0), /\/s/);
});

test('--meta with a bad port says 1-65535, not "(0 picks a free port)", which is -p\'s', (t) => {
  for (const bad of ['127.0.0.1:90000', '127.0.0.1:0']) {
    const err = t.throws(() => parsePeerArgs(['-i', 'S1', '--meta', bad]), { instanceOf: UsageError });
    t.regex(err!.message, /^the port in --meta must be an integer from 1 to 65535/);
    t.notRegex(err!.message, /free port/);
  }
  t.regex(t.throws(() => parsePeerArgs(['-i', 'S1', '-p', '90000']))!.message, /0 picks a free port/);
});

test('the metaserver hint names the port the peer is looking for', (t) => {
  t.is(metaserverCommand({ port: 9000 }), 'npm run metaserver');
  t.is(metaserverCommand({ port: 47999 }), 'npm run metaserver -- --port 47999');
});

test("each command's help shows its own --max-connections default", (t) => {
  t.regex(METASERVER_HELP, /--max-connections N[\s\S]*?\(default 10000\)/);
  t.notRegex(METASERVER_HELP, /1024/);
  t.regex(PEER_HELP, /--max-connections N[\s\S]*?\(default 1024\)/);
  t.notRegex(PEER_HELP, /10000\)/);
});

test('scale --help: its own options under their own heading, --peers without a contradicting default', (t) => {
  const h = helpText(scale.name, scale.summary, scale.defaults, scale.options ?? {}, scale.commonHelp);
  const own = h.indexOf('scale options:');
  const common = h.indexOf('options of every scenario:');
  t.true(own > 0 && common > own, h);
  t.true(h.indexOf('--sizes') > own && h.indexOf('--sizes') < common);
  const peers = h.split('\n').find((l) => l.includes('--peers'))!;
  t.notRegex(peers, /default 1000/);
  t.regex(peers, /instead of the --sizes list/);
});

test('Ctrl-C at a prompt keeps the prompt line (and what was typed)', (t) => {
  const input = Object.assign(new PassThrough(), { isTTY: true }) as unknown as NodeJS.ReadStream;
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: 80, hasColors: () => false }) as unknown as NodeJS.WriteStream;
  let out = '';
  (output as unknown as PassThrough).on('data', (b: Buffer) => (out += b.toString()));
  const term = new Term(input, output);
  t.true(term.tty);
  void term.ask('file name to download: ');
  (input as unknown as PassThrough).write('pwd');
  const shown = out.length;
  term.endPrompt();
  term.say('leaving (Ctrl-C): telling neighbours and the metaserver …');
  term.close();
  const after = out.slice(shown);
  t.true(out.includes('file name to download: '), JSON.stringify(out));
  t.false(after.includes('\x1b[K'), `prompt line erased: ${JSON.stringify(after)}`);
  t.regex(after, /^\r?\n/, JSON.stringify(after));
  t.true(after.includes('leaving (Ctrl-C)'));
});

/** A Term on a fake terminal, and a function that types into it. */
function fakeTty(): { term: Term; type: (s: string) => void } {
  const input = Object.assign(new PassThrough(), { isTTY: true }) as unknown as NodeJS.ReadStream;
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: 80, hasColors: () => false }) as unknown as NodeJS.WriteStream;
  (output as unknown as PassThrough).resume();
  const term = new Term(input, output);
  return { term, type: (x) => void (input as unknown as PassThrough).write(x) };
}

test('Ctrl-C at the file-name prompt goes back to the menu; at the menu it leaves', async (t) => {
  const { term, type } = fakeTty();
  t.teardown(() => term.close());
  let interrupted = 0;
  term.onInterrupt(() => interrupted++);
  const name = term.ask('file name to download: ', { cancellable: true });
  type('pwd');
  type('\x03');
  t.is(await name, '', 'the prompt is answered with nothing: cancelled');
  t.is(interrupted, 0, 'the program was not interrupted (the peer stays in the overlay)');
  const next = term.ask('S1 [1-6, h]> ');
  type('3\r');
  t.is(await next, '3', 'the next prompt starts empty (no "pwd" left over)');
  void term.ask('S1 [1-6, h]> ');
  type('\x03');
  t.is(interrupted, 1, 'at the menu Ctrl-C leaves, as before');
});

test('q, quit and exit ask before leaving on a terminal; 4 and a pipe do not', async (t) => {
  const { term, type } = fakeTty();
  t.teardown(() => term.close());
  t.true(await confirmLeave(term, '4'));
  t.true(await confirmLeave(term, 'leave'));
  let r = confirmLeave(term, 'q');
  type('\r');
  t.false(await r, 'Enter alone keeps the peer');
  r = confirmLeave(term, 'exit');
  type('y\r');
  t.true(await r);
  const piped = new Term(new PassThrough() as unknown as NodeJS.ReadStream, new PassThrough() as unknown as NodeJS.WriteStream);
  t.teardown(() => piped.close());
  t.true(await confirmLeave(piped, 'q'), 'a script piping "q" leaves as it always did');
});
