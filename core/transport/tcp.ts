/**
 * TCP transport: the only place that touches node:net. Listens and connects
 * on host:port, wraps each socket in a Connection, and turns socket errors
 * into one-line TreeshareErrors (port in use, connection refused, ...).
 */
import net from 'node:net';
import { LocalError, TreeshareError, UnreachableError } from '../errors.ts';
import { addrKey } from '../protocol/messages.ts';
import { encode } from '../protocol/codec.ts';
import { abortError, Connection, type ByteLink } from './connection.ts';
import { isShaped, ShapedLink, type LinkShape } from './shaped.ts';
import type { ConnectOptions, HostPort, Listener, ListenOptions, Transport } from './transport.ts';

export interface TcpOptions {
  /** Added latency and bandwidth cap on every connection's outgoing side (user-space emulation). */
  shape?: LinkShape;
}

export function tcpTransport(o: TcpOptions = {}): Transport {
  const wrap = (sock: net.Socket): ByteLink => (isShaped(o.shape) ? new ShapedLink(sock, o.shape) : sock);
  return {
    kind: 'tcp',
    listen: (opts) => listen(opts, wrap),
    connect: (to, opts) => connect(to, opts, wrap),
  };
}

async function listen(opts: ListenOptions, wrap: (s: net.Socket) => ByteLink): Promise<Listener> {
  // allowHalfOpen: a client that half-closes in the middle of a frame can still
  // be told why (Connection answers `truncated-frame`, then ends its side).
  const server = net.createServer({ noDelay: true, allowHalfOpen: true });
  const max = opts.maxConnections ?? 10_000;
  let open = 0;
  server.on('connection', (sock) => {
    sock.setNoDelay(true);
    if (open >= max) {
      // Over the limit: say why, then close (the others keep being served).
      sock.on('error', () => undefined);
      sock.end(encode({ t: 'error', code: 'too-many-connections', message: `over the limit of ${max} connections; try again later` }));
      setTimeout(() => sock.destroy(), 1000).unref();
      return;
    }
    open++;
    sock.once('close', () => open--);
    const remote = sock.remoteAddress ? addrKey({ host: sock.remoteAddress.replace(/^::ffff:/, ''), port: sock.remotePort ?? 0 }) : 'unknown';
    opts.onConnection(new Connection(wrap(sock), remote, true, opts.connection));
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
      return closing;
    },
  };
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

function connect(to: HostPort, opts: ConnectOptions = {}, wrap: (s: net.Socket) => ByteLink): Promise<Connection> {
  const where = addrKey(to);
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(abortError(opts.signal, `a connection to ${where}`));
    const sock = net.connect({ host: to.host, port: to.port, noDelay: true, ...(opts.localHost ? { localAddress: opts.localHost } : {}) });
    const onAbort = () => {
      sock.destroy();
      reject(abortError(opts.signal!, `a connection to ${where}`));
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(connectError(err, where));
    });
    sock.once('connect', () => {
      opts.signal?.removeEventListener('abort', onAbort);
      sock.removeAllListeners('error');
      resolve(new Connection(wrap(sock), where, false, opts.connection));
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
