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

export function formatMBps(mbps: number): string {
  const v = mbps >= 10 ? mbps.toFixed(1) : mbps >= 0.01 || mbps === 0 ? mbps.toFixed(2) : mbps.toPrecision(2);
  return `${v} MB/s`;
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
