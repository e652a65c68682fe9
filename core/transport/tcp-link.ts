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
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { ByteLink } from './connection.ts';

interface HandleLike {
  useUserBuffer?: unknown;
  readStart?: unknown;
}
type SocketInternals = net.Socket & { _handle?: HandleLike | null; _readableState?: { ended?: boolean; length?: number } };

export class TcpLink extends EventEmitter implements ByteLink {
  private sock: net.Socket;
  /** The accepted socket object after its handle moved (destroyed when the new one closes). */
  private shell: net.Socket | undefined;
  private readonly forwarders: [string, (...a: unknown[]) => void][];

  constructor(sock: net.Socket) {
    super();
    this.sock = sock;
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

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  /**
   * From now on every read lands in `buf` (overwritten by the next read) and
   * `onBytes(n)` is called synchronously with the number of new bytes; no
   * 'data' events follow. 'end', 'close', 'error', 'drain', pause/resume and
   * writes keep working. Returns false (nothing changed) when not possible.
   */
  readInto(buf: Buffer, onBytes: (n: number) => void): boolean {
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
      s = new net.Socket({ handle: h, allowHalfOpen: old.allowHalfOpen, onread: { buffer: buf, callback: (n: number) => void onBytes(n) } } as net.SocketConstructorOpts);
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
