/**
 * The hand-checked fast paths of the codec (flood frames, topology answers, announce/ok, size,
 * heartbeats read from bytes)
 * accept and refuse exactly what the schema does, with the same result: valid frames and
 * random mutations of them go through validate() and through the schema alone (validateSlow).
 */
import test from 'ava';
import fc from 'fast-check';
import { encode, FrameDecoder, validate, validateSlow } from '../../core/protocol/codec.ts';
import { PROTOCOL_VERSION } from '../../core/protocol/messages.ts';
import { FUZZ_RUNS, FUZZ_SEED } from '../fuzz-config.ts';

const params = { seed: FUZZ_SEED, numRuns: FUZZ_RUNS * 3 };

const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/);
const host = fc.constantFrom('127.0.0.1', 'localhost', '::1', 'a..b', '');
const port = fc.integer({ min: 0, max: 70000 });
const ref = fc.record({ id, host, port });
const qid = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,30}$/), fc.constantFrom('', 'a b', 'x'.repeat(64), 'x'.repeat(65)));
const count = fc.oneof(fc.nat({ max: 1_000_000 }), fc.constantFrom(1e9, 1e9 + 1, -1, 1.5, 2 ** 53));
const token = fc.oneof(fc.stringMatching(/^[0-9a-f]{32}$/), fc.constant('ABC'));

const frames = fc.oneof(
  fc.record({ t: fc.constant('query'), qid, name: fc.string({ minLength: 0, maxLength: 3 }), origin: ref, ttl: count, hops: count, budget: count, want: fc.constantFrom('search', 'download', 'x') }),
  fc.record({ t: fc.constant('topo'), qid, origin: ref, hops: count, ttl: count, budget: count }),
  fc.record({ t: fc.constant('query-reply'), qid, hits: fc.array(fc.record({ id, host, port, size: count, hops: count }), { maxLength: 3 }), missing: fc.array(id, { maxLength: 3 }), reached: count, messages: count, duplicates: count, maxHops: count }),
  fc.record({ t: fc.constant('announce'), v: fc.constantFrom(PROTOCOL_VERSION, -1, 1.5), id, host, port, parent: fc.oneof(fc.constant(null), id), depth: count, children: count, maxChildren: fc.integer({ min: 0, max: 1025 }), token }),
  fc.record({ t: fc.constant('ok') }),
  fc.record({ t: fc.constant('size'), subtree: count }),
  fc.record({
    t: fc.constant('topo-reply'), qid, missing: fc.array(id, { maxLength: 3 }), final: fc.oneof(fc.boolean(), fc.constant(0)), reached: count, messages: count, duplicates: count, maxHops: count,
    nodes: fc.array(fc.record({ id, host, port, parent: fc.oneof(fc.constant(null), id), children: fc.array(id, { maxLength: 3 }), depth: count, files: count }), { maxLength: 3 }),
  }),
);

/** A random change: none, a field dropped, added, or replaced by another JSON value (nested too). */
const mutation = fc.tuple(fc.nat({ max: 5 }), fc.nat(), fc.jsonValue({ maxDepth: 2 }));
function mutate(v: Record<string, unknown>, [kind, pick, value]: [number, number, unknown]): Record<string, unknown> {
  const o: Record<string, unknown> = JSON.parse(JSON.stringify(v));
  const keys = Object.keys(o).filter((k) => k !== 't');
  const k = keys.length ? keys[pick % keys.length]! : 'x';
  if (kind === 1) delete o[k];
  else if (kind === 2) o.extra = value;
  else if (kind === 3) o[k] = value;
  else if (kind === 4 && o[k] && typeof o[k] === 'object') {
    const inner = o[k] as Record<string, unknown> | unknown[];
    if (Array.isArray(inner)) inner.push(value);
    else inner[Object.keys(inner)[pick % Math.max(1, Object.keys(inner).length)] ?? 'y'] = value;
  }
  return o;
}

function outcome(f: () => unknown): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: f() };
  } catch {
    return { ok: false };
  }
}

test('flood, topology, announce, ok and size frames: the fast path agrees with the schema on valid and mutated frames', (t) => {
  let accepted = 0;
  fc.assert(fc.property(frames, mutation, (v, m) => {
    const value = mutate(v as Record<string, unknown>, m);
    const fast = outcome(() => validate(value));
    const slow = outcome(() => validateSlow(value, value.t as string));
    t.deepEqual(fast, slow, JSON.stringify(value));
    if (fast.ok) accepted++;
  }), params);
  t.true(accepted > 0, 'some frames were valid');
});

test('heartbeats read from bytes agree with JSON.parse and the schema', (t) => {
  const texts = fc.oneof(
    fc.tuple(fc.constantFrom('ping', 'pong', 'pung'), fc.oneof(fc.nat({ max: 1e9 + 10 }).map(String), fc.constantFrom('0', '00', '01', '-1', '1e3', '1.0', '1000000000', '1000000001', '9999999999', '', ' 1'))).map(([ty, n]) => `{"t":"${ty}","n":${n}}`),
    fc.constantFrom('{"t":"ping","n":1 }', '{"t":"ping", "n":1}', '{"n":1,"t":"ping"}', '{"t":"ping","n":1,"x":2}', '{"t":"pong","n":12}'),
  );
  fc.assert(fc.property(texts, (text) => {
    const fromBytes = outcome(() => new FrameDecoder().push(Buffer.from(text + '\n'))[0]);
    const viaSchema = outcome(() => {
      const v = JSON.parse(text) as { t: string };
      return validateSlow(v, v.t);
    });
    t.deepEqual(fromBytes, viaSchema, text);
  }), params);
  // What encode() writes is read back.
  t.deepEqual(new FrameDecoder().push(encode({ t: 'pong', n: 1e9 })), [{ t: 'pong', n: 1e9 }]);
});

// ---- query and query-reply written in canonical form (canonical.ts) ----

/** Mostly valid strings, sometimes ones that JSON must escape or encode as UTF-8 (each such must fall back). */
const anyText = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,11}$/) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
  { weight: 2, arbitrary: fc.constantFrom('a"b', 'a\\b', 'a\\"b', 'é', 'a\u2028', 'a\nb', 'a\u0001', '') },
);
const anyNumber = fc.oneof({ weight: 6, arbitrary: fc.nat({ max: 1e9 + 5 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1.5, -0, 2 ** 53, 1e21, Number.NaN) });
const queryValue = fc.record({
  t: fc.constant('query' as const), qid: anyText, name: anyText,
  origin: fc.record({ id: anyText, host: fc.oneof(anyText, fc.constant('127.0.0.1')), port: anyNumber }),
  ttl: anyNumber, hops: anyNumber, budget: anyNumber, want: fc.constantFrom('search', 'download', 'x"'),
});
const replyValue = fc.record({
  t: fc.constant('query-reply' as const), qid: anyText,
  hits: fc.oneof(fc.constant([]), fc.array(fc.record({ id: anyText, host: fc.constant('127.0.0.1'), port: anyNumber, size: anyNumber, hops: anyNumber }), { maxLength: 2 })),
  missing: fc.oneof(fc.constant([]), fc.array(anyText, { maxLength: 2 })),
  reached: anyNumber, messages: anyNumber, duplicates: anyNumber, maxHops: anyNumber,
});

/** What the general path makes of a line: JSON.parse, then the schema. */
function viaJson(text: string): ReturnType<typeof outcome> {
  return outcome(() => {
    const v = JSON.parse(text) as { t: string };
    if (typeof v !== 'object' || v === null) throw new Error('not an object');
    return validateSlow(v, v.t);
  });
}

test('query and query-reply: encode() writes exactly what JSON.stringify writes, and the decoder reads it (and any one-byte change) as JSON.parse + schema would', (t) => {
  let canonical = 0;
  fc.assert(fc.property(fc.oneof(queryValue, replyValue), fc.nat(), fc.integer({ min: 0, max: 255 }), (m, pos, byte) => {
    const bytes = encode(m as never);
    t.is(bytes.toString('utf8'), JSON.stringify(m) + '\n');
    if (/^[\x20-\x7e]*\n$/.test(bytes.toString('latin1')) && !/\\/.test(bytes.toString('latin1'))) canonical++;
    const text = bytes.subarray(0, -1).toString('utf8');
    t.deepEqual(outcome(() => new FrameDecoder().push(bytes)[0]), viaJson(text), text);
    // One byte changed anywhere: the byte reader and the general path still agree.
    const bad = Buffer.from(bytes);
    bad[pos % (bad.length - 1)] = byte === 0x0a ? 0x20 : byte;
    const badText = bad.subarray(0, -1).toString('utf8');
    if (!badText.includes('\uFFFD')) t.deepEqual(outcome(() => new FrameDecoder().push(bad)[0]), viaJson(badText), badText);
  }), params);
  t.true(canonical > 0, 'some frames took the canonical path');
});

test('search flood frames written in canonical form decode to the same message', (t) => {
  const q = { t: 'query' as const, qid: 'p7-3:12', name: 'common.txt', origin: { id: 'p7', host: '127.0.0.1', port: 4000 }, ttl: 64, hops: 2, budget: 9000, want: 'search' as const };
  const r = { t: 'query-reply' as const, qid: 'p7-3:12', hits: [], missing: [], reached: 3, messages: 6, duplicates: 0, maxHops: 4 };
  for (const m of [q, r]) {
    const b = encode(m);
    t.is(b.toString(), JSON.stringify(m) + '\n');
    t.deepEqual(new FrameDecoder().push(b), [m]);
  }
  // Hits, missing ids and names JSON escapes are written by JSON.stringify, and still match it.
  const withHit = { ...r, hits: [{ id: 'p1', host: '127.0.0.1', port: 1, size: 2, hops: 1 }], missing: ['p9'] };
  t.is(encode(withHit).toString(), JSON.stringify(withHit) + '\n');
  // Names JSON escapes or encodes as UTF-8 take the general path and arrive unchanged.
  for (const name of ['a"b', 'a\\b', 'é.txt', 'tab\there']) {
    t.deepEqual(new FrameDecoder().push(encode({ ...q, name })), [{ ...q, name }]);
  }
  // Canonical bytes whose values break the schema's rules are refused as the schema refuses them.
  const err = t.throws(() => new FrameDecoder().push(Buffer.from(JSON.stringify({ ...q, want: 'steal' }) + '\n')));
  t.regex(err!.message, /want/);
});
