/**
 * Download progress bar (cli-progress) with bytes, rate and ETA, drawn only
 * on a terminal; on a pipe it draws nothing (the final line says it all).
 */
import cliProgress from 'cli-progress';
import { formatBytesShort, formatEta, formatRate } from './format.ts';
import type { Term } from './term.ts';

export class DownloadBar {
  private bar: cliProgress.SingleBar | undefined;
  private t0 = 0;

  constructor(private readonly term: Term) {}

  /** The download starts now (search included): rate and ETA are averaged from here. */
  begin(): void {
    this.t0 = performance.now();
  }

  update(name: string, bytes: number, size: number): void {
    if (!this.term.tty) return;
    if (!this.bar) {
      if (this.t0 === 0) this.t0 = performance.now();
      this.bar = new cliProgress.SingleBar({
        format: ` ${name} [{bar}] {percentage}% | {done} / {total_h} | {rate} | ETA {eta_h}`,
        stream: process.stdout,
        barsize: 30,
        hideCursor: true,
        clearOnComplete: true,
        fps: 10,
      }, cliProgress.Presets.shades_classic);
      this.bar.start(Math.max(size, 1), 0, this.payload(0, size));
      this.term.barActive = true;
    }
    this.bar.update(Math.min(bytes, Math.max(size, 1)), this.payload(bytes, size));
  }

  private payload(bytes: number, size: number) {
    const s = (performance.now() - this.t0) / 1000;
    const rate = s > 0 ? bytes / 1e6 / s : 0;
    return { done: formatBytesShort(bytes), total_h: formatBytesShort(size), rate: formatRate(rate * 1e6), eta_h: formatEta(rate > 0 ? (size - bytes) / 1e6 / rate : NaN) };
  }

  stop(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = undefined;
      this.term.barActive = false;
    }
    this.t0 = 0;
  }
}
