/**
 * End to end through the real commands (core/bin/*-main.ts as child
 * processes): the interactive peer driven by a pipe, the JSON control mode of
 * both commands, and the one-line errors a person gets.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { networkKey, UsageError } from '../../core/control/args.ts';
import { parseMetaserverArgs } from '../../core/control/metaserver-args.ts';
import { parsePeerArgs } from '../../core/control/peer-args.ts';
import { MetaserverEvent, PeerEvent } from '../../core/control/schema.ts';
import { busyPort, freePort, Procs, type Proc } from './proc.ts';
import { demoFile } from '../../testnet/demo-shares.ts';

function procs(t: ExecutionContext): Procs {
  const p = new Procs();
  t.teardown(() => p.close());
  return p;
}

/** A failure a person sees: exactly one line on stderr, no stack trace, nothing on stdout (text mode). */
async function oneLineFailure(t: ExecutionContext, p: Proc, code: number, re: RegExp): Promise<void> {
  const r = await p.exit;
  t.is(r.code, code, `exit status (stderr: ${p.stderr})`);
  const lines = p.stderr.trimEnd().split('\n');
  t.is(lines.length, 1, `one line on stderr, got: ${p.stderr}`);
  t.regex(lines[0]!, re);
  t.notRegex(p.stderr, /\n\s+at |Error:|node:internal/);
}

const ANSI = /\x1b\[/;

test('--help describes both commands and exits 0', async (t) => {
  const ps = procs(t);
  const peer = ps.start('peer', ['--help']);
  const meta = ps.start('metaserver', ['-h']);
  t.is((await peer.exit).code, 0);
  t.is((await meta.exit).code, 0);
  for (const flag of ['--id', '--port', '--meta', '--host', '--advertise-host', '--share', '--max-children', '--auto-join', '--latency', '--bandwidth', '--key-file', '--json', '--help']) {
    t.true(peer.stdout.includes(flag), `peer help mentions ${flag}`);
  }
  for (const flag of ['--host', '--port', '--policy', '--seed', '--key-file', '--token-key-file', '--json', '--help', 'root, random or least-loaded']) t.true(meta.stdout.includes(flag), `metaserver help mentions ${flag}`);
  t.true(meta.stdout.includes(path.join(ps.dir, 'treeshare', 'metaserver-token.key')), 'metaserver help names its default token key file');
  t.regex(peer.stdout, /^Usage: npm run peer/);
  t.regex(meta.stdout, /^Usage: npm run metaserver/);
  t.is(peer.stderr + meta.stderr, '');
});

test('metaserver token key: a key file others may read is refused in one line (exit 2); --token-key-file none starts with one warning', async (t) => {
  const ps = procs(t);
  const open = path.join(ps.dir, 'open.key');
  fs.writeFileSync(open, 'a'.repeat(64));
  fs.chmodSync(open, 0o644);
  const refused = ps.start('metaserver', ['--host', '127.0.0.1', '--port', '0', '--token-key-file', open]);
  await oneLineFailure(t, refused, 2, /^metaserver: --token-key-file ".*open\.key": readable or writable by others \(mode 0644\): chmod 600 it \(see --help\)$/);
  const { proc } = await ps.metaserver(false, ['--token-key-file', 'none']);
  await proc.waitOut(/^token key: none/m);
  proc.child.kill('SIGTERM');
  await proc.exit;
  t.regex(proc.stderr, /^metaserver: warning: --token-key-file none: after a restart [^\n]*\n$/);
});

test('command-line mistakes give one line and exit 2', async (t) => {
  const ps = procs(t);
  // Real processes for a few; the same parser checked in-process for the rest.
  const bogus = ps.start('peer', ['-i', 'S1', '--bogus']);
  const badPort = ps.start('peer', ['-i', 'S1', '-p70000']);
  const badPolicy = ps.start('metaserver', ['--policy', 'nearest']);
  await oneLineFailure(t, bogus, 2, /^peer: unknown option --bogus \(see --help\)$/);
  await oneLineFailure(t, badPort, 2, /^peer: --port must be an integer from 0 to 65535 \(0 picks a free port\), not "70000" \(see --help\)$/);
  await oneLineFailure(t, badPolicy, 2, /^metaserver: --policy must be one of root, random, least-loaded, not "nearest"/);
  const peerCases: [string[], RegExp][] = [
    [['-p5001'], /missing --id/],
    [['-i', 'bad id!'], /--id must be/],
    [['-i', 'S1', '--meta', 'localhost'], /--meta must be host:port/],
    [['-i', 'S1', '--meta', '127.0.0.1:0'], /the port in --meta must be an integer from 1 to 65535/],
    [['-i', 'S1', '--host', 'a b'], /--host must be a host name or IP address/],
    [['-i', 'S1', '--max-children', '0'], /--max-children must be an integer from 1 to 1024/],
    [['-i', 'S1', '--latency', '-5'], /option --latency needs a value|--latency must be a number/],
    [['-i', 'S1', '--bandwidth', 'fast'], /--bandwidth must be a number of bytes per second/],
    [['-i', 'S1', 'extra'], /unexpected argument "extra"/],
    [['-i'], /option -i.* needs a value/],
    [['-i', 'S1', '--port'], /option -p, --port needs a value/],
  ];
  for (const [args, re] of peerCases) {
    const err = t.throws(() => parsePeerArgs(args), { instanceOf: UsageError }, args.join(' '));
    t.regex(err!.message, re);
    t.false(err!.message.includes('\n'));
  }
  t.throws(() => parseMetaserverArgs(['--port', '1.5']), { instanceOf: UsageError, message: /--port must be an integer/ });
  t.throws(() => parseMetaserverArgs(['-x']), { instanceOf: UsageError, message: /unknown option -x/ });
  // The original's spellings work.
  t.like(parsePeerArgs(['-p5001', '-i', 'S1']).options, { id: 'S1', port: 5001, share: path.join('shares', 'S1'), meta: { host: '127.0.0.1', port: 9000 }, maxChildren: 2 });
  t.like(parsePeerArgs(['--port=0', '--id=S2', '--meta', '[::1]:9000', '--max-children', '3']).options, { id: 'S2', port: 0, meta: { host: '::1', port: 9000 }, maxChildren: 3 });
  t.like(parseMetaserverArgs([]).options, { host: '0.0.0.0', port: 9000 });
  // The network key: from --key-file (trimmed) or $TREESHARE_KEY, at least 32 bytes.
  const keyFile = path.join(ps.dir, 'key');
  const K1 = 'correct horse battery staple, 32+ bytes';
  fs.writeFileSync(keyFile, K1 + '\n');
  t.is(networkKey(keyFile, {}), K1);
  t.is(networkKey(undefined, { TREESHARE_KEY: ' from the environment, 32+ bytes long ' }), 'from the environment, 32+ bytes long');
  t.is(networkKey(undefined, {}), undefined);
  t.throws(() => networkKey(undefined, { TREESHARE_KEY: 'short' }), { instanceOf: UsageError, message: /too short \(5 bytes; at least 32 are needed\).*npm run keygen/ });
  t.throws(() => networkKey(undefined, {}, 'x'.repeat(31)), { instanceOf: UsageError, message: /--network-key is too short \(31 bytes/ });
  t.throws(() => networkKey(path.join(ps.dir, 'nokey'), {}), { instanceOf: UsageError, message: /cannot read --key-file .*ENOENT/ });
  t.is(parseMetaserverArgs(['--key-file', keyFile]).options.networkKey, K1);
  t.throws(() => parseMetaserverArgs(['--seed', 'abc']), { instanceOf: UsageError, message: /--seed must be an integer/ });
  const [a, b] = [parseMetaserverArgs(['--seed', '42']).options.rng!, parseMetaserverArgs(['--seed', '42']).options.rng!];
  t.deepEqual([a(), a(), a()], [b(), b(), b()], '--seed makes the random policy repeatable');
});

test('a port in use and a missing share folder: one line, exit 1', async (t) => {
  const ps = procs(t);
  const busy = await busyPort();
  t.teardown(() => busy.close());
  const share = ps.share('S1');
  const peer = ps.start('peer', ['-p', String(busy.port), '-i', 'S1', '--share', share]);
  const meta = ps.start('metaserver', ['--host', '127.0.0.1', `-p${busy.port}`]);
  const noShare = ps.start('peer', ['-p0', '-i', 'S9', '--share', path.join(ps.dir, 'nowhere')]);
  await oneLineFailure(t, peer, 1, new RegExp(`^peer: cannot listen on 127\\.0\\.0\\.1:${busy.port}: port ${busy.port} is already in use`));
  await oneLineFailure(t, meta, 1, new RegExp(`^metaserver: cannot listen on 127\\.0\\.0\\.1:${busy.port}: port ${busy.port} is already in use`));
  await oneLineFailure(t, noShare, 1, /^peer: share folder .*nowhere does not exist/);
  t.is(peer.stdout + meta.stdout + noShare.stdout, '');
});

test('an unreachable metaserver: one line and exit 1 (menu and --json)', async (t) => {
  const ps = procs(t);
  const port = await freePort();
  const share = ps.share('S1');
  const text = ps.start('peer', ['-p0', '-i', 'S1', '--share', share, '--meta', `127.0.0.1:${port}`, '--auto-join']);
  const json = ps.start('peer', ['-p0', '-i', 'S2', '--share', share, '--meta', `127.0.0.1:${port}`, '--auto-join', '--json']);
  await oneLineFailure(t, text, 1, new RegExp(`^peer: the metaserver at 127\\.0\\.0\\.1:${port} is unreachable: connection refused \\(is it running\\?\\) \\[unreachable\\]$`));
  await oneLineFailure(t, json, 1, /^peer: the metaserver at .* is unreachable: connection refused/);
  const fatal = json.events.find((e) => e.event === 'error');
  t.is(fatal?.code, 'unreachable');
  t.true(fatal?.fatal);
  // A piped menu whose register fails stops too, rather than running the rest of the script.
  const piped = ps.start('peer', ['-p0', '-i', 'S3', '--share', share, '--meta', `127.0.0.1:${port}`]);
  piped.child.stdin!.end('1\n2\npwd1.txt\n');
  await oneLineFailure(t, piped, 1, /^peer: the metaserver at .* is unreachable: connection refused/);
  // It retried with backoff, saying so, before giving up.
  t.regex(piped.stdout, /registering S3 \(127\.0\.0\.1:\d+\) with the metaserver at .* …\n(\[warn\] metaserver unreachable: .*; retrying in \d+ ms \(attempt \d of 4\)\n){3}$/);
});

test('interactive peer through a pipe: register, download pwd1.txt from S3 (uppercase re-asked), topology, leave', async (t) => {
  const ps = procs(t);
  const { proc: meta, port } = await ps.metaserver(false);
  const metaArg = ['--meta', `127.0.0.1:${port}`];
  for (const id of ['S2', 'S3', 'S4', 'S5']) {
    const p = ps.start('peer', ['--json', '-p0', '-i', id, '--share', ps.share(id), ...metaArg, '--auto-join']);
    await p.waitEvent((e) => e.event === 'joined');
  }
  const s1share = ps.share('S1');
  const s1 = ps.start('peer', ['-p0', '-i', 'S1', '--share', s1share, ...metaArg]);
  s1.child.stdin!.end('1\n2\nPWD1.txt\npwd1.txt\n3\n4\n');
  const r = await s1.exit;
  t.is(r.code, 0, s1.stderr);
  t.is(s1.stderr, '');
  const out = s1.stdout;
  t.log(out);
  // The menu, without prompts or colours.
  t.regex(out, /^treeshare peer S1 on 127\.0\.0\.1:\d+, sharing .*S1 \(2 files\), metaserver 127\.0\.0\.1:\d+\n/);
  t.regex(out, /\n {2}1 {2}register and join the overlay\n {2}2 {2}download a file\n {2}3 {2}show the overlay topology\n {2}4 {2}leave gracefully and exit\n/);
  t.false(out.includes('[1-6, h]>'));
  t.false(out.includes('file name to download:'));
  t.notRegex(out, ANSI);
  // 1: the referral and the parent.
  t.regex(out, /metaserver referral: S[2-5] \(127\.0\.0\.1:\d+\)\n/);
  t.regex(out, /joined the overlay: parent S[2-5] \(127\.0\.0\.1:\d+\), depth \d/);
  // 2: the uppercase name is refused and asked again; then the download's final line.
  t.regex(out, /file names are all lowercase: "PWD1\.txt" has uppercase letters; type the name again\n/);
  t.regex(out, /downloaded pwd1\.txt from S3 \(127\.0\.0\.1:\d+\): 87 bytes in [\d.]+ m?s, SHA-256 verified\n/); // below 1 MB: bytes and time, no rate
  t.is(out.match(/downloaded pwd1\.txt/g)?.length, 1, 'downloaded exactly once');
  t.deepEqual(fs.readFileSync(path.join(s1share, 'pwd1.txt')), demoFile('S3', 'pwd1.txt'));
  // 3: the whole tree, indented, this peer marked.
  t.regex(out, /overlay topology: 5 peers, complete/);
  for (const id of ['S1', 'S2', 'S3', 'S4', 'S5']) t.regex(out, new RegExp(`\\n  [│├└─ ]*${id}  127\\.0\\.0\\.1:\\d+  depth \\d`));
  t.regex(out, /[├└]─ S1 .* {3}← this peer\n/);
  // 4: a graceful leave the metaserver hears about.
  t.regex(out, /leaving \(menu 4\): telling neighbours and the metaserver …\nS1 left the overlay\. Bye\.\n$/);
  await meta.waitOut(/\nleave {5}S1\n/);
  t.regex(meta.stdout, /\nregister {2}S1 {2}127\.0\.0\.1:\d+ {2}referral: S[2-5] \(127\.0\.0\.1:\d+\)\n/);
  t.regex(meta.stdout, /\nregister {2}S\d {2}127\.0\.0\.1:\d+ {2}referral: none \(first peer: S\d is the root\)\n/);
});

test('--json end to end: metaserver and peers, ids echoed, malformed lines answered, leave and stop', async (t) => {
  const ps = procs(t);
  const { proc: meta, port } = await ps.metaserver(true);
  t.like(meta.events[0], { event: 'ready', host: '127.0.0.1', port, policy: 'least-loaded' });
  meta.send('this is not json');
  meta.send({ cmd: 'reboot', id: 'm1' });
  meta.send({ cmd: 'status', id: 'm2' });
  t.like(await meta.waitEvent((e) => e.event === 'error' && e.id === undefined), { code: 'bad-command' });
  t.like(await meta.waitEvent((e) => e.id === 'm1'), { event: 'error', code: 'bad-command' });
  t.deepEqual((await meta.waitEvent((e) => e.id === 'm2')).peers, []);

  const metaArg = ['--meta', `127.0.0.1:${port}`];
  const s3 = ps.start('peer', ['--json', '-p0', '-i', 'S3', '--share', ps.share('S3'), ...metaArg]);
  const ready = await s3.waitEvent((e) => e.event === 'ready');
  t.like(ready, { peer: 'S3', host: '127.0.0.1' });
  t.true(ready.port > 0);
  s3.send({ cmd: 'join', id: 'j3' });
  t.like(await s3.waitEvent((e) => e.id === 'j3'), { event: 'joined', parent: null, depth: 0 });

  const s1share = ps.share('S1');
  const s1 = ps.start('peer', ['--json', '-p0', '-i', 'S1', '--share', s1share, ...metaArg]);
  await s1.waitEvent((e) => e.event === 'ready');
  s1.send('{"cmd":"download"');
  s1.send({ cmd: 'download', id: 'x' });
  s1.send({ cmd: 'search', name: 'pwd1.txt', id: 'early' });
  t.like(await s1.waitEvent((e) => e.event === 'error' && e.id === undefined), { code: 'bad-command' });
  t.like(await s1.waitEvent((e) => e.id === 'x'), { event: 'error', code: 'bad-command' });
  t.like(await s1.waitEvent((e) => e.id === 'early'), { event: 'error', code: 'not-joined', cmd: 'search' });

  s1.send({ cmd: 'join', id: 1 });
  const joined = await s1.waitEvent((e) => e.id === 1);
  t.like(joined, { event: 'joined', parent: { id: 'S3' }, depth: 1 });
  t.is(joined.timeline.parent.id, 'S3');
  t.like(await s3.waitEvent((e) => e.event === 'child-joined'), { child: { id: 'S1' } });
  t.like(await meta.waitEvent((e) => e.event === 'register' && e.peer === 'S1'), { referral: { id: 'S3' } });

  s1.send({ cmd: 'search', name: 'pwd1.txt', id: 2 });
  const searched = await s1.waitEvent((e) => e.id === 2);
  t.is(searched.event, 'searched');
  t.like(searched.result, { name: 'pwd1.txt', reached: 2, missing: [] });
  t.is(searched.result.hits[0].id, 'S3');

  s1.send({ cmd: 'download', name: 'pwd1.txt', id: 3 });
  const dl = await s1.waitEvent((e) => e.id === 3);
  t.is(dl.event, 'downloaded');
  t.like(dl.result, { name: 'pwd1.txt', bytes: 87, verified: true, holder: { id: 'S3' } });
  t.like(s1.events.find((e) => e.event === 'hit'), { name: 'pwd1.txt', holder: { id: 'S3' } });
  t.like(s1.events.find((e) => e.event === 'progress'), { name: 'pwd1.txt', bytes: 87, size: 87 });
  t.like(await s3.waitEvent((e) => e.event === 'uploaded'), { name: 'pwd1.txt', bytes: 87 });
  t.true(fs.existsSync(path.join(s1share, 'pwd1.txt')));

  s1.send({ cmd: 'download', name: 'nothing.txt', id: 4 });
  t.like(await s1.waitEvent((e) => e.id === 4), { event: 'error', code: 'not-found', searched: 2 });
  s1.send({ cmd: 'topo', id: 5 });
  const topo = await s1.waitEvent((e) => e.id === 5);
  t.like(topo.result, { complete: true, reached: 2 });
  t.regex(topo.text, /^S3 {2}127\.0\.0\.1:\d+ {2}depth 0 {2}2 files\n└─ S1 {2}127\.0\.0\.1:\d+ {2}depth 1 {2}3 files$/);
  s1.send({ cmd: 'status', id: 6 });
  t.like((await s1.waitEvent((e) => e.id === 6)).state, { id: 'S1', joined: true, parent: { id: 'S3' }, depth: 1 });
  s1.send({ cmd: 'files', id: 7 });
  t.deepEqual((await s1.waitEvent((e) => e.id === 7)).files.map((f: { name: string }) => f.name), ['alpha.txt', 'pwd1.txt', 'readme.txt']);

  meta.send({ cmd: 'status', id: 'm3' });
  t.deepEqual((await meta.waitEvent((e) => e.id === 'm3')).peers.map((p: { id: string }) => p.id).sort(), ['S1', 'S3']);

  s1.send({ cmd: 'leave', id: 8 });
  t.like(await s1.waitEvent((e) => e.id === 8), { event: 'left' });
  t.is((await s1.exit).code, 0);
  await meta.waitEvent((e) => e.event === 'leave' && e.peer === 'S1');
  t.like(await s3.waitEvent((e) => e.event === 'child-left'), { child: 'S1', reason: 'left' });

  // SIGTERM leaves gracefully too.
  s3.child.kill('SIGTERM');
  await s3.waitEvent((e) => e.event === 'left');
  t.is((await s3.exit).code, 0);
  await meta.waitEvent((e) => e.event === 'leave' && e.peer === 'S3');

  meta.send({ cmd: 'stop', id: 'm4' });
  t.like(await meta.waitEvent((e) => e.id === 'm4'), { event: 'stopped' });
  t.is((await meta.exit).code, 0);

  // Nothing but JSON lines on stdout, each one an event of the control protocol's schema; nothing on stderr.
  for (const [p, schema] of [[meta, MetaserverEvent], [s1, PeerEvent], [s3, PeerEvent]] as const) {
    for (const line of p.stdout.trimEnd().split('\n')) {
      const r = schema.safeParse(JSON.parse(line));
      t.true(r.success, `${line}\n${r.error?.message ?? ''}`);
    }
    t.is(p.stderr, '');
  }
});
