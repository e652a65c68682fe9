/**
 * Wire codec (core/protocol/codec.ts): framing, limits and validation of every
 * message at the socket edge, plus the Connection behaviour on bad input over
 * the in-memory transport (answer `error`, close, nothing else affected).
 */
import test from 'ava';
import fc from 'fast-check';
import { RemoteProtocolError } from '../../core/errors.ts';
import { checkVersion, DEFAULT_MAX_FRAME_BYTES, encode, FrameDecoder, validate } from '../../core/protocol/codec.ts';
import { MESSAGE_TYPES, OPENERS, PROTOCOL_VERSION, type Message } from '../../core/protocol/messages.ts';
import { MemoryNetwork, type Connection } from '../../core/index.ts';
import { nextMessage } from '../../core/transport/connection.ts';

const ref = { id: 'S1', host: '127.0.0.1', port: 5001 };
const sha = 'a'.repeat(64);
const node = { id: 'S1', host: '127.0.0.1', port: 5001, parent: null, children: ['S2'], depth: 0, files: 2 };

/** One valid sample of every message type. */
const SAMPLES: Message[] = [
  { t: 'register', v: PROTOCOL_VERSION, id: 'S1', host: '127.0.0.1', port: 5001, maxChildren: 2 },
  { t: 'register', v: PROTOCOL_VERSION, id: 'S1', host: '127.0.0.1', port: 5001, maxChildren: 2, token: '0123456789abcdef0123456789abcdef' },
  { t: 'registered', id: 'S1', referral: null, peers: 1, token: '0123456789abcdef0123456789abcdef' },
  { t: 'registered', id: 'S2', referral: ref, peers: 2, token: '0123456789abcdef0123456789abcdef' },
  { t: 'announce', v: PROTOCOL_VERSION, id: 'S2', host: '127.0.0.2', port: 5001, parent: 'S1', depth: 1, children: 0, maxChildren: 2, token: '0123456789abcdef0123456789abcdef' },
  { t: 'leave', v: PROTOCOL_VERSION, id: 'S2' },
  { t: 'leave', v: PROTOCOL_VERSION, id: 'S2', token: '0123456789abcdef0123456789abcdef' },
  { t: 'status', v: PROTOCOL_VERSION },
  { t: 'registry', peers: [{ id: 'S1', host: '127.0.0.1', port: 5001, joinedAt: 1, state: 'joined', parent: null, depth: 0, children: 1, maxChildren: 2 }] },
  { t: 'ok' },
  { t: 'error', code: 'duplicate-id', message: 'peer id S1 is taken' },
  { t: 'join', v: PROTOCOL_VERSION, id: 'S2', host: '::1', port: 5002, subtree: 1 },
  { t: 'accept', id: 'S1', host: '127.0.0.1', port: 5001, depth: 0 },
  { t: 'accept', id: 'S1', host: '127.0.0.1', port: 5001, depth: 1, path: ['0123456789ab'] },
  { t: 'redirect', to: ref },
  { t: 'size', subtree: 3 },
  { t: 'depth', depth: 2 },
  { t: 'depth', depth: 2, path: ['0123456789ab', 'ba9876543210'] },
  { t: 'ping', v: PROTOCOL_VERSION, n: 0 },
  { t: 'ping', v: PROTOCOL_VERSION, n: 0, nonce: '0123456789abcdef0123456789abcdef' },
  { t: 'ping', n: 7 },
  { t: 'pong', n: 7 },
  { t: 'pong', n: 7, id: 'S1', proof: 'ab'.repeat(32) },
  { t: 'leaving', parent: ref, successor: null },
  { t: 'topo', qid: 'S1:abc', origin: ref, hops: 0, ttl: 255, budget: 1000 },
  { t: 'topo-reply', qid: 'S1:abc', nodes: [node], missing: [], final: true, reached: 1, messages: 1, duplicates: 0, maxHops: 0 },
  { t: 'query', qid: 'S1:abc', name: 'pwd1.txt', origin: ref, ttl: 255, hops: 0, budget: 1000, want: 'search' },
  { t: 'query-reply', qid: 'S1:abc', hits: [{ ...ref, size: 10, hops: 2 }], missing: ['S4'], reached: 3, messages: 4, duplicates: 0, maxHops: 2 },
  { t: 'offer', v: PROTOCOL_VERSION, qid: 'S1:abc', from: ref, name: 'pwd1.txt', size: 87, sha256: sha },
  { t: 'ack' },
  { t: 'decline', reason: 'already have it' },
  { t: 'preparing', v: PROTOCOL_VERSION, qid: 'S1:abc', from: ref, name: 'big.iso', size: 20e9, hashed: 5e9 },
  { t: 'swarm-open', v: PROTOCOL_VERSION, from: ref, name: 'big.iso', sha256: null },
  { t: 'swarm-open', v: PROTOCOL_VERSION, from: ref, name: 'big.iso', sha256: sha },
  { t: 'hashing', hashed: 5e9, size: 20e9 },
  { t: 'manifest', name: 'pwd1.txt', size: 87, sha256: sha, pieceSize: 1048576, pieces: [sha] },
  { t: 'want', pieces: [0, 1, 511] },
];

function decodeAll(bytes: Buffer, maxFrameBytes?: number): Message[] {
  const d = new FrameDecoder({ maxFrameBytes });
  const out = d.push(bytes);
  d.end();
  return out;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof RemoteProtocolError) return err.code;
    throw err;
  }
  return 'no-error';
}

test('the samples cover every message type of the overlay protocol', (t) => {
  const core = ['register', 'registered', 'announce', 'leave', 'status', 'registry', 'ok', 'error', 'join', 'accept', 'redirect', 'size', 'depth', 'ping', 'pong', 'leaving', 'topo', 'topo-reply', 'query', 'query-reply', 'offer', 'ack', 'decline', 'preparing', 'swarm-open', 'hashing', 'manifest', 'want'];
  t.deepEqual([...new Set(SAMPLES.map((m) => m.t))].sort(), [...core].sort());
  for (const ty of core) t.true((MESSAGE_TYPES as readonly string[]).includes(ty), ty);
});

test('every message type round-trips through encode and the decoder', (t) => {
  for (const m of SAMPLES) {
    const b = encode(m);
    t.is(b[b.length - 1], 0x0a, `${m.t} ends with a newline`);
    t.is(b.indexOf(0x0a), b.length - 1, `${m.t} is one line`);
    t.deepEqual(decodeAll(b), [m]);
  }
});

test('several frames in one chunk come out in order', (t) => {
  const b = Buffer.concat(SAMPLES.map(encode));
  t.deepEqual(decodeAll(b), SAMPLES);
});

test('a frame split byte by byte is reassembled', (t) => {
  const d = new FrameDecoder();
  const b = Buffer.concat([encode(SAMPLES[0]!), encode(SAMPLES[21]!)]);
  const out: Message[] = [];
  for (let i = 0; i < b.length; i++) out.push(...d.push(b.subarray(i, i + 1)));
  t.deepEqual(out, [SAMPLES[0], SAMPLES[21]]);
  t.is(d.buffered, 0);
});

test('any chunking of a stream of frames decodes to the same messages (property)', (t) => {
  const stream = Buffer.concat(SAMPLES.map(encode));
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const d = new FrameDecoder();
      const out: Message[] = [];
      let prev = 0;
      for (const p of [...points, stream.length]) {
        out.push(...d.push(stream.subarray(prev, p)));
        prev = p;
      }
      d.end();
      t.deepEqual(out, SAMPLES);
    }),
    { numRuns: 200 },
  );
});

test('multi-byte UTF-8 split inside a character is reassembled', (t) => {
  const m: Message = { t: 'error', code: 'x', message: 'héllo ☃ 😀 wörld' };
  const b = encode(m);
  const i = b.indexOf(Buffer.from('😀')) + 2;
  const d = new FrameDecoder();
  t.deepEqual([...d.push(b.subarray(0, i)), ...d.push(b.subarray(i))], [m]);
});

test('not JSON is bad-json', (t) => {
  t.is(codeOf(() => decodeAll(Buffer.from('hello there\n'))), 'bad-json');
  t.is(codeOf(() => decodeAll(Buffer.from('{"t":"ok"\n'))), 'bad-json');
});

test('JSON that is not an object is bad-message', (t) => {
  for (const s of ['[]', '5', '"ok"', 'null', 'true']) t.is(codeOf(() => decodeAll(Buffer.from(s + '\n'))), 'bad-message', s);
});

test('an empty line is bad-frame', (t) => {
  t.is(codeOf(() => decodeAll(Buffer.from('\n'))), 'bad-frame');
});

test('an unknown type is unknown-type and names the type', (t) => {
  const err = t.throws(() => decodeAll(Buffer.from('{"t":"gimme-files"}\n')), { instanceOf: RemoteProtocolError });
  t.is(err.code, 'unknown-type');
  t.regex(err.message, /gimme-files/);
});

test('a missing t is bad-message', (t) => {
  const err = t.throws(() => decodeAll(Buffer.from('{"v":1}\n')), { instanceOf: RemoteProtocolError });
  t.is(err.code, 'bad-message');
  t.regex(err.message, /"t"/);
});

test('a missing field is bad-message naming the field', (t) => {
  const err = t.throws(() => validate({ t: 'register', v: 1, host: '127.0.0.1', port: 5, maxChildren: 2 }), { instanceOf: RemoteProtocolError });
  t.is(err.code, 'bad-message');
  t.regex(err.message, /register: field id: missing/);
});

test('a wrong field type is bad-message naming the field', (t) => {
  const err = t.throws(() => validate({ t: 'register', v: 1, id: 5, host: '127.0.0.1', port: 5, maxChildren: 2 }), { instanceOf: RemoteProtocolError });
  t.is(err.code, 'bad-message');
  t.regex(err.message, /field id/);
  t.is(codeOf(() => validate({ t: 'query', qid: 'q', name: 'x', origin: ref, ttl: '5', hops: 0, budget: 1, want: 'search' })), 'bad-message');
  t.is(codeOf(() => validate({ t: 'topo-reply', qid: 'q', nodes: [], missing: [], final: 'yes', reached: 0, messages: 0, duplicates: 0, maxHops: 0 })), 'bad-message');
});

test('an unknown extra field is refused (strict objects, nested too)', (t) => {
  const err = t.throws(() => validate({ t: 'ok', evil: 1 }), { instanceOf: RemoteProtocolError });
  t.regex(err.message, /unknown field "evil"/);
  t.is(codeOf(() => validate({ t: 'redirect', to: { ...ref, extra: true } })), 'bad-message');
});

test('out-of-range and malformed values are refused', (t) => {
  const reg = { t: 'register', v: 1, id: 'S1', host: '127.0.0.1', port: 5001, maxChildren: 2 };
  const bad: Record<string, unknown>[] = [
    { ...reg, port: 0 },
    { ...reg, port: 65536 },
    { ...reg, port: 5001.5 },
    { ...reg, maxChildren: 0 },
    { ...reg, id: '' },
    { ...reg, id: '-S1' },
    { ...reg, id: 'a/b' },
    { ...reg, id: 'x'.repeat(65) },
    { ...reg, host: 'a b' },
    { ...reg, host: '' },
    { t: 'offer', v: 1, qid: 'q', from: ref, name: 'f', size: -1, sha256: sha },
    { t: 'offer', v: 1, qid: 'q', from: ref, name: 'f', size: 1, sha256: 'A'.repeat(64) },
    { t: 'offer', v: 1, qid: 'q', from: ref, name: '', size: 1, sha256: sha },
    { t: 'query', qid: 'has space', name: 'x', origin: ref, ttl: 5, hops: 0, budget: 1, want: 'search' },
    { t: 'query', qid: 'q', name: 'x', origin: ref, ttl: 5, hops: 0, budget: 1, want: 'steal' },
    { t: 'error', code: 'x', message: 'm'.repeat(4097) },
    { t: 'preparing', v: 1, qid: 'q', from: ref, name: 'f', size: 10, hashed: -1 },
    { t: 'preparing', v: 1, qid: 'q', from: ref, name: 'f', size: 10, hashed: 1.5 },
    { t: 'preparing', v: 1, qid: 'q', from: ref, name: 'f', size: 10 },
    { t: 'preparing', v: 1, qid: 'q', from: ref, name: 'f', size: 10, hashed: 0, sha256: sha },
  ];
  for (const b of bad) t.is(codeOf(() => validate(b)), 'bad-message', JSON.stringify(b).slice(0, 120));
});

test('a frame over the limit is frame-too-large, whether it arrives whole or in pieces', (t) => {
  const max = 1024;
  const long = Buffer.from(JSON.stringify({ t: 'error', code: 'x', message: 'y'.repeat(2000) }) + '\n');
  t.is(codeOf(() => decodeAll(long, max)), 'frame-too-large');
  // In pieces, without any newline yet: refused as soon as the limit is passed.
  const d = new FrameDecoder({ maxFrameBytes: max });
  t.deepEqual(d.push(Buffer.alloc(600, 0x41)), []);
  t.is(codeOf(() => d.push(Buffer.alloc(600, 0x41))), 'frame-too-large');
  // A frame of exactly the limit is accepted.
  const pad = max - Buffer.byteLength(JSON.stringify({ t: 'error', code: 'x', message: '' }));
  const exact = encode({ t: 'error', code: 'x', message: 'z'.repeat(pad) });
  t.is(exact.length - 1, max);
  t.is(decodeAll(exact, max).length, 1);
  t.is(DEFAULT_MAX_FRAME_BYTES, 64 * 1024);
});

test('the decoder never buffers more than the frame limit', (t) => {
  const d = new FrameDecoder({ maxFrameBytes: 100 });
  t.deepEqual(d.push(Buffer.alloc(100, 0x20)), []);
  t.is(d.buffered, 100);
  t.is(codeOf(() => d.push(Buffer.from(' '))), 'frame-too-large');
});

test('binary garbage is refused (bad-frame or bad-json), never crashes', (t) => {
  const garbage = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, 0x81, 0x7b, 0x0a]);
  t.true(['bad-frame', 'bad-json'].includes(codeOf(() => decodeAll(garbage))));
  // Invalid UTF-8 inside an otherwise valid JSON string.
  const inv = Buffer.concat([Buffer.from('{"t":"error","code":"x","message":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]);
  t.is(codeOf(() => decodeAll(inv)), 'bad-frame');
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (bytes) => {
      const d = new FrameDecoder({ maxFrameBytes: 128 });
      try {
        d.push(Buffer.from(bytes));
        d.end();
      } catch (err) {
        return err instanceof RemoteProtocolError;
      }
      return true;
    }),
    { numRuns: 500 },
  );
});

test('a stream closed in the middle of a frame is truncated-frame', (t) => {
  const d = new FrameDecoder();
  const b = encode(SAMPLES[0]!);
  d.push(b.subarray(0, 10));
  const err = t.throws(() => d.end(), { instanceOf: RemoteProtocolError });
  t.is(err.code, 'truncated-frame');
  t.regex(err.message, /10 bytes/);
  // A clean end after whole frames is fine.
  const ok = new FrameDecoder();
  ok.push(b);
  t.notThrows(() => ok.end());
});

test('after an error the decoder is dead; frames decoded before it are attached', (t) => {
  const d = new FrameDecoder();
  const good = encode({ t: 'ok' });
  const err = t.throws(() => d.push(Buffer.concat([good, good, Buffer.from('nope\n'), good]))) as Error & { decoded?: Message[] };
  t.deepEqual(err.decoded, [{ t: 'ok' }, { t: 'ok' }]);
  t.deepEqual(d.push(good), []);
});

test('takeRest returns the raw bytes after the last frame and stops decoding', (t) => {
  const d2 = new FrameDecoder();
  t.deepEqual(d2.push(Buffer.concat([encode({ t: 'ack' }), Buffer.from([1, 2, 3])])), [{ t: 'ack' }]);
  t.deepEqual([...d2.takeRest()], [1, 2, 3]);
  t.deepEqual(d2.push(encode({ t: 'ok' })), [], 'no frames after takeRest');
  t.is(d2.buffered, 0);
});

test('checkVersion: openers must carry the current version; other messages cannot open', (t) => {
  for (const m of SAMPLES) {
    if (!OPENERS.has(m.t)) {
      t.is(codeOf(() => checkVersion(m)), 'unexpected-message', m.t);
    } else if ('v' in m && m.v !== undefined) {
      t.notThrows(() => checkVersion(m), m.t);
      t.is(codeOf(() => checkVersion({ ...m, v: PROTOCOL_VERSION + 1 } as Message)), 'version-mismatch', m.t);
    }
  }
  t.is(codeOf(() => checkVersion({ t: 'ping', n: 1 })), 'bad-message');
  const err = t.throws(() => checkVersion({ t: 'status', v: 99 }), { instanceOf: RemoteProtocolError });
  t.regex(err.message, /99/);
  t.regex(err.message, new RegExp(`version ${PROTOCOL_VERSION}`));
});

// ---- Connection over the memory transport: the same codec at the edge ----

async function memPair(t: import('ava').ExecutionContext, o: { maxFrameBytes?: number } = {}): Promise<{ client: Connection; server: Promise<Connection> }> {
  const net = new MemoryNetwork();
  const tr = net.transport();
  let gotServer!: (c: Connection) => void;
  const server = new Promise<Connection>((r) => (gotServer = r));
  const l = await tr.listen({ host: 'h', port: 0, onConnection: gotServer, connection: { maxFrameBytes: o.maxFrameBytes } });
  const client = await tr.connect(l.address);
  t.teardown(async () => {
    client.destroy();
    (await server).destroy();
    await l.close();
  });
  return { client, server };
}

function closed(c: Connection): Promise<Error | undefined> {
  return new Promise((r) => (c.closed ? r(undefined) : c.once('close', r)));
}

test('Connection: a bad frame is answered with error and the connection closes', async (t) => {
  const { client, server } = await memPair(t);
  const errs: string[] = [];
  (await server).on('protocol-error', (e) => errs.push(e.code));
  const answer = nextMessage(client, ['ok']).catch((e: { code: string }) => e.code);
  client.write(Buffer.from('{"t":"flibble"}\n'));
  t.is(await answer, 'unknown-type');
  await closed(client);
  t.deepEqual(errs, ['unknown-type']);
});

test('Connection: the first frame must be a versioned opener', async (t) => {
  const { client, server } = await memPair(t);
  const s = await server;
  const seen: Message[] = [];
  s.on('message', (m) => seen.push(m));
  const answer = nextMessage(client, ['ok']).catch((e: { code: string }) => e.code);
  client.send({ t: 'status', v: PROTOCOL_VERSION + 1 });
  t.is(await answer, 'version-mismatch');
  await closed(s);
  t.deepEqual(seen, [], 'the bad opener is not delivered');
});

test('Connection: good frames are delivered and later frames need no version', async (t) => {
  const { client, server } = await memPair(t);
  const s = await server;
  const seen: Message[] = [];
  s.on('message', (m) => seen.push(m));
  client.send({ t: 'ping', v: PROTOCOL_VERSION, n: 1 });
  client.send({ t: 'pong', n: 2 });
  client.send({ t: 'size', subtree: 3 });
  await new Promise<void>((resolve) => {
    const check = () => (seen.length === 3 ? resolve() : s.once('message', () => setImmediate(check)));
    check();
  });
  t.deepEqual(seen.map((m) => m.t), ['ping', 'pong', 'size']);
  t.false(s.closed);
});

test('Connection: raw mode after a frame hands the rest of the chunk over as data', async (t) => {
  const { client, server } = await memPair(t);
  const s = await server;
  const got: Buffer[] = [];
  s.once('message', () => {
    s.raw();
    s.on('data', (b) => got.push(b));
  });
  const tail = Buffer.concat([Buffer.from('not\na frame'), Buffer.from([0xff, 0x00])]);
  client.write(Buffer.concat([encode({ t: 'ping', v: PROTOCOL_VERSION, n: 0 }), tail]));
  await new Promise<void>((r) => s.once('data', () => setImmediate(r)));
  t.deepEqual(Buffer.concat(got), tail);
  t.false(s.closed);
});
