/**
 * Bad input at the socket edge, over real TCP: each kind of bad frame sent by
 * a raw node:net socket to the metaserver and to a peer gets an `error` frame
 * with the right code, the connection is closed, a `protocol-error` event is
 * emitted, and the same server then serves well-behaved peers normally.
 */
import test, { type ExecutionContext } from 'ava';
import { PROTOCOL_VERSION, request, tcpTransport, type Metaserver, type Peer } from '../../core/index.ts';
import { cluster, until, type Cluster } from '../helpers.ts';
import { checkTree } from '../../testnet/tree.ts';
import { RawClient } from './wire.ts';

interface Case {
  name: string;
  code: string;
  /** Bytes to send; `end` half-closes afterwards. */
  bytes: (target: 'meta' | 'peer') => Buffer;
  end?: boolean;
}

const line = (o: object) => Buffer.from(JSON.stringify(o) + '\n');
const opener = (target: 'meta' | 'peer') =>
  target === 'meta'
    ? { t: 'register', v: PROTOCOL_VERSION, id: 'X1', host: '127.0.0.1', port: 4000, maxChildren: 2 }
    : { t: 'join', v: PROTOCOL_VERSION, id: 'X1', host: '127.0.0.1', port: 4000, subtree: 1 };

const CASES: Case[] = [
  { name: 'not JSON', code: 'bad-json', bytes: () => Buffer.from('GET / HTTP/1.1\r\n') },
  { name: 'JSON but not an object', code: 'bad-message', bytes: () => Buffer.from('[1,2,3]\n') },
  { name: 'unknown type', code: 'unknown-type', bytes: () => line({ t: 'steal-files', v: PROTOCOL_VERSION }) },
  {
    name: 'missing field',
    code: 'bad-message',
    bytes: (tg) => {
      const { id: _id, ...rest } = opener(tg);
      return line(rest);
    },
  },
  { name: 'wrong field type', code: 'bad-message', bytes: (tg) => line({ ...opener(tg), port: '4000' }) },
  { name: 'unknown extra field', code: 'bad-message', bytes: (tg) => line({ ...opener(tg), admin: true }) },
  { name: 'over-long frame (no newline)', code: 'frame-too-large', bytes: () => Buffer.alloc(70 * 1024, 0x61) },
  { name: 'over-long frame (complete line)', code: 'frame-too-large', bytes: (tg) => line({ ...opener(tg), pad: 'x'.repeat(80 * 1024) }) },
  { name: 'binary garbage', code: 'bad-frame', bytes: () => Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x9f, 0x0a]) },
  { name: 'empty line', code: 'bad-frame', bytes: () => Buffer.from('\n') },
  { name: 'closed mid-frame', code: 'truncated-frame', bytes: (tg) => line(opener(tg)).subarray(0, 20), end: true },
  { name: 'version mismatch', code: 'version-mismatch', bytes: (tg) => line({ ...opener(tg), v: PROTOCOL_VERSION + 1 }) },
  { name: 'opener without a version', code: 'bad-message', bytes: (tg) => { const { v: _v, ...rest } = opener(tg); return line(rest); } },
  { name: 'a non-opener first', code: 'unexpected-message', bytes: () => line({ t: 'ok' }) },
  {
    name: 'the other server’s opener',
    code: 'unexpected-message',
    bytes: (tg) => line(opener(tg === 'meta' ? 'peer' : 'meta')),
  },
];

/** Sends one bad input on a fresh raw connection; returns the error frame once the server closed. */
async function attack(t: ExecutionContext, port: number, c: Case, target: 'meta' | 'peer'): Promise<Record<string, unknown>> {
  const raw = await RawClient.open(t, port, '127.0.0.1', { allowHalfOpen: true });
  await raw.write(c.bytes(target));
  if (c.end) raw.end();
  const err = await raw.next((f) => f.t === 'error', { what: `the error frame for ${c.name}` });
  await raw.remoteClosed();
  t.is(raw.frames.length, 1, `${target}/${c.name}: exactly one frame, the error`);
  t.deepEqual(raw.junk, []);
  return err;
}

async function setup(t: ExecutionContext): Promise<{ c: Cluster; meta: Metaserver; host: Peer; metaErrors: string[]; peerErrors: string[] }> {
  const c = await cluster();
  t.teardown(() => c.close());
  const host = await c.add('H1');
  const metaErrors: string[] = [];
  const peerErrors: string[] = [];
  c.meta.on('protocol-error', (e) => metaErrors.push(e.code));
  host.on('protocol-error', (e) => peerErrors.push(e.code));
  return { c, meta: c.meta, host, metaErrors, peerErrors };
}

for (const target of ['meta', 'peer'] as const) {
  test(`${target}: every kind of bad frame gets its error code and the connection closes`, async (t) => {
    const { c, meta, host, metaErrors, peerErrors } = await setup(t);
    const port = target === 'meta' ? meta.address.port : host.address.port;
    for (const cs of CASES) {
      const err = await attack(t, port, cs, target);
      t.is(err.code, cs.code, `${target}/${cs.name}: ${String(err.message)}`);
      t.is(typeof err.message, 'string');
      t.true((err.message as string).length > 0 && (err.message as string).length <= 4096);
    }
    const errors = target === 'meta' ? metaErrors : peerErrors;
    // Each misbehaving connection is reported once as a protocol-error event.
    await until(() => errors.length >= CASES.length, { what: 'protocol-error events' });
    t.deepEqual([...errors].sort(), CASES.map((x) => x.code).sort());

    // The same server still serves well-behaved peers: two join (one through H1), and the overlay is one tree.
    const p2 = await c.add('H2');
    const p3 = await c.add('H3');
    t.truthy(p2.state().parent ?? p3.state().parent);
    const topo = await host.topo();
    t.true(topo.complete);
    t.deepEqual(topo.nodes.map((n) => n.id).sort(), ['H1', 'H2', 'H3']);
    t.true(checkTree(topo.nodes).ok);
    t.deepEqual(meta.registryList().map((e) => e.id).sort(), ['H1', 'H2', 'H3'], 'no registry entry from the attacks');
    t.deepEqual(host.state().children.map((ch) => ch.id).sort(), ['H2', 'H3'], 'no child from the attacks');
  });
}

test('bad frames on many connections at once do not disturb a join in progress', async (t) => {
  const { c, meta, host } = await setup(t);
  const attacks = CASES.flatMap((cs) => [attack(t, meta.address.port, cs, 'meta'), attack(t, host.address.port, cs, 'peer')]);
  const [joined] = await Promise.all([c.add('G1'), ...attacks]);
  t.is(joined.state().parent?.id, 'H1');
  const codes = (await Promise.all(attacks)).map((e) => e.code);
  t.is(codes.length, CASES.length * 2);
});

test('a version mismatch is a clear error on both sides', async (t) => {
  const { meta, host, metaErrors, peerErrors } = await setup(t);
  const tr = tcpTransport();
  const v = PROTOCOL_VERSION + 1;
  for (const [to, msg, expect] of [
    [meta.address, { t: 'status', v }, ['registry']],
    [host.address, { t: 'ping', v, n: 1 }, ['pong']],
  ] as const) {
    const err = await t.throwsAsync(request(tr, to, msg as never, expect));
    t.is((err as { code?: string }).code, 'version-mismatch');
    t.regex(err!.message, new RegExp(`version ${v} is not supported \\(this side speaks version ${PROTOCOL_VERSION}\\)`));
  }
  await until(() => metaErrors.includes('version-mismatch') && peerErrors.includes('version-mismatch'), { what: 'both servers to report it' });
});

test('a connection that sends nothing is closed with a timeout error', async (t) => {
  const c = await cluster({ meta: { connection: { handshakeTimeoutMs: 300 } }, peer: { connection: { handshakeTimeoutMs: 300 } } });
  t.teardown(() => c.close());
  const host = await c.add('H1');
  for (const port of [c.meta.address.port, host.address.port]) {
    const raw = await RawClient.open(t, port);
    const err = await raw.next((f) => f.t === 'error');
    t.is(err.code, 'timeout');
    await raw.remoteClosed();
  }
  const p2 = await c.add('H2');
  t.is(p2.state().parent?.id, 'H1');
});

test('a bad frame on an established overlay link closes that link only', async (t) => {
  const { c, host, peerErrors } = await setup(t);
  const p2 = await c.add('H2');
  // A fake child joins H1 properly, then sends garbage on the link.
  const raw = await RawClient.open(t, host.address.port);
  raw.send({ t: 'join', v: PROTOCOL_VERSION, id: 'FAKE', host: '127.0.0.1', port: 4000, subtree: 1 });
  const acc = await raw.next();
  t.is(acc.t, 'accept');
  await until(() => host.state().children.some((ch) => ch.id === 'FAKE'), { what: 'FAKE as a child' });
  raw.send({ t: 'size', subtree: 'many' });
  const err = await raw.next((f) => f.t === 'error');
  t.is(err.code, 'bad-message');
  await raw.remoteClosed();
  await until(() => !host.state().children.some((ch) => ch.id === 'FAKE'), { what: 'FAKE dropped' });
  t.true(peerErrors.includes('bad-message'));
  // The real child's link is untouched.
  t.deepEqual(host.state().children.map((ch) => ch.id), ['H2']);
  const topo = await p2.topo();
  t.deepEqual(topo.nodes.map((n) => n.id).sort(), ['H1', 'H2']);
  t.true(topo.complete);
});
