/**
 * Minimal JSON-lines servers used as floors: they answer the first line of
 * each connection with a canned line and nothing else (no parsing, no
 * validation, no state). `closeAfter` ends the connection after answering
 * (a metaserver-like exchange); otherwise it stays open (a parent-like link).
 */
import net from 'node:net';

export interface EchoServer {
  port: number;
  close(): Promise<void>;
}

export async function echoServer(reply: string, closeAfter: boolean): Promise<EchoServer> {
  const line = Buffer.from(reply.endsWith('\n') ? reply : reply + '\n');
  const socks = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => undefined);
    let answered = false;
    sock.on('data', (b) => {
      if (answered || b.indexOf(0x0a) < 0) return;
      answered = true;
      if (closeAfter) sock.end(line);
      else sock.write(line);
    });
  });
  server.maxConnections = 10_000;
  const port = await new Promise<number>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve((server.address() as net.AddressInfo).port)));
  return {
    port,
    async close() {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Connects, sends one line, resolves with the socket once a full answer line arrived. */
export function exchange(port: number, line: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let got = '';
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(line.endsWith('\n') ? line : line + '\n'));
    sock.on('data', (d: string) => {
      got += d;
      if (got.includes('\n')) {
        sock.removeAllListeners('data');
        resolve(sock);
      }
    });
    sock.once('error', reject);
  });
}
