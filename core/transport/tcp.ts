/**
 * TCP transport: the only place that touches node:net. Listens and connects
 * on host:port, wraps each socket in a Connection, and turns socket errors
 * into one-line TreeshareErrors (port in use, connection refused, ...).
 * With a pre-shared key (`withPsk`, see auth.ts) every socket first runs a
 * TLS-PSK handshake and the Connection sits on the TLS socket; shaping
 * (--latency/--bandwidth) then applies to the decrypted side.
 */
import net from 'node:net';
import type tls from 'node:tls';
import { LocalError, TreeshareError, UnreachableError } from '../errors.ts';
import { addrKey } from '../protocol/messages.ts';
import { encode } from '../protocol/codec.ts';
import { connectSecure, secureAcceptor, secureContext } from './auth.ts';
import { abortError, Connection, DEFAULT_HANDSHAKE_MS, type ByteLink } from './connection.ts';
import { isShaped, ShapedLink, type LinkShape } from './shaped.ts';
import { TcpLink } from './tcp-link.ts';
import type { ConnectOptions, HostPort, Listener, ListenOptions, Transport } from './transport.ts';

/** Inbound connections a listener accepts at once unless told otherwise (the metaserver's default). */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

export interface TcpOptions {
  /** Added latency and bandwidth cap on every connection's outgoing side (user-space emulation). */
  shape?: LinkShape;
  /** TLS pre-shared key (already stretched, see auth.ts derivePsk): every connection runs over TLS-PSK. */
  psk?: Buffer;
}

interface Secure {
  psk: Buffer;
  ctx: tls.SecureContext;
}

export function tcpTransport(o: TcpOptions = {}): Transport {
  const wrap = (sock: net.Socket): ByteLink => (isShaped(o.shape) ? new ShapedLink(sock, o.shape) : sock);
  const sec: Secure | undefined = o.psk ? { psk: o.psk, ctx: secureContext() } : undefined;
  return {
    kind: 'tcp',
    // Accepted plain sockets get a TcpLink: a transfer body can then be read into a reused buffer.
    // TLS (network key) and shaped links keep the stream path.
    listen: (opts) => listen(opts, wrap, sec, (s) => (isShaped(o.shape) ? new ShapedLink(s, o.shape) : new TcpLink(s))),
    // Plain unshaped outgoing sockets are read through `onread` (TcpLink.connect): a swarm's piece
    // connections then read into a reused buffer too.
    connect: (to, opts) => connect(to, opts, wrap, sec, !sec && !isShaped(o.shape), o.shape),
    withPsk: (psk) => tcpTransport({ ...o, psk }),
  };
}

async function listen(opts: ListenOptions, wrap: (s: net.Socket) => ByteLink, sec: Secure | undefined, acceptPlain: (s: net.Socket) => ByteLink = wrap): Promise<Listener> {
  // allowHalfOpen: a client that half-closes in the middle of a frame can still
  // be told why (Connection answers `truncated-frame`, then ends its side).
  const server = net.createServer({ noDelay: true, allowHalfOpen: true });
  const max = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  let open = 0;
  // Keyed: the application sees a connection only once the TLS handshake
  // proved the key; the handshake timeout covers TLS and the first request.
  const secure = sec
    ? secureAcceptor(sec.psk, opts.connection?.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_MS, (s, leftMs) =>
        opts.onConnection(new Connection(wrap(s), remoteOf(s), true, { ...opts.connection, handshakeTimeoutMs: leftMs })),
      )
    : undefined;
  const tooMany = () => encode({ t: 'error', code: 'too-many-connections', message: `over the limit of ${max} connections; try again later` });
  // Keyed: a refusal is said inside the channel (a keyed client reads nothing in plain text), for a bounded
  // number of refused handshakes at once; past that, refused sockets are simply closed.
  let refusing = 0;
  // Sockets refused over the limit, until they close: closing the listener ends them at once
  // (server.close() waits for every socket, and a refused one may linger up to its 1 s timer).
  const refused = new Set<net.Socket>();
  const refuseSecure = sec
    ? secureAcceptor(sec.psk, opts.connection?.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_MS, (s) => {
        s.on('error', () => undefined);
        s.end(tooMany());
        setTimeout(() => s.destroy(), 1000).unref();
      })
    : undefined;
  server.on('connection', (sock) => {
    sock.setNoDelay(true);
    if (open >= max) {
      // Over the limit: say why, then close (the others keep being served). Reading on lets the
      // client's FIN close the socket at once (an unread socket lingers until the destroy timer).
      sock.on('error', () => undefined);
      refused.add(sock);
      sock.once('close', () => refused.delete(sock));
      if (refuseSecure && refusing < 64) {
        refusing++;
        sock.once('close', () => refusing--);
        return refuseSecure(sock);
      }
      sock.resume();
      if (sec) sock.end();
      else sock.end(tooMany());
      setTimeout(() => sock.destroy(), 1000).unref();
      return;
    }
    open++;
    sock.once('close', () => open--);
    if (secure) return secure(sock);
    opts.onConnection(new Connection(acceptPlain(sock), remoteOf(sock), true, opts.connection));
  });
  await new Promise<void>((resolve, reject) => {
    const onErr = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(listenError(err, opts.host, opts.port));
    };
    const onListening = () => {
      server.off('error', onErr);
      resolve();
    };
    server.once('error', onErr);
    server.once('listening', onListening);
    server.listen({ host: opts.host, port: opts.port, exclusive: true, backlog: 4096 });
  });
  server.on('error', () => {
    /* after listening, errors surface per connection */
  });
  const a = server.address() as net.AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    address: { host: opts.host, port: a.port },
    close() {
      closing ??= new Promise<void>((resolve) => server.close(() => resolve()));
      for (const sock of refused) sock.destroy();
      return closing;
    },
  };
}

function remoteOf(sock: net.Socket): string {
  return sock.remoteAddress ? addrKey({ host: sock.remoteAddress.replace(/^::ffff:/, ''), port: sock.remotePort ?? 0 }) : 'unknown';
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): TreeshareError {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new LocalError('port-in-use', `cannot listen on ${where}: port ${port} is already in use`);
    case 'EADDRNOTAVAIL':
      return new LocalError('bad-host', `cannot listen on ${where}: ${host} is not an address of this machine`);
    case 'EACCES':
      return new LocalError('permission-denied', `cannot listen on ${where}: permission denied`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new LocalError('bad-host', `cannot listen on ${where}: unknown host ${host}`);
    default:
      return new LocalError('listen-failed', `cannot listen on ${where}: ${err.message}`);
  }
}

/**
 * One round trip of the emulated link (2 × latency): what a TCP connect costs before the
 * connector's first byte, as the memory transport charges it (SYN there, SYN-ACK back).
 * The loopback connect itself takes next to nothing, so a shaped link waits this out after
 * it, and before saying a connect was refused (the refusal travels back too). Abortable.
 */
function connectRoundTrip(shape: LinkShape | undefined, signal: AbortSignal | undefined, what: string): Promise<void> {
  const rtt = 2 * Math.max(0, shape?.latencyMs ?? 0);
  if (rtt === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal, what));
    const onAbort = () => {
      clearTimeout(h);
      reject(abortError(signal!, what));
    };
    const h = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, rtt);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function connect(to: HostPort, opts: ConnectOptions = {}, wrap: (s: net.Socket) => ByteLink, sec: Secure | undefined, userReads = false, shape?: LinkShape): Promise<Connection> {
  const where = addrKey(to);
  const what = `a connection to ${where}`;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(abortError(opts.signal, what));
    const netOpts: net.TcpNetConnectOpts = { host: to.host, port: to.port, noDelay: true, ...(opts.localHost ? { localAddress: opts.localHost } : {}) };
    let link: (() => ByteLink) | undefined;
    let sock: net.Socket;
    if (userReads) ({ sock, link } = TcpLink.connect(netOpts));
    else sock = net.connect(netOpts);
    const onAbort = () => {
      sock.destroy();
      reject(abortError(opts.signal!, what));
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let connected = false;
    sock.once('error', (err: NodeJS.ErrnoException) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (connected) return reject(connectError(err, where));
      connectRoundTrip(shape, opts.signal, what).then(() => reject(connectError(err, where)), reject);
    });
    sock.once('connect', () => {
      connected = true;
      opts.signal?.removeEventListener('abort', onAbort);
      connectRoundTrip(shape, opts.signal, what).then(
        () => {
          // The socket may have failed while the round trip was being waited out (its error rejected already).
          if (sock.destroyed) return;
          sock.removeAllListeners('error');
          const own = (l: ByteLink): ByteLink => (opts.wrapLink ? opts.wrapLink(l) : l);
          if (!sec) return resolve(new Connection(own(link ? link() : wrap(sock)), where, false, opts.connection));
          connectSecure(sock, sec.psk, sec.ctx, where, opts.connection?.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_MS, opts.signal).then(
            (s) => resolve(new Connection(own(wrap(s)), where, false, opts.connection)),
            reject,
          );
        },
        (err) => {
          sock.destroy();
          reject(err);
        },
      );
    });
  });
}

function connectError(err: NodeJS.ErrnoException, where: string): TreeshareError {
  switch (err.code) {
    case 'ECONNREFUSED':
      return new UnreachableError(where, `connection refused (is it running?)`);
    case 'ETIMEDOUT':
      return new UnreachableError(where, `timed out`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new UnreachableError(where, `host unreachable`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UnreachableError(where, `unknown host`);
    case 'EADDRNOTAVAIL':
      return new UnreachableError(where, `address not available`);
    default:
      return new UnreachableError(where, `${err.message}`);
  }
}
