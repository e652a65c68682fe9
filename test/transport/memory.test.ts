/**
 * Memory links beyond the compliance suite: link-level half-close, exact
 * window accounting, latency and bandwidth as simulated time, reset order,
 * aborting mid-handshake, per-link shapes and deterministic delivery.
 */
import test from 'ava';
import { MemoryNetwork, memoryPair, SimClock, PROTOCOL_VERSION, errorCode, type Connection } from '../../core/index.ts';
import { nextMessage } from '../../core/transport/connection.ts';

function events(link: ReturnType<typeof memoryPair>[0]): string[] {
  const log: string[] = [];
  link.on('data', (b: Buffer) => log.push(`data:${b.toString()}`));
  link.on('end', () => log.push('end'));
  link.on('close', () => log.push('close'));
  link.on('drain', () => log.push('drain'));
  return log;
}

test('half-close: after A ends, B still writes to A; the pair closes once both ended', async (t) => {
  const clock = new SimClock();
  const [a, b] = memoryPair({ clock, shape: { latencyMs: 10 } });
  const la = events(a);
  const lb = events(b);
  a.write(Buffer.from('req'));
  a.end();
  t.false(a.write(Buffer.from('late')), 'no writes after end()');
  await clock.run();
  t.deepEqual(lb, ['data:req', 'end']);
  t.false(b.destroyed);
  b.write(Buffer.from('reply'));
  b.end();
  await clock.run();
  t.deepEqual(la, ['data:reply', 'end', 'close']);
  t.deepEqual(lb, ['data:req', 'end', 'close']);
  t.is(clock.now(), 20);
  t.true(a.destroyed && b.destroyed);
});

test('window: write() turns false at the window; drain only after the paused reader reads', async (t) => {
  const clock = new SimClock();
  const [a, b] = memoryPair({ clock, windowBytes: 1000 });
  const la = events(a);
  const lb = events(b);
  b.pause();
  t.true(a.write(Buffer.alloc(600, 'x')));
  t.false(a.write(Buffer.alloc(600, 'y')));
  t.is(a.writableLength, 1200);
  await clock.advance(3_600_000);
  t.deepEqual(la, [], 'an hour of a paused reader: no drain');
  t.deepEqual(lb, []);
  t.is(a.writableLength, 1200);
  b.resume();
  await clock.run();
  t.is(lb.length, 2);
  t.deepEqual(la, ['drain']);
  t.is(a.writableLength, 0);
});

test('latency and bandwidth: chunks arrive at serialisation + latency, in simulated time', async (t) => {
  const clock = new SimClock();
  const [a, b] = memoryPair({ clock, shape: { latencyMs: 50, bandwidthBytesPerSec: 1000 } });
  const at: number[] = [];
  b.on('data', () => at.push(clock.now()));
  a.write(Buffer.alloc(100));
  a.write(Buffer.alloc(100));
  clock.setTimeout(() => a.write(Buffer.alloc(10)), 1000);
  await clock.run();
  // 100 B at 1000 B/s = 100 ms on the wire, then 50 ms of latency; the second queues behind the first.
  t.deepEqual(at, [150, 250, 1060]);
});

test('many small writes due at one instant share one delivery timer', async (t) => {
  const clock = new SimClock();
  const [a, b] = memoryPair({ clock, shape: { latencyMs: 5 } });
  let n = 0;
  b.on('data', () => n++);
  for (let i = 0; i < 1000; i++) a.write(Buffer.from('x'));
  t.is(clock.pending, 1);
  await clock.run();
  t.is(n, 1000);
  t.is(clock.fired, 1);
});

test('destroy: data already on the wire arrives first, then the remote closes; unread data is dropped', async (t) => {
  const clock = new SimClock();
  const [a, b] = memoryPair({ clock, shape: { latencyMs: 10 } });
  const lb = events(b);
  a.write(Buffer.from('one'));
  a.destroy();
  t.true(a.destroyed);
  t.false(a.write(Buffer.from('two')));
  await clock.run();
  t.deepEqual(lb, ['data:one', 'close']);
  const [c, d] = memoryPair({ clock });
  const ld = events(d);
  d.pause();
  c.write(Buffer.from('unread'));
  await clock.run();
  c.destroy();
  await clock.run();
  d.resume();
  await clock.run();
  t.deepEqual(ld, ['close']);
});

test('abort after the listener accepted: the connector rejects and the accepted side is reset', async (t) => {
  const clock = new SimClock();
  const net = new MemoryNetwork({ latencyMs: 100 }, { clock });
  const tr = net.transport();
  let accepted: Connection | undefined;
  const l = await clock.drive(tr.listen({ host: 'h', port: 0, onConnection: (c) => (accepted = c) }));
  const ac = new AbortController();
  clock.setTimeout(() => ac.abort(), 150); // SYN arrived at 100; the accept is still on its way back
  const err = await t.throwsAsync(clock.drive(tr.connect(l.address, { signal: ac.signal })));
  t.is(errorCode(err), 'aborted');
  t.truthy(accepted);
  const closedAt = await clock.drive(new Promise<number>((r) => accepted!.once('close', () => r(clock.now()))));
  t.is(closedAt, 250, 'the reset travels one latency');
});

test('per-link shapes: linkShape picks latency by endpoints; connect takes one round trip', async (t) => {
  const clock = new SimClock();
  const net = new MemoryNetwork({}, { clock, linkShape: (from) => (from === 'far' ? { latencyMs: 40 } : undefined) });
  const tr = net.transport();
  const l = await clock.drive(tr.listen({ host: 'h', port: 0, onConnection: (c) => c.on('message', (m) => m.t === 'ping' && c.send({ t: 'pong', n: m.n })) }));
  const rtt = async (localHost?: string) => {
    const t0 = clock.now();
    const c = await tr.connect(l.address, { localHost });
    const connectMs = clock.now() - t0;
    const t1 = clock.now();
    const p = nextMessage(c, ['pong']);
    c.send({ t: 'ping', v: PROTOCOL_VERSION, n: 1 });
    await p;
    c.destroy();
    return [connectMs, clock.now() - t1];
  };
  t.deepEqual(await clock.drive(rtt('far')), [80, 80]);
  t.deepEqual(await clock.drive(rtt('near')), [0, 0]);
});

test('deterministic: the same exchange over a SimClock network gives the same arrival log', async (t) => {
  const once = async () => {
    const clock = new SimClock();
    const net = new MemoryNetwork({}, { clock, linkShape: (from) => ({ latencyMs: Number(from.slice(1)), bandwidthBytesPerSec: 100_000 }) });
    const tr = net.transport();
    const log: string[] = [];
    const l = await tr.listen({
      host: 'h',
      port: 0,
      onConnection: (c) => c.on('message', (m) => m.t === 'ping' && (log.push(`${clock.now()}:${m.n}`), c.send({ t: 'pong', n: m.n }))),
    });
    const work = Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const c = await tr.connect(l.address, { localHost: `p${i % 7}` });
        for (let k = 0; k < 5; k++) {
          const p = nextMessage(c, ['pong']);
          c.send({ t: 'ping', ...(k === 0 ? { v: PROTOCOL_VERSION } : {}), n: i * 100 + k });
          await p;
        }
        c.destroy();
      }),
    );
    await clock.drive(work);
    return log;
  };
  const a = await once();
  t.is(a.length, 100);
  t.deepEqual(await once(), a);
});

test('ShapedLink runs on the Clock it is given (simulated latency over a memory pair)', async (t) => {
  const { ShapedLink } = await import('../../core/transport/shaped.ts');
  const clock = new SimClock();
  const [a, b] = memoryPair({ clock });
  const sa = new ShapedLink(a, { latencyMs: 30, bandwidthBytesPerSec: 1000 }, clock);
  const at: number[] = [];
  b.on('data', () => at.push(clock.now()));
  sa.write(Buffer.alloc(10));
  sa.write(Buffer.alloc(10));
  await clock.run();
  t.deepEqual(at, [40, 50]);
});

test('a reader that writes on the sending end from its data handler: order kept, nothing delivered twice', async (t) => {
  const clock = new SimClock();
  const [a, b] = memoryPair({ clock, shape: { latencyMs: 10 } });
  const log: string[] = [];
  b.on('data', (d: Buffer) => {
    log.push(`${d.toString()}@${clock.now()}`);
    if (d.toString() === 'one') a.write(Buffer.from('three'));
  });
  a.write(Buffer.from('one'));
  a.write(Buffer.from('two'));
  await clock.run();
  t.deepEqual(log, ['one@10', 'two@10', 'three@20']);
  t.is(a.writableLength, 0);
});
