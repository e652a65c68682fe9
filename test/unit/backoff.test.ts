/** core/backoff.ts: the delay sequence, and retry()'s stop rules, on simulated time. */
import test from 'ava';
import { backoffDelays, retry } from '../../core/backoff.ts';
import { SimClock } from '../../core/clock.ts';

test('backoffDelays doubles from first, caps at max, stops after count', (t) => {
  t.deepEqual([...backoffDelays({ first: 250, count: 4 })], [250, 500, 1000, 2000]);
  t.deepEqual([...backoffDelays({ first: 100, max: 500, count: 6 })], [100, 200, 400, 500, 500, 500]);
  t.deepEqual([...backoffDelays({ first: 10, factor: 3, count: 3 })], [10, 30, 90]);
  t.deepEqual([...backoffDelays({ first: 1, count: 0 })], []);
  const endless = backoffDelays({ first: 1, max: 8 });
  const first20 = Array.from({ length: 20 }, () => endless.next().value);
  t.deepEqual(first20.slice(0, 5), [1, 2, 4, 8, 8]);
  t.true(first20.every((d) => d === 8 || d! < 8));
});

test('retry waits each delay in turn and returns the first success', async (t) => {
  const clock = new SimClock();
  const triedAt: number[] = [];
  const retried: [number, number][] = [];
  const v = await clock.drive(
    retry(
      async (attempt) => {
        triedAt.push(clock.now());
        if (attempt < 4) throw new Error(`fail ${attempt}`);
        return 'ok';
      },
      { delays: backoffDelays({ first: 250, count: 5 }), clock, onRetry: (_e, attempt, d) => void retried.push([attempt, d]) },
    ),
  );
  t.is(v, 'ok');
  t.deepEqual(triedAt, [0, 250, 750, 1750]);
  t.deepEqual(retried, [[1, 250], [2, 500], [3, 1000]]);
});

test('retry throws the last failure once the delays are used up', async (t) => {
  const clock = new SimClock();
  let tries = 0;
  const err = await t.throwsAsync(
    clock.drive(retry(async () => Promise.reject(new Error(`fail ${++tries}`)), { delays: [0, 0], clock })),
  );
  t.is(err?.message, 'fail 3');
  t.is(tries, 3);
  t.is(clock.now(), 0, 'zero delays retry at once');
});

test('retryIf false rethrows at once; an awaited onRetry runs before the next try', async (t) => {
  class Fatal extends Error {}
  const clock = new SimClock();
  const log: string[] = [];
  const err = await t.throwsAsync(
    clock.drive(
      retry(
        async (attempt) => {
          log.push(`try ${attempt}`);
          throw attempt === 1 ? new Error('transient') : new Fatal('fatal');
        },
        {
          delays: backoffDelays({ first: 10 }),
          clock,
          retryIf: (e) => !(e instanceof Fatal),
          onRetry: async () => {
            await clock.sleep(5);
            log.push('reported');
          },
        },
      ),
    ),
  );
  t.true(err instanceof Fatal);
  t.deepEqual(log, ['try 1', 'reported', 'try 2']);
  t.is(clock.now(), 15);
});

test('an abort during a wait rejects with the reason; a failure after abort is not retried', async (t) => {
  const clock = new SimClock();
  const ac = new AbortController();
  let tries = 0;
  clock.setTimeout(() => ac.abort(new Error('stopped')), 100);
  const err = await t.throwsAsync(
    clock.drive(retry(async () => Promise.reject(new Error(`fail ${++tries}`)), { delays: backoffDelays({ first: 1000 }), clock, signal: ac.signal })),
  );
  t.is(err?.message, 'stopped');
  t.is(tries, 1);
  t.is(clock.now(), 100);

  const ac2 = new AbortController();
  ac2.abort(new Error('gone'));
  const err2 = await t.throwsAsync(retry(async () => Promise.reject(new Error('boom')), { delays: [0, 0], signal: ac2.signal }));
  t.is(err2?.message, 'boom');
});
