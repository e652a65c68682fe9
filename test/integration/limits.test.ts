/**
 * Limits: each has a default, an option, and a clear error when hit, and
 * hitting it affects only the offender.
 */
import test from 'ava';
import net from 'node:net';
import readline from 'node:readline';
import { errorCode, PROTOCOL_VERSION } from '../../core/index.ts';
import { cluster, demoCluster } from '../helpers.ts';

/** A raw client: lines received, and a promise of the close. */
function raw(port: number) {
  const s = net.connect({ host: '127.0.0.1', port });
  const lines: Record<string, unknown>[] = [];
  readline.createInterface({ input: s }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l));
    } catch {
      /* not JSON: ignored */
    }
  });
  s.on('error', () => undefined);
  const closed = new Promise<void>((r) => s.on('close', () => r()));
  const connected = new Promise<void>((r) => s.on('connect', () => r()));
  return { s, lines, closed, connected };
}

test('a client that sends nothing, or one byte at a time, is cut off after the handshake timeout; others are served', async (t) => {
  const c = await cluster({ meta: { connection: { handshakeTimeoutMs: 300 } } });
  t.teardown(() => c.close());
  const port = c.meta.address.port;
  const silent = raw(port);
  const dribble = raw(port);
  await dribble.connected;
  const timer = setInterval(() => dribble.s.write('{'), 50);
  t.teardown(() => clearInterval(timer));
  // A well-behaved peer registers while both hang on.
  const p = await c.add('good');
  t.true(p.joined);
  await Promise.all([silent.closed, dribble.closed]);
  clearInterval(timer);
  t.is(silent.lines[0]?.code, 'timeout');
  t.is(dribble.lines[0]?.code, 'timeout');
});

test('connections over the limit get a too-many-connections error; freeing one lets the next in', async (t) => {
  const c = await cluster({ peer: { maxConnections: 2, connection: { handshakeTimeoutMs: 0 } } });
  t.teardown(() => c.close());
  const p = await c.add('P');
  const port = p.address.port;
  const a = raw(port);
  const b = raw(port);
  await Promise.all([a.connected, b.connected]);
  // The third is refused with a reason.
  const third = raw(port);
  await third.closed;
  t.is(third.lines[0]?.code, 'too-many-connections');
  a.s.destroy();
  await a.closed;
  // Wait until the peer has seen the close: a probe connection then gets a pong.
  for (;;) {
    const probe = raw(port);
    await probe.connected;
    probe.s.write(JSON.stringify({ t: 'ping', v: PROTOCOL_VERSION, n: 7 }) + '\n');
    await probe.closed;
    if (probe.lines[0]?.t === 'pong') break;
    t.is(probe.lines[0]?.code, 'too-many-connections');
  }
  b.s.destroy();
  t.pass();
});

test('a neighbour flooding queries is throttled while another neighbour is served', async (t) => {
  const c = await cluster({ peer: { queryRatePerSec: 5, queryBurst: 5 } });
  t.teardown(() => c.close());
  const a = await c.add('A', { from: 'S3' });
  await c.add('B');
  // A fake child of A that speaks the wire protocol and floods queries.
  const f = raw(a.address.port);
  await f.connected;
  f.s.write(JSON.stringify({ t: 'join', v: PROTOCOL_VERSION, id: 'F', host: '127.0.0.1', port: 9, subtree: 1 }) + '\n');
  for (let i = 0; i < 40; i++) {
    f.s.write(JSON.stringify({ t: 'query', qid: `flood-${i}`, name: 'nothing.txt', origin: { id: 'F', host: '127.0.0.1', port: 9 }, ttl: 10, hops: 0, budget: 2000, want: 'search' }) + '\n');
  }
  // F answers queries A forwards to it, like a well-behaved leaf, so only the throttling is under test.
  let answered = 0;
  await new Promise<void>((resolve) => {
    f.s.on('data', () =>
      setImmediate(() => {
        for (const l of f.lines.slice(answered)) {
          if (l.t === 'query') f.s.write(JSON.stringify({ t: 'query-reply', qid: l.qid, hits: [], missing: [], reached: 1, messages: 1, duplicates: 0, maxHops: l.hops }) + '\n');
        }
        answered = f.lines.length;
        if (f.lines.filter((l) => l.t === 'query-reply').length >= 40) resolve();
      }),
    );
  });
  const replies = f.lines.filter((l) => l.t === 'query-reply');
  const throttled = replies.filter((l) => Array.isArray(l.missing) && (l.missing as string[]).includes('A') && l.reached === 0);
  t.true(throttled.length >= 30, `${throttled.length} of ${replies.length} throttled`);
  // Every query got an answer, throttled or not.
  t.is(new Set(replies.map((r) => r.qid)).size, 40);
  // B's search through its own link to A is not starved.
  const r = await c.peer('B').search('pwd1.txt');
  t.is(r.hits[0]?.id, 'A');
  t.deepEqual(r.missing, []);
  t.is(r.reached, 3);
  f.s.destroy();
});

test('a file over the size limit is declined with a clear error and nothing is written', async (t) => {
  const c = await demoCluster({ peer: { maxFileBytes: 10 } });
  t.teardown(() => c.close());
  const err = await t.throwsAsync(c.peer('S1').download('pwd1.txt'));
  t.is(errorCode(err), 'too-large');
  t.regex(err!.message, /larger than the 10 bytes/);
  t.false((await c.peer('S1').files()).some((f) => f.name === 'pwd1.txt'));
  // The holder logged the decline and keeps serving.
  const topo = await c.peer('S3').topo();
  t.is(topo.nodes.length, 5);
});
