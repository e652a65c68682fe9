/** The hand-checked heartbeat path of validate() accepts and refuses exactly what the schema does. */
import test from 'ava';
import { validate } from '../../core/protocol/codec.ts';

test('bare ping/pong frames take the fast path; anything else still meets the schema', (t) => {
  t.deepEqual(validate({ t: 'ping', n: 0 }), { t: 'ping', n: 0 });
  t.deepEqual(validate({ n: 1e9, t: 'pong' }), { t: 'pong', n: 1e9 });
  for (const bad of [{ t: 'ping', n: -1 }, { t: 'ping', n: 1.5 }, { t: 'pong', n: 1e9 + 1 }, { t: 'ping', n: '3' }, { t: 'ping' }, { t: 'pong', n: 3, x: 1 }, JSON.parse('{"t":"ping","n":1,"__proto__":{}}')]) {
    t.throws(() => validate(bad), { message: /ping|pong|field|unknown/ }, JSON.stringify(bad));
  }
  // Fields the fast path does not handle go through the schema (and are kept).
  t.deepEqual(validate({ t: 'pong', n: 3, id: 'S1' }), { t: 'pong', n: 3, id: 'S1' });
  t.throws(() => validate({ t: 'ping', n: 3, nonce: 'xyz' }), { message: /nonce/ });
});
