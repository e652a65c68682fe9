/**
 * Network key: mutual challenge-response on every connection, so a process
 * without the key can neither register, join, search, offer nor receive.
 *
 *   connector → acceptor  hello     {v, nonce: cN}
 *   acceptor  → connector challenge {nonce: sN, mac: HMAC(key, "acceptor|cN|sN")}
 *   connector → acceptor  auth      {mac: HMAC(key, "connector|sN|cN")}
 *   ...then the usual opener (register, join, offer, ...).
 *
 * The key never crosses the wire; each side proves it holds the key over the
 * other's fresh nonce, so replaying an old exchange fails. Verification on
 * the accepting side is synchronous, so an opener arriving in the same chunk
 * as `auth` reaches the application's handler.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { RemoteProtocolError, TreeshareError } from '../errors.ts';
import { PROTOCOL_VERSION, type Message } from '../protocol/messages.ts';
import { nextMessage, withTimeout, type Connection } from './connection.ts';
import type { Transport } from './transport.ts';

export class AuthError extends TreeshareError {}

export function mac(key: Buffer, role: 'acceptor' | 'connector', a: string, b: string): string {
  return createHmac('sha256', key).update(`treeshare/1|${role}|${a}|${b}`).digest('hex');
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** Normalises a key from a flag, environment variable or file: at least 8 bytes. */
export function parseKey(k: string | Buffer): Buffer {
  const b = typeof k === 'string' ? Buffer.from(k.trim(), 'utf8') : k;
  if (b.length < 8) throw new TreeshareError('bad-key', 'network key must be at least 8 bytes');
  return b;
}

export function keyedTransport(inner: Transport, keyInput: string | Buffer): Transport {
  const key = parseKey(keyInput);
  return {
    kind: inner.kind,
    listen: (opts) =>
      inner.listen({
        ...opts,
        onConnection: (conn) => acceptHandshake(conn, key, () => opts.onConnection(conn)),
      }),
    async connect(to, opts = {}) {
      const conn = await inner.connect(to, opts);
      try {
        const cN = randomBytes(16).toString('hex');
        const wait = nextMessage(conn, ['challenge'], { signal: withTimeout(opts.signal, 10_000), what: `the key challenge from ${conn.remote}` });
        conn.send({ t: 'hello', v: PROTOCOL_VERSION, nonce: cN });
        let ch;
        try {
          ch = await wait;
        } catch (err) {
          if (err instanceof TreeshareError && (err.code === 'unexpected-message' || err.code === 'auth-unsupported')) {
            throw new AuthError('auth-unsupported', `${conn.remote} does not use a network key (${err.message})`);
          }
          throw err;
        }
        if (!same(ch.mac, mac(key, 'acceptor', cN, ch.nonce))) {
          const e = new AuthError('auth-failed', `${conn.remote} does not hold the network key`);
          conn.fail(e);
          throw e;
        }
        conn.send({ t: 'auth', mac: mac(key, 'connector', ch.nonce, cN) });
        return conn;
      } catch (err) {
        conn.destroy();
        throw err;
      }
    },
  };
}

function acceptHandshake(conn: Connection, key: Buffer, ready: () => void): void {
  let sN = '';
  let cN = '';
  const onMsg = (m: Message) => {
    if (!sN) {
      if (m.t !== 'hello') return fail(new AuthError('auth-required', 'this network requires a key: connect with the network key'));
      cN = m.nonce;
      sN = randomBytes(16).toString('hex');
      conn.send({ t: 'challenge', nonce: sN, mac: mac(key, 'acceptor', cN, sN) });
      return;
    }
    if (m.t !== 'auth') return fail(new RemoteProtocolError('unexpected-message', `expected auth, got "${m.t}"`));
    if (!same(m.mac, mac(key, 'connector', sN, cN))) return fail(new AuthError('auth-failed', 'wrong network key'));
    conn.off('message', onMsg);
    conn.expectOpener();
    ready();
  };
  const fail = (e: TreeshareError) => {
    conn.off('message', onMsg);
    conn.fail(e);
  };
  conn.on('message', onMsg);
}
