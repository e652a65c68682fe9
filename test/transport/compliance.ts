/**
 * One transport compliance suite, run against every transport (as js-libp2p
 * does): connect and frames both ways, refusal, half-close, backpressure,
 * abort while connecting, connection limits, close/destroy propagation and
 * the maxBufferedBytes trip. `transportCompliance(name, make)` registers the
 * ava tests; each test gets a fresh environment from `make` and closes it.
 *
 * Absence checks ("write() stays stalled while the reader is paused") need a
 * quiet period: env.quiet(ms) sleeps on the transport's own clock, which is
 * simulated time (instant) under a SimClock and a short real wait otherwise.
 */
import test, { type ExecutionContext } from 'ava';
import { errorCode, PROTOCOL_VERSION, type Connection, type Message, type Transport } from '../../core/index.ts';
import type { HostPort, Listener } from '../../core/transport/transport.ts';
import type { ConnectionOptions } from '../../core/transport/connection.ts';
import { nextMessage } from '../../core/transport/connection.ts';

export interface TransportEnv {
  transport: Transport;
  /** Host to listen on and connect to. */
  host: string;
  /** Resolves after `ms` of this transport's time with nothing else asked of it. */
  quiet(ms: number): Promise<void>;
  /** How long (transport ms) write() must see no 'drain' to count as stalled. */
  stallMs: number;
  /**
   * Most bytes a sender may get accepted past a reader that never reads
   * before it stalls (TCP: kernel socket buffers on both ends count).
   */
  maxStallBytes: number;
  close(): Promise<void>;
}

const CHUNK = 64 * 1024;

interface Server {
  listener: Listener;
  address: HostPort;
  accepted: Connection[];
  /** The n-th accepted connection (0-based), once it exists. */
  nth(n: number): Promise<Connection>;
}

async function serve(
  t: ExecutionContext,
  env: TransportEnv,
  o: { maxConnections?: number; connection?: ConnectionOptions; onConnection?: (c: Connection) => void } = {},
): Promise<Server> {
  const accepted: Connection[] = [];
  const waiting: Array<{ n: number; resolve: (c: Connection) => void }> = [];
  const listener = await env.transport.listen({
    host: env.host,
    port: 0,
    maxConnections: o.maxConnections,
    connection: o.connection,
    onConnection: (c) => {
      accepted.push(c);
      (o.onConnection ?? echo)(c);
      for (const w of waiting.filter((x) => x.n < accepted.length)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(accepted[w.n]!);
      }
    },
  });
  t.teardown(async () => {
    for (const c of accepted) c.destroy();
    await listener.close();
  });
  return {
    listener,
    address: { host: env.host, port: listener.address.port },
    accepted,
    nth: (n) => (n < accepted.length ? Promise.resolve(accepted[n]!) : new Promise((resolve) => waiting.push({ n, resolve }))),
  };
}

/** Answers every ping with a pong of the same n. */
function echo(c: Connection): void {
  c.on('message', (m: Message) => {
    if (m.t === 'ping') c.send({ t: 'pong', n: m.n });
  });
}

function closed(c: Connection): Promise<Error | undefined> {
  return new Promise((r) => (c.closed ? r(undefined) : c.once('close', r)));
}

async function ping(c: Connection, n: number, opener = false): Promise<number> {
  const wait = nextMessage(c, ['pong']);
  c.send(opener ? { t: 'ping', v: PROTOCOL_VERSION, n } : { t: 'ping', n });
  return (await wait).n;
}

/** 'drain' within `ms` of transport time → true; none → false. */
function drainOrQuiet(env: TransportEnv, c: Connection, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const onDrain = () => finish(true);
    const finish = (v: boolean) => {
      if (done) return;
      done = true;
      c.off('drain', onDrain);
      c.off('close', onClose);
      resolve(v);
    };
    const onClose = () => finish(false);
    c.on('drain', onDrain);
    c.on('close', onClose);
    void env.quiet(ms).then(() => finish(false));
  });
}

/** A raw-mode, paused reader that counts what it eventually reads. */
function pausedReader(): { onConnection: (c: Connection) => void; bytes: () => number; conn: () => Connection | undefined } {
  let n = 0;
  let conn: Connection | undefined;
  return {
    onConnection: (c) => {
      conn = c;
      c.pause();
      n += c.raw().length;
      c.on('data', (b) => (n += b.length));
    },
    bytes: () => n,
    conn: () => conn,
  };
}

function turn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export function transportCompliance(name: string, make: () => Promise<TransportEnv> | TransportEnv): void {
  const withEnv = (title: string, fn: (t: ExecutionContext, env: TransportEnv) => Promise<void>) =>
    test(`${name}: ${title}`, async (t) => {
      const env = await make();
      t.teardown(() => env.close());
      await fn(t, env);
    });

  withEnv('connect, then frames both ways', async (t, env) => {
    const s = await serve(t, env);
    const c = await env.transport.connect(s.address);
    t.teardown(() => c.destroy());
    t.is(await ping(c, 1, true), 1);
    for (let i = 2; i <= 20; i++) t.is(await ping(c, i), i);
    // The accepted side can open a conversation too.
    const srv = await s.nth(0);
    const got = nextMessage(c, ['ping']);
    srv.send({ t: 'ping', n: 77 });
    t.is((await got).n, 77);
  });

  withEnv('connect to a port nobody listens on is refused with a clear error', async (t, env) => {
    const s = await serve(t, env);
    const addr = s.address;
    await s.listener.close();
    const err = await t.throwsAsync(env.transport.connect(addr));
    t.is(errorCode(err), 'unreachable');
    t.regex(err!.message, /refused/);
  });

  withEnv('half-close: replies to requests sent before end() still arrive, then both sides close', async (t, env) => {
    const s = await serve(t, env);
    const c = await env.transport.connect(s.address);
    t.teardown(() => c.destroy());
    const pongs: number[] = [];
    c.on('message', (m) => {
      if (m.t === 'pong') pongs.push(m.n);
    });
    const done = closed(c);
    c.send({ t: 'ping', v: PROTOCOL_VERSION, n: 0 });
    for (let i = 1; i < 50; i++) c.send({ t: 'ping', n: i });
    c.end();
    t.is(await done, undefined);
    t.deepEqual(pongs, Array.from({ length: 50 }, (_, i) => i));
    t.is(await closed(await s.nth(0)), undefined);
  });

  withEnv('backpressure: a paused reader stalls write() within a bounded window; drain follows reading', async (t, env) => {
    const r = pausedReader();
    const s = await serve(t, env, { onConnection: r.onConnection, connection: { handshakeTimeoutMs: 0 } });
    const c = await env.transport.connect(s.address, { connection: { maxBufferedBytes: 1 << 30 } });
    t.teardown(() => c.destroy());
    const chunk = Buffer.alloc(CHUNK, 0x61);
    const cap = env.maxStallBytes * 2 + 8 * CHUNK;
    let written = 0;
    let stalled = false;
    while (written < cap && !c.closed) {
      const ok = c.write(chunk);
      written += chunk.length;
      if (!ok && !(await drainOrQuiet(env, c, env.stallMs))) {
        stalled = true;
        break;
      }
    }
    t.true(stalled, `write() never stalled: ${written} bytes accepted by a reader that never reads`);
    t.true(written <= env.maxStallBytes, `${written} bytes accepted before stalling (limit ${env.maxStallBytes})`);
    t.true(c.writableLength > 0 && c.writableLength <= written, `writableLength ${c.writableLength}`);
    // Only what the decoder held when the reader switched to raw mode (keyed: the chunk behind the handshake).
    t.true(r.bytes() <= CHUNK, `${r.bytes()} bytes read by a paused reader`);
    // The reader consumes: drain comes, and every byte arrives.
    const drained = new Promise<void>((res) => c.once('drain', () => res()));
    (await s.nth(0)).resume();
    await drained;
    while (r.bytes() < written) await new Promise<void>((res) => r.conn()!.once('data', () => res()));
    t.is(r.bytes(), written);
  });

  withEnv('abort while connecting rejects with aborted; a later connect works', async (t, env) => {
    const s = await serve(t, env);
    const before = new AbortController();
    before.abort();
    t.is(errorCode(await t.throwsAsync(env.transport.connect(s.address, { signal: before.signal }))), 'aborted');
    const ac = new AbortController();
    const p = env.transport.connect(s.address, { signal: ac.signal });
    ac.abort();
    t.is(errorCode(await t.throwsAsync(p)), 'aborted');
    const c = await env.transport.connect(s.address);
    t.teardown(() => c.destroy());
    t.is(await ping(c, 5, true), 5);
  });

  withEnv('maxConnections: one over the limit is told too-many-connections; a freed slot is reused', async (t, env) => {
    const s = await serve(t, env, { maxConnections: 1 });
    const c1 = await env.transport.connect(s.address);
    t.teardown(() => c1.destroy());
    t.is(await ping(c1, 1, true), 1);
    const refused = async () => {
      const c2 = await env.transport.connect(s.address);
      t.teardown(() => c2.destroy());
      await ping(c2, 2, true);
    };
    t.is(errorCode(await t.throwsAsync(refused())), 'too-many-connections');
    const srv1 = await s.nth(0);
    c1.destroy();
    await closed(srv1);
    const c3 = await env.transport.connect(s.address);
    t.teardown(() => c3.destroy());
    t.is(await ping(c3, 3, true), 3);
  });

  withEnv('close and destroy propagate to the other side', async (t, env) => {
    const s = await serve(t, env);
    const a = await env.transport.connect(s.address);
    t.is(await ping(a, 1, true), 1);
    const srvA = await s.nth(0);
    a.destroy();
    await closed(srvA);
    t.true(srvA.closed);
    const b = await env.transport.connect(s.address);
    t.is(await ping(b, 2, true), 2);
    const srvB = await s.nth(1);
    srvB.end();
    await closed(b);
    t.true(b.closed);
    t.false(b.send({ t: 'ping', n: 3 }), 'send on a closed connection returns false');
  });

  withEnv('maxBufferedBytes: a sender ignoring backpressure to a reader that never reads is cut off', async (t, env) => {
    const r = pausedReader();
    const s = await serve(t, env, { onConnection: r.onConnection, connection: { handshakeTimeoutMs: 0 } });
    const limit = 256 * 1024;
    const c = await env.transport.connect(s.address, { connection: { maxBufferedBytes: limit } });
    t.teardown(() => c.destroy());
    const done = closed(c);
    const chunk = Buffer.alloc(CHUNK, 0x62);
    const cap = env.maxStallBytes * 2 + limit + 8 * CHUNK;
    let written = 0;
    while (!c.closed && written < cap) {
      c.write(chunk);
      written += chunk.length;
      await turn(); // give the link every chance to move bytes on
      if (written % (16 * CHUNK) === 0) await env.quiet(1);
    }
    if (!c.closed) {
      t.fail(`never cut off: ${written} bytes written, writableLength ${c.writableLength}, limit ${limit}`);
      return;
    }
    const err = await done;
    t.is(errorCode(err), 'buffer-overflow', `closed after ${written} bytes with ${String(err)}`);
    t.true(written <= cap);
  });
}
