/**
 * Connection: framed messages (and, after a transfer ack, raw bytes) over a
 * ByteLink. The same class serves TCP sockets and in-memory pairs, so the
 * codec, limits and error handling are identical on both.
 *
 * Incoming bytes go through FrameDecoder. The first frame of an accepted
 * connection must be a versioned opener. Any bad input makes the connection
 * answer `error` (code + message), log through the 'protocol-error' event,
 * and close; nothing else is affected. Outgoing bytes that the remote does
 * not read pile up in the link; past `maxBufferedBytes` the link is destroyed
 * (a slow or stuck reader cannot make us hold unbounded memory). A `false`
 * from send() is backpressure only: the frame is queued and will be written.
 *
 * Every frame written and read is counted here, by message type (`frames`),
 * so tests and benchmarks measure the wire rather than what peers think they sent.
 */
import { EventEmitter } from 'node:events';
import { realClock, type Clock, type TimerHandle } from '../clock.ts';
import { describeError, RemoteProtocolError, RemoteRefusedError, TreeshareError } from '../errors.ts';
import { checkVersion, DEFAULT_MAX_FRAME_BYTES, encode, FrameDecoder, type Frame } from '../protocol/codec.ts';
import type { Message, MessageType, Msg } from '../protocol/messages.ts';

/** First byte of a TLS handshake record (auth.ts); frames start with '{'. */
const TLS_HANDSHAKE_BYTE = 0x16;

/** The byte pipe under a Connection: a net.Socket, or one end of a memory pair. */
export interface ByteLink {
  write(data: Buffer): boolean;
  end(): void;
  destroy(err?: Error): void;
  pause(): void;
  resume(): void;
  readonly writableLength: number;
  readonly destroyed: boolean;
  on(ev: 'data', fn: (b: Buffer) => void): unknown;
  on(ev: 'drain' | 'end', fn: () => void): unknown;
  on(ev: 'close', fn: () => void): unknown;
  on(ev: 'error', fn: (e: Error) => void): unknown;
  /**
   * Optional (plain TCP sockets, see tcp-link.ts): switch reads to the reused
   * buffer `target` (or to the buffer a function returns after each read),
   * calling `onBytes(n, b)` synchronously per read (n bytes at the start of b)
   * instead of emitting 'data'. False when not possible (nothing changed).
   */
  readInto?(target: Buffer | (() => Buffer), onBytes: (n: number, b: Buffer) => void): boolean;
  /**
   * Optional (memory links): incoming bytes go to `fn` directly, before any 'data' listeners
   * (saves an EventEmitter dispatch per frame). False when not supported: use 'data'.
   */
  setDataSink?(fn: (b: Buffer) => void): boolean;
  /**
   * Optional (TCP links): an abortive close, as net.Socket's: the remote sees
   * ECONNRESET rather than a clean end. A memory link's destroy() already
   * resets the remote.
   */
  resetAndDestroy?(): void;
}

export interface ConnectionOptions {
  /** Longest frame accepted, bytes. Default 64 KiB. */
  maxFrameBytes?: number;
  /** Outgoing bytes allowed to queue unread before the link is dropped. Default 64 MiB. */
  maxBufferedBytes?: number;
  /**
   * For accepted connections: ms from accept to the first complete request
   * (with a network key: TLS handshake included). Default 10,000; 0 disables.
   */
  handshakeTimeoutMs?: number;
  /** Clock of the handshake timer and of end()'s forced close. Default realClock (the memory transport passes its own). */
  clock?: Clock;
}

export interface ConnectionEvents {
  message: [Message];
  data: [Buffer];
  drain: [];
  /** The remote misbehaved; the connection answered and is closing. */
  'protocol-error': [RemoteProtocolError];
  /** A handler of this connection threw on what the remote sent; the connection is closing (handlerFailed). */
  'handler-error': [TreeshareError];
  close: [Error | undefined];
}

/** Default ConnectionOptions.handshakeTimeoutMs. */
export const DEFAULT_HANDSHAKE_MS = 10_000;
/** Frames by message type, as counted at a Connection. */
export type FrameCounts = Partial<Record<MessageType, number>>;

/** Marks "no error thrown" (a listener may throw undefined). */
const NOTHING: unique symbol = Symbol('nothing');

/** Most frames held for a listener that is not there yet (see Connection.held). */
const MAX_HELD = 1024;

export class Connection extends EventEmitter<ConnectionEvents> {
  readonly remote: string;
  readonly accepted: boolean;
  private decoder: FrameDecoder;
  private rawMode = false;
  private first = true;
  private closedFlag = false;
  private closeErr: Error | undefined;
  private readonly maxBuffered: number;
  private handshakeTimer: TimerHandle | undefined;
  /** end()'s forced close, cancelled once the link closes. */
  private endTimer: TimerHandle | undefined;
  private readonly clock: Clock;
  /**
   * Frames that arrived while nobody listened for 'message' (e.g. a query
   * right behind a JOIN's accept in one chunk, before the new link's handler
   * is installed): kept in order and delivered once a listener is added.
   */
  private held: Message[] = [];
  /** Frames handed to the link (`sent`, queued ones included) and decoded from it (`received`), by type. */
  readonly frames: { sent: FrameCounts; received: FrameCounts } = { sent: {}, received: {} };

  constructor(private readonly link: ByteLink, remote: string, accepted: boolean, opts: ConnectionOptions = {}) {
    super();
    this.remote = remote;
    this.accepted = accepted;
    this.decoder = new FrameDecoder({ maxFrameBytes: opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES });
    this.maxBuffered = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.clock = opts.clock ?? realClock;
    const onData = (b: Buffer) => this.onData(b);
    if (!link.setDataSink?.(onData)) link.on('data', onData);
    link.on('drain', () => this.emit('drain'));
    link.on('end', () => this.onEnd());
    link.on('error', (e) => {
      this.closeErr ??= e;
    });
    link.on('close', () => this.onClose());
    (this as EventEmitter).on('newListener', (ev: string | symbol) => {
      if (ev !== 'message') return;
      this.messageListeners++;
      if (this.held.length) queueMicrotask(() => this.flushHeld());
    });
    (this as EventEmitter).on('removeListener', (ev: string | symbol) => {
      if (ev === 'message') this.messageListeners--;
    });
    const hs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_MS;
    if (accepted && hs > 0) {
      this.handshakeTimer = this.clock.setTimeout(() => {
        if (this.first && !this.closedFlag) this.fail(new RemoteProtocolError('timeout', `no request within ${hs} ms`));
      }, hs);
      this.handshakeTimer.unref();
    }
  }

  private static forceClose(link: ByteLink): void {
    link.destroy();
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Bytes queued for sending but not yet taken by the remote. */
  get writableLength(): number {
    return this.link.writableLength;
  }

  send(msg: Message): boolean {
    if (this.closedFlag || this.link.destroyed) return false;
    return this.sendBytes(msg.t, encode(msg));
  }

  /** A frame encoded once (codec.ts frameOf / heartbeatFrame) for several connections; as send(). */
  sendFrame(f: Frame): boolean {
    if (this.closedFlag || this.link.destroyed) return false;
    return this.sendBytes(f.t, f.bytes);
  }

  /** Frames handed to the link so far, of any type (heartbeats compare it between ticks). */
  sends = 0;

  private sendBytes(t: Message['t'], bytes: Buffer): boolean {
    this.sends++;
    const ok = this.link.write(bytes);
    this.frames.sent[t] = (this.frames.sent[t] ?? 0) + 1;
    this.checkBuffered();
    return ok;
  }

  /** Raw bytes (transfer body). Returns false when the caller should wait for 'drain'. */
  write(data: Buffer): boolean {
    if (this.closedFlag || this.link.destroyed) return false;
    const ok = this.link.write(data);
    this.checkBuffered();
    return ok;
  }

  /** Stop decoding frames: later bytes arrive as 'data'. Returns bytes already buffered. */
  raw(): Buffer {
    this.rawMode = true;
    return this.decoder.takeRest();
  }

  /**
   * Raw mode with a reused buffer: later bytes are read into `buf` (up to its
   * length per read, overwritten by the next read) and `onBytes(n, buf)` is
   * called for each read; no 'data' events. `buf` may instead be a function,
   * called after every read for the buffer of the next one (the caller can
   * return the free part of where the bytes belong, so they are never copied);
   * then `onBytes(n, b)` names the buffer the n bytes are at the start of
   * (what the function returned, or once another buffer: copy from it).
   * Returns the bytes already buffered (to be consumed first), or null when
   * the link cannot do it (memory, shaped or encrypted links), in which case
   * nothing changed and raw() applies. Called from a 'message' handler, the
   * bytes that came in the same read after that frame go to `onBytes` once
   * the handler returns (into `buf` when it is one buffer). A throw from
   * `onBytes` closes this connection (handlerFailed), it is never rethrown.
   */
  rawInto(buf: Buffer | (() => Buffer), onBytes: (n: number, b: Buffer) => void): Buffer | null {
    if (this.closedFlag || !this.link.readInto) return null;
    const sink = (n: number, b: Buffer) => {
      if (this.closedFlag) return;
      try {
        onBytes(n, b);
      } catch (err) {
        this.handlerFailed(err);
      }
    };
    const ok = this.link.readInto(buf, sink);
    if (!ok) return null;
    this.rawSink = { buf, sink };
    return this.raw();
  }

  /** Where rawInto() sends bytes: also those that came in the read of the frame that switched (onData). */
  private rawSink: { buf: Buffer | (() => Buffer); sink: (n: number, b: Buffer) => void } | undefined;

  /** Bytes decoded past the frame that switched to raw mode: to the rawInto() sink (as a read), else as 'data'. */
  private deliverRest(rest: Buffer): void {
    const to = this.rawSink;
    if (!to) return void this.emit('data', rest);
    // A buffer function's caller copies from another buffer; a fixed buffer is always the one named.
    if (typeof to.buf === 'function') return to.sink(rest.length, rest);
    for (let off = 0; off < rest.length && !this.closedFlag; ) {
      const k = Math.min(rest.length - off, to.buf.length);
      rest.copy(to.buf, 0, off, off + k);
      off += k;
      to.sink(k, to.buf);
    }
  }

  pause(): void {
    this.link.pause();
  }

  resume(): void {
    this.link.resume();
  }

  /** Answers `error` with the error's code and message, then closes. */
  fail(error: unknown): void {
    if (this.closedFlag) return;
    // Anything that is not one of ours (a bug, a Node error) goes out as `internal`.
    const err = error instanceof TreeshareError ? error : new TreeshareError('internal', describeError(error));
    if (err instanceof RemoteProtocolError) this.emit('protocol-error', err);
    this.closeErr ??= err;
    this.send({ t: 'error', code: err.code, message: err.message.slice(0, 4096) });
    this.end();
  }

  /** Graceful close after queued bytes are sent; forced after 2 s. */
  end(): void {
    if (this.link.destroyed) return;
    this.link.end();
    this.endTimer ??= this.clock.setTimeout(Connection.forceClose, 2000, this.link).unref();
  }

  destroy(err?: Error): void {
    if (err) this.closeErr ??= err;
    this.link.destroy();
  }

  private checkBuffered(): void {
    if (this.link.writableLength > this.maxBuffered) {
      const err = new RemoteProtocolError('buffer-overflow', `remote ${this.remote} is not reading (over ${this.maxBuffered} bytes queued)`);
      this.closeErr ??= err;
      this.link.destroy();
      this.emit('protocol-error', err);
    }
  }

  private onData(b: Buffer): void {
    if (this.closedFlag) return;
    if (this.rawMode) {
      try {
        this.emit('data', b);
      } catch (err) {
        this.handlerFailed(err);
      }
      return;
    }
    if (this.first && this.accepted && this.decoder.buffered === 0 && b[0] === TLS_HANDSHAKE_BYTE) {
      // A keyed node's TLS ClientHello: say so at once instead of waiting for a newline.
      this.fail(new TreeshareError('auth-unsupported', 'this node uses no network key (got a TLS handshake)'));
      return;
    }
    this.thrown = NOTHING;
    try {
      // Frames are delivered one by one so a handler can switch to raw mode mid-chunk.
      this.decoder.push(b, this.each);
    } catch (err) {
      if (this.closedFlag || this.rawMode) return;
      this.fail(err instanceof TreeshareError ? err : new RemoteProtocolError('bad-frame', String(err)));
      return;
    }
    if (this.thrown !== NOTHING) {
      const err = this.thrown;
      this.thrown = NOTHING;
      return this.handlerFailed(err);
    }
    if (this.rawMode && !this.closedFlag) {
      // A consumer switched to raw mode inside a message handler: the rest (of this read) is file data.
      const rest = this.decoder.takeRest();
      try {
        if (rest.length) this.deliverRest(rest);
      } catch (err) {
        this.handlerFailed(err);
      }
    }
  }

  /**
   * A handler of this connection's messages or bytes threw: whatever caused it came from this
   * remote, so this connection closes (with an `internal` error as its close reason) and the
   * process goes on serving everyone else. Never rethrown: from a socket callback it would be
   * an uncaught exception, fatal to the process.
   */
  private handlerFailed(err: unknown): void {
    const e = new TreeshareError('internal', `handling data from ${this.remote} failed: ${describeError(err)}`, { cause: err });
    this.closeErr ??= e;
    this.emit('handler-error', e);
    this.link.destroy();
  }

  /** 'message' listeners now (kept by newListener/removeListener: listenerCount() per frame showed in profiles). */
  private messageListeners = 0;
  /** What a 'message' listener threw while onData() delivered a chunk (NOTHING: none). */
  private thrown: unknown = NOTHING;
  /** The decoder's per-frame callback, made once per connection (not per chunk). */
  private readonly each = (m: Message): boolean => {
    try {
      return this.deliver(m) && !this.rawMode;
    } catch (err) {
      this.thrown = err;
      return false;
    }
  };

  /**
   * The one handler of every message on a served link (serve()): called directly, not through
   * 'message' listeners (an emit per frame showed in profiles of long simulations).
   */
  private handler: ((m: Message) => void) | undefined;

  /**
   * Hands every later message to `fn` (and any held ones, on the next turn) instead of emitting
   * 'message'. For a connection with one consumer for the rest of its life (a tree link).
   */
  serve(fn: (m: Message) => void): void {
    this.handler = fn;
    if (this.held.length) queueMicrotask(() => this.flushHeld());
  }

  private deliver(m: Message): boolean {
    this.frames.received[m.t] = (this.frames.received[m.t] ?? 0) + 1;
    if (this.first) {
      this.first = false;
      // The first frame must be the opener (checked below): nothing before it extends the deadline.
      if (this.handshakeTimer) this.clock.clearTimeout(this.handshakeTimer);
      if (this.accepted) {
        try {
          checkVersion(m);
        } catch (err) {
          this.fail(err as RemoteProtocolError);
          return false;
        }
      }
    }
    if (this.closedFlag) return false;
    if (this.handler && !this.held.length) {
      this.handler(m);
      return !this.closedFlag;
    }
    if (this.held.length || (this.messageListeners === 0 && !this.handler)) {
      if (this.held.length >= MAX_HELD) {
        this.fail(new RemoteProtocolError('buffer-overflow', `more than ${MAX_HELD} messages from ${this.remote} that nobody reads`));
        return false;
      }
      this.held.push(m);
      return true;
    }
    this.emit('message', m);
    return !this.closedFlag;
  }

  private flushHeld(): void {
    while (this.held.length && !this.closedFlag && !this.rawMode && (this.handler || this.listenerCount('message') > 0)) {
      const m = this.held.shift()!;
      try {
        if (this.handler) this.handler(m);
        else this.emit('message', m);
      } catch (err) {
        return this.handlerFailed(err);
      }
    }
  }

  private onEnd(): void {
    if (!this.rawMode) {
      try {
        this.decoder.end();
      } catch (err) {
        // Answered while our side is still open (accepted TCP sockets allow half-open).
        this.fail(err as RemoteProtocolError);
        return;
      }
    }
    // The remote finished sending: finish ours too (links that are not half-open already did).
    this.end();
  }

  private onClose(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    if (this.handshakeTimer) this.clock.clearTimeout(this.handshakeTimer);
    if (this.endTimer) this.clock.clearTimeout(this.endTimer);
    this.emit('close', this.closeErr);
  }
}

/**
 * Waits for the next message on `conn` whose type is in `types`; an `error`
 * message from the remote rejects with RemoteRefusedError-like info, as does
 * close, abort or any other type.
 */
export function nextMessage<T extends MessageType>(conn: Connection, types: readonly T[], opts: { signal?: AbortSignal; what?: string; timeout?: { clock: Clock; ms: number } } = {}): Promise<Msg<T>> {
  return new Promise((resolve, reject) => {
    const what = opts.what ?? `${types.join('/')} from ${conn.remote}`;
    // A timeout given as such is a timer on its clock (no AbortController and signal listeners per request).
    const timer = opts.timeout
      ? opts.timeout.clock.setTimeout(() => {
        cleanup();
        conn.destroy();
        reject(new TreeshareError('timeout', `timed out waiting for ${what}`));
      }, opts.timeout.ms).unref()
      : undefined;
    const cleanup = () => {
      conn.off('message', onMsg);
      conn.off('close', onClose);
      opts.signal?.removeEventListener('abort', onAbort);
      if (timer) opts.timeout!.clock.clearTimeout(timer);
    };
    const onMsg = (m: Message) => {
      cleanup();
      if ((types as readonly string[]).includes(m.t)) return resolve(m as Msg<T>);
      if (m.t === 'error') return reject(new RemoteRefusedError(m.code, `${conn.remote}: ${m.message}`));
      const e = new RemoteProtocolError('unexpected-message', `expected ${types.join(' or ')}, got "${m.t}"`);
      conn.fail(e);
      reject(e);
    };
    const onClose = (err: Error | undefined) => {
      cleanup();
      reject(new TreeshareError('connection-closed', `${conn.remote} closed the connection while waiting for ${what}${err ? `: ${err.message}` : ''}`));
    };
    const onAbort = () => {
      cleanup();
      conn.destroy();
      reject(abortError(opts.signal!, what));
    };
    if (opts.signal?.aborted) return onAbort();
    if (conn.closed) return onClose(undefined);
    conn.on('message', onMsg);
    conn.on('close', onClose);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `signal`, or a timeout of `ms` in real time, whichever fires first. Core code uses `deadline(clock, ms, signal)` (clock.ts). */
export function withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const t = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, t]) : t;
}

/** The error to reject with when `signal` fires: timeouts say what was awaited. */
export function abortError(signal: AbortSignal, what: string): Error {
  const r: unknown = signal.reason;
  if (r instanceof TreeshareError) return r;
  if (r instanceof Error && r.name === 'TimeoutError') return new TreeshareError('timeout', `timed out waiting for ${what}`);
  return new TreeshareError('aborted', `aborted while waiting for ${what}`);
}
