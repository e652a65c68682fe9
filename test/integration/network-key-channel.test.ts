/**
 * The network key as a secure channel (TLS-PSK, core/transport/auth.ts),
 * attacked over real loopback sockets: a wrong key at the acceptor, a
 * recorded session replayed, silent or stalled handshakes against a short
 * handshake timeout, and a relay in the middle that flips one byte of a
 * frame or of a transfer body. Everything waits on events; the only timers
 * are guards that turn a hang into a failure.
 */
import test, { type ExecutionContext } from 'ava';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Connection, errorCode, keyedTransport, PROTOCOL_VERSION, tcpTransport, type Message, type Transport } from '../../core/index.ts';
import { cluster } from '../helpers.ts';

const KEY = '0d4e6b1f8a3c92e75b0f1d6a4c8e2b9f3a7d5c1e0b8f6a2d4c9e7b3f1a5d8c0e';
const WRONG = 'a'.repeat(64);
const HS = 300;
/** Allowed lateness past the deadline (a loaded machine delays timers); the old code never closed at all. */
const SLACK = 2000;

/** What a keyed listener handed to the application; emits 'message' and 'close' as they happen. */
class Accepted extends EventEmitter {
  conns: Connection[] = [];
  messages: Message[] = [];
  /** Resolves on the next accepted connection's close, with its error. */
  nextClose(): Promise<Error | undefined> {
    return once(this, 'close').then(([e]) => e as Error | undefined);
  }
}

async function keyedListener(t: ExecutionContext, key = KEY, hs = HS) {
  const acc = new Accepted();
  const l = await keyedTransport(tcpTransport(), key).listen({
    host: '127.0.0.1',
    port: 0,
    connection: { handshakeTimeoutMs: hs },
    onConnection: (c) => {
      acc.conns.push(c);
      c.on('message', (m) => {
        acc.messages.push(m);
        acc.emit('message', m);
      });
      c.on('close', (e) => acc.emit('close', e));
    },
  });
  t.teardown(() => l.close());
  return { listener: l, acc };
}

type Tamper = (dir: 'c2s' | 's2c', chunk: Buffer, offset: number) => Buffer | null;

/** A TCP relay in front of `port`, recording both directions; `tamper` may change or drop chunks. */
async function relay(t: ExecutionContext, port: number, tamper?: Tamper) {
  /** Emits 'upstream-close' (ms since the relayed connection opened) when the target closes its side. */
  const r = Object.assign(new EventEmitter(), { port: 0, c2s: [] as Buffer[] });
  const server = net.createServer((down) => {
    const up = net.connect({ host: '127.0.0.1', port });
    const t0 = performance.now();
    up.on('close', () => r.emit('upstream-close', performance.now() - t0));
    let c2s = 0;
    let s2c = 0;
    down.on('data', (b) => {
      r.c2s.push(Buffer.from(b));
      const out = tamper ? tamper('c2s', b, c2s) : b;
      c2s += b.length;
      if (out) up.write(out);
    });
    up.on('data', (b) => {
      const out = tamper ? tamper('s2c', b, s2c) : b;
      s2c += b.length;
      if (out) down.write(out);
    });
    for (const [a, b] of [[down, up], [up, down]] as const) {
      a.on('error', () => b.destroy());
      a.on('end', () => b.end());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  r.port = (server.address() as net.AddressInfo).port;
  t.teardown(() => new Promise<void>((res) => server.close(() => res())));
  return r;
}

/** Resolves when `p` settles, or rejects after `ms` (a guard against hangs, not a sleep to wait on). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const guard = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: still open after ${ms} ms`)), ms)));
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** A raw socket to `port` that writes `bytes` (if any) and resolves with [ms until closed, bytes received]. */
function rawSession(port: number, bytes?: Buffer): Promise<[number, Buffer]> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const got: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port }, () => bytes && s.write(bytes));
    s.on('data', (d) => got.push(d));
    s.on('error', () => undefined);
    s.on('close', () => resolve([performance.now() - t0, Buffer.concat(got)]));
  });
}

const ping = (n: number): Message => ({ t: 'ping', v: PROTOCOL_VERSION, n });

test('a wrong key is refused at the acceptor: no connection reaches the application', async (t) => {
  const { listener, acc } = await keyedListener(t);
  const err = await t.throwsAsync(keyedTransport(tcpTransport(), WRONG).connect(listener.address));
  t.is(errorCode(err), 'auth-failed');
  t.regex(String(err?.message), /does not hold the same network key/);
  // The right key still gets in afterwards, and its frames arrive.
  const ok = await keyedTransport(tcpTransport(), KEY).connect(listener.address);
  t.teardown(() => ok.destroy());
  const got = once(acc, 'message');
  ok.send(ping(1));
  t.deepEqual((await within(got, 5000, 'ping'))[0], ping(1));
  t.is(acc.conns.length, 1, 'only the right-key connection was handed to the application');
});

test('a recorded session replayed byte for byte is refused', async (t) => {
  const { listener, acc } = await keyedListener(t);
  const r = await relay(t, listener.address.port);
  const conn = await keyedTransport(tcpTransport(), KEY).connect({ host: '127.0.0.1', port: r.port });
  const closed = acc.nextClose();
  conn.send(ping(7));
  conn.end();
  await within(closed, 5000, 'the genuine session');
  t.deepEqual(acc.messages, [ping(7)]);
  const recorded = Buffer.concat(r.c2s);
  t.true(recorded.length > 100);
  t.is(recorded.indexOf('"ping"'), -1, 'the recorded frames are encrypted');
  // Replay everything the genuine client sent, in one go, as a new connection.
  const [ms] = await within(rawSession(listener.address.port, recorded), 5000, 'the replayed session');
  t.true(ms < HS + SLACK, `closed after ${ms} ms`);
  t.is(acc.conns.length, 1, 'the replay never reached the application');
  t.deepEqual(acc.messages, [ping(7)], 'no replayed frame was delivered');
});

test('the handshake timeout bounds the whole handshake: silent, stalled mid-TLS, and TLS-then-silence', async (t) => {
  const { listener, acc } = await keyedListener(t);
  const port = listener.address.port;
  // Connects and says nothing.
  const [silent] = await within(rawSession(port), HS + SLACK + 2000, 'a silent client');
  t.true(silent >= HS - 50 && silent < HS + SLACK, `silent client closed after ${silent} ms`);
  // Sends its ClientHello, then nothing more: the relay drops everything after the first client chunk.
  let firstSeen = false;
  const stall = await relay(t, port, (dir, b) => {
    if (dir === 's2c') return b;
    if (firstSeen) return null;
    firstSeen = true;
    return b;
  });
  const upClosed = once(stall, 'upstream-close');
  const stalled = t.throwsAsync(keyedTransport(tcpTransport(), KEY).connect({ host: '127.0.0.1', port: stall.port }, { connection: { handshakeTimeoutMs: 5000 } }));
  const [upMs] = (await within(upClosed, HS + SLACK + 2000, 'a stalled TLS handshake')) as [number];
  t.true(upMs < HS + SLACK, `stalled handshake closed by the acceptor after ${upMs} ms`);
  await stalled;
  // Completes TLS, then never sends a request.
  const conn = await keyedTransport(tcpTransport(), KEY).connect(listener.address);
  const t0 = performance.now();
  const reply = new Promise<Message | undefined>((res) => {
    conn.on('message', (m) => res(m));
    conn.on('close', () => res(undefined));
  });
  const closed = acc.nextClose();
  const e = await within(closed, HS + SLACK + 2000, 'TLS then silence');
  const ms = performance.now() - t0;
  t.true(ms < HS + SLACK, `TLS-then-silence closed after ${ms} ms`);
  t.is(errorCode(e), 'timeout');
  t.like(await reply, { t: 'error', code: 'timeout' }, 'the client is told why, inside the channel');
  t.is(acc.messages.length, 0);
});

test('hello-then-silence (the old key handshake) is closed within the handshake timeout', async (t) => {
  // Regression for issue 11 item 3: before, `hello` stopped the timer and the connection stayed open forever.
  const c = await cluster({ meta: { networkKey: KEY, connection: { handshakeTimeoutMs: HS } } });
  t.teardown(() => c.close());
  const hello = Buffer.from(JSON.stringify({ t: 'hello', v: PROTOCOL_VERSION, nonce: randomBytes(16).toString('hex') }) + '\n');
  const [ms, got] = await within(rawSession(c.meta.address.port, hello), HS + SLACK + 1000, 'hello then silence');
  t.true(ms < HS + SLACK, `closed after ${ms} ms`);
  t.regex(got.toString(), /"code":"auth-required"/);
});

test('a relay that flips one byte of a frame breaks the connection; nothing altered is delivered', async (t) => {
  const { listener, acc } = await keyedListener(t);
  let flipped = false;
  const r = await relay(t, listener.address.port, (dir, b) => {
    // The first application-data record (TLS content type 23) from the client: flip its last byte.
    if (dir === 'c2s' && !flipped && b[0] === 0x17) {
      flipped = true;
      const x = Buffer.from(b);
      x[x.length - 1]! ^= 0x01;
      return x;
    }
    return b;
  });
  const conn = await keyedTransport(tcpTransport(), KEY).connect({ host: '127.0.0.1', port: r.port });
  const closed = acc.nextClose();
  const clientClosed = new Promise<void>((res) => conn.on('close', () => res()));
  conn.send(ping(1));
  const e = await within(closed, 5000, 'the tampered connection');
  t.true(flipped);
  t.regex(String(e?.message), /altered in transit/);
  t.deepEqual(acc.messages, [], 'the altered frame was never delivered');
  await within(clientClosed, 5000, 'the client side');
});

test('a relay that flips one byte of a transfer body breaks the transfer; the receiver only ever holds genuine bytes', async (t) => {
  const body = randomBytes(4 * 1024 * 1024);
  const at = 1024 * 1024 + 12345;
  let flippedAt = -1;
  const received: Buffer[] = [];
  let conns = 0;
  const done = new Promise<Error | undefined>((resolve, reject) => {
    void keyedTransport(tcpTransport(), KEY)
      .listen({
        host: '127.0.0.1',
        port: 0,
        onConnection: (c) => {
          conns++;
          c.on('message', (m) => {
            if (m.t !== 'offer') return;
            c.send({ t: 'ack' });
            const rest = c.raw();
            if (rest.length) received.push(rest);
            c.on('data', (d) => received.push(d));
          });
          c.on('close', resolve);
        },
      })
      .then(async (l) => {
        t.teardown(() => l.close());
        const r = await relay(t, l.address.port, (dir, b, off) => {
          if (dir === 'c2s' && flippedAt < 0 && off <= at && at < off + b.length) {
            const x = Buffer.from(b);
            x[at - off]! ^= 0x80;
            flippedAt = at;
            return x;
          }
          return b;
        });
        const conn = await keyedTransport(tcpTransport(), KEY).connect({ host: '127.0.0.1', port: r.port });
        conn.on('message', (m) => {
          if (m.t !== 'ack') return;
          let sent = 0;
          const pump = () => {
            while (sent < body.length) {
              const chunk = body.subarray(sent, sent + 64 * 1024);
              sent += chunk.length;
              if (!conn.write(chunk)) return void conn.once('drain', pump);
            }
            conn.end();
          };
          pump();
        });
        conn.on('close', () => undefined);
        conn.send({ t: 'offer', v: PROTOCOL_VERSION, qid: 'q1', from: { id: 'H', host: '127.0.0.1', port: 1 }, name: 'a.bin', size: body.length, sha256: '0'.repeat(64) });
      })
      .catch(reject);
  });
  const e = await within(done, 10_000, 'the tampered transfer');
  t.is(conns, 1);
  t.true(flippedAt > 0, 'the relay flipped a byte');
  t.regex(String(e?.message), /altered in transit/);
  const got = Buffer.concat(received);
  t.true(got.length < body.length, `stopped short: ${got.length} of ${body.length} bytes`);
  t.true(got.equals(body.subarray(0, got.length)), 'every byte delivered is genuine (no corrupt data)');
});

test('keyed and unkeyed nodes refuse each other at once with a clear error', async (t) => {
  // Keyed client → unkeyed listener.
  const seen: Array<Error | undefined> = [];
  const plain = await tcpTransport().listen({ host: '127.0.0.1', port: 0, onConnection: (c) => c.on('close', (e) => seen.push(e)) });
  t.teardown(() => plain.close());
  const err = await within(t.throwsAsync(keyedTransport(tcpTransport(), KEY).connect(plain.address)), 3000, 'keyed → unkeyed');
  t.is(errorCode(err), 'auth-unsupported');
  t.regex(String(err?.message), /uses no network key/);
  // Unkeyed client → keyed listener.
  const { listener, acc } = await keyedListener(t);
  const conn = await tcpTransport().connect(listener.address);
  const reply = new Promise<Message>((res) => conn.on('message', res));
  conn.send(ping(1));
  t.like(await within(reply, 3000, 'unkeyed → keyed'), { t: 'error', code: 'auth-required' });
  t.is(acc.conns.length, 0);
});

test('short keys and transports that cannot carry TLS are refused', (t) => {
  for (const k of ['', 'short', 'x'.repeat(31)]) {
    const e = t.throws(() => keyedTransport(tcpTransport(), k));
    t.is(errorCode(e), 'bad-key');
    t.regex(String(e?.message), /too short .*at least 32.*npm run keygen/);
  }
  t.notThrows(() => keyedTransport(tcpTransport(), 'x'.repeat(32)));
  const memoryLike: Transport = { kind: 'memory', listen: () => Promise.reject(new Error('unused')), connect: () => Promise.reject(new Error('unused')) };
  t.is(errorCode(t.throws(() => keyedTransport(memoryLike, KEY))), 'key-unsupported');
});
