/**
 * One network model on every transport (issue 23, 2a): with `latencyMs` L a
 * connect costs one round trip before the connector's first byte (2 L), the
 * acceptor sees that byte 3 L after the SYN, a request/answer on a fresh
 * connection costs 4 L, and a refused connect is known after 2 L, on the
 * memory transport and on the user-space shaped TCP transport alike. And
 * the metaserver command takes the same --latency/--bandwidth as the peer.
 */
import test from 'ava';
import { MemoryNetwork, SimClock, tcpTransport, type Transport } from '../../core/index.ts';
import { realClock, type Clock } from '../../core/clock.ts';
import type { Connection } from '../../core/transport/connection.ts';
import { PROTOCOL_VERSION } from '../../core/protocol/messages.ts';
import { parseMetaserverArgs } from '../../core/control/metaserver-args.ts';
import { parsePeerArgs } from '../../core/control/peer-args.ts';

const L = 40;

interface Timing {
  connected: number;
  acceptorFirstByte: number;
  answer: number;
  refused: number;
}

/** Times (from the connect call) of: connect resolved, the acceptor's first frame, the answer to it, and a refusal. */
async function timings(transport: Transport, host: string, clock: Clock): Promise<Timing> {
  let firstAt = 0;
  const listener = await transport.listen({
    host,
    port: 0,
    onConnection: (c: Connection) =>
      c.once('message', () => {
        firstAt = clock.now();
        c.send({ t: 'ping', n: 2 });
      }),
  });
  try {
    const t0 = clock.now();
    const conn = await transport.connect(listener.address);
    const connected = clock.now() - t0;
    const answered = new Promise<void>((r) => conn.once('message', () => r()));
    conn.send({ t: 'ping', v: PROTOCOL_VERSION, n: 1 });
    await answered;
    const answer = clock.now() - t0;
    conn.destroy();
    const spare = await transport.listen({ host, port: 0, onConnection: () => undefined });
    await spare.close();
    const t1 = clock.now();
    await transport.connect(spare.address).then(
      () => Promise.reject(new Error('connected to a closed port')),
      () => undefined,
    );
    return { connected, acceptorFirstByte: firstAt - t0, answer, refused: clock.now() - t1 };
  } finally {
    await listener.close();
  }
}

function inModel(t: import('ava').ExecutionContext, x: Timing, slackMs: number): void {
  t.log(JSON.stringify(x));
  const near = (what: string, got: number, want: number) => t.true(got >= want - 1 && got <= want + slackMs, `${what}: ${got.toFixed(1)} ms, model ${want} ms`);
  near('connect', x.connected, 2 * L);
  near('acceptor sees the first byte', x.acceptorFirstByte, 3 * L);
  near('answer on a fresh connection', x.answer, 4 * L);
  near('refused connect', x.refused, 2 * L);
}

test('memory transport on simulated time: connect = 1 RTT, first byte at 1.5 RTT, answer at 2 RTT, refusal at 1 RTT', async (t) => {
  const clock = new SimClock();
  clock.start();
  t.teardown(() => clock.stop());
  inModel(t, await timings(new MemoryNetwork({ latencyMs: L }, { clock }).transport(), 'm1', clock), 0);
});

test('shaped TCP transport (--latency): the same model as the memory transport', async (t) => {
  // Real time on a shared machine: never early; late by whatever the machine's load makes it (here up to 150 ms).
  inModel(t, await timings(tcpTransport({ shape: { latencyMs: L } }), '127.0.0.1', realClock), 1000);
});

test('an aborted connect on a shaped TCP link ends at once, during its round trip', async (t) => {
  const tr = tcpTransport({ shape: { latencyMs: 5_000 } });
  const listener = await tr.listen({ host: '127.0.0.1', port: 0, onConnection: (c) => c.destroy() });
  t.teardown(() => listener.close());
  const ac = new AbortController();
  const p = tr.connect(listener.address, { signal: ac.signal });
  setImmediate(() => ac.abort());
  const t0 = performance.now();
  await t.throwsAsync(p);
  t.true(performance.now() - t0 < 2_000);
});

test('the metaserver takes --latency and --bandwidth as a peer does (its link is shaped too)', (t) => {
  const m = parseMetaserverArgs(['--latency', '20', '--bandwidth', '1M', '--token-key-file', 'none']);
  const p = parsePeerArgs(['--latency', '20', '--bandwidth', '1M', '-i', 'S1']);
  t.is(m.options.transport?.kind, 'tcp');
  t.is(p.options.transport?.kind, 'tcp');
  t.is(parseMetaserverArgs(['--token-key-file', 'none']).options.transport, undefined);
  t.throws(() => parseMetaserverArgs(['--latency', 'soon', '--token-key-file', 'none']), { message: /--latency/ });
  t.throws(() => parseMetaserverArgs(['--bandwidth', '0', '--token-key-file', 'none']), { message: /--bandwidth must be more than 0/ });
});
