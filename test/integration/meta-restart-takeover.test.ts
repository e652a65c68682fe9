/**
 * Issue 22 defect 8: after a metaserver restart, a live peer's id stays its own.
 *
 * - An id the rebuilt registry does not hold yet is taken back only by a peer
 *   holding a token the metaserver issued for that id (under its token key,
 *   kept across restarts; in-process without one, a key per process).
 * - The register race: an attacker registering the id while it looks free,
 *   before its holder's first announce after the restart, loses it to that
 *   holder's announce (its token was issued before the restart, the
 *   attacker's after); of two tokens from before the restart the newer wins.
 *
 * The CLI's token key file (default path, refusals) is tested here too; the
 * attack against the real metaserver process restarted is in
 * test/e2e/meta-restart-process.test.ts.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseMetaserverArgs } from '../../core/control/metaserver-args.ts';
import { Metaserver, PROTOCOL_VERSION, type MetaserverOptions } from '../../core/index.ts';
import { request } from '../../core/metaserver/client.ts';
import { tcpTransport } from '../../core/transport/tcp.ts';
import type { Message } from '../../core/protocol/messages.ts';
import { cluster, until, type Cluster } from '../helpers.ts';
import { provingPeer, type ProvingPeer } from './wire.ts';

const tokenKey = randomBytes(32);

type Meta = { host: string; port: number };

/** Sends `m` to the metaserver: its answer, or `{t: 'error', code}` with the code it refused with. */
async function ask(meta: Meta, m: Message): Promise<{ t: string; code?: string; token?: string }> {
  return request(tcpTransport(), meta, m, ['ok', 'registered']).catch((err: { code?: string; remoteCode?: string }) => ({ t: 'error', code: err.remoteCode ?? err.code }));
}
const register = (meta: Meta, p: ProvingPeer, token?: string) =>
  ask(meta, { t: 'register', v: PROTOCOL_VERSION, id: p.id, host: '127.0.0.1', port: p.port, maxChildren: 2, ...(token ? { token } : {}) });
const announce = (meta: Meta, p: ProvingPeer, token = p.token) =>
  ask(meta, { t: 'announce', v: PROTOCOL_VERSION, id: p.id, host: '127.0.0.1', port: p.port, parent: null, depth: 0, children: 0, maxChildren: 2, token });

/** A fake peer registered as `id` (it then proves the token it was issued). */
async function registered(t: ExecutionContext, meta: Meta, id: string): Promise<ProvingPeer> {
  const p = await provingPeer(t, id);
  const r = await register(meta, p);
  t.is(r.t, 'registered');
  p.token = r.token!;
  return p;
}

/** Stops `c`'s metaserver and starts another on its port, once the clock has moved past every token issued so far. */
async function restart(t: ExecutionContext, c: Cluster, opts: MetaserverOptions = {}): Promise<Metaserver> {
  const port = c.meta.address.port;
  const issued = Date.now();
  await c.meta.stop();
  while (Date.now() <= issued) await new Promise((r) => setImmediate(r));
  const meta2 = new Metaserver({ host: '127.0.0.1', port, ...opts });
  t.teardown(() => meta2.stop());
  await meta2.start();
  return meta2;
}

const holderPort = (m: Metaserver, id: string) => m.registryList().find((e) => e.id === id)?.port;

for (const [name, opts] of [['a token key', { tokenKey }], ['no token key given (the process\'s own key)', {}]] as const) {
  test(`after a restart an attacker cannot take a live peer's id by announcing it; the peer keeps it (${name})`, async (t) => {
    const c = await cluster({ meta: opts, peer: { announceMs: 0, heartbeatMs: 0 } });
    t.teardown(() => c.close());
    await c.add('R');
    const victim = await c.add('V');
    const meta = { host: '127.0.0.1', port: c.meta.address.port };
    // The attacker is a registered member: it holds a genuine token, issued for its own id,
    // and at its own address proves that token for whatever id it is asked about.
    const attacker = await registered(t, meta, 'EVIL');
    attacker.id = 'V';
    const meta2 = await restart(t, c, opts);
    // The attacker is first to announce V, at its own address, with its own token.
    t.deepEqual(await announce(meta, attacker), { t: 'error', code: 'unverified' });
    t.is(holderPort(meta2, 'V'), undefined);
    // The real V announces and keeps its id, at its own address.
    await victim.announce();
    t.is(holderPort(meta2, 'V'), victim.address.port);
    // The attacker's announce is still refused once V is held again.
    t.is((await announce(meta, attacker)).t, 'error');
    t.is(holderPort(meta2, 'V'), victim.address.port);
  });
}

test('the register race: an id registered after a restart, before its holder re-announced, goes back to that holder', async (t) => {
  const c = await cluster({ peer: { announceMs: 0, heartbeatMs: 0 } });
  t.teardown(() => c.close());
  await c.add('R');
  const victim = await c.add('V');
  const meta = { host: '127.0.0.1', port: c.meta.address.port };
  const meta2 = await restart(t, c);
  const drops: string[] = [];
  meta2.on('drop', (d) => drops.push(`${d.id}: ${d.reason}`));
  // V looks free: the attacker registers it at its own address and gets a genuine token for V.
  const attacker = await registered(t, meta, 'V');
  t.is(holderPort(meta2, 'V'), attacker.port);
  // V's announce (its token issued before the restart) takes V back; the attacker's entry is dropped.
  await victim.announce();
  t.is(holderPort(meta2, 'V'), victim.address.port);
  t.true(drops.some((d) => /^V: taken back by .*before the metaserver restarted/.test(d)), drops.join('; '));
  // The attacker's token for V no longer works, and V is held by a live peer.
  t.deepEqual(await announce(meta, attacker), { t: 'error', code: 'bad-token' });
  t.deepEqual(await register(meta, attacker), { t: 'error', code: 'duplicate-id' });
  t.deepEqual(await register(meta, attacker, attacker.token), { t: 'error', code: 'duplicate-id' });
  t.is(holderPort(meta2, 'V'), victim.address.port);
});

test('the register race, won by a register: the holder re-registering with its old token takes its id back', async (t) => {
  const c = await cluster();
  t.teardown(() => c.close());
  const meta = { host: '127.0.0.1', port: c.meta.address.port };
  const victim = await registered(t, meta, 'W');
  const meta2 = await restart(t, c);
  const attacker = await registered(t, meta, 'W');
  t.is(holderPort(meta2, 'W'), attacker.port);
  const back = await register(meta, victim, victim.token);
  t.is(back.t, 'registered');
  t.is(holderPort(meta2, 'W'), victim.port);
  const old = victim.token;
  victim.token = back.token!;
  // A forged token (one digit changed) takes nothing back.
  const forged = old.replace(/.$/, (d) => (d === '0' ? '1' : '0'));
  t.deepEqual(await register(meta, attacker, forged), { t: 'error', code: 'duplicate-id' });
  t.is(holderPort(meta2, 'W'), victim.port);
});

test('of two tokens for one id issued before a restart, the newer wins', async (t) => {
  const c = await cluster();
  t.teardown(() => c.close());
  const meta = { host: '127.0.0.1', port: c.meta.address.port };
  const older = await registered(t, meta, 'W');
  // The older holder stops answering: W is registered again, by another process.
  older.id = 'gone';
  const newer = await provingPeer(t, 'W');
  const r = await register(meta, newer);
  t.is(r.t, 'registered');
  newer.token = r.token!;
  t.not(newer.token.slice(0, 12), older.token.slice(0, 12), 'issued in different milliseconds');
  older.id = 'W';
  const meta2 = await restart(t, c);
  // The older holder is heard first and takes W; the newer takes it from it.
  t.is((await announce(meta, older)).t, 'ok');
  t.is(holderPort(meta2, 'W'), older.port);
  t.is((await announce(meta, newer)).t, 'ok');
  t.is(holderPort(meta2, 'W'), newer.port);
  t.deepEqual(await announce(meta, older), { t: 'error', code: 'bad-token' });
  t.is(holderPort(meta2, 'W'), newer.port);
});

test('a metaserver token key shorter than 32 bytes is refused', (t) => {
  t.throws(() => new Metaserver({ tokenKey: 'short' }), { message: /at least 32 bytes/ });
  t.notThrows(() => new Metaserver({ tokenKey: randomBytes(32) }));
});

function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-tokenkey-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('--token-key-file: created once (mode 0600) and read back unchanged on the next start', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'meta.key');
  const first = parseMetaserverArgs(['--token-key-file', file]).options.tokenKey;
  t.regex(String(first), /^[0-9a-f]{64}$/);
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  t.is(parseMetaserverArgs(['--token-key-file', file]).options.tokenKey, first);
  fs.writeFileSync(path.join(dir, 'short.key'), 'abc', { mode: 0o600 });
  t.throws(() => parseMetaserverArgs(['--token-key-file', path.join(dir, 'short.key')]), { message: /too short/ });
});

test('the token key is on by default: $XDG_STATE_HOME (or ~/.local/state)/treeshare/metaserver-token.key, made 0700/0600; "none" opts out', (t) => {
  const dir = tempDir(t);
  const cfg = parseMetaserverArgs([], { XDG_STATE_HOME: dir, HOME: '/nonexistent' });
  const file = path.join(dir, 'treeshare', 'metaserver-token.key');
  t.is(cfg.tokenKeyFile, file);
  t.regex(String(cfg.options.tokenKey), /^[0-9a-f]{64}$/);
  t.is(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  t.is(parseMetaserverArgs([], { XDG_STATE_HOME: dir }).options.tokenKey, cfg.options.tokenKey);
  // Without $XDG_STATE_HOME: under $HOME/.local/state.
  const home = parseMetaserverArgs([], { HOME: dir });
  t.is(home.tokenKeyFile, path.join(dir, '.local', 'state', 'treeshare', 'metaserver-token.key'));
  t.true(fs.existsSync(home.tokenKeyFile!));
  const none = parseMetaserverArgs(['--token-key-file', 'none'], {});
  t.is(none.tokenKeyFile, null);
  t.is(none.options.tokenKey, undefined);
  t.throws(() => parseMetaserverArgs([], {}), { message: /no folder for the token key/ });
});

test('a token key file that is not a regular file, is readable by others, or is huge is refused', (t) => {
  const dir = tempDir(t);
  const refused = (file: string, re: RegExp) => t.throws(() => parseMetaserverArgs(['--token-key-file', file]), { message: re }, file);
  fs.mkdirSync(path.join(dir, 'adir'));
  refused(path.join(dir, 'adir'), /not a regular file/);
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  refused(path.join(dir, 'fifo'), /not a regular file/);
  const open = path.join(dir, 'open.key');
  fs.writeFileSync(open, randomBytes(32).toString('hex'), { mode: 0o644 });
  fs.chmodSync(open, 0o644);
  refused(open, /readable or writable by others \(mode 0644\)/);
  fs.chmodSync(open, 0o620);
  refused(open, /readable or writable by others/);
  const big = path.join(dir, 'big.key');
  fs.writeFileSync(big, 'a'.repeat(1 << 20), { mode: 0o600 });
  refused(big, /larger than/);
  refused(path.join(open, 'x'), /cannot create it: E/);
  fs.chmodSync(open, 0o600);
  t.notThrows(() => parseMetaserverArgs(['--token-key-file', open]));
});

test('a metaserver restarted with another token key: a live peer whose announce is unverified registers its id again and is known', async (t) => {
  const c = await cluster({ meta: { tokenKey: randomBytes(32) }, peer: { announceMs: 0, heartbeatMs: 0 } });
  t.teardown(() => c.close());
  await c.add('R');
  const victim = await c.add('V');
  // The key file was lost: the new metaserver cannot check any token issued before.
  const meta2 = await restart(t, c, { tokenKey: randomBytes(32) });
  const registers: string[] = [];
  meta2.on('register', (r) => registers.push(r.id));
  // Announce as the periodic timer would (the first may meet the kept connection the old metaserver closed).
  await until(async () => {
    await victim.announce();
    return registers.includes('V');
  }, { what: 'V registered again after its announce was unverified' });
  t.is(holderPort(meta2, 'V'), victim.address.port);
  // Its new token is accepted from now on.
  await victim.announce();
  t.is(holderPort(meta2, 'V'), victim.address.port);
});
