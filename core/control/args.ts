/**
 * Command-line parsing shared by the peer and metaserver commands: node's
 * util.parseArgs (strict: unknown flags and stray words are refused) plus
 * value checks that turn every mistake into one UsageError line a person can
 * act on ("--port must be an integer from 0 to 65535, not "70000"").
 */
import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LocalError } from '../errors.ts';
import { MIN_KEY_BYTES, shortKeyMessage } from '../transport/auth.ts';
import { Host, ID_RE } from '../protocol/messages.ts';
import type { HostPort, Transport } from '../transport/transport.ts';
import { tcpTransport } from '../transport/tcp.ts';

/** A mistake on the command line: printed as one line, exit status 2. */
export class UsageError extends LocalError {
  constructor(message: string) {
    super('usage', message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with node's multi-line messages folded into one UsageError line. */
export function parseFlags<O extends Options>(argv: string[], options: O): Record<keyof O, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    return values as unknown as Record<keyof O, string | boolean | undefined>;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const first = String(e.message ?? err).split('\n')[0]!.trim();
    switch (e.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
        const m = /option '([^']+)'/i.exec(first);
        throw new UsageError(`unknown option ${m ? m[1] : first}`);
      }
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
        const m = /argument '([^']*)'/i.exec(first);
        throw new UsageError(`unexpected argument ${m ? JSON.stringify(m[1]) : first}: every value follows its flag (e.g. --port 5001)`);
      }
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
        const m = /Option '([^']+)'/.exec(first);
        if (/ambiguous/.test(first) && m) throw new UsageError(`option ${m[1]} needs a value (did you forget it?)`);
        if (/argument missing/.test(first) && m) throw new UsageError(`option ${m[1].replace(/ <value>$/, '')} needs a value`);
        throw new UsageError(first.replace(/^Option /, 'option '));
      }
      default:
        throw new UsageError(first);
    }
  }
}

/** The string value of a flag (undefined when absent); booleans passed as strings are parseArgs' job. */
export function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function parsePort(flag: string, v: string): number {
  if (!/^\d{1,5}$/.test(v.trim()) || Number(v) > 65535) {
    throw new UsageError(`${flag} must be an integer from 0 to 65535 (0 picks a free port), not ${JSON.stringify(v)}`);
  }
  return Number(v);
}

export function parseIntIn(flag: string, v: string, min: number, max: number, what = 'an integer'): number {
  if (!/^-?\d+$/.test(v.trim()) || Number(v) < min || Number(v) > max) {
    throw new UsageError(`${flag} must be ${what} from ${min} to ${max}, not ${JSON.stringify(v)}`);
  }
  return Number(v);
}

/** A non-negative decimal number (e.g. milliseconds, bytes per second). */
export function parseAmount(flag: string, v: string, max: number, unit: string): number {
  if (!/^\d+(\.\d+)?$/.test(v.trim()) || Number(v) > max) {
    throw new UsageError(`${flag} must be a number of ${unit} from 0 to ${max}, not ${JSON.stringify(v)}`);
  }
  return Number(v);
}

/**
 * The one parser of sizes and rates (peer flags and scenario options alike):
 * a number with an optional unit, k M G T = 10^3.. (kB MB GB too), KiB MiB GiB
 * TiB = 2^10..; a trailing "/s" (or "B/s", "bps") is allowed for rates.
 * "10M" = 10,000,000, "4MiB" = 4,194,304, "1.5k" = 1,500. Null when unreadable.
 */
export function sizeValue(v: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(k|m|g|t|kb|mb|gb|tb|kib|mib|gib|tib|b)?\s*(?:\/s|b\/s|bps)?\s*$/i.exec(v);
  if (!m) return null;
  const mult: Record<string, number> = { b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
  return Math.round(Number(m[1]) * (m[2] ? mult[m[2].toLowerCase()]! : 1));
}

/** A size or rate flag (see sizeValue), from 0 to `max`; `unit` names it in the error ("bytes per second"). */
export function parseSize(flag: string, v: string, max: number, unit = 'bytes'): number {
  const n = sizeValue(v);
  if (n === null || n > max) {
    throw new UsageError(`${flag} must be a number of ${unit} from 0 to ${max.toLocaleString('en-US')}, like 1000000, 10M or 4MiB, not ${JSON.stringify(v)}`);
  }
  return n;
}

export function parseHost(flag: string, v: string): string {
  const h = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v;
  if (!Host.safeParse(h).success) throw new UsageError(`${flag} must be a host name or IP address, not ${JSON.stringify(v)}`);
  return h;
}

/** host:port, or [v6]:port. */
export function parseHostPort(flag: string, v: string): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:]+):(\d+)$/.exec(v);
  if (!m) throw new UsageError(`${flag} must be host:port (e.g. 127.0.0.1:9000), not ${JSON.stringify(v)}`);
  // Not parsePort: "0 picks a free port" is for a port to listen on, not one to connect to.
  const port = parseIntIn(`the port in ${flag}`, m[2]!, 1, 65535);
  return { host: parseHost(flag, m[1]!), port };
}

export function parseId(flag: string, v: string): string {
  if (!ID_RE.test(v)) throw new UsageError(`${flag} must be 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit (e.g. S1), not ${JSON.stringify(v)}`);
  return v;
}

/** The trimmed contents of the key file given with `flag`; unreadable is a usage error. */
export function readKeyFile(flag: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UsageError(`cannot read ${flag} ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Environment variable holding the network key (when --key-file is not given). */
export const KEY_ENV = 'TREESHARE_KEY';

/**
 * The network key from --key-file (file contents, trimmed) or $TREESHARE_KEY;
 * undefined when neither is set. Kept off the command line, where `ps` shows it.
 * At least 32 bytes (`npm run keygen` prints a random one); shorter is a usage error.
 */
export function networkKey(file: string | undefined, env: NodeJS.ProcessEnv = process.env, direct?: string): string | undefined {
  let key: string | undefined;
  let from: string;
  if (direct !== undefined && file !== undefined) throw new UsageError('give the network key once: --network-key or --key-file, not both');
  if (direct !== undefined) {
    from = '--network-key';
    key = direct.trim();
  } else if (file !== undefined) {
    from = `--key-file ${file}`;
    key = readKeyFile('--key-file', file);
  } else {
    from = `$${KEY_ENV}`;
    key = env[KEY_ENV] === undefined ? undefined : env[KEY_ENV]!.trim();
    if (key === undefined) return undefined;
  }
  const len = Buffer.byteLength(key, 'utf8');
  if (len < MIN_KEY_BYTES) throw new UsageError(shortKeyMessage(len, `the network key in ${from}`));
  return key;
}

/** Shared limit flags of both commands (issue: limits each with a default, a flag and a clear error). */
export const LIMIT_FLAGS = {
  'key-file': { type: 'string' },
  'network-key': { type: 'string' },
  'max-connections': { type: 'string' },
  'handshake-timeout': { type: 'string' },
} as const;

/** The shared limit flags' help, with the command's own --max-connections default. */
export const limitHelp = (maxConnections: number): string => LIMIT_HELP.replace('MAX_CONNECTIONS', String(maxConnections));

export const LIMIT_HELP = `      --network-key KEY     network key given directly (visible to ps; prefer --key-file)
      --max-connections N   most simultaneous inbound connections; later ones get a
                            too-many-connections error (default MAX_CONNECTIONS)
      --handshake-timeout MS  cut off a connection that sends no complete request within
                            MS ms (slow or silent clients; default 10000, 0 disables)`;

/** Applies the shared limit flags; returns the connection options to merge. */
export function limitOptions(v: Record<string, string | boolean | undefined>): { maxConnections?: number; connection?: { handshakeTimeoutMs: number }; networkKey?: string } {
  const out: { maxConnections?: number; connection?: { handshakeTimeoutMs: number }; networkKey?: string } = {};
  const key = networkKey(str(v['key-file']), process.env, str(v['network-key']));
  if (key !== undefined) out.networkKey = key;
  if (v['max-connections'] !== undefined) out.maxConnections = parseIntIn('--max-connections', str(v['max-connections'])!, 1, 1_000_000);
  if (v['handshake-timeout'] !== undefined) out.connection = { handshakeTimeoutMs: parseIntIn('--handshake-timeout', str(v['handshake-timeout'])!, 0, 3_600_000) };
  return out;
}

/** Link emulation flags of both commands: the same meaning on every link, the metaserver's included. */
export const SHAPE_FLAGS = {
  latency: { type: 'string' },
  bandwidth: { type: 'string' },
} as const;

export const SHAPE_HELP = `      --latency MS          add MS ms of one-way latency to every connection, each
                            direction; a new connection first waits one round trip
                            (2 x MS), as a TCP connect does
      --bandwidth RATE      cap every connection at RATE bytes/s per direction
                            (e.g. 500k, 10M = 10^7, 4MiB = 4,194,304)`;

/** The shaped TCP transport asked for by --latency/--bandwidth, or undefined when neither is given. */
export function shapeTransport(v: Record<string, string | boolean | undefined>): Transport | undefined {
  const latencyMs = v.latency !== undefined ? parseAmount('--latency', str(v.latency)!, 60_000, 'milliseconds') : 0;
  const bandwidthBytesPerSec = v.bandwidth !== undefined ? parseSize('--bandwidth', str(v.bandwidth)!, 1e12, 'bytes per second') : 0;
  if (v.bandwidth !== undefined && bandwidthBytesPerSec <= 0) throw new UsageError('--bandwidth must be more than 0 bytes per second (leave it out for no cap)');
  if (latencyMs <= 0 && bandwidthBytesPerSec <= 0) return undefined;
  return tcpTransport({ shape: { ...(latencyMs > 0 ? { latencyMs } : {}), ...(bandwidthBytesPerSec > 0 ? { bandwidthBytesPerSec } : {}) } });
}
