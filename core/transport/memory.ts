/**
 * In-memory transport: listeners and connections inside one process, with
 * the same Connection (codec, limits, errors) as TCP. Bytes really are
 * encoded and decoded, so behaviour matches. Links behave like TCP:
 *
 * - Flow control: each direction holds at most `windowBytes` (in flight plus
 *   unread at the receiver) before write() returns false; 'drain' comes only
 *   when the reader consumes. A paused reader therefore stalls the sender,
 *   and Connection's maxBufferedBytes trips if the sender ignores that.
 * - Half-close: end() delivers 'end' to the remote after the data before it;
 *   the remote can still write back. A link closes once both sides ended.
 *   destroy() drops unread data and resets the remote.
 * - Listeners: refused connects (no listener), maxConnections (over the
 *   limit the connector is told `too-many-connections`, as over TCP),
 *   connects that can be aborted.
 * - Shaping: per-direction latency and bandwidth (serialisation delay, as in
 *   shaped.ts), as timers on a Clock: the real clock by default, or a
 *   SimClock so delivery happens in simulated time. A link's pending
 *   deliveries share one timer (all chunks due at an instant go together).
 */
import { EventEmitter } from 'node:events';
import { realClock, type Clock, type TimerHandle } from '../clock.ts';
import { LocalError, UnreachableError } from '../errors.ts';
import { encode } from '../protocol/codec.ts';
import { addrKey } from '../protocol/messages.ts';
import { abortError, Connection, type ByteLink } from './connection.ts';
import type { LinkShape } from './shaped.ts';
import type { ConnectOptions, HostPort, Listener, ListenOptions, Transport } from './transport.ts';

export type { LinkShape };

/** Default per-direction window: bytes in flight plus unread before write() returns false. */
export const DEFAULT_WINDOW_BYTES = 1024 * 1024;

export interface MemoryNetworkOptions {
  /** Time source for delivery, latency and bandwidth. Default realClock. */
  clock?: Clock;
  /** Per-direction window, bytes. Default 1 MiB. */
  windowBytes?: number;
  /**
   * Shape of one link, by the connector's host (ConnectOptions.localHost, or
   * "mem") and the listener's address; undefined falls back to the network's
   * shape. Both directions of the link get it.
   */
  linkShape?: (from: string, to: HostPort) => LinkShape | undefined;
}

/** The shared empty queue of idle links (never pushed to: replaced by a fresh array first). */
const IDLE: readonly unknown[] = Object.freeze([]);

/** Markers in a direction's queue besides data. */
const END = 1;
const RESET = 2;
type Item = Buffer | typeof END | typeof RESET;

interface LinkParams {
  clock: Clock;
  latencyMs: number;
  /** bytes/s; 0 = unlimited. */
  bandwidth: number;
  window: number;
}

/** One end of an in-memory pair. Its outgoing direction (queue, window, timer) lives here. */
export class MemoryLink extends EventEmitter implements ByteLink {
  other!: MemoryLink;
  destroyed = false;
  // ---- outgoing direction ----
  /** Bytes written and not yet consumed by the remote's reader (in flight + unread). */
  private unacked = 0;
  /**
   * In-flight queue as pairs [item, due time, item, due time, ...] in q[head, len). The array is
   * made on the first write and kept (a few dozen bytes per link) rather than made again each
   * time the link goes busy: most writes find the link idle.
   */
  private q: Array<Item | number> = IDLE as Array<Item | number>;
  private head = 0;
  private len = 0;
  private armed = false;
  private txDone = 0;
  private needDrain = false;
  private drainQueued = false;
  private writeEnded = false;
  /** Our END reached the remote. */
  private finDelivered = false;
  // ---- incoming direction ----
  private inbox: Buffer[] = IDLE as Buffer[];
  private inboxHead = 0;
  private paused = false;
  private gotEnd = false;
  private endEmitted = false;
  private flowQueued = false;
  // Timer callbacks are shared functions taking the link (no closure per link: ~330 B each).
  private static readonly flush = (l: MemoryLink) => l.deliverDue();
  private static readonly flow = (l: MemoryLink) => l.drainInbox();
  private static readonly emitDrain = (l: MemoryLink) => {
    l.drainQueued = false;
    if (l.needDrain && l.unacked < l.p.window && !l.destroyed) {
      l.needDrain = false;
      l.emit('drain');
    }
  };
  private static readonly emitClose = (l: MemoryLink) => l.closed();
  /** The listener's open-connection count this accepted end holds a place in. */
  slot: { open: number } | undefined;

  constructor(private readonly p: LinkParams) {
    super();
  }

  /** Bytes written that the remote has not read yet. */
  get writableLength(): number {
    return this.unacked;
  }

  write(data: Buffer): boolean {
    if (this.destroyed || this.writeEnded) return false;
    if (data.length === 0) return this.unacked < this.p.window;
    this.unacked += data.length;
    this.enqueue(data, data.length);
    if (this.unacked >= this.p.window) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  end(): void {
    if (this.writeEnded || this.destroyed) return;
    this.writeEnded = true;
    this.enqueue(END, 0);
  }

  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.inbox = IDLE as Buffer[];
    this.inboxHead = 0;
    // The reset follows whatever is already on the wire.
    if (!this.other.destroyed) this.enqueue(RESET, 0);
    if (!err) return this.p.clock.defer(MemoryLink.emitClose, this);
    this.p.clock.defer(() => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
      this.closed();
    });
  }

  private closed(): void {
    if (this.slot) {
      this.slot.open--;
      this.slot = undefined;
    }
    this.emit('close');
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    // Like a stream, buffered data flows on the next turn, not inside resume().
    if ((this.inboxHead < this.inbox.length || this.gotEnd) && !this.flowQueued) {
      this.flowQueued = true;
      this.p.clock.defer(MemoryLink.flow, this);
    }
  }

  // ---- sending side ----

  private enqueue(item: Item, len: number): void {
    const now = this.p.clock.now();
    const start = Math.max(now, this.txDone);
    this.txDone = start + (this.p.bandwidth > 0 ? (len / this.p.bandwidth) * 1000 : 0);
    if (this.q === IDLE) this.q = [];
    const q = this.q;
    q[this.len] = item;
    q[this.len + 1] = this.txDone + this.p.latencyMs;
    this.len += 2;
    if (!this.armed) this.arm(now);
  }

  private arm(now: number): void {
    const wait = (this.q[this.head + 1] as number) - now;
    this.armed = true;
    if (wait <= 0) this.p.clock.defer(MemoryLink.flush, this);
    else this.p.clock.setTimeout(MemoryLink.flush, wait, this);
  }

  private deliverDue(): void {
    this.armed = false;
    const now = this.p.clock.now();
    // Node's timers may fire a fraction of a millisecond before performance.now() reaches the due time.
    const slack = this.p.clock.kind === 'real' ? 1 : 0;
    const q = this.q;
    while (this.head < this.len && (q[this.head + 1] as number) <= now + slack) {
      const item = q[this.head] as Item;
      q[this.head] = END; // drop the reference
      this.head += 2;
      this.other.arrive(item, this);
    }
    if (this.head === this.len) {
      this.head = this.len = 0;
      if (q.length > 4096) q.length = 0; // a burst's big queue is not kept
    } else {
      if (this.head > 2048 && this.head * 2 > this.len) {
        q.copyWithin(0, this.head, this.len);
        this.len -= this.head;
        this.head = 0;
        q.length = this.len;
      }
      // A handler may have written on this link during the loop (and armed it already).
      if (!this.armed) this.arm(now);
    }
  }

  /** The remote's reader consumed `n` of our bytes. */
  private acked(n: number): void {
    this.unacked -= n;
    if (this.needDrain && !this.drainQueued && this.unacked < this.p.window) {
      this.drainQueued = true;
      this.p.clock.defer(MemoryLink.emitDrain, this);
    }
  }

  // ---- receiving side ----

  private arrive(item: Item, from: MemoryLink): void {
    if (item === RESET) return this.reset();
    if (item === END) {
      from.finDelivered = true;
      from.maybeClose();
      if (this.destroyed) return;
      this.gotEnd = true;
      if (!this.paused && this.inboxHead === this.inbox.length) this.emitEnd();
      return;
    }
    if (this.destroyed) {
      from.acked(item.length);
      return;
    }
    if (this.paused || this.inboxHead < this.inbox.length) {
      if (this.inbox === IDLE) this.inbox = [];
      this.inbox.push(item);
      return;
    }
    this.data(item);
    from.acked(item.length);
  }

  /** The reader's sink (setDataSink) if any, then any 'data' listeners. */
  private sink: ((b: Buffer) => void) | undefined;

  /** 'data' listeners beside the sink, kept up to date once a sink is set (listenerCount() per chunk showed in profiles). */
  private dataListeners = 0;
  private static readonly countAdded = function (this: MemoryLink, ev: string | symbol): void {
    if (ev === 'data') this.dataListeners++;
  };
  private static readonly countRemoved = function (this: MemoryLink, ev: string | symbol): void {
    if (ev === 'data') this.dataListeners--;
  };

  setDataSink(fn: (b: Buffer) => void): boolean {
    if (!this.sink) {
      this.dataListeners = this.listenerCount('data');
      this.on('newListener', MemoryLink.countAdded);
      this.on('removeListener', MemoryLink.countRemoved);
    }
    this.sink = fn;
    return true;
  }

  private data(b: Buffer): void {
    if (this.sink) {
      this.sink(b);
      if (this.dataListeners === 0) return;
    }
    this.emit('data', b);
  }

  private drainInbox(): void {
    this.flowQueued = false;
    while (!this.paused && !this.destroyed && this.inboxHead < this.inbox.length) {
      const b = this.inbox[this.inboxHead]!;
      this.inbox[this.inboxHead++] = EMPTY;
      this.data(b);
      this.other.acked(b.length);
    }
    if (this.inboxHead === this.inbox.length) {
      this.inbox = IDLE as Buffer[];
      this.inboxHead = 0;
      if (!this.paused && this.gotEnd) this.emitEnd();
    }
  }

  private emitEnd(): void {
    if (this.endEmitted || this.destroyed) return;
    this.endEmitted = true;
    this.emit('end');
    this.maybeClose();
  }

  /** Closed once our END reached the remote and theirs was read here. */
  private maybeClose(): void {
    if (this.destroyed || !this.finDelivered || !this.endEmitted) return;
    this.destroyed = true;
    this.p.clock.defer(MemoryLink.emitClose, this);
  }

  private reset(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.inbox = IDLE as Buffer[];
    this.inboxHead = 0;
    this.p.clock.defer(MemoryLink.emitClose, this);
  }
}

const EMPTY = Buffer.alloc(0);

/** Two connected ends (A's writes arrive at B and back), for tests and benchmarks. */
export function memoryPair(o: { clock?: Clock; shape?: LinkShape; windowBytes?: number } = {}): [MemoryLink, MemoryLink] {
  const p: LinkParams = {
    clock: o.clock ?? realClock,
    latencyMs: Math.max(0, o.shape?.latencyMs ?? 0),
    bandwidth: Math.max(0, o.shape?.bandwidthBytesPerSec ?? 0),
    window: Math.max(1, o.windowBytes ?? DEFAULT_WINDOW_BYTES),
  };
  const a = new MemoryLink(p);
  const b = new MemoryLink(p);
  a.other = b;
  b.other = a;
  return [a, b];
}

interface Bound {
  opts: ListenOptions;
  open: number;
}

export class MemoryNetwork {
  private listeners = new Map<string, Bound>();
  /** Next port to try for `listen(port 0)`, per host (a simulation of 100,000 peers spreads them over several hosts). */
  private nextPort = new Map<string, number>();
  /** Labels of connecting ends ("mem:N"): counted apart so they never use up listening ports. */
  private nextLocal = 1;
  readonly shape: LinkShape;
  readonly clock: Clock;
  private readonly window: number;
  private readonly linkShape: MemoryNetworkOptions['linkShape'];

  constructor(shape: LinkShape = {}, o: MemoryNetworkOptions = {}) {
    this.shape = shape;
    this.clock = o.clock ?? realClock;
    this.window = o.windowBytes ?? DEFAULT_WINDOW_BYTES;
    this.linkShape = o.linkShape;
  }

  transport(): Transport {
    return {
      kind: 'memory',
      listen: (o) => this.listen(o),
      connect: (to, o) => this.connect(to, o),
    };
  }

  private async listen(opts: ListenOptions): Promise<Listener> {
    let port = opts.port;
    if (port === 0) {
      let next = this.nextPort.get(opts.host) ?? 20000;
      do port = next++;
      while (this.listeners.has(addrKey({ host: opts.host, port })) && port <= 65535);
      this.nextPort.set(opts.host, next);
      if (port > 65535) throw new LocalError('port-in-use', `cannot listen on ${opts.host}: no free port left in the memory network`);
    }
    const key = addrKey({ host: opts.host, port });
    if (this.listeners.has(key)) throw new LocalError('port-in-use', `cannot listen on ${key}: port ${port} is already in use`);
    const bound: Bound = { opts, open: 0 };
    this.listeners.set(key, bound);
    return {
      address: { host: opts.host, port },
      close: async () => {
        if (this.listeners.get(key) === bound) this.listeners.delete(key);
      },
    };
  }

  /** Resolves after `ms` on the clock (next turn when 0); rejects if `signal` aborts first. */
  private wait(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal, what));
      let h: TimerHandle | undefined;
      let done = false;
      const onAbort = () => {
        if (done) return;
        done = true;
        if (h) this.clock.clearTimeout(h);
        reject(abortError(signal!, what));
      };
      const ok = () => {
        if (done) return;
        done = true;
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (ms > 0) h = this.clock.setTimeout(ok, ms);
      else this.clock.defer(ok);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async connect(to: HostPort, opts: ConnectOptions = {}): Promise<Connection> {
    const key = addrKey(to);
    const what = `a connection to ${key}`;
    const signal = opts.signal;
    if (signal?.aborted) throw abortError(signal, what);
    const from = opts.localHost ?? 'mem';
    const shape = this.linkShape?.(from, to) ?? this.shape;
    const latency = Math.max(0, shape.latencyMs ?? 0);
    // The SYN travels to the listener...
    await this.wait(latency, signal, what);
    const bound = this.listeners.get(key) ?? this.listeners.get(addrKey({ host: '0.0.0.0', port: to.port }));
    if (!bound) {
      // ...and the refusal travels back.
      if (latency > 0) await this.wait(latency, signal, what);
      throw new UnreachableError(key, 'connection refused (is it running?)');
    }
    const [a, b] = memoryPair({ clock: this.clock, shape, windowBytes: this.window });
    const local = `${from}:${this.nextLocal++}`;
    // Both Connections exist before any byte moves, so nothing the acceptor sends early is lost.
    const conn = new Connection(opts.wrapLink ? opts.wrapLink(a) : a, key, false, { clock: this.clock, ...opts.connection });
    this.accept(bound, b, local);
    // ...and the accept travels back to the connector.
    try {
      await this.wait(latency, signal, what);
    } catch (err) {
      a.destroy();
      throw err;
    }
    return conn;
  }

  private accept(bound: Bound, link: MemoryLink, remote: string): void {
    const max = bound.opts.maxConnections ?? 10_000;
    if (bound.open >= max) {
      // Over the limit: say why, then close (as the TCP transport does).
      link.write(encode({ t: 'error', code: 'too-many-connections', message: `over the limit of ${max} connections; try again later` }));
      link.end();
      this.clock.setTimeout(() => link.destroy(), 1000).unref();
      return;
    }
    bound.open++;
    link.slot = bound;
    bound.opts.onConnection(new Connection(link, remote, true, { clock: this.clock, ...bound.opts.connection }));
  }
}
