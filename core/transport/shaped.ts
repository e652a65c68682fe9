/**
 * User-space link emulation (the kernel here has no netem): wraps a ByteLink
 * so every outgoing chunk is delayed by `latencyMs` and serialised at
 * `bandwidthBytesPerSec`. Applied on both ends of a connection, each
 * direction gets the latency once. Order is preserved; backpressure is kept
 * (write returns false while more than 1 MiB waits, 'drain' follows).
 */
import { EventEmitter } from 'node:events';
import { realClock, type Clock } from '../clock.ts';
import type { ByteLink } from './connection.ts';

export interface LinkShape {
  /** One-way added latency per link, ms. Default 0. */
  latencyMs?: number;
  /** Per-direction rate cap, bytes/s. Default unlimited. */
  bandwidthBytesPerSec?: number;
}

const HIGH_WATER = 1024 * 1024;

export function isShaped(s: LinkShape | undefined): s is LinkShape {
  return !!s && ((s.latencyMs ?? 0) > 0 || (s.bandwidthBytesPerSec ?? 0) > 0);
}

export class ShapedLink extends EventEmitter implements ByteLink {
  private queued = 0;
  private txDone = 0;
  private needDrain = false;
  private pendingTimers = 0;
  private endAfter = false;

  constructor(
    private readonly inner: ByteLink,
    private readonly shape: LinkShape,
    private readonly clock: Clock = realClock,
  ) {
    super();
    inner.on('data', (b) => this.emit('data', b));
    inner.on('end', () => this.emit('end'));
    inner.on('close', () => this.emit('close'));
    inner.on('error', (e) => this.emit('error', e));
    inner.on('drain', () => this.maybeDrain());
  }

  get writableLength(): number {
    return this.queued + this.inner.writableLength;
  }

  get destroyed(): boolean {
    return this.inner.destroyed;
  }

  write(data: Buffer): boolean {
    if (this.inner.destroyed) return false;
    const now = this.clock.now();
    const bw = this.shape.bandwidthBytesPerSec ?? 0;
    const start = Math.max(now, this.txDone);
    this.txDone = start + (bw > 0 ? (data.length / bw) * 1000 : 0);
    const at = this.txDone + (this.shape.latencyMs ?? 0);
    this.queued += data.length;
    this.pendingTimers++;
    this.clock.setTimeout(() => {
      this.queued -= data.length;
      this.pendingTimers--;
      if (!this.inner.destroyed) this.inner.write(data);
      this.maybeDrain();
      if (this.endAfter && this.pendingTimers === 0) this.inner.end();
    }, Math.max(0, at - now));
    if (this.writableLength >= HIGH_WATER) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private maybeDrain(): void {
    if (this.needDrain && this.writableLength < HIGH_WATER) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  end(): void {
    if (this.pendingTimers === 0) this.inner.end();
    else this.endAfter = true;
  }

  destroy(err?: Error): void {
    this.inner.destroy(err);
  }

  resetAndDestroy(): void {
    if (this.inner.resetAndDestroy) this.inner.resetAndDestroy();
    else this.inner.destroy();
  }

  pause(): void {
    this.inner.pause();
  }

  resume(): void {
    this.inner.resume();
  }
}
