/**
 * Network key: every connection of a keyed node is a TLS 1.2 channel
 * authenticated by a pre-shared key (node:tls, RFC 4279 PSK with RFC 5489
 * ECDHE, cipher suite ECDHE-PSK-CHACHA20-POLY1305 from RFC 7905).
 *
 * - Both sides prove they hold the key inside the TLS handshake (the Finished
 *   messages are MACed with secrets derived from the key and a fresh X25519
 *   exchange), so a process without the key never reaches the application.
 * - Every frame and every transferred byte after the handshake travels in
 *   AEAD records (ChaCha20-Poly1305): encrypted, integrity-protected and
 *   ordered, so a relay in the middle can neither read, alter, drop inside,
 *   reorder nor replay anything without the connection failing.
 * - Fresh randoms and ephemeral ECDHE on both sides: a recorded session
 *   replayed later fails the handshake; a key compromised later does not
 *   decrypt recorded sessions (forward secrecy); a passive eavesdropper
 *   cannot test key guesses against a recorded handshake (it lacks the
 *   ECDHE secret). Someone who makes a peer connect to it (or runs a
 *   connection through itself) can: see docs/SECURITY.md.
 * - Keys are at least 32 bytes (`npm run keygen` prints 32 random bytes as
 *   hex); what TLS uses is scrypt(key) so guessing a human-chosen key offline
 *   costs a memory-hard computation per guess.
 *
 * The TLS plumbing lives here; tcp.ts calls acceptSecure/connectSecure on
 * its raw sockets. Transports that cannot carry TLS (the in-memory one) have
 * no `withPsk` and keyedTransport refuses them.
 */
import { createHash, randomBytes, scryptSync } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import { LocalError, TreeshareError } from '../errors.ts';
import { encode } from '../protocol/codec.ts';
import { abortError, withTimeout } from './connection.ts';
import type { Transport } from './transport.ts';

export class AuthError extends TreeshareError {}

/** Shortest key accepted, bytes (of the key text, UTF-8). */
export const MIN_KEY_BYTES = 32;
/** The one TLS cipher suite keyed nodes speak. */
export const PSK_CIPHERS = 'ECDHE-PSK-CHACHA20-POLY1305';
/** PSK identity: fixed, says nothing about the key. */
const IDENTITY = 'treeshare/2';
/** First byte of a TLS handshake record; a treeshare frame starts with '{'. */
export const TLS_HANDSHAKE_BYTE = 0x16;

const TLS_OPTS = { ciphers: PSK_CIPHERS, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;

/** A fresh network key: 32 random bytes as 64 lowercase hex digits. */
export function generateKey(): string {
  return randomBytes(32).toString('hex');
}

/** Normalises a key from a flag, environment variable or file: trimmed, at least 32 bytes. */
export function parseKey(k: string | Buffer): Buffer {
  const b = typeof k === 'string' ? Buffer.from(k.trim(), 'utf8') : k;
  if (b.length < MIN_KEY_BYTES) throw new LocalError('bad-key', shortKeyMessage(b.length));
  return b;
}

export function shortKeyMessage(len: number, from = 'the network key'): string {
  return `${from} is too short (${len} bytes; at least ${MIN_KEY_BYTES} are needed): make one with \`npm run keygen\``;
}

const stretched = new Map<string, Buffer>();

/**
 * The TLS pre-shared key for `key`: scrypt (N=2^15, r=8, p=1, 32 MiB, about
 * 0.1 s) with a fixed protocol salt. Computed once per key and process.
 */
export function derivePsk(key: Buffer): Buffer {
  const id = createHash('sha256').update(key).digest('hex');
  let psk = stretched.get(id);
  if (!psk) {
    psk = scryptSync(key, 'treeshare/2 network key', 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    stretched.set(id, psk);
  }
  return psk;
}

export function keyedTransport(inner: Transport, keyInput: string | Buffer): Transport {
  const key = parseKey(keyInput);
  if (!inner.withPsk) {
    throw new LocalError('key-unsupported', `a network key needs the TCP transport (TLS); the ${inner.kind} transport cannot carry it`);
  }
  return inner.withPsk(derivePsk(key));
}

/** One reusable client TLS context (ciphers and versions only: PSK needs no certificate). */
export function secureContext(): tls.SecureContext {
  return tls.createSecureContext(TLS_OPTS);
}

/**
 * Accepting side. Returns the function to call with each raw socket just
 * accepted. The whole handshake (first byte, TLS handshake) must finish
 * within `hsMs` (0: unbounded) of the accept or the socket is destroyed;
 * `ready` gets the TLS socket and the time left for the first request. A
 * client that speaks plain frames (no key) gets `auth-required`. One
 * tls.Server per listener does the TLS work (it never listens itself).
 */
export function secureAcceptor(psk: Buffer, hsMs: number, ready: (s: tls.TLSSocket, leftMs: number) => void): (sock: net.Socket) => void {
  /** Sockets in their handshake, by remote address and port (unique among live connections to one listener). */
  const pending = new Map<string, { t0: number; timer: NodeJS.Timeout | undefined }>();
  const server = tls.createServer({
    ...TLS_OPTS,
    pskCallback: (_s: tls.TLSSocket, identity: string) => (identity === IDENTITY ? psk : null),
    handshakeTimeout: hsMs > 0 ? hsMs : 120_000,
  });
  // Failed handshakes (wrong key, garbage, replays): tls.Server destroys the socket; nothing reached the application.
  server.on('tlsClientError', () => undefined);
  server.on('secureConnection', (s: tls.TLSSocket) => {
    const k = `${s.remoteAddress}|${s.remotePort}`;
    const p = pending.get(k);
    if (!p) return void s.destroy();
    pending.delete(k);
    clearTimeout(p.timer);
    oneLineErrors(s);
    ready(s, hsMs > 0 ? Math.max(1, Math.round(hsMs - (performance.now() - p.t0))) : 0);
  });
  return (sock) => {
    const k = `${sock.remoteAddress}|${sock.remotePort}`;
    const entry = { t0: performance.now(), timer: hsMs > 0 ? setTimeout(() => sock.destroy(), hsMs) : undefined };
    entry.timer?.unref();
    pending.set(k, entry);
    sock.once('close', () => {
      clearTimeout(entry.timer);
      if (pending.get(k) === entry) pending.delete(k);
    });
    sock.on('error', () => undefined);
    sock.once('data', (first: Buffer) => {
      sock.pause();
      if (first[0] !== TLS_HANDSHAKE_BYTE) {
        sock.end(encode({ t: 'error', code: 'auth-required', message: 'this network requires a key: connect with the network key (--key-file or $TREESHARE_KEY)' }));
        setTimeout(() => sock.destroy(), 1000).unref();
        return;
      }
      // The TLS socket takes over the raw one, starting with the bytes already read.
      sock.unshift(first);
      server.emit('connection', sock);
    });
  };
}

/**
 * Connecting side, on a raw socket just connected: runs the TLS handshake
 * within `hsMs` (or until `signal`) and maps failures to clear errors.
 */
export function connectSecure(sock: net.Socket, psk: Buffer, ctx: tls.SecureContext, where: string, hsMs: number, signal?: AbortSignal): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      socket: sock,
      secureContext: ctx,
      ...TLS_OPTS,
      pskCallback: () => ({ psk, identity: IDENTITY }),
      checkServerIdentity: () => undefined,
    });
    const sig = hsMs > 0 ? withTimeout(signal, hsMs) : signal;
    const what = `the key handshake with ${where}`;
    const done = (err?: Error) => {
      sig?.removeEventListener('abort', onAbort);
      s.off('error', onError);
      s.off('close', onClose);
      if (!err) return resolve(s);
      s.destroy();
      reject(err);
    };
    const onAbort = () => done(abortError(sig!, what));
    const onError = (e: NodeJS.ErrnoException) => done(handshakeError(e, where));
    const onClose = () => done(new AuthError('connection-closed', `${where} closed the connection during ${what}`));
    if (sig?.aborted) return onAbort();
    sig?.addEventListener('abort', onAbort, { once: true });
    s.on('error', onError);
    s.on('close', onClose);
    s.once('secureConnect', () => {
      oneLineErrors(s);
      done();
    });
  });
}

function handshakeError(e: NodeJS.ErrnoException, where: string): TreeshareError {
  const code = e.code ?? '';
  // The other side could not verify our Finished (or we theirs): different keys.
  if (/BAD_RECORD_MAC|DECRYPT|UNKNOWN_PSK_IDENTITY|DIGEST_CHECK_FAILED/.test(code)) {
    return new AuthError('auth-failed', `${where} does not hold the same network key`);
  }
  // It answered in plain text: an unkeyed node (auth-unsupported) or a refusal such as too-many-connections.
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LAYER_FAILURE|UNEXPECTED_RECORD/.test(code)) {
    return new AuthError('auth-unsupported', `${where} did not answer the key handshake: it uses no network key (or refused the connection, e.g. too many connections)`);
  }
  if (code.startsWith('ERR_SSL')) return new AuthError('auth-failed', `key handshake with ${where} failed: ${tlsReason(e)}`);
  return new AuthError('connection-closed', `${where} closed the connection during the key handshake (${code || e.message.split('\n')[0]})`);
}

function tlsReason(e: Error): string {
  const r = (e as { reason?: unknown }).reason;
  return typeof r === 'string' && r ? r : e.message.split('\n')[0]!;
}

/**
 * OpenSSL messages are several lines with file paths; the Connection reports
 * the first error it sees, so make it one line that says what it means.
 */
function oneLineErrors(s: tls.TLSSocket): void {
  s.prependListener('error', (e: NodeJS.ErrnoException) => {
    if (!e.code?.startsWith('ERR_SSL')) return;
    const altered = /BAD_RECORD_MAC|DECRYPT/.test(e.code);
    e.message = altered
      ? `network key channel: a record failed authentication (${tlsReason(e)}): the data was altered in transit`
      : `network key channel: ${tlsReason(e)}`;
  });
}
