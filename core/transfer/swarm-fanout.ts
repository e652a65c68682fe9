/**
 * How many holders a swarm download uses at once (docs/SWARM.md, "Adaptive
 * number of sources"): only as many as the requester can absorb.
 *
 * On capped or distant links every holder adds its uplink to the download;
 * on unshaped loopback the requester's own CPU (hashing every byte twice,
 * writing it) is the limit, and more holders only add processes competing for
 * the same cores. So the download parks sources while its event loop is
 * saturated, and keeps a park only when it costs no throughput:
 *
 * - every window (`FANOUT_WINDOW_MS` on the download's clock) the governor gets
 *   the requester's load over the window (0–1: event-loop utilisation capped by
 *   the process's CPU share, swarm.ts requesterLoad; none under a simulated
 *   clock) and each source's received bytes;
 * - loop saturated (≥ `high` in the last window and on average over the last
 *   `triggerMs`, none in the first `triggerMs`) and more than one source
 *   delivering: a trial.
 *   Park the slowest delivering source(s) (a parked source finishes its
 *   outstanding pieces and is asked for no new ones) and remember the rates
 *   over the last `triggerMs` before. Once the parked sources have drained, the
 *   next `spanMs` are the verdict: the others must have picked up at least
 *   `keepShare` of the parked sources' rate (capped links cannot, so a park
 *   there is undone); otherwise they are unparked, and trials wait `cooldown`
 *   windows, doubling with each failed one. A trial parks one source; each
 *   kept trial doubles the next one's size (1, 2, 4, … : a fast ramp-down
 *   where it pays, one source at stake where it does not);
 * - loop with spare capacity (< `low`) and sources parked: unpark the last one
 *   parked;
 * - a source dropped (fault) ends any trial and unparks its source; when no
 *   active source is left, a parked one is unparked at once (`onDrop`);
 * - the end-game (every piece asked for): every parked source comes back, so
 *   idle links can copy the last pieces in flight, and trials stop (`release`).
 *
 * Pure and synchronous: the caller measures, the governor decides (tested with
 * an injected signal in test/unit/swarm-fanout.test.ts).
 */

/** What the governor sees of one source. */
export interface FanoutView {
  /** Bytes received from it so far (cumulative). */
  readonly bytes: number;
  /** Pieces asked of it and not landed yet. */
  readonly queued: number;
  readonly gone: boolean;
  readonly parked: boolean;
}

/** A decision: park or unpark the sources at these indexes, or nothing. */
export type FanoutAction = { park: number[] } | { unpark: number[] } | null;

export interface FanoutOptions {
  /** Loop utilisation at or above which it is saturated. Default 0.9. */
  high?: number;
  /** Loop utilisation below which it has spare capacity. Default 0.6. */
  low?: number;
  /** Share of the parked sources' rate the others must pick up for the park to be kept. Default 0.9. */
  keepShare?: number;
  /**
   * Time a trial's verdict measures the rates over, once the parked sources drained, ms.
   * Default 50: at the rates where trials happen (a requester-bound download, hundreds of MB/s)
   * that is tens of 1 MiB pieces; a download of a few hundred MB lasts well under a second.
   */
  spanMs?: number;
  /**
   * History a trial needs: the load on average over it must be saturated, and the rates before the
   * park are measured over it, ms. Default 150: capped holders make the requester's load bursty
   * (mean 0.65 with 50 ms stretches at 1 for 8 holders at 20 MB/s on the test VM, where 50 ms
   * started about one trial per download); a requester-bound download stays at 1.
   */
  triggerMs?: number;
  /** Windows without a trial after a failed one (doubled per consecutive failure, at most ×16). Default 4. */
  cooldown?: number;
}

/** Governor window on the download's clock, ms (see FanoutGovernor). */
export const FANOUT_WINDOW_MS = 25;

interface Trial {
  parked: number[];
  /** Bytes per ms of every active source, the parked ones included, over triggerMs before the trial. */
  before: number;
  /** The parked sources' bytes per ms over that span. */
  own: number;
  /** When every parked source had drained (-1: not yet), and the cumulative bytes then. */
  drainedAt: number;
  bytesAtDrain: number[];
}

export class FanoutGovernor {
  private readonly high: number;
  private readonly low: number;
  private readonly keepShare: number;
  private readonly spanMs: number;
  private readonly triggerMs: number;
  private readonly cooldownBase: number;
  /** Per tick: its time (ms, summed over ticks), each source's cumulative bytes, the loop's busy ms so far; the last ~triggerMs and one more. */
  private hist: { at: number; bytes: number[]; busy: number }[] = [];
  private busy = 0;
  private at = 0;
  private ticks = 0;
  private trial: Trial | undefined;
  /** Sources the next trial parks (doubled by each kept trial, 1 after a failed one). */
  private size = 1;
  private cool = 0;
  private failures = 0;
  /** Parked by the governor, in order (the last one is unparked first on spare capacity). */
  private parkedOrder: number[] = [];
  /** Counters for reports: sources parked, unparked, trials undone. */
  parks = 0;
  unparks = 0;
  failedTrials = 0;

  constructor(o: FanoutOptions = {}) {
    this.high = o.high ?? 0.9;
    this.low = o.low ?? 0.6;
    this.keepShare = o.keepShare ?? 0.9;
    this.spanMs = Math.max(1, o.spanMs ?? 50);
    this.triggerMs = Math.max(1, o.triggerMs ?? 150);
    this.cooldownBase = o.cooldown ?? 4;
  }

  /** Windows seen so far (tick() calls). */
  get windows(): number {
    return this.ticks;
  }

  /** The loop's mean utilisation over the windows so far (0–1). */
  get utilisation(): number {
    return this.at > 0 ? this.busy / this.at : 0;
  }

  /** A trial is running (sources parked, its verdict pending). */
  get trying(): boolean {
    return this.trial !== undefined;
  }

  /**
   * One window of `ms` ended. `util`: the loop's utilisation over it (undefined: no signal,
   * e.g. a simulated clock: nothing is parked, parked sources come back). The first tick only
   * sets the baseline.
   */
  tick(util: number | undefined, ms: number, src: readonly FanoutView[]): FanoutAction {
    this.at += Math.max(ms, 0);
    this.busy += Math.max(ms, 0) * Math.min(1, Math.max(0, util ?? 0));
    const now = { at: this.at, bytes: src.map((s) => s.bytes), busy: this.busy };
    this.hist.push(now);
    // Keep the newest entry at least triggerMs old, and everything after it.
    while (this.hist.length > 2 && this.hist[1]!.at <= this.at - this.triggerMs) this.hist.shift();
    this.parkedOrder = this.parkedOrder.filter((i) => src[i]!.parked && !src[i]!.gone);
    if (this.ticks++ === 0) return null;
    const t = this.trial;
    if (t) {
      const live = t.parked.filter((i) => !src[i]!.gone && src[i]!.parked);
      if (live.length < t.parked.length) {
        // One of them dropped or was unparked meanwhile: no verdict; the rest come back.
        this.trial = undefined;
        return live.length ? this.unpark(live) : null;
      }
      if (t.drainedAt < 0) {
        // The window in which they drained mixes their last bytes in: judge from the next tick on.
        if (t.parked.every((i) => src[i]!.queued === 0)) {
          t.drainedAt = this.at;
          t.bytesAtDrain = now.bytes;
        }
        return null;
      }
      if (this.at - t.drainedAt < this.spanMs) return null;
      this.trial = undefined;
      const dt = this.at - t.drainedAt;
      let after = 0;
      for (let i = 0; i < src.length; i++) if (!src[i]!.gone && !src[i]!.parked) after += (src[i]!.bytes - (t.bytesAtDrain[i] ?? 0)) / dt;
      // Kept when the others picked up at least keepShare of the parked sources' rate.
      if (after - (t.before - t.own) >= this.keepShare * t.own) {
        this.failures = 0;
        this.size *= 2;
      } else {
        this.failures++;
        this.failedTrials++;
        this.size = 1;
        this.cool = this.cooldownBase * 2 ** Math.min(4, this.failures - 1);
        return this.unpark(t.parked);
      }
    }
    if (util === undefined) {
      const last = this.parkedOrder[this.parkedOrder.length - 1];
      return last === undefined ? null : this.unpark([last]);
    }
    if (this.cool > 0) this.cool--;
    if (util < this.low) {
      const last = this.parkedOrder[this.parkedOrder.length - 1];
      if (last === undefined) return null;
      this.size = 1;
      return this.unpark([last]);
    }
    // A trial needs triggerMs of history (none at the start: connections, manifests and first
    // bursts are no measure) saturated on average over it, not a busy stretch.
    const from = this.hist[0]!;
    const dt = this.at - from.at;
    if (util < this.high || this.cool > 0 || dt < this.triggerMs || (this.busy - from.busy) / dt < this.high) return null;
    const rate = (i: number) => (src[i]!.bytes - (from.bytes[i] ?? 0)) / dt;
    // Candidates: active sources that have delivered bytes (one still connecting is no measure).
    const cand: number[] = [];
    let before = 0;
    for (let i = 0; i < src.length; i++) {
      const s = src[i]!;
      if (s.gone || s.parked) continue;
      before += rate(i);
      if (s.bytes > 0) cand.push(i);
    }
    if (cand.length < 2) return null;
    // Slowest first; on a tie the later source (further in the search's order).
    cand.sort((a, b) => rate(a) - rate(b) || b - a);
    const parked = cand.slice(0, Math.min(this.size, cand.length - 1));
    const own = parked.reduce((a, i) => a + rate(i), 0);
    this.trial = { parked, before, own, drainedAt: -1, bytesAtDrain: [] };
    this.parkedOrder.push(...parked);
    this.parks += parked.length;
    return { park: parked };
  }

  /**
   * A source was dropped (fault). A running trial ends with its sources unparked (its verdict
   * would measure the fault, not the park); with no active source left, a parked one comes back.
   */
  onDrop(src: readonly FanoutView[]): FanoutAction {
    this.parkedOrder = this.parkedOrder.filter((i) => src[i]!.parked && !src[i]!.gone);
    const t = this.trial;
    this.trial = undefined;
    this.size = 1;
    if (t) {
      const back = t.parked.filter((i) => !src[i]!.gone && src[i]!.parked);
      if (back.length) return this.unpark(back);
    }
    if (src.some((s) => !s.gone && !s.parked)) return null;
    const any = this.parkedOrder[this.parkedOrder.length - 1] ?? src.findIndex((s) => !s.gone && s.parked);
    return any >= 0 ? this.unpark([any]) : null;
  }

  /**
   * The end-game: every piece is asked for, so every parked source comes back (idle links copy
   * pieces still in flight elsewhere, docs/SWARM.md) and no trial starts again.
   */
  release(src: readonly FanoutView[]): FanoutAction {
    this.trial = undefined;
    const back = src.flatMap((s, i) => (!s.gone && s.parked ? [i] : []));
    return back.length ? this.unpark(back) : null;
  }

  private unpark(list: number[]): FanoutAction {
    this.parkedOrder = this.parkedOrder.filter((x) => !list.includes(x));
    this.unparks += list.length;
    return { unpark: list };
  }
}
