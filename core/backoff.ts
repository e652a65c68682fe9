/**
 * Retrying with backoff, in one place: the peer's join against an unreachable
 * metaserver (peer.ts), the repair's rejoin (repair.ts) and the join's
 * re-registration after a dead referral (join.ts) all call `retry()`.
 *
 * `delays` is the list of waits between tries: its length is the number of
 * retries (an endless iterable retries for ever); `backoffDelays()` builds
 * the usual first, first·factor, ... capped sequence. A delay of 0 retries at
 * once (no timer).
 */
import { realClock, sleepOn, type Clock } from './clock.ts';

export interface BackoffOptions {
  /** First wait, ms. */
  first: number;
  /** Each wait is the previous one times this (default 2). */
  factor?: number;
  /** Cap on one wait, ms (default: none). */
  max?: number;
  /** Number of waits (default: endless). */
  count?: number;
}

/** first, first·factor, first·factor², ... (each at most `max`), `count` of them. */
export function* backoffDelays(o: BackoffOptions): Generator<number, void, undefined> {
  const factor = o.factor ?? 2;
  const max = o.max ?? Infinity;
  const count = o.count ?? Infinity;
  let d = o.first;
  for (let i = 0; i < count; i++) {
    yield Math.min(d, max);
    d = Math.min(d * factor, max);
  }
}

export interface RetryOptions {
  /** Waits between tries, ms; one retry per element (see backoffDelays). */
  delays: Iterable<number>;
  /** Whether this failure is worth another try (default: every failure). Not asked once `delays` is used up. */
  retryIf?(err: unknown, attempt: number): boolean;
  /** Called after a failed try that will be retried, before waiting (awaited): log it, report it. */
  onRetry?(err: unknown, attempt: number, delayMs: number): void | Promise<void>;
  /** Aborting stops the retries: a failure is rethrown, a wait rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Timers of this clock (default: real time). */
  clock?: Clock;
  /** Waits do not keep the process alive (Node's timer.unref()). */
  unref?: boolean;
}

/**
 * Runs `fn(attempt)` (attempt 1, 2, ...) until it resolves; after a failure,
 * waits the next delay and tries again, while delays remain, `retryIf` agrees
 * and `signal` has not aborted. Otherwise the last failure is thrown.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const it = o.delays[Symbol.iterator]();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (o.signal?.aborted) throw err;
      const next = it.next();
      if (next.done || (o.retryIf && !o.retryIf(err, attempt))) throw err;
      await o.onRetry?.(err, attempt, next.value);
      if (next.value > 0) await sleepOn(o.clock ?? realClock, next.value, o.signal, o.unref ?? false);
    }
  }
}
