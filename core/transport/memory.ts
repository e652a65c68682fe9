/**
 * In-memory transport: listeners and connections inside one process, with
 * the same Connection (codec, limits, errors) as TCP. Bytes really are
 * encoded and decoded, so behaviour matches; delivery is asynchronous.
 * Link emulation is the same ShapedLink wrapper TCP uses, on both ends.
 */
import { EventEmitter } from 'node:events';
import { LocalError, UnreachableError } from '../errors.ts';
import { addrKey } from '../protocol/messages.ts';
import { abortError, Connection, type ByteLink } from './connection.ts';
import { isShaped, ShapedLink, type LinkShape } from './shaped.ts';

export type { LinkShape };
import type { ConnectOptions, HostPort, Listener, ListenOptions, Transport } from './transport.ts';

const HIGH_WATER = 1024 * 1024;

class MemoryLink extends EventEmitter implements ByteLink {
  other!: MemoryLink;
  destroyed = false;
  writableLength = 0;
  private paused = false;
  private inbox: Buffer[] = [];
  private ended = false;
  private gotEnd = false;
  private needDrain = false;
  private inFlight = 0;
  private endQueued = false;

  write(data: Buffer): boolean {
    if (this.destroyed || this.ended) return false;
    const copy = Buffer.from(data);
    this.writableLength += copy.length;
    this.inFlight++;
    setImmediate(() => {
      this.inFlight--;
      this.writableLength -= copy.length;
      if (!this.other.destroyed) this.other.receive(copy);
      if (this.needDrain && this.writableLength < HIGH_WATER) {
        this.needDrain = false;
        this.emit('drain');
      }
      if (this.endQueued && this.inFlight === 0) this.deliverEnd();
    });
    if (this.writableLength >= HIGH_WATER) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private receive(b: Buffer): void {
    if (this.paused || this.inbox.length) {
      this.inbox.push(b);
      return;
    }
    this.emit('data', b);
  }

  end(): void {
    if (this.ended || this.destroyed) return;
    this.ended = true;
    if (this.inFlight === 0) this.deliverEnd();
    else this.endQueued = true;
  }

  private deliverEnd(): void {
    this.endQueued = false;
    setImmediate(() => this.other.receiveEnd());
  }

  private receiveEnd(): void {
    if (this.destroyed) return;
    this.gotEnd = true;
    if (this.inbox.length === 0) this.finishEnd();
  }

  private finishEnd(): void {
    this.emit('end');
    // Half-close is not modelled: the end of one side closes the pair.
    this.destroy();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    while (!this.paused && this.inbox.length && !this.destroyed) this.emit('data', this.inbox.shift()!);
    if (!this.paused && this.gotEnd && this.inbox.length === 0) this.finishEnd();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.inbox = [];
    setImmediate(() => this.emit('close'));
    if (!this.other.destroyed) this.other.destroy();
  }
}

export class MemoryNetwork {
  private listeners = new Map<string, ListenOptions>();
  private nextPort = 20000;
  /** Labels of connecting ends ("mem:N"): counted apart so they never use up listening ports. */
  private nextLocal = 1;
  readonly shape: LinkShape;

  constructor(shape: LinkShape = {}) {
    this.shape = shape;
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
      do port = this.nextPort++;
      while (this.listeners.has(addrKey({ host: opts.host, port })) && port <= 65535);
      if (port > 65535) throw new LocalError('port-in-use', `cannot listen on ${opts.host}: no free port left in the memory network`);
    }
    const key = addrKey({ host: opts.host, port });
    if (this.listeners.has(key)) throw new LocalError('port-in-use', `cannot listen on ${key}: port ${port} is already in use`);
    this.listeners.set(key, opts);
    return {
      address: { host: opts.host, port },
      close: async () => {
        if (this.listeners.get(key) === opts) this.listeners.delete(key);
      },
    };
  }

  private async connect(to: HostPort, opts: ConnectOptions = {}): Promise<Connection> {
    const key = addrKey(to);
    if (opts.signal?.aborted) throw abortError(opts.signal, `a connection to ${key}`);
    await new Promise((r) => setImmediate(r));
    const l = this.listeners.get(key) ?? this.listeners.get(addrKey({ host: '0.0.0.0', port: to.port }));
    if (!l) throw new UnreachableError(key, `connection refused (is it running?)`);
    const a = new MemoryLink();
    const b = new MemoryLink();
    a.other = b;
    b.other = a;
    const wrap = (link: MemoryLink): ByteLink => (isShaped(this.shape) ? new ShapedLink(link, this.shape) : link);
    const local = `${opts.localHost ?? 'mem'}:${this.nextLocal++}`;
    l.onConnection(new Connection(wrap(b), local, true, l.connection));
    return new Connection(wrap(a), key, false, opts.connection);
  }
}
