/**
 * The few error classes treeshare throws. Each carries a stable `code` a script
 * can match on; the message is one line a person can act on.
 *
 * - RemoteProtocolError: the other side sent something invalid (bad frame,
 *   unknown message, version mismatch). The connection that misbehaved is closed.
 * - RemoteRefusedError: the other side answered with an `error` message
 *   (duplicate id, not found in registry, ...). `code` is the remote's code.
 * - TransferError: a download failed (hash mismatch, truncation, holder gone,
 *   file exists, timeout). No partial file remains.
 * - NotFoundError: a search finished and no peer has the file.
 * - LocalError: our own API was misused or our environment is unfit (bad
 *   option, port in use, share folder missing, name refused by the jail).
 */
/**
 * Every `code` treeshare puts on an error: thrown locally, sent in a wire
 * `error` message, or printed in a control-mode `error` event. A script can
 * match on these; nothing else ever appears as a code.
 */
export const ERROR_CODES = [
  // the other side broke the wire protocol (RemoteProtocolError)
  'bad-frame', 'frame-too-large', 'bad-json', 'unknown-type', 'bad-message', 'version-mismatch',
  'unexpected-message', 'truncated-frame', 'buffer-overflow', 'id-mismatch',
  // network keys
  'auth-required', 'auth-failed', 'auth-unsupported', 'bad-key', 'key-unsupported',
  // reaching other nodes
  'unreachable', 'timeout', 'connection-closed', 'heartbeat-timeout', 'too-many-connections', 'aborted',
  // joining and the tree
  'not-started', 'not-joined', 'already-joined', 'leaving', 'duplicate-id', 'self-join', 'cycle', 'full',
  'redirect-loop', 'too-many-redirects', 'second-root', 'lost-peer', 'address-in-use', 'unverified', 'bad-token',
  // searching and transfers (TransferError, NotFoundError)
  'not-found', 'hash-mismatch', 'truncated', 'too-long', 'holder-gone', 'exists', 'declined', 'no-offer',
  'io', 'too-large', 'no-space',
  // swarm downloads (docs/SWARM.md)
  'all-holders-gone', 'bad-piece', 'busy', 'changed',
  // the share jail
  'bad-name', 'outside-share', 'not-regular', 'hard-link', 'permission-denied', 'no-share',
  // local setup (LocalError) and the command line
  'bad-option', 'bad-host', 'port-in-use', 'listen-failed', 'usage', 'bad-command',
  // a remote answered with a code that is not one of these (RemoteRefusedError.remoteCode keeps it)
  'refused',
  // a bug or an error that is not one of ours
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);
export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && CODE_SET.has(v);
}

export class TreeshareError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export type ProtocolErrorCode =
  | 'bad-frame'
  | 'frame-too-large'
  | 'bad-json'
  | 'unknown-type'
  | 'bad-message'
  | 'version-mismatch'
  | 'unexpected-message'
  | 'truncated-frame'
  | 'buffer-overflow'
  | 'timeout';

export class RemoteProtocolError extends TreeshareError {
  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * The other side answered with an `error` message. Its code is untrusted
 * input: `code` is it when it is one of ERROR_CODES, else `refused`;
 * `remoteCode` is what was sent either way.
 */
export class RemoteRefusedError extends TreeshareError {
  readonly remoteCode: string;
  constructor(remoteCode: string, message: string, options?: { cause?: unknown }) {
    super(isErrorCode(remoteCode) ? remoteCode : 'refused', message, options);
    this.remoteCode = remoteCode;
  }
}

export type TransferErrorCode =
  | 'hash-mismatch'
  | 'truncated'
  | 'too-long'
  | 'holder-gone'
  | 'timeout'
  | 'exists'
  | 'declined'
  | 'no-offer'
  | 'io'
  | 'aborted'
  | 'too-large'
  | 'no-space'
  | 'all-holders-gone'
  | 'bad-piece'
  | 'busy'
  | 'changed';

export class TransferError extends TreeshareError {
  constructor(code: TransferErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

const peers = (n: number, what = 'peer') => `${n} ${what}${n === 1 ? '' : 's'}`;

/** Ids joined for a sentence: "S4", "S4 and S9", "S4, S5 and S9"; past `max`, "… and N more". */
function idList(ids: readonly string[], max = 8): string {
  const shown = ids.slice(0, max);
  const rest = ids.length - shown.length;
  if (rest > 0) return `${shown.join(', ')} and ${rest} more`;
  return shown.length <= 1 ? (shown[0] ?? '') : `${shown.slice(0, -1).join(', ')} and ${shown[shown.length - 1]}`;
}

/**
 * What a search that found nothing knows. Complete (every subtree answered): `no peer has NAME
 * (searched 5 peers)`. Some subtrees unreachable (`missing`: the neighbours that did not answer,
 * each standing for its subtree): `not found among 13 reachable peers; unreachable: the subtrees
 * of S4 and S9 (7 peers)`, with the number of peers cut off where the caller knows it, so an
 * incomplete answer never reads as a definite not-found. `detail` goes after the count (" in 4.0 ms").
 */
export function notFoundText(name: string, reached: number, missing: readonly string[], o: { unreachablePeers?: number | null; detail?: string } = {}): string {
  const detail = o.detail ?? '';
  if (missing.length === 0) return `no peer has ${name} (searched ${peers(reached)}${detail})`;
  const ids = [...new Set(missing)];
  const size = o.unreachablePeers !== undefined && o.unreachablePeers !== null && o.unreachablePeers > 0 ? ` (${peers(o.unreachablePeers)})` : '';
  return `${name} not found among ${peers(reached, 'reachable peer')}${detail}; unreachable: the subtree${ids.length === 1 ? '' : 's'} of ${idList(ids)}${size}`;
}

/** notFoundText as a line of its own: `not found: no peer has X (…)` when complete, else the qualified text. */
export function notFoundLine(name: string, reached: number, missing: readonly string[], o: { unreachablePeers?: number | null; detail?: string } = {}): string {
  const text = notFoundText(name, reached, missing, o);
  return missing.length ? text : `not found: ${text}`;
}

/** A search result in one line: where it was found, or notFoundLine (the control protocol's `answer`). */
export function searchAnswer(r: { name: string; hits: readonly { id: string }[]; reached: number; missing: readonly string[] }): string {
  if (r.hits.length === 0) return notFoundLine(r.name, r.reached, r.missing);
  const found = `found at ${[...new Set(r.hits.map((h) => h.id))].join(', ')} (searched ${peers(r.reached)})`;
  return r.missing.length ? `${found}; no answer from ${idList([...new Set(r.missing)])}: there may be more holders` : found;
}

export class NotFoundError extends TreeshareError {
  readonly searched: number;
  /** Neighbours whose subtrees did not answer (empty: a complete not-found). */
  readonly missing: string[];
  constructor(name: string, searched: number, missing: readonly string[] = []) {
    super('not-found', notFoundText(JSON.stringify(name), searched, missing));
    this.searched = searched;
    this.missing = [...missing];
  }
}

export class LocalError extends TreeshareError {}

/** A connection could not be opened: `where` is the address tried, `reason` what went wrong (code `unreachable`). */
export class UnreachableError extends TreeshareError {
  constructor(readonly where: string, readonly reason: string, options?: { cause?: unknown }) {
    super('unreachable', `cannot connect to ${where}: ${reason}`, options);
  }
}

/** The metaserver could not be reached (code: unreachable, timeout or connection-closed); `detail` is the transport's reason. */
export class MetaserverUnreachableError extends TreeshareError {
  constructor(code: ErrorCode, readonly detail: string, options?: { cause?: unknown }) {
    super(code, `metaserver unreachable: ${detail}`, options);
  }
}

/** One line for a person: never a stack trace. */
export function describeError(err: unknown): string {
  if (err instanceof TreeshareError) return `${err.message} [${err.code}]`;
  if (err && typeof err === 'object' && 'code' in err && 'message' in err) {
    return `${String((err as { message: unknown }).message)} [${String((err as { code: unknown }).code)}]`;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The ErrorCode of any error: its own when it has one of ours, `io` for a system (errno) error, else `internal`. */
export function errorCode(err: unknown): ErrorCode {
  if (err instanceof TreeshareError) return err.code;
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    const code = (err as { code: string }).code;
    if (isErrorCode(code)) return code;
    if (/^E[A-Z0-9]+$/.test(code) && 'syscall' in err) return 'io';
  }
  if (err instanceof Error && err.name === 'AbortError') return 'aborted';
  if (err instanceof Error && err.name === 'TimeoutError') return 'timeout';
  return 'internal';
}
