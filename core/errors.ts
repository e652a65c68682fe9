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

export class NotFoundError extends TreeshareError {
  readonly searched: number;
  constructor(name: string, searched: number) {
    super('not-found', `no peer has ${JSON.stringify(name)} (searched ${searched} peer${searched === 1 ? '' : 's'})`);
    this.searched = searched;
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
