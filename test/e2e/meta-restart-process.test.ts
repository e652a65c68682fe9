/**
 * Issue 22 defect 8 against the real metaserver command, started as a person
 * starts it (no token key flag: the default key file under $XDG_STATE_HOME,
 * here the test's temporary folder), killed with SIGKILL and started again on
 * the same port with the same state folder. Fake peers (plain sockets that
 * answer probes with proof of the token they hold) play the victims and the
 * attacker, a registered member with a genuine token of its own.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { PROTOCOL_VERSION } from '../../core/index.ts';
import { request } from '../../core/metaserver/client.ts';
import type { Message } from '../../core/protocol/messages.ts';
import { tcpTransport } from '../../core/transport/tcp.ts';
import { provingPeer, type ProvingPeer } from '../integration/wire.ts';
import { Procs, START_TIMEOUT_MS } from './proc.ts';

type Meta = { host: string; port: number };

/** Sends `m` to the metaserver: its answer, or `{t: 'error', code}` with the code it refused with. */
async function ask(meta: Meta, m: Message): Promise<{ t: string; code?: string; token?: string }> {
  return request(tcpTransport(), meta, m, ['ok', 'registered']).catch((err: { code?: string; remoteCode?: string }) => ({ t: 'error', code: err.remoteCode ?? err.code }));
}
const register = (meta: Meta, p: ProvingPeer) => ask(meta, { t: 'register', v: PROTOCOL_VERSION, id: p.id, host: '127.0.0.1', port: p.port, maxChildren: 2 });
const announce = (meta: Meta, p: ProvingPeer, parent: string | null) =>
  ask(meta, { t: 'announce', v: PROTOCOL_VERSION, id: p.id, host: '127.0.0.1', port: p.port, parent, depth: parent ? 1 : 0, children: 0, maxChildren: 2, token: p.token });
const holders = async (meta: Meta) => {
  const r = await request(tcpTransport(), meta, { t: 'status', v: PROTOCOL_VERSION }, ['registry']);
  return Object.fromEntries(r.peers.map((e) => [e.id, e.port]));
};

test('the default metaserver, killed and restarted: an attacker can neither announce nor register a live peer\'s id away', async (t) => {
  const ps = new Procs();
  t.teardown(() => ps.close());
  const first = await ps.metaserver(false);
  const keyFile = path.join(ps.dir, 'treeshare', 'metaserver-token.key');
  const keyLine = new RegExp(`^token key: ${keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `, 'm');
  await first.proc.waitOut(keyLine);
  t.is(fs.statSync(keyFile).mode & 0o777, 0o600);
  const meta = { host: '127.0.0.1', port: first.port };

  const root = await provingPeer(t, 'R');
  const v1 = await provingPeer(t, 'V1');
  const v2 = await provingPeer(t, 'V2');
  const attacker = await provingPeer(t, 'EVIL');
  for (const p of [root, v1, v2, attacker]) {
    const r = await register(meta, p);
    t.is(r.t, 'registered');
    p.token = r.token!;
  }

  first.proc.child.kill('SIGKILL');
  await first.proc.exit;
  const again = ps.start('metaserver', ['--host', '127.0.0.1', '--port', String(meta.port)]);
  await again.waitOut(keyLine, START_TIMEOUT_MS);

  // The attack: the first to announce V1 is the attacker, at its own address, proving its own token.
  attacker.id = 'V1';
  t.deepEqual(await announce(meta, attacker, 'R'), { t: 'error', code: 'unverified' });
  // The register race: V2 looks free, the attacker registers it and gets a genuine token for V2.
  attacker.id = 'V2';
  const raced = await register(meta, attacker);
  t.is(raced.t, 'registered');
  const stolen = raced.token!;

  // The real peers announce (tokens from before the restart) and keep their ids, at their addresses.
  t.is((await announce(meta, root, null)).t, 'ok');
  t.is((await announce(meta, v1, 'R')).t, 'ok');
  t.is((await announce(meta, v2, 'R')).t, 'ok');
  t.deepEqual(await holders(meta), { R: root.port, V1: v1.port, V2: v2.port });
  await again.waitOut(/drop {6}V2: taken back by 127\.0\.0\.1:\d+/);

  // The attacker's token for V2 is worthless now, and V2 is held by a live peer.
  attacker.token = stolen;
  t.deepEqual(await announce(meta, attacker, 'R'), { t: 'error', code: 'bad-token' });
  t.deepEqual(await register(meta, attacker), { t: 'error', code: 'duplicate-id' });
  t.deepEqual(await holders(meta), { R: root.port, V1: v1.port, V2: v2.port });
});
