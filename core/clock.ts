/**
 * The clock seam: every now(), timer, interval, timeout and deadline signal
 * in core should go through a Clock, so the same code runs on real time
 * (`realClock`, the default: performance.now, Node timers, AbortSignal.timeout)
 * or on simulated time (`SimClock`, a discrete-event clock for the memory
 * runner: when nothing is runnable, time jumps to the next timer).
 *
 * SimClock cost per timer: one small object (the handle), one heap push and
 * one heap pop, O(log n); cancelling is O(1) (the entry is marked dead and
 * skipped when it reaches the top; the heap is compacted when dead entries
 * are more than half of it). Timers due at the current instant (defer(), 0 ms
 * timeouts: every delivery of an unshaped memory link) skip the heap: they go
 * to a FIFO, and defer() allocates no handle. Firing order is (due time,
 * creation order), so the same schedule of calls always fires in the same order.
 */

/** What a timer call returns: NodeJS.Timeout on the real clock. ref/unref as in Node. */
export interface TimerHandle {
  ref(): TimerHandle;
  unref(): TimerHandle;
  hasRef(): boolean;
}

export interface Clock {
  readonly kind: 'real' | 'sim';
  /** Milliseconds on this clock's own scale (performance.now() on the real clock). */
  now(): number;
  /**
   * `fn(arg)` after `ms`. The optional `arg` (as in Node's setTimeout) lets hot
   * paths pass one shared function instead of a closure per object: a closure
   * kept per object costs hundreds of bytes.
   */
  setTimeout<A = void>(fn: (arg: A) => void, ms: number, arg?: A): TimerHandle;
  clearTimeout(h: TimerHandle | undefined): void;
  setInterval<A = void>(fn: (arg: A) => void, ms: number, arg?: A): TimerHandle;
  clearInterval(h: TimerHandle | undefined): void;
  /** Runs `fn(arg)` after the current work: setImmediate on the real clock, a 0 ms timer in simulated time. */
  defer<A = void>(fn: (arg: A) => void, arg?: A): void;
  /** An AbortSignal that aborts with a TimeoutError after `ms` (AbortSignal.timeout on the real clock). */
  timeoutSignal(ms: number): AbortSignal;
  /** Resolves after `ms`; rejects with the signal's reason if it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Real work (file I/O) that simulated time must wait for: on a SimClock,
   * time does not jump until `p` settles, so disk work takes no simulated
   * time; on the real clock, `p` itself. Returns `p`.
   */
  hold<T>(p: Promise<T>): Promise<T>;
}

/** Waits `ms` on `clock`; rejects with the signal's reason when it aborts. `unref`: the wait does not keep the process alive. */
export function sleepOn(clock: Clock, ms: number, signal?: AbortSignal, unref = false): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clock.clearTimeout(h);
      reject(signal!.reason);
    };
    const h = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (unref) h.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Wall-clock time: what every TCP peer uses. */
export const realClock: Clock = {
  kind: 'real',
  now: () => performance.now(),
  setTimeout: (fn, ms, arg) => setTimeout(fn as (a: unknown) => void, ms, arg as unknown),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout | undefined),
  setInterval: (fn, ms, arg) => setInterval(fn as (a: unknown) => void, ms, arg as unknown),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout | undefined),
  defer: (fn, arg) => void setImmediate(fn as (a: unknown) => void, arg as unknown),
  timeoutSignal: (ms) => AbortSignal.timeout(ms),
  sleep: (ms, signal) => sleepOn(realClock, ms, signal),
  hold: (p) => p,
};

/** `signal`, or a deadline of `ms` on `clock`, whichever fires first. */
export function deadline(clock: Clock, ms: number, signal?: AbortSignal): AbortSignal {
  const t = clock.timeoutSignal(ms);
  return signal ? AbortSignal.any([signal, t]) : t;
}

/**
 * A deadline that is cancelled when its operation ends; for operations run
 * per peer and per join (register, JOIN steps, announces, swarm connects).
 * `deadline()` above leaves its timeout pending until it fires: on a
 * simulated clock that jumps little (100,000 joins in 0.1 s simulated) every
 * 3–5 s timeout stayed alive with its AbortController and signal (~3.5 per
 * peer). This one's timer is cleared by `done()`, and an outer signal is
 * followed by one listener (no AbortSignal.any).
 */
export class OpDeadline {
  private readonly ac = new AbortController();
  private readonly timer: TimerHandle;
  private readonly outer: AbortSignal | undefined;

  constructor(private readonly clock: Clock, ms: number, outer?: AbortSignal) {
    this.timer = clock.setTimeout(abortWithTimeout, ms, this.ac).unref();
    if (outer) {
      if (outer.aborted) this.ac.abort(outer.reason);
      else {
        this.outer = outer;
        outer.addEventListener('abort', this, { once: true });
      }
    }
  }

  /** Aborts on the timeout (a TimeoutError) or with the outer signal's reason, whichever comes first. */
  get signal(): AbortSignal {
    return this.ac.signal;
  }

  /** The outer signal aborted (EventListener object form: no closure per deadline). */
  handleEvent(): void {
    this.ac.abort(this.outer!.reason);
  }

  /** The operation ended: cancel the timeout and stop following the outer signal. */
  done(): void {
    this.clock.clearTimeout(this.timer);
    this.outer?.removeEventListener('abort', this);
  }
}

function abortWithTimeout(ac: AbortController): void {
  ac.abort(timeoutReason());
}

/** The reason AbortSignal.timeout aborts with (a DOMException named TimeoutError). */
export function timeoutReason(): Error {
  return new DOMException('The operation was aborted due to timeout', 'TimeoutError');
}

const noop = (): void => undefined;

/** One TimeoutError shared by every simulated timeout signal (its stack says nothing useful anyway). */
let simTimeout: Error | undefined;
function abortTimedOut(ac: AbortController): void {
  ac.abort((simTimeout ??= timeoutReason()));
}

class SimTimer implements TimerHandle {
  /** Position in the firing order among timers due at the same time. */
  seq = 0;
  /** false once fired (one-shot) or cancelled. */
  live = true;
  /** Waiting in the clock's now lane, not its heap. */
  inLane = false;
  refed = true;
  constructor(
    readonly clock: SimClock,
    public at: number,
    public fn: (arg: unknown) => void,
    public arg: unknown,
    /** > 0 for intervals. */
    readonly every: number,
  ) {}

  ref(): this {
    if (!this.refed) {
      this.refed = true;
      if (this.live) this.clock.refs++;
    }
    return this;
  }

  unref(): this {
    if (this.refed) {
      this.refed = false;
      if (this.live) this.clock.refs--;
    }
    return this;
  }

  hasRef(): boolean {
    return this.refed;
  }
}

function before(a: SimTimer, b: SimTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export interface SimRunOptions {
  /** Stop once this returns true (checked after every simulated instant). */
  until?: () => boolean;
  /** Do not go past this simulated time. Default: no limit. */
  maxTime?: number;
}

export interface SimClockOptions {
  /** Simulated time at start, ms. Default 0. */
  start?: number;
  /**
   * Due times are rounded up to a multiple of this, ms (Node's timers have
   * 1 ms resolution too). Coarser steps put more timers into one instant,
   * and each distinct instant costs one event-loop turn of the driver.
   * Default 1; 0 keeps exact fractional times.
   */
  granularityMs?: number;
}

/**
 * Discrete-event clock. Nothing moves by itself: a driver (`run`, `runUntil`,
 * `advance`, `drive`, or `start` for a background loop) repeatedly
 *   1. yields to the event loop (setImmediate), so promise chains and
 *      deferred work settle — "nothing runnable" is "one macrotask turn went
 *      by and no timer became due";
 *   2. jumps `now()` to the earliest live timer and fires every timer due at
 *      that instant that existed before the instant began (timers created
 *      while firing wait for the next turn, as Node's do).
 * Timers due at the same instant run back to back; microtasks they queue run
 * after the batch (Node runs them between callbacks). Real I/O (file reads)
 * is invisible to the clock: wrap it in `hold()` so time waits for it.
 */
export class SimClock implements Clock {
  readonly kind = 'sim' as const;
  private t: number;
  private seq = 0;
  private heap: SimTimer[] = [];
  private dead = 0;
  /**
   * Timers due at the instant they were created (the "now lane"), in creation order, as
   * triples [fn, arg, handle]: a handle (setTimeout(fn, 0)) is read at firing time (it may have
   * been cancelled); defer() stores fn and arg and no handle. Time does not move while this
   * holds anything, so every entry is due at `laneAt`, after any heap timer due then (those were
   * created earlier).
   */
  private lane: unknown[] = [];
  private laneHead = 0;
  /** Entries are lane[laneHead, laneLen): the array is reused, not shrunk, when the lane empties. */
  private laneLen = 0;
  private laneAt = 0;
  /** Cancelled handles still in the lane. */
  private laneDead = 0;
  /** Live timers that keep `run()` going (Node's ref). */
  refs = 0;
  /** Outstanding real work (see hold()); time does not jump while > 0. */
  private holds = 0;
  private wake: (() => void) | undefined;
  private running = false;
  private stopped = false;
  /** Timers fired so far. */
  fired = 0;

  private readonly grain: number;

  constructor(o: SimClockOptions = {}) {
    this.t = o.start ?? 0;
    this.grain = Math.max(0, o.granularityMs ?? 1);
  }

  private dueAt(ms: number): number {
    const at = this.t + ms;
    return this.grain > 0 ? Math.ceil(at / this.grain) * this.grain : at;
  }

  now(): number {
    return this.t;
  }

  /** Live timers (scheduled, not yet fired or cancelled). */
  get pending(): number {
    return this.heap.length - this.dead + (this.laneLen - this.laneHead) / 3 - this.laneDead;
  }

  setTimeout<A = void>(fn: (arg: A) => void, ms: number, arg?: A): TimerHandle {
    return this.add(fn as (a: unknown) => void, arg, ms, 0);
  }

  setInterval<A = void>(fn: (arg: A) => void, ms: number, arg?: A): TimerHandle {
    // An interval of 0 would fire forever at one instant; Node clamps to 1 ms too.
    return this.add(fn as (a: unknown) => void, arg, ms, Math.max(1, ms > 0 ? ms : 1));
  }

  clearTimeout(h: TimerHandle | undefined): void {
    if (!(h instanceof SimTimer) || !h.live || h.clock !== this) return;
    h.live = false;
    if (h.refed) this.refs--;
    // A cancelled entry stays in the heap (or lane) until it reaches the top: let go of what it holds.
    h.fn = noop;
    h.arg = undefined;
    if (h.inLane) {
      this.laneDead++;
      return;
    }
    this.dead++;
    if (this.dead > 1024 && this.dead * 2 > this.heap.length) this.compact();
  }

  clearInterval(h: TimerHandle | undefined): void {
    this.clearTimeout(h);
  }

  defer<A = void>(fn: (arg: A) => void, arg?: A): void {
    const at = this.dueAt(0);
    if (at !== this.t) {
      this.add(fn as (a: unknown) => void, arg, 0, 0);
      return;
    }
    this.seq++;
    this.refs++;
    this.toLane(fn, arg, null);
    if (this.wake) this.wake();
  }

  private toLane(fn: unknown, arg: unknown, tm: SimTimer | null): void {
    const q = this.lane;
    const n = this.laneLen;
    if (this.laneHead === n) this.laneAt = this.t;
    q[n] = fn;
    q[n + 1] = arg;
    q[n + 2] = tm;
    this.laneLen = n + 3;
  }

  timeoutSignal(ms: number): AbortSignal {
    const ac = new AbortController();
    // Like AbortSignal.timeout: does not keep run() going by itself. Most of these fire long
    // after their operation finished (nobody listens), so the abort takes no closure and one
    // shared TimeoutError (building a DOMException per abort cost ~3% of a long simulation).
    this.add(abortTimedOut as (a: unknown) => void, ac, ms, 0).unref();
    return ac.signal;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /**
   * Real work the simulation must wait for (a file read, a child process):
   * time does not jump until the promise settles. Returns the same promise.
   */
  hold<T>(p: Promise<T>): Promise<T> {
    this.holds++;
    p.then(this.released, this.released);
    return p;
  }

  /** hold()'s settle callback, made once (a closure per call showed in profiles: every query's local lookup is held). */
  private readonly released = (): void => {
    this.holds--;
    this.wake?.();
  };

  private add(fn: (arg: unknown) => void, arg: unknown, ms: number, every: number): SimTimer {
    const d = ms > 0 && Number.isFinite(ms) ? ms : 0;
    const tm = new SimTimer(this, this.dueAt(d), fn, arg, every);
    this.refs++;
    if (tm.at === this.t) {
      tm.seq = this.seq++;
      tm.inLane = true;
      this.toLane(null, null, tm);
    } else this.push(tm);
    if (this.wake) this.wake();
    return tm;
  }

  private push(tm: SimTimer): void {
    tm.seq = this.seq++;
    const h = this.heap;
    let i = h.length;
    h.push(tm);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(tm, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = tm;
  }

  private pop(): SimTimer {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    const n = h.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(h[r]!, h[l]!) ? r : l;
        if (!before(h[c]!, last)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  /** The earliest live timer, dropping dead ones from the top. */
  private peek(): SimTimer | undefined {
    while (this.heap.length) {
      const top = this.heap[0]!;
      if (top.live) return top;
      this.pop();
      this.dead--;
    }
    return undefined;
  }

  /** Drops cancelled handles from the lane's front; true when a live entry is left. */
  private laneLive(): boolean {
    const q = this.lane;
    while (this.laneHead < this.laneLen) {
      const tm = q[this.laneHead + 2] as SimTimer | null;
      if (tm === null || tm.live) return true;
      q[this.laneHead + 2] = null;
      this.laneHead += 3;
      this.laneDead--;
    }
    this.laneHead = this.laneLen = 0;
    if (q.length > 3 * 65536) q.length = 0; // a burst's big lane is not kept
    return false;
  }

  /** Fires the lane's front entry. */
  private fireLane(): void {
    const q = this.lane;
    const i = this.laneHead;
    const tm = q[i + 2] as SimTimer | null;
    let fn = q[i] as (arg: unknown) => void, arg = q[i + 1];
    q[i] = q[i + 1] = q[i + 2] = null;
    this.laneHead = i + 3;
    if (tm) {
      fn = tm.fn;
      arg = tm.arg;
      tm.inLane = false;
      this.afterFire(tm);
    } else this.refs--;
    this.fired++;
    fn(arg);
  }

  /** A timer about to fire: an interval is due again one period on; a timeout is spent. */
  private afterFire(tm: SimTimer): void {
    if (tm.every > 0) {
      tm.at = this.dueAt(tm.every);
      this.push(tm);
    } else {
      tm.live = false;
      if (tm.refed) this.refs--;
    }
  }

  private compact(): void {
    const live = this.heap.filter((x) => x.live);
    live.sort((a, b) => (a.at - b.at) || (a.seq - b.seq));
    this.heap = live; // a sorted array is a valid heap
    this.dead = 0;
  }

  /** When the next live timer is due, or undefined. */
  nextAt(): number | undefined {
    const top = this.peek();
    if (this.laneLive() && (!top || top.at > this.laneAt)) return this.laneAt;
    return top?.at;
  }

  /**
   * Fires every live timer due at the earliest instant ≤ `limit` (jumping
   * time there). Returns false when no timer is due by `limit`. Synchronous:
   * call it only when pending work has settled (the drivers below do).
   */
  fireNext(limit = Infinity): boolean {
    const at = this.nextAt();
    if (at === undefined || at > limit) return false;
    if (at > this.t) this.t = at;
    const batch = this.seq; // timers created while firing wait for the next turn
    // A long instant (a flood rippling through the tree) never empties the lane: move what is left to the front.
    if (this.laneHead > 3 * 4096 && this.laneHead * 2 > this.laneLen) {
      this.lane.copyWithin(0, this.laneHead, this.laneLen);
      this.laneLen -= this.laneHead;
      this.lane.fill(null, this.laneLen, this.laneLen + this.laneHead);
      this.laneHead = 0;
    }
    const laneEnd = this.laneLen;
    // Heap timers due now come first (they were created before this instant began), then the lane
    // up to its length now: anything added while firing waits for the next turn.
    for (let tm = this.peek(); tm && tm.at <= this.t && tm.seq < batch; tm = this.peek()) {
      this.pop();
      this.afterFire(tm);
      this.fired++;
      tm.fn(tm.arg);
    }
    if (this.laneAt <= this.t) {
      // (laneLive() may skip cancelled entries past `laneEnd`: check again after it.)
      while (this.laneHead < laneEnd && this.laneLive() && this.laneHead < laneEnd) this.fireLane();
    }
    return true;
  }

  private settle(): Promise<void> {
    return new Promise<void>((r) => setImmediate(r));
  }

  /** Waits until no real work is held (see hold()). */
  private async waitHolds(): Promise<void> {
    while (this.holds > 0) {
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }

  /**
   * Runs simulated time forward. Stops when `until()` is true, when the next
   * timer is past `maxTime` (time is then left at `maxTime` if finite), or
   * when no ref'd timer is left (like a Node process with nothing to do).
   */
  async run(o: SimRunOptions = {}): Promise<void> {
    const max = o.maxTime ?? Infinity;
    const stopped = await this.loop(() => !!o.until?.() || (this.refs <= 0 && max === Infinity), max);
    if (!stopped && Number.isFinite(max) && max > this.t) this.t = max;
  }

  /**
   * The one driver loop: lets pending work settle (and held work finish),
   * then fires the next instant up to `max`, until `stop()` says so (true) or
   * no timer is left by `max` (false).
   */
  private async loop(stop: () => boolean, max: number): Promise<boolean> {
    if (this.running) throw new Error('SimClock: a driver is already running');
    this.running = true;
    try {
      for (;;) {
        await this.settle();
        if (this.holds > 0) {
          await this.waitHolds();
          continue;
        }
        if (stop()) return true;
        if (!this.fireNext(max)) return false;
      }
    } finally {
      this.running = false;
    }
  }

  /** Runs until simulated time `t` (firing every timer due by then), leaving now() = t. */
  runUntil(t: number): Promise<void> {
    return this.run({ maxTime: t, until: undefined });
  }

  /** Runs `ms` of simulated time. */
  advance(ms: number): Promise<void> {
    return this.runUntil(this.t + ms);
  }

  /**
   * Runs the clock until `p` settles and returns its outcome. Rejects if the
   * simulation stalls (no timer left and nothing held) with `p` still pending.
   */
  async drive<T>(p: Promise<T>, maxTime = Infinity): Promise<T> {
    let settled = false;
    const mark = () => {
      settled = true;
    };
    p.then(mark, mark);
    await this.loop(() => settled, maxTime);
    if (!settled) throw new Error(`SimClock: stalled at t=${this.t} ms with the awaited work still pending (no timer left)`);
    return p;
  }

  /**
   * Background driver for long simulations: keeps firing timers, waiting
   * (without spinning) when none is scheduled, until stop().
   */
  start(): void {
    if (this.running) throw new Error('SimClock: a driver is already running');
    this.running = true;
    this.stopped = false;
    void (async () => {
      try {
        while (!this.stopped) {
          await this.settle();
          if (this.stopped) break;
          if (this.holds > 0) {
            await this.waitHolds();
            continue;
          }
          if (!this.fireNext()) {
            await new Promise<void>((r) => (this.wake = r));
            this.wake = undefined;
          }
        }
      } finally {
        this.running = false;
      }
    })();
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }
}
