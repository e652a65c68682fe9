/**
 * TcpLink.readInto (the transfer fast path's socket hook): an accepted
 * socket's reads move into a reused buffer with no byte lost or reordered,
 * writes and close still work, and the listener still sees the connection
 * end (its close() resolves, so connection counting is intact).
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import type { Connection } from '../../core/transport/connection.ts';
import type { Message } from '../../core/protocol/messages.ts';
import { encode } from '../../core/protocol/codec.ts';
import { tcpTransport } from '../../core/transport/tcp.ts';
import type { Listener } from '../../core/transport/transport.ts';

/** A TCP listener, a plain client socket connected to it, and the listener's Connection for it. */
async function acceptedPair(): Promise<{ listener: Listener; client: net.Socket; conn: Connection }> {
  let accepted!: (c: Connection) => void;
  const got = new Promise<Connection>((r) => (accepted = r));
  const listener = await tcpTransport().listen({ host: '127.0.0.1', port: 0, onConnection: (c) => accepted(c) });
  const client = net.connect({ host: '127.0.0.1', port: listener.address.port });
  client.on('error', () => undefined);
  return { listener, client, conn: await got };
}

test('an accepted socket switched to a reused read buffer delivers every byte in order, then closes cleanly', async (t) => {
  t.timeout(20_000);
  const payload = randomBytes(5 * 1024 * 1024 + 123);
  const { listener, client, conn } = await acceptedPair();
  const buf = Buffer.alloc(64 * 1024);
  const h = createHash('sha256');
  let bytes = 0;
  let reads = 0;
  const rest = conn.rawInto(buf, (n) => {
    reads++;
    bytes += n;
    h.update(buf.subarray(0, n));
  });
  t.truthy(rest, 'plain TCP supports the reused buffer');
  t.is(rest!.length, 0);
  // Writes still go out on the moved socket.
  const echoed = new Promise<string>((r) => client.once('data', (b) => r(b.toString())));
  conn.write(Buffer.from('hello'));
  t.is(await echoed, 'hello');
  const closed = new Promise<void>((r) => conn.once('close', () => r()));
  client.end(payload);
  await closed;
  t.is(bytes, payload.length);
  t.is(h.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  t.true(reads >= Math.ceil(payload.length / buf.length), `${reads} reads`);
  // Resolves only once the server counts no open connection.
  await listener.close();
  t.pass();
});

test('a shaped TCP link keeps the stream path (rawInto answers null)', async (t) => {
  let accepted!: (c: Connection) => void;
  const got = new Promise<Connection>((r) => (accepted = r));
  const listener = await tcpTransport({ shape: { latencyMs: 1 } }).listen({ host: '127.0.0.1', port: 0, onConnection: (c) => accepted(c) });
  const client = net.connect({ host: '127.0.0.1', port: listener.address.port });
  client.on('error', () => undefined);
  const conn = await got;
  t.is(conn.rawInto(Buffer.alloc(16), () => undefined), null);
  const closed = new Promise<void>((r) => conn.once('close', () => r()));
  client.destroy();
  await closed;
  await listener.close();
});

/**
 * An outgoing plain connection to a server that sends one frame (`ack`, read here) and then,
 * once it hears anything, `payload` as raw bytes and closes.
 */
async function ackThenPayload(t: ExecutionContext, payload: Buffer): Promise<Connection> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.write(encode({ t: 'ack' }));
    s.once('data', () => s.end(payload));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  const conn = await tcpTransport().connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  const first = await new Promise<Message>((r) => conn.once('message', r));
  t.is(first.t, 'ack');
  return conn;
}

test('an outgoing plain socket reads frames, then switches to a reused buffer with no byte lost (onread from the start)', async (t) => {
  t.timeout(20_000);
  const payload = randomBytes(3 * 1024 * 1024 + 77);
  // The first read after the switch was armed with the link's frame buffer, so it goes through the copy into the caller's buffer.
  const conn = await ackThenPayload(t, payload);
  const buf = Buffer.alloc(256 * 1024);
  const h = createHash('sha256');
  let bytes = 0;
  const rest = conn.rawInto(buf, (n) => {
    bytes += n;
    h.update(buf.subarray(0, n));
  });
  t.truthy(rest, 'an outgoing plain TCP connection supports the reused buffer');
  h.update(rest!);
  bytes += rest!.length;
  const closed = new Promise<void>((r) => conn.once('close', () => r()));
  conn.write(Buffer.from('go'));
  await closed;
  t.is(bytes, payload.length);
  t.is(h.digest('hex'), createHash('sha256').update(payload).digest('hex'));
});

/**
 * Reads that land where a buffer function says: each read is armed with the unfilled tail of
 * the current "piece" (as the swarm requester does), so bytes arrive in place; only a read
 * armed before the switch lands elsewhere and is copied.
 */
async function readIntoPieces(t: import('ava').ExecutionContext, conn: Connection, payload: Buffer, piece: number, start: () => void): Promise<void> {
  const out = Buffer.alloc(payload.length);
  let filled = 0;
  let elsewhere = 0;
  let reads = 0;
  const tail = () => out.subarray(filled, Math.min(payload.length, (Math.floor(filled / piece) + 1) * piece));
  const rest = conn.rawInto(
    () => (filled < payload.length ? tail() : Buffer.allocUnsafe(16)),
    (n, b) => {
      reads++;
      t.true(n <= b.length);
      if (b.buffer === out.buffer && b.byteOffset === filled) {
        // In place: a read never crosses the end of the piece it was armed for.
        t.true(filled + n <= (Math.floor(filled / piece) + 1) * piece);
      } else {
        elsewhere++;
        b.copy(out, filled, 0, n);
      }
      filled += n;
    },
  );
  t.truthy(rest, 'plain TCP supports a buffer function');
  t.is(rest!.length, 0);
  rest!.copy(out, 0);
  filled += rest!.length;
  const closed = new Promise<void>((r) => conn.once('close', () => r()));
  start();
  await closed;
  t.is(filled, payload.length);
  t.true(out.equals(payload), 'every byte in order');
  t.true(elsewhere <= 1, `${elsewhere} reads landed outside the piece tails (only one armed before the switch may)`);
  t.true(reads >= Math.ceil(payload.length / piece), `${reads} reads for ${Math.ceil(payload.length / piece)} pieces`);
}

test('an outgoing plain socket switched to a buffer function reads every byte in place, piece by piece', async (t) => {
  t.timeout(20_000);
  const payload = randomBytes(3 * 1024 * 1024 + 77);
  const conn = await ackThenPayload(t, payload);
  await readIntoPieces(t, conn, payload, 200 * 1024 + 3, () => conn.write(Buffer.from('go')));
});

test('an accepted socket switched to a buffer function reads every byte in place', async (t) => {
  t.timeout(20_000);
  const payload = randomBytes(2 * 1024 * 1024 + 5);
  const { listener, client, conn } = await acceptedPair();
  await readIntoPieces(t, conn, payload, 300 * 1024, () => client.end(payload));
  await listener.close();
});
