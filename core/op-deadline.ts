/**
 * A deadline that is cancelled when its operation ends. `deadline()` in
 * clock.ts leaves its timeout pending until it fires: on a simulated clock
 * that jumps little (100,000 joins in 0.1 s simulated) every 3–5 s timeout of
 * every register, JOIN step and announce stayed alive with its
 * AbortController and signal (~3.5 per peer). This one's timer is cleared by
 * `done()`, and an outer signal is followed by one listener (no
 * AbortSignal.any).
 */
import { timeoutReason, type Clock, type TimerHandle } from './clock.ts';

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
