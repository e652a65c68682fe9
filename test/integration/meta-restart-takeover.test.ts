/**
 * Issue 22 defect 8: after a metaserver restart, an id the rebuilt registry
 * does not hold yet is taken back only by a peer holding a token the
 * metaserver issued for that id (under its token key, kept across restarts).
 * The attack: an attacker announces a live victim's id at its own address
 * and proves a token of its own there; before the fix the victim was then
 * locked out (`bad-token` on its announces, `duplicate-id` on register).
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseMetaserverArgs } from '../../core/control/metaserver-args.ts';
import { Metaserver, PROTOCOL_VERSION } from '../../core/index.ts';
import { request } from '../../core/metaserver/client.ts';
import { proofOf } from '../../core/protocol/proof.ts';
import { tcpTransport } from '../../core/transport/tcp.ts';
import { cluster } from '../helpers.ts';
import { RawServer } from './wire.ts';

const tokenKey = randomBytes(32);

/** A refused request as `{t: 'error', code}` (the code the metaserver sent). */
const refusal = (err: { code?: string; remoteCode?: string }) => ({ t: 'error', code: err.remoteCode ?? err.code });

test('after a restart an attacker cannot take a live peer\'s id; the peer keeps it', async (t) => {
  const c = await cluster({ meta: { tokenKey }, peer: { announceMs: 0, heartbeatMs: 0 } });
  t.teardown(() => c.close());
  await c.add('R');
  const victim = await c.add('V');
  const meta = { host: '127.0.0.1', port: c.meta.address.port };
  // The attacker is a registered member: it holds a genuine token, issued for its own id.
  const attacker = await RawServer.open(t);
  const reg = await request(tcpTransport(), meta, { t: 'register', v: PROTOCOL_VERSION, id: 'EVIL', host: '127.0.0.1', port: attacker.port, maxChildren: 2 }, ['registered']);
  const token = reg.token;
  // At its own address it proves that token for whatever id it is asked about.
  const server = attacker.server;
  server.removeAllListeners('connection');
  server.on('connection', (s: net.Socket) => {
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const ping = JSON.parse(buf.slice(0, nl)) as { n: number; nonce?: string };
      s.end(JSON.stringify({ t: 'pong', n: ping.n, id: 'V', ...(ping.nonce ? { proof: proofOf(token, ping.nonce, 'V') } : {}) }) + '\n');
    });
    s.on('error', () => undefined);
  });

  await c.meta.stop();
  const meta2 = new Metaserver({ host: '127.0.0.1', port: meta.port, tokenKey });
  t.teardown(() => meta2.stop());
  await meta2.start();
  // The attacker is first to announce V, at its own address, with its own token.
  const claim = await request(tcpTransport(), meta, { t: 'announce', v: PROTOCOL_VERSION, id: 'V', host: '127.0.0.1', port: attacker.port, parent: 'R', depth: 1, children: 0, maxChildren: 2, token }, ['ok']).catch(refusal);
  t.is(claim.t, 'error');
  t.is((claim as { code?: string }).code, 'unverified');
  t.false(meta2.registryList().some((e) => e.id === 'V'));
  // The real V announces and keeps its id, at its own address.
  await victim.announce();
  const v = meta2.registryList().find((e) => e.id === 'V');
  t.is(v?.port, victim.address.port);
  // The attacker's announce is still refused once V is held again.
  const again = await request(tcpTransport(), meta, { t: 'announce', v: PROTOCOL_VERSION, id: 'V', host: '127.0.0.1', port: attacker.port, parent: 'R', depth: 1, children: 0, maxChildren: 2, token }, ['ok']).catch(refusal);
  t.is(again.t, 'error');
  t.is(meta2.registryList().find((e) => e.id === 'V')?.port, victim.address.port);
});

test('a metaserver without a token key still rebuilds from announces; a token key shorter than 32 bytes is refused', (t) => {
  t.throws(() => new Metaserver({ tokenKey: 'short' }), { message: /at least 32 bytes/ });
  t.notThrows(() => new Metaserver({ tokenKey: randomBytes(32) }));
});

test('--token-key-file: created once (mode 0600) and read back unchanged on the next start', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-tokenkey-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'meta.key');
  const first = parseMetaserverArgs(['--token-key-file', file]).options.tokenKey;
  t.regex(String(first), /^[0-9a-f]{64}$/);
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  t.is(parseMetaserverArgs(['--token-key-file', file]).options.tokenKey, first);
  fs.writeFileSync(path.join(dir, 'short.key'), 'abc');
  t.throws(() => parseMetaserverArgs(['--token-key-file', path.join(dir, 'short.key')]), { message: /too short/ });
});
