import test from 'ava';
import fc from 'fast-check';
import { encode, FrameDecoder, validate } from '../../core/protocol/codec.ts';
import { Message, PROTOCOL_VERSION } from '../../core/protocol/messages.ts';
import { RemoteProtocolError } from '../../core/errors.ts';
import { FUZZ_RUNS, FUZZ_SEED } from '../fuzz-config.ts';

const params = { seed: FUZZ_SEED, numRuns: FUZZ_RUNS };

const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/);
const host = fc.constantFrom('127.0.0.1', '127.0.0.2', 'localhost', '::1');
const port = fc.integer({ min: 1, max: 65535 });
const ref = fc.record({ id, host, port });
const qid = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,30}$/);
const count = fc.nat({ max: 1_000_000 });

/** A sample of valid messages of many types with random field values. */
const validMessage: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ t: fc.constant('register' as const), v: fc.constant(PROTOCOL_VERSION), id, host, port, maxChildren: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ t: fc.constant('join' as const), v: fc.constant(PROTOCOL_VERSION), id, host, port, subtree: fc.integer({ min: 1, max: 1000 }) }),
  fc.record({ t: fc.constant('query' as const), qid, name: fc.string({ minLength: 1, maxLength: 40 }), origin: ref, ttl: count, hops: count, budget: count, want: fc.constantFrom('search' as const, 'download' as const) }),
  fc.record({ t: fc.constant('query-reply' as const), qid, hits: fc.array(fc.record({ id, host, port, size: count, hops: count }), { maxLength: 3 }), missing: fc.array(id, { maxLength: 3 }), reached: count, messages: count, duplicates: count, maxHops: count }),
  fc.record({ t: fc.constant('redirect' as const), to: ref }),
  fc.record({ t: fc.constant('error' as const), code: fc.stringMatching(/^[a-z-]{1,20}$/), message: fc.string({ maxLength: 100 }) }),
  fc.record({ t: fc.constant('ping' as const), n: count }),
  fc.record({ t: fc.constant('offer' as const), v: fc.constant(PROTOCOL_VERSION), qid, from: ref, name: fc.string({ minLength: 1, maxLength: 40 }), size: count, sha256: fc.stringMatching(/^[0-9a-f]{64}$/) }),
);

/** Feeds `bytes` to a fresh decoder in the given chunk sizes. */
function decodeAll(bytes: Buffer, cuts: number[]): { msgs: Message[]; err?: unknown } {
  const d = new FrameDecoder({ maxFrameBytes: 4096 });
  const msgs: Message[] = [];
  let pos = 0;
  try {
    for (const c of [...cuts, bytes.length]) {
      const end = Math.min(bytes.length, pos + Math.max(1, c));
      msgs.push(...d.push(bytes.subarray(pos, end)));
      pos = end;
      if (pos >= bytes.length) break;
    }
    return { msgs };
  } catch (err) {
    return { msgs, err };
  }
}

test('valid messages round-trip through encode and a decoder fed arbitrary chunk sizes', (t) => {
  fc.assert(
    fc.property(fc.array(validMessage, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 50 }), (msgs, cuts) => {
      const bytes = Buffer.concat(msgs.map(encode));
      const out = decodeAll(bytes, cuts);
      return out.err === undefined && JSON.stringify(out.msgs) === JSON.stringify(msgs);
    }),
    params,
  );
  t.pass();
});

test('random bytes only ever yield valid messages or a RemoteProtocolError, never another exception', (t) => {
  let errors = 0;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.integer({ min: 1, max: 100 }), { maxLength: 10 }), (arr, cuts) => {
      const out = decodeAll(Buffer.from(arr), cuts);
      if (out.err !== undefined) {
        errors++;
        if (!(out.err instanceof RemoteProtocolError)) return false;
      }
      // Everything decoded must validate again (nothing half-checked gets through).
      return out.msgs.every((m) => validate(JSON.parse(JSON.stringify(m))).t === m.t);
    }),
    params,
  );
  t.true(errors > 0, 'random bytes should produce protocol errors');
});

test('mutated valid frames are either still valid or rejected with a protocol error', (t) => {
  let rejected = 0;
  let accepted = 0;
  fc.assert(
    fc.property(validMessage, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (msg, flips) => {
      const bytes = Buffer.from(encode(msg));
      for (const [at, b] of flips) {
        const i = at % (bytes.length - 1); // keep the final newline
        bytes[i] = b === 0x0a ? 0x20 : b;
      }
      const out = decodeAll(bytes, [bytes.length]);
      if (out.err) {
        rejected++;
        return out.err instanceof RemoteProtocolError;
      }
      accepted++;
      return out.msgs.length === 1;
    }),
    params,
  );
  t.true(rejected > 0);
  t.log(`mutations: ${rejected} rejected, ${accepted} still valid`);
});

test('a decoder never holds more than its frame limit, whatever arrives', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 2000 }), { maxLength: 10 }), (chunks) => {
      const d = new FrameDecoder({ maxFrameBytes: 1024 });
      for (const c of chunks) {
        try {
          d.push(Buffer.from(c));
        } catch {
          return true;
        }
        if (d.buffered > 1024) return false;
      }
      return true;
    }),
    params,
  );
  t.pass();
});
