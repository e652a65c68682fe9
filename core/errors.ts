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
export class TreeshareError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
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

export class RemoteRefusedError extends TreeshareError {}

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
  | 'no-space';

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

/** The metaserver could not be reached (code: unreachable, timeout or connection-closed); `detail` is the transport's reason. */
export class MetaserverUnreachableError extends TreeshareError {
  constructor(code: string, readonly detail: string, options?: { cause?: unknown }) {
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

export function errorCode(err: unknown): string {
  if (err instanceof TreeshareError) return err.code;
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  if (err instanceof Error && err.name === 'AbortError') return 'aborted';
  if (err instanceof Error && err.name === 'TimeoutError') return 'timeout';
  return 'internal';
}
