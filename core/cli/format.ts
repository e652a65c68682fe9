/** Formatting for people: sizes (1 kB = 10^3 bytes, like MB/s), durations, rates, and colours only on a terminal. */
import { addrKey } from '../protocol/messages.ts';

/** `n` (≥ 1000) bytes scaled to the largest unit below 1000 of it (up to TB). */
function scaleBytes(n: number): { v: number; unit: string } {
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return { v, unit: units[i]! };
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} byte${n === 1 ? '' : 's'}`;
  const { v, unit } = scaleBytes(n);
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${unit} (${n.toLocaleString('en-US')} bytes)`;
}

/** Short form for a progress bar: "12.3 MB". */
export function formatBytesShort(n: number): string {
  if (n < 1000) return `${n} B`;
  const { v, unit } = scaleBytes(n);
  return `${v.toFixed(1)} ${unit}`;
}

export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** Seconds as "1:05" or "0:03" (progress ETA); "--:--" when unknown. */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.ceil(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** A rate, in the one style used everywhere: "12.3 MB/s", "4.56 MB/s", "850 kB/s", "95 B/s" (1 kB = 10^3 bytes). */
export function formatRate(bytesPerSec: number): string {
  if (!Number.isFinite(bytesPerSec) || bytesPerSec <= 0) return '0 B/s';
  if (bytesPerSec >= 1e6) {
    const v = bytesPerSec / 1e6;
    return `${v.toFixed(v >= 10 ? 1 : 2)} MB/s`;
  }
  if (bytesPerSec >= 1e3) return `${(bytesPerSec / 1e3).toFixed(0)} kB/s`;
  return `${Math.round(bytesPerSec)} B/s`;
}

/** Transfers under this size show bytes and time only: their "rate" is mostly connection setup. */
export const RATE_MIN_BYTES = 1e6;
/** Nor is a rate shown for a transfer shorter than this (timer resolution; 0 ms on a zero-latency simulated run). */
export const RATE_MIN_MS = 1;

/**
 * The one rule for every rate shown to people (menu, scenario tables): bytes per second of a transfer, or
 * null when it is too small or too short for a rate to mean anything (then show bytes and time only).
 */
export function transferRate(bytes: number, ms: number): number | null {
  return bytes >= RATE_MIN_BYTES && ms >= RATE_MIN_MS ? bytes / (ms / 1000) : null;
}

/** "87 bytes in 3.21 ms", or for 1 MB and more "12.0 MB (12,000,000 bytes) in 1.20 s (10.0 MB/s)". */
export function formatTransfer(bytes: number, ms: number): string {
  const base = `${formatBytes(bytes)} in ${formatMs(ms)}`;
  const rate = transferRate(bytes, ms);
  return rate === null ? base : `${base} (${formatRate(rate)})`;
}

/** What a banner says about the network key: nothing without one. */
export function keyNote(keyed: boolean): string {
  return keyed ? '; network key on: every connection in TLS with the pre-shared key' : '';
}

/** The command that starts a metaserver listening at `meta`'s port. */
export function metaserverCommand(meta: { port: number }): string {
  return meta.port === 9000 ? 'npm run metaserver' : `npm run metaserver -- --port ${meta.port}`;
}

export function who(p: { id: string; host: string; port: number }): string {
  return `${p.id} (${addrKey(p)})`;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  red(s: string): string;
  cyan(s: string): string;
}

const sgr = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
const plain = (s: string) => s;

/** ANSI colours when `on` (a terminal, and NO_COLOR unset); identity otherwise. */
export function style(on: boolean): Style {
  if (!on) return { bold: plain, dim: plain, green: plain, yellow: plain, red: plain, cyan: plain };
  return { bold: sgr(1, 22), dim: sgr(2, 22), green: sgr(32, 39), yellow: sgr(33, 39), red: sgr(31, 39), cyan: sgr(36, 39) };
}
