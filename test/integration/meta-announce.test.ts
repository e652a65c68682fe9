/**
 * Announces over one kept metaserver connection (issue 13): a peer's
 * periodic announces reuse the connection its first announce opened; the
 * metaserver closes kept connections that go idle, keeps no more than its
 * connection limit less a reserve (over it: one-shot, as before), and takes
 * nothing but announces for the same id on them. Memory transport on a
 * SimClock, and TCP.
 */
import test from 'ava';
import { SimClock } from '../../core/clock.ts';
import { Metaserver } from '../../core/metaserver/metaserver.ts';
import { MetaChannel, request } from '../../core/metaserver/client.ts';
import { Peer } from '../../core/peer/peer.ts';
import { PROTOCOL_VERSION, type Message } from '../../core/protocol/messages.ts';
import { MemoryShares } from '../../core/transfer/store.ts';
import { MemoryNetwork } from '../../core/transport/memory.ts';
import { nextMessage } from '../../core/transport/connection.ts';
import { tcpTransport } from '../../core/transport/tcp.ts';
import type { HostPort, Transport } from '../../core/transport/transport.ts';
import { until } from '../helpers.ts';

/** `base`, counting the connections opened to `target()`. */
function counting(base: Transport, target: () => HostPort | undefined): Transport & { count: number } {
  const t = {
    kind: base.kind,
    count: 0,
    listen: base.listen.bind(base),
    connect: (to: HostPort, o?: Parameters<Transport['connect']>[1]) => {
      const m = target();
      if (m && to.port === m.port && to.host === m.host) t.count++;
      return base.connect(to, o);
    },
  };
  return t as Transport & { count: number };
}

async function simWorld(o: { maxConnections?: number; announceIdleMs?: number } = {}) {
  const clock = new SimClock();
  const base = new MemoryNetwork({ latencyMs: 1 }, { clock }).transport();
  let metaAddr: HostPort | undefined;
  const transport = counting(base, () => metaAddr);
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, policy: 'least-loaded', transport: base, clock, peerTimeoutMs: 0, ...o });
  metaAddr = await meta.start();
  const world = new MemoryShares();
  const announces = new Map<string, number>();
  meta.on('announce', (e) => announces.set(e.id, (announces.get(e.id) ?? 0) + 1));
  const peer = (id: string, announceMs = 1000) => new Peer({ id, host: '127.0.0.1', port: 0, meta: metaAddr!, transport, clock, store: world.store(id), heartbeatMs: 0, announceMs, joinRetries: 0 });
  return { clock, transport, meta, metaAddr: metaAddr!, peer, announces };
}

test('periodic announces reuse one kept metaserver connection per peer (memory transport, simulated time)', async (t) => {
  const w = await simWorld();
  const a = w.peer('A');
  const b = w.peer('B');
  await w.clock.drive(a.join());
  await w.clock.drive(b.join());
  await w.clock.advance(100);
  t.is(w.transport.count, 4, 'A and B: a register connection each (closed by the metaserver) and one kept for announces');
  const before = w.transport.count;
  const seen = (w.announces.get('A') ?? 0) + (w.announces.get('B') ?? 0);
  await w.clock.advance(20_000);
  const announced = (w.announces.get('A') ?? 0) + (w.announces.get('B') ?? 0) - seen;
  t.true(announced >= 38, `${announced} announces in 20 simulated seconds`);
  t.is(w.transport.count, before, 'no new metaserver connection for periodic announces');
  await Promise.all([a.stop(), b.stop()]);
  await w.meta.stop();
});

test('an idle kept connection is closed by the metaserver and the peer reconnects on its next announce', async (t) => {
  const w = await simWorld({ announceIdleMs: 2000 });
  // Announces every 10 s: the kept connection goes idle (2 s) in between.
  const a = w.peer('A', 10_000);
  await w.clock.drive(a.join());
  await w.clock.advance(100);
  const c0 = w.transport.count;
  const n0 = w.announces.get('A') ?? 0;
  await w.clock.advance(30_000);
  t.is((w.announces.get('A') ?? 0) - n0, 3, 'every periodic announce got through');
  t.is(w.transport.count - c0, 3, 'one new connection per announce after the idle close');
  await a.stop();
  await w.meta.stop();
});

test('kept connections stay below the connection limit less a reserve; over it announces are one-shot and still accepted', async (t) => {
  // maxConnections 12: a reserve of 2, at most 10 kept.
  const w = await simWorld({ maxConnections: 12 });
  const peers = Array.from({ length: 14 }, (_, i) => w.peer(`P${i}`));
  for (const p of peers) await w.clock.drive(p.join());
  await w.clock.advance(100);
  const n0 = peers.map((p) => w.announces.get(p.id) ?? 0);
  await w.clock.advance(5000);
  // Every peer announced in those 5 s, kept connection or not.
  t.true(peers.every((p, i) => (w.announces.get(p.id) ?? 0) - n0[i]! >= 4), JSON.stringify([...w.announces]));
  const open = (w.meta as unknown as { sessions: Map<unknown, unknown> }).sessions.size;
  t.true(open <= 10, `${open} kept connections`);
  t.true(open >= 9, `${open} kept connections`);
  await Promise.all(peers.map((p) => p.stop()));
  await w.meta.stop();
});

test('a kept announce connection takes only announces for its own id (TCP)', async (t) => {
  const transport = tcpTransport();
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, policy: 'least-loaded', transport });
  const addr = await meta.start();
  t.teardown(() => meta.stop());
  const A = new Peer({ id: 'A', host: '127.0.0.1', port: 0, meta: addr, transport, share: '/nonexistent-treeshare-A', heartbeatMs: 0, announceMs: 0, store: new MemoryShares().store('A') });
  t.teardown(() => A.stop());
  await A.join();
  const B = new Peer({ id: 'B', host: '127.0.0.1', port: 0, meta: addr, transport, heartbeatMs: 0, announceMs: 0, store: new MemoryShares().store('B') });
  t.teardown(() => B.stop());
  await B.join();
  const announce = (p: Peer): Message => ({ t: 'announce', v: PROTOCOL_VERSION, ...p.ref, parent: null, depth: 0, children: 1, maxChildren: 2, token: p.token! });
  // A's own announce is accepted and the connection stays open...
  const conn = await transport.connect(addr);
  t.teardown(() => conn.destroy());
  const ok = nextMessage(conn, ['ok']);
  conn.send(announce(A));
  t.is((await ok).t, 'ok');
  const again = nextMessage(conn, ['ok']);
  conn.send(announce(A));
  t.is((await again).t, 'ok');
  // ...but B's announce (valid token of B) on it is refused, and the connection closed.
  const bad = nextMessage(conn, ['ok']);
  conn.send(announce(B));
  const err = await t.throwsAsync(bad);
  t.regex(err!.message, /announces for A, not B/);
  await until(() => conn.closed, { what: 'the metaserver closed the connection' });
  // A status request after an announce is refused too.
  const c2 = await transport.connect(addr);
  t.teardown(() => c2.destroy());
  const ok2 = nextMessage(c2, ['ok']);
  c2.send(announce(A));
  await ok2;
  const st = nextMessage(c2, ['registry']);
  c2.send({ t: 'status', v: PROTOCOL_VERSION });
  await t.throwsAsync(st, { message: /only announces for A/ });
  // A bad token never gets a kept connection: error, closed.
  const r = request(transport, addr, { ...announce(A), token: 'f'.repeat(32) } as Message, ['ok']);
  await t.throwsAsync(r, { message: /token/ });
});

test('a request on a kept connection that gets no answer times out on the channel\'s clock; the next one opens a new connection', async (t) => {
  const clock = new SimClock();
  const net = new MemoryNetwork({ latencyMs: 1 }, { clock }).transport();
  // A metaserver that answers the first request on each connection and then goes silent (keeps it open).
  let accepted = 0;
  const server = await net.listen({
    host: '127.0.0.1', port: 0, connection: { clock },
    onConnection: (conn) => {
      accepted++;
      let answered = false;
      conn.on('message', () => {
        if (!answered) conn.send({ t: 'ok' });
        answered = true;
      });
    },
  });
  const ch = new MetaChannel(net, server.address, { clock });
  const announce: Message = { t: 'announce', v: PROTOCOL_VERSION, id: 'A', host: '127.0.0.1', port: 1, parent: null, depth: 0, children: 0, maxChildren: 2, token: '0'.repeat(32) };
  await clock.drive(ch.request(announce, ['ok'], { timeoutMs: 3000 }));
  t.is(accepted, 1);
  const t0 = clock.now();
  const err = await t.throwsAsync(clock.drive(ch.request(announce, ['ok'], { timeoutMs: 3000 })));
  t.is((err as { code?: string }).code, 'timeout');
  t.is(clock.now() - t0, 3000, 'after exactly the timeout, in simulated time');
  await clock.drive(ch.request(announce, ['ok'], { timeoutMs: 3000 }));
  t.is(accepted, 2, 'the silent connection was dropped and a new one answered');
  ch.close();
  await server.close();
});
