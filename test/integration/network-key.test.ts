import test from 'ava';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { keyedTransport, Peer, tcpTransport, PROTOCOL_VERSION, errorCode } from '../../core/index.ts';
import { cluster, tmpDir } from '../helpers.ts';

const KEY = '5b1c0e3f9a7d48e2b6c1f0a9d3e7b2c48f6a1d0e9c3b7a2f5e8d1c4b0a9f3e6d';
const WRONG = 'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff';

async function keyed() {
  const c = await cluster({ meta: { networkKey: KEY }, peer: { networkKey: KEY } });
  await c.add('S1', { from: 'S1' });
  await c.add('S3', { from: 'S3' });
  return c;
}

/** Sends raw lines to host:port and collects everything until the other side closes. */
function rawExchange(port: number, lines: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(lines.join('\n') + '\n'));
    let buf = '';
    s.on('data', (d) => (buf += d.toString()));
    s.on('close', () => resolve(buf));
    s.on('error', reject);
  });
}

test('peers holding the key join, search and transfer', async (t) => {
  const c = await keyed();
  t.teardown(() => c.close());
  const d = await c.peer('S1').download('pwd1.txt');
  t.is(d.holder.id, 'S3');
  t.true(d.verified);
  const topo = await c.peer('S3').topo();
  t.is(topo.nodes.length, 2);
});

test('an outsider without the key cannot register, join or send requests', async (t) => {
  const c = await keyed();
  t.teardown(() => c.close());
  // A well-formed register without the handshake is refused by the metaserver.
  const reply = await rawExchange(c.meta.address.port, [JSON.stringify({ t: 'register', v: PROTOCOL_VERSION, id: 'X', host: '127.0.0.1', port: 1234, maxChildren: 2 })]);
  t.regex(reply, /"code":"auth-required"/);
  t.false(c.meta.registryList().some((e) => e.id === 'X'));
  // The same against a peer: a join, a query and an offer are all refused before they are read.
  const port = c.peer('S3').address.port;
  for (const opener of [
    { t: 'join', v: PROTOCOL_VERSION, id: 'X', host: '127.0.0.1', port: 1234, subtree: 1 },
    { t: 'offer', v: PROTOCOL_VERSION, qid: 'q1', from: { id: 'X', host: '127.0.0.1', port: 1 }, name: 'a.txt', size: 1, sha256: '0'.repeat(64) },
  ]) {
    t.regex(await rawExchange(port, [JSON.stringify(opener)]), /"code":"auth-required"/);
  }
  t.is(c.peer('S3').state().children.length, 0);
  // A real Peer without a key gets a clear error.
  const dir = tmpDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const outsider = new Peer({ id: 'X', port: 0, share: dir, meta: c.meta.address });
  t.teardown(() => outsider.stop());
  const err = await t.throwsAsync(outsider.join());
  t.regex(String(err?.message), /key|closed/);
});

test('a process with a wrong key is refused both ways', async (t) => {
  const c = await keyed();
  t.teardown(() => c.close());
  const dir = tmpDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const wrong = new Peer({ id: 'W', port: 0, share: dir, meta: c.meta.address, networkKey: WRONG });
  t.teardown(() => wrong.stop());
  const err = await t.throwsAsync(wrong.join());
  t.is(errorCode(err), 'auth-failed');
  // A holder never sends to a listener with the wrong key: the handshake fails before any offer.
  const wrongListener = await keyedTransport(tcpTransport(), WRONG).listen({ host: '127.0.0.1', port: 0, onConnection: () => t.fail('wrong-key listener must not get a connection') });
  t.teardown(() => wrongListener.close());
  const e2 = await t.throwsAsync(keyedTransport(tcpTransport(), KEY).connect(wrongListener.address));
  t.is(errorCode(e2), 'auth-failed');
  t.false(fs.existsSync(path.join(dir, 'pwd1.txt')));
});

test('the key works over the shaped TCP transport (--latency/--bandwidth)', async (t) => {
  const transport = tcpTransport({ shape: { latencyMs: 5, bandwidthBytesPerSec: 50 * 1024 * 1024 } });
  const c = await cluster({ transport, meta: { networkKey: KEY }, peer: { networkKey: KEY } });
  t.teardown(() => c.close());
  await c.add('S1', { from: 'S1' });
  await c.add('S3', { from: 'S3' });
  const d = await c.peer('S1').download('pwd1.txt');
  t.is(d.holder.id, 'S3');
  t.true(d.verified);
  // The shaped transport refuses a keyless caller the same way.
  const plain = await tcpTransport().connect(c.meta.address);
  t.teardown(() => plain.destroy());
  const reply = new Promise((res) => plain.on('message', res));
  plain.send({ t: 'status', v: PROTOCOL_VERSION });
  t.like(await reply, { t: 'error', code: 'auth-required' });
});
