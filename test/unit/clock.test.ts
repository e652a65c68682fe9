/** SimClock: ordering, determinism, cancellation, time jumps, drivers, and a rough speed check. */
import test from 'ava';
import { realClock, SimClock, deadline } from '../../core/clock.ts';
import { abortError } from '../../core/transport/connection.ts';
import { errorCode } from '../../core/index.ts';

test('timers fire in due-time order, equal times in creation order', async (t) => {
  const c = new SimClock();
  const log: string[] = [];
  c.setTimeout(() => log.push('c@30'), 30);
  c.setTimeout(() => log.push('a@10'), 10);
  c.setTimeout(() => log.push('b1@20'), 20);
  c.setTimeout(() => log.push('b2@20'), 20);
  c.setTimeout(() => log.push('z@0'), 0);
  await c.run();
  t.deepEqual(log, ['z@0', 'a@10', 'b1@20', 'b2@20', 'c@30']);
  t.is(c.now(), 30);
});

test('time jumps straight to the next timer: a simulated day costs nothing', async (t) => {
  const c = new SimClock();
  const day = 86_400_000;
  let at = -1;
  c.setTimeout(() => (at = c.now()), day);
  const w0 = performance.now();
  await c.run();
  t.is(at, day);
  t.true(performance.now() - w0 < 1000);
  await c.advance(500);
  t.is(c.now(), day + 500, 'advance leaves time at the target even with no timer');
});

test('same schedule of calls → same firing order (determinism)', async (t) => {
  const once = async () => {
    const c = new SimClock();
    const log: number[] = [];
    let x = 12345;
    const rnd = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x);
    for (let i = 0; i < 2000; i++) {
      const id = i;
      c.setTimeout(() => {
        log.push(id);
        if (id % 3 === 0) c.setTimeout(() => log.push(-id), rnd() % 50);
      }, rnd() % 100);
    }
    await c.run();
    return log;
  };
  const a = await once();
  const b = await once();
  t.is(a.length, 2000 + 667);
  t.deepEqual(a, b);
});

test('cancelled timers never fire; pending counts live timers; heavy cancelling compacts', async (t) => {
  const c = new SimClock();
  let fired = 0;
  const hs = Array.from({ length: 5000 }, (_, i) => c.setTimeout(() => fired++, i + 1));
  t.is(c.pending, 5000);
  for (let i = 0; i < 5000; i += 2) c.clearTimeout(hs[i]);
  c.clearTimeout(hs[0]); // twice: no effect
  t.is(c.pending, 2500);
  await c.run();
  t.is(fired, 2500);
  t.is(c.pending, 0);
  t.is(c.now(), 5000);
});

test('intervals repeat every period and stop when cleared, even from their own callback', async (t) => {
  const c = new SimClock();
  const at: number[] = [];
  const h = c.setInterval(() => {
    at.push(c.now());
    if (at.length === 4) c.clearInterval(h);
  }, 250);
  await c.run();
  t.deepEqual(at, [250, 500, 750, 1000]);
});

test('promise chains settle before time moves: an async loop of sleeps', async (t) => {
  const c = new SimClock();
  const seen: number[] = [];
  const loop = (async () => {
    for (let i = 0; i < 100; i++) {
      await c.sleep(10);
      await Promise.resolve();
      seen.push(c.now());
    }
    return 'done';
  })();
  t.is(await c.drive(loop), 'done');
  t.is(c.now(), 1000);
  t.deepEqual(seen, Array.from({ length: 100 }, (_, i) => (i + 1) * 10));
});

test('a 0 ms timer made while firing runs at the same instant, after the batch', async (t) => {
  const c = new SimClock();
  const log: string[] = [];
  c.setTimeout(() => {
    log.push('a');
    c.setTimeout(() => log.push(`inner@${c.now()}`), 0);
    void Promise.resolve().then(() => log.push('microtask'));
  }, 5);
  c.setTimeout(() => log.push('b'), 5);
  await c.run();
  t.deepEqual(log, ['a', 'b', 'microtask', 'inner@5']);
});

test('timeoutSignal aborts with a TimeoutError at the simulated deadline; deadline() combines', async (t) => {
  const c = new SimClock();
  const s = c.timeoutSignal(1500);
  let abortedAt = -1;
  s.addEventListener('abort', () => (abortedAt = c.now()));
  await c.runUntil(1499);
  t.false(s.aborted);
  await c.runUntil(2000);
  t.true(s.aborted);
  t.is(abortedAt, 1500);
  t.is(errorCode(abortError(s, 'x')), 'timeout');
  const ac = new AbortController();
  const d = deadline(c, 100, ac.signal);
  ac.abort();
  t.true(d.aborted);
  t.is(errorCode(abortError(d, 'x')), 'aborted');
});

test('sleep rejects when its signal aborts and its timer is cancelled', async (t) => {
  const c = new SimClock();
  const ac = new AbortController();
  const p = c.sleep(1000, ac.signal);
  c.setTimeout(() => ac.abort(new Error('stop')), 10);
  await t.throwsAsync(c.drive(p), { message: 'stop' });
  t.is(c.now(), 10);
  t.is(c.pending, 0);
});

test('run() ends when only unref-ed timers are left, like a Node process', async (t) => {
  const c = new SimClock();
  let beats = 0;
  c.setInterval(() => beats++, 100).unref();
  const h = c.setTimeout(() => undefined, 1000);
  t.true(h.hasRef());
  await c.run();
  t.is(c.now(), 1000);
  t.is(beats, 10);
});

test('drive() rejects when the simulation stalls with the work still pending', async (t) => {
  const c = new SimClock();
  const never = new Promise<void>(() => undefined);
  await t.throwsAsync(c.drive(never), { message: /stalled/ });
});

test('hold(): time does not jump while real work is outstanding', async (t) => {
  const c = new SimClock();
  let timerAt = -1;
  let realDoneAt = -1;
  c.setTimeout(() => (timerAt = c.now()), 1000);
  const real = c.hold(realClock.sleep(30).then(() => (realDoneAt = c.now())));
  await c.run();
  await real;
  t.is(realDoneAt, 0, 'the real work finished before simulated time moved');
  t.is(timerAt, 1000);
});

test('start()/stop(): a background driver runs timers as they are scheduled', async (t) => {
  const c = new SimClock();
  c.start();
  t.teardown(() => c.stop());
  await c.sleep(60_000);
  t.is(c.now(), 60_000);
  await c.sleep(5);
  t.is(c.now(), 60_005);
});

test('speed: a million timers (interleaved pushes and pops) run in a few seconds at most', async (t) => {
  const c = new SimClock();
  const N = 1_000_000;
  let fired = 0;
  const fn = () => {
    fired++;
  };
  // 10,000 "peers", each with a 1 s heartbeat interval at its own phase: 100 beats each.
  const w0 = performance.now();
  const hs = Array.from({ length: 10_000 }, (_, i) => c.setInterval(fn, 1000 + (i % 7)));
  await c.run({ until: () => fired >= N });
  for (const h of hs) c.clearInterval(h);
  const ms = performance.now() - w0;
  t.true(fired >= N);
  t.log(`${fired} timers in ${ms.toFixed(0)} ms wall (${Math.round(fired / (ms / 1000)).toLocaleString('en-US')} timers/s), simulated ${(c.now() / 1000).toFixed(1)} s`);
  t.true(ms < 20_000, `${ms} ms`);
});

test('granularity: due times round up to whole ms by default; 0 keeps fractions', async (t) => {
  const c = new SimClock();
  const at: number[] = [];
  c.setTimeout(() => at.push(c.now()), 0.2);
  c.setTimeout(() => at.push(c.now()), 1.5);
  await c.run();
  t.deepEqual(at, [1, 2]);
  const f = new SimClock({ granularityMs: 0 });
  const fat: number[] = [];
  f.setTimeout(() => fat.push(f.now()), 0.25);
  await f.run();
  t.deepEqual(fat, [0.25]);
});

test('timers pass their argument (one shared callback instead of a closure per object), on both clocks', async (t) => {
  const c = new SimClock();
  const got: number[] = [];
  const cb = (x: number) => got.push(x);
  c.setTimeout(cb, 5, 1);
  c.defer(cb, 2);
  const iv = c.setInterval(cb, 3, 3);
  c.setTimeout(() => c.clearInterval(iv), 7);
  await c.run();
  t.deepEqual(got, [2, 3, 1, 3]);
  const real = await new Promise<number>((r) => realClock.setTimeout(r, 1, 9));
  t.is(real, 9);
  t.is(await new Promise<string>((r) => realClock.defer(r, 'd')), 'd');
});
