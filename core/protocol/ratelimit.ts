/**
 * Token bucket (pure): `ratePerSec` tokens refill continuously up to `burst`.
 * Used per neighbour for incoming floods, so one neighbour flooding queries is
 * throttled while the others are served as usual.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(readonly ratePerSec: number, readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token if there is one. `now` in ms. */
  take(now: number): boolean {
    const dt = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (dt * this.ratePerSec) / 1000);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}
