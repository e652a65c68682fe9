/**
 * The adaptive number of sources (core/transfer/swarm-fanout.ts) with an injected load signal:
 * deterministic windows, no clock, no sockets. A small model delivers each source's bytes per
 * window: "absorb" (unshaped loopback: the requester takes a fixed total, whatever the number
 * of sources) or "capped" (each source its own uplink: the total grows with the sources).
 */
import test from 'ava';
import { FanoutGovernor, type FanoutOptions } from '../../core/transfer/swarm-fanout.ts';

interface Src {
  bytes: number;
  queued: number;
  gone: boolean;
  parked: boolean;
}

const WINDOW = 25;
const DEPTH = 2;

/** Runs `windows` governor windows; `perSource(active, i)` is what an active source delivers in one. */
function run(k: number, windows: number, util: (w: number) => number | undefined, perSource: (active: number, i: number) => number, opts?: FanoutOptions) {
  const src: Src[] = Array.from({ length: k }, () => ({ bytes: 0, queued: DEPTH, gone: false, parked: false }));
  // Spans of 100 ms = 4 windows (the defaults are 50 ms for a verdict, 150 ms of history for a trial).
  const g = new FanoutGovernor({ spanMs: 100, triggerMs: 100, ...opts });
  const active: number[] = [];
  const actions: string[] = [];
  for (let w = 0; w < windows; w++) {
    const n = src.filter((s) => !s.gone && !s.parked).length;
    active.push(n);
    for (let i = 0; i < k; i++) {
      const s = src[i]!;
      if (s.gone) continue;
      if (!s.parked) s.bytes += perSource(n, i);
      else if (s.queued > 0) {
        // A parked source finishes what it was asked for, then sends nothing.
        s.bytes += perSource(n, i);
        s.queued = 0;
      }
    }
    const a = g.tick(util(w), WINDOW, src);
    if (a && 'park' in a) {
      for (const i of a.park) {
        t0(!src[i]!.parked && !src[i]!.gone, 'parks an active source');
        src[i]!.parked = true;
      }
      actions.push(`${w}:park ${a.park.join('+')}`);
    } else if (a) {
      for (const i of a.unpark) {
        t0(src[i]!.parked, 'unparks a parked source');
        src[i]!.parked = false;
        src[i]!.queued = DEPTH;
      }
      actions.push(`${w}:unpark ${a.unpark.join('+')}`);
    }
  }
  return { g, src, active, actions };
}
function t0(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

const MB = 1e6;
/** Unshaped loopback: the requester absorbs 10 MB per window in all, split over the active sources. */
const absorb = (active: number) => (10 * MB) / active;
/** Capped uplinks: 0.5 MB per window each (20 MB/s), whatever the others do. */
const capped = () => 0.5 * MB;

const parksOf = (actions: string[]) => actions.filter((a) => /:park /.test(a)).map((a) => a.split(' ')[1]!);
const unparksOf = (actions: string[]) => actions.filter((a) => /:unpark /.test(a)).map((a) => a.split(' ')[1]!);

test('saturated requester that absorbs a fixed rate: parks down to one source, each trial kept and the next one twice as large', (t) => {
  const r = run(4, 40, () => 0.99, absorb);
  t.is(r.active.indexOf(3), 5, 'first trial after a full span (4 windows) of history');
  t.is(r.active[r.active.length - 1], 1, `active per window: ${r.active.join(',')}`);
  t.deepEqual(parksOf(r.actions).map((p) => p.split('+').length), [1, 2], r.actions.join(' '));
  t.is(r.g.unparks, 0);
  t.is(r.g.failedTrials, 0);
  // Each trial: its drain window and its verdict span (100 ms = 4 windows of 25 ms).
  t.true(r.active.indexOf(1) <= 16, `one source from window ${r.active.indexOf(1)}`);
  const eight = run(8, 60, () => 0.99, absorb);
  t.deepEqual(parksOf(eight.actions).map((p) => p.split('+').length), [1, 2, 4], eight.actions.join(' '));
  t.is(eight.active[eight.active.length - 1], 1);
});

test('saturated requester with capped holders: every trial is undone at its verdict, trials back off', (t) => {
  const windows = 200;
  const r = run(8, windows, () => 0.99, capped);
  t.is(r.g.parks, r.g.failedTrials, r.actions.join(' '));
  t.true(parksOf(r.actions).every((p) => !p.includes('+')), 'one source at stake per trial');
  t.true(r.g.parks >= 2, 'it did try');
  t.true(r.g.parks <= 6, `${r.g.parks} trials in ${windows} windows (cooldown doubles)`);
  // Windows with fewer than 8 sources delivering: the cost of the trials (drained, then the verdict span).
  const short = r.active.filter((n) => n < 8).length;
  t.true(short <= r.g.parks * 6, `${short} windows short of a source`);
  t.is(r.active[r.active.length - 1], 8);
});

test('a trial is kept only if the others make up at least keepShare of the parked rate', (t) => {
  // The others pick up 60% of a parked source's rate: kept with keepShare 0.5, undone with 0.7.
  const partly = (active: number) => (active === 4 ? 1 : (3 + 0.6) / 3) * MB;
  t.is(run(4, 12, () => 0.99, partly, { keepShare: 0.5 }).g.failedTrials, 0);
  t.is(run(4, 12, () => 0.99, partly, { keepShare: 0.7 }).g.failedTrials, 1);
});

test('spare capacity unparks the source parked last, one per window; an idle loop parks nothing', (t) => {
  const r = run(4, 40, (w) => (w < 20 ? 0.99 : 0.3), absorb);
  const parked = parksOf(r.actions).flatMap((p) => p.split('+'));
  t.is(parked.length, 3, r.actions.join(' '));
  t.deepEqual(unparksOf(r.actions), [...parked].reverse(), r.actions.join(' '));
  t.is(r.active[r.active.length - 1], 4);
  t.is(run(4, 30, () => 0.5, absorb).g.parks, 0);
  // Between the thresholds: nothing changes.
  t.is(run(4, 30, () => 0.75, absorb).g.parks, 0);
  // Saturated in one window out of two (a burst): not saturated on average, no trial.
  t.is(run(4, 30, (w) => (w % 2 ? 0.99 : 0.7), absorb).g.parks, 0);
});

test('no signal (simulated clock): nothing is parked', (t) => {
  const r = run(4, 30, () => undefined, absorb);
  t.is(r.g.parks, 0);
  t.true(r.active.every((n) => n === 4));
});

test('a source still connecting (no byte yet) is neither parked nor counted as a second source', (t) => {
  const g = new FanoutGovernor({ spanMs: 100, triggerMs: 100 });
  const src: Src[] = [
    { bytes: 0, queued: 2, gone: false, parked: false },
    { bytes: 0, queued: 0, gone: false, parked: false },
  ];
  t.is(g.tick(0.99, WINDOW, src), null, 'first window: baseline only');
  // Saturated for 10 windows with one source delivering: nothing to park.
  for (let w = 0; w < 10; w++) {
    src[0]!.bytes += MB;
    t.is(g.tick(0.99, WINDOW, src), null);
  }
  src[0]!.bytes += MB;
  src[1]!.bytes += 1;
  t.deepEqual(g.tick(0.99, WINDOW, src), { park: [1] });
});

test('faults: a drop ends the trial and unparks its sources; the only survivor is unparked at once', (t) => {
  const g = new FanoutGovernor({ spanMs: 100, triggerMs: 100 });
  const src: Src[] = Array.from({ length: 3 }, () => ({ bytes: 0, queued: 2, gone: false, parked: false }));
  const step = () => {
    for (const s of src) if (!s.gone && !s.parked) s.bytes += MB;
    return g.tick(0.99, WINDOW, src);
  };
  src[0]!.bytes += 1; // source 0 a little faster: 1 or 2 is parked (the slowest, the later on a tie)
  let a = step();
  // No trial before a full span (100 ms) of history.
  for (let w = 1; a === null; w++) {
    t.true(w * WINDOW <= 125, `window ${w}`);
    a = step();
  }
  t.deepEqual(a, { park: [2] });
  src[2]!.parked = true;
  // A fault while the trial runs: its verdict would measure the fault, so it is undone.
  src[1]!.gone = true;
  t.deepEqual(g.onDrop(src), { unpark: [2] });
  src[2]!.parked = false;
  // Saturated again: 2 is parked (slowest); then 0, the only active source, dies: 2 comes back at once.
  src[0]!.bytes += 1;
  let b = step();
  while (b === null) b = step();
  t.deepEqual(b, { park: [2] });
  src[2]!.parked = true;
  src[0]!.gone = true;
  t.deepEqual(g.onDrop(src), { unpark: [2] });
  src[2]!.parked = false;
  // With nobody parked and nobody left, nothing to do.
  src[2]!.gone = true;
  t.is(g.onDrop(src), null);
});

test('a parked source that is the only survivor comes back even after its trial was kept', (t) => {
  const r = run(3, 30, () => 0.99, absorb);
  t.is(r.active[r.active.length - 1], 1, r.actions.join(' '));
  const g = r.g;
  const src = r.src;
  const active = src.findIndex((s) => !s.parked);
  src[active]!.gone = true;
  const a = g.onDrop(src);
  t.truthy(a && 'unpark' in a && a.unpark.length === 1 && src[a.unpark[0]!]!.parked, JSON.stringify(a));
});

test('the end-game brings every parked source back and ends a running trial', (t) => {
  const r = run(4, 40, () => 0.99, absorb);
  t.is(r.src.filter((s) => s.parked).length, 3);
  const a = r.g.release(r.src);
  t.deepEqual(a && 'unpark' in a ? [...a.unpark].sort() : a, [0, 1, 2, 3].filter((i) => r.src[i]!.parked));
  t.is(r.g.parks - r.g.unparks, 0);
  t.false(r.g.trying);
  for (const s of r.src) s.parked = false;
  t.is(r.g.release(r.src), null, 'nothing parked: nothing to do');
});

test('defaults: a trial after 150 ms of saturated history, its verdict 50 ms after the drain', (t) => {
  const g = new FanoutGovernor();
  const src: Src[] = Array.from({ length: 2 }, () => ({ bytes: 0, queued: 2, gone: false, parked: false }));
  const acts: unknown[] = [];
  for (let w = 0; w < 12; w++) {
    if (!src[0]!.parked) src[0]!.bytes += MB;
    if (!src[1]!.parked) src[1]!.bytes += MB / 2;
    else src[1]!.queued = 0;
    // The other source makes up for the parked one: the trial is kept.
    if (src[1]!.parked) src[0]!.bytes += MB / 2;
    const a = g.tick(0.99, WINDOW, src);
    if (a && 'park' in a) for (const i of a.park) src[i]!.parked = true;
    acts.push(a);
  }
  // Window 0 is the baseline; 150 ms of history at window 6; drained at 7; verdict at 9 (kept).
  t.deepEqual(acts.findIndex((a) => a !== null), 6);
  t.deepEqual(acts[6], { park: [1] });
  t.true(acts.slice(7).every((a) => a === null));
  t.is(g.failedTrials, 0);
  t.false(g.trying, 'the verdict came');
});
