/**
 * TcpLink: the ByteLink of an accepted plain TCP socket, with one extra
 * ability: `readInto`, which switches the link's reads to a caller-owned,
 * reused buffer (net's `onread` option), for the transfer body.
 *
 * Why: a socket read the ordinary way allocates a new 64 KiB Buffer for every
 * read and hands it through the stream machinery; a 1 GiB body is ~16,000
 * allocations, 'data' events and write-stream queue entries. With `onread`
 * the kernel copies up to a whole buffer (1 MiB) per read into the same
 * memory, and the consumer hashes and writes it before the next read.
 *
 * Node accepts `onread` only when a socket is constructed, and net.Server
 * constructs accepted sockets itself. The transfer connection is opened by
 * the holder to the requester's listening address, so the receiving end is an
 * accepted socket; `readInto` therefore moves the socket's libuv handle into
 * a new net.Socket constructed with `onread` (the handle, its file
 * descriptor and the kernel's buffered bytes are unchanged). This relies on
 * net.Socket's `_handle` field (Node 20–24); every precondition is checked
 * and, when one fails, `readInto` returns false and the caller keeps the
 * ordinary stream path. The swap is made only while nothing is being
 * written and the remote has not finished, so no byte or event is lost.
 * The replaced socket object is destroyed (handle-less) when the new one
 * closes, so the server's connection count stays right.
 *
 * Outgoing sockets (`TcpLink.connect`, the requester's piece connections of a
 * swarm download, docs/SWARM.md) need no handle move: they are built with
 * `onread` from the start, with a buffer *function*, which Node calls after
 * every read for the buffer of the next one. Until `readInto`, reads land in
 * a small per-link buffer (FRAME_READ_BYTES) and are copied out as 'data'
 * (framed messages: one small copy, as the stream path's own allocation);
 * after it, the next read lands in the caller's buffer. A read already
 * armed with the small buffer when the switch happens is copied into the
 * caller's buffer first (fixed buffer) or handed over as it is (buffer
 * function), so no byte is lost or reordered.
 *
 * `readInto` takes either one reused buffer or a buffer *function*, called
 * after every read for the buffer of the next one: the swarm requester
 * returns the free tail of the piece it is filling, so the kernel copies
 * piece bytes straight to their place (docs/SWARM.md, receive path).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { ByteLink } from './connection.ts';

interface HandleLike {
  useUserBuffer?: unknown;
  readStart?: unknown;
}
/** Read buffer of an outgoing link before `readInto` (framed messages), bytes. */
export const FRAME_READ_BYTES = 64 * 1024;

/**
 * Where a read lands after `readInto`: one reused buffer, or a function called after every
 * read (and once at the switch) for the buffer of the next read (a non-empty Buffer).
 */
export type ReadTarget = Buffer | (() => Buffer);
/** Called synchronously per read: `n` new bytes at the start of `b`, the buffer they landed in. */
export type OnRead = (n: number, b: Buffer) => void;

/** Reads of an outgoing socket built with `onread` (TcpLink.connect). */
interface UserReads {
  frame: Buffer;
  /** After readInto with one fixed buffer. */
  buf?: Buffer;
  /** After readInto with a buffer function. */
  next?: () => Buffer;
  onBytes?: OnRead;
  link?: TcpLink;
}

type SocketInternals = net.Socket & { _handle?: HandleLike | null; _readableState?: { ended?: boolean; length?: number } };

export class TcpLink extends EventEmitter implements ByteLink {
  private sock: net.Socket;
  /** The accepted socket object after its handle moved (destroyed when the new one closes). */
  private shell: net.Socket | undefined;
  private readonly forwarders: [string, (...a: unknown[]) => void][];

  /**
   * A plain outgoing connection read through `onread` from the start (see the
   * header): `readInto` is then a switch of buffers, with no handle move.
   * Returns `net.connect`'s socket (wait for its 'connect' or 'error') and `link()`, which
   * wraps it once connected (the link forwards the socket's events from then on).
   */
  static connect(opts: net.TcpNetConnectOpts): { sock: net.Socket; link: () => TcpLink } {
    const st: UserReads = { frame: Buffer.allocUnsafe(FRAME_READ_BYTES) };
    const sock = net.connect({
      ...opts,
      onread: {
        // Called after every read (and once at connect) for the buffer of the next read.
        buffer: () => (st.next ? st.next() : (st.buf ?? st.frame)),
        callback: (n: number, b: Uint8Array): boolean => {
          if (!st.onBytes) st.link?.emit('data', Buffer.from(b.subarray(0, n)));
          else if (b !== st.frame || st.next) st.onBytes(n, b as Buffer);
          else {
            // Read into the frame buffer before the switch: hand it over through the caller's buffer.
            const buf = st.buf!;
            for (let off = 0; off < n; ) {
              const k = Math.min(n - off, buf.length);
              buf.set(b.subarray(off, off + k), 0);
              off += k;
              st.onBytes(k, buf);
            }
          }
          return true;
        },
      },
    } as net.TcpNetConnectOpts);
    const link = () => (st.link ??= new TcpLink(sock, st));
    return { sock, link };
  }

  private readonly user: UserReads | undefined;

  constructor(sock: net.Socket, user?: UserReads) {
    super();
    this.sock = sock;
    this.user = user;
    this.forwarders = [
      ['data', (b) => this.emit('data', b)],
      ['drain', () => this.emit('drain')],
      ['end', () => this.emit('end')],
      ['error', (e) => this.emit('error', e)],
      ['close', () => this.onClose()],
    ];
    this.attach(sock);
  }

  private attach(s: net.Socket): void {
    for (const [ev, fn] of this.forwarders) s.on(ev, fn);
  }

  private detach(s: net.Socket): void {
    for (const [ev, fn] of this.forwarders) s.off(ev, fn);
  }

  private onClose(): void {
    this.shell?.destroy();
    this.emit('close');
  }

  get writableLength(): number {
    return this.sock.writableLength;
  }

  get destroyed(): boolean {
    return this.sock.destroyed;
  }

  write(data: Buffer): boolean {
    return this.sock.write(data);
  }

  end(): void {
    this.sock.end();
  }

  destroy(err?: Error): void {
    this.sock.destroy(err);
  }

  resetAndDestroy(): void {
    this.sock.resetAndDestroy();
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  /**
   * From now on every read lands in `target` (one buffer, overwritten by the
   * next read; or, for a function, the buffer it returns after each read) and
   * `onBytes(n, b)` is called synchronously with the number of new bytes and
   * the buffer they are at the start of; no 'data' events follow. With a
   * fixed buffer, `b` is always that buffer; with a function, `b` is what it
   * returned, or (once, for a read armed before the switch) another buffer.
   * 'end', 'close', 'error', 'drain', pause/resume and writes keep working.
   * Returns false (nothing changed) when not possible.
   */
  readInto(target: ReadTarget, onBytes: OnRead): boolean {
    const fn = typeof target === 'function' ? target : undefined;
    if (this.user) {
      if (this.user.onBytes || (!fn && (target as Buffer).length === 0) || this.sock.destroyed) return false;
      if (fn) this.user.next = fn;
      else this.user.buf = target as Buffer;
      this.user.onBytes = onBytes;
      return true;
    }
    const old = this.sock as SocketInternals;
    const h = old._handle;
    const rs = old._readableState;
    if (this.shell || Object.getPrototypeOf(old) !== net.Socket.prototype) return false;
    if (!h || typeof h.useUserBuffer !== 'function' || typeof h.readStart !== 'function') return false;
    if (!rs || rs.ended !== false || (rs.length ?? 1) !== 0) return false;
    if (old.destroyed || old.connecting || old.writableEnded || old.writableLength !== 0) return false;
    this.detach(old);
    old._handle = null;
    let s: net.Socket;
    try {
      s = new net.Socket({ handle: h, allowHalfOpen: old.allowHalfOpen, onread: { buffer: target, callback: (n: number, b: Uint8Array) => void onBytes(n, b as Buffer) } } as net.SocketConstructorOpts);
    } catch {
      old._handle = h as never;
      this.attach(old);
      return false;
    }
    s.setNoDelay(true);
    this.shell = old;
    this.sock = s;
    this.attach(s);
    // Flowing, so 'end' is emitted at EOF (no 'data' is ever pushed in onread mode).
    s.resume();
    return true;
  }
}
