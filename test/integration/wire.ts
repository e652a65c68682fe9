/**
 * Wire-level test tools for the integration tests: a raw node:net client that
 * speaks (or mis-speaks) the JSON-lines protocol without any of core's
 * validation, a raw listener (a fake peer's own address), and a transport
 * that counts the frames every Connection writes, by type (at the transport).
 */
import net from 'node:net';
import type { ExecutionContext } from 'ava';
import { PROTOCOL_VERSION, tcpTransport, type Connection, type Message, type Transport } from '../../core/index.ts';
import { proofOf } from '../../core/protocol/proof.ts';

export type Frame = Record<string, unknown> & { t?: string };

/** A raw TCP client: frames in as parsed JSON lines (no validation), anything out. */
export class RawClient {
  readonly frames: Frame[] = [];
  /** Bytes received that were not part of a newline-terminated JSON frame. */
  readonly junk: Buffer[] = [];
  ended = false;
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private onFrames: ((f: Frame) => void)[] = [];
  readonly closedP: Promise<void>;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (b) => {
      this.buf = Buffer.concat([this.buf, b]);
      for (;;) {
        const nl = this.buf.indexOf(0x0a);
        if (nl < 0) break;
        const line = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        let f: Frame;
        try {
          f = JSON.parse(line) as Frame;
        } catch {
          this.junk.push(Buffer.from(line));
          continue;
        }
        this.frames.push(f);
        for (const fn of this.onFrames) fn(f);
      }
      this.wake();
    });
    sock.on('end', () => {
      this.ended = true;
      this.wake();
    });
    sock.on('error', () => {
      /* reset by the server is a close too */
    });
    this.closedP = new Promise((r) =>
      sock.on('close', () => {
        this.closed = true;
        this.wake();
        r();
      }),
    );
  }

  static connect(port: number, host = '127.0.0.1', o: { allowHalfOpen?: boolean; localAddress?: string } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, allowHalfOpen: o.allowHalfOpen ?? false, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawClient(s));
      });
    });
  }

  /** Connects and registers teardown. */
  static async open(t: ExecutionContext, port: number, host = '127.0.0.1', o: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
    const c = await RawClient.connect(port, host, o);
    t.teardown(() => c.sock.destroy());
    return c;
  }

  /** Calls `fn` on every later frame (e.g. to answer pings). */
  onFrame(fn: (f: Frame) => void): void {
    this.onFrames.push(fn);
  }

  send(f: object): void {
    this.sock.write(JSON.stringify(f) + '\n');
  }

  write(b: Buffer | string): Promise<void> {
    return new Promise((r) => this.sock.write(b, () => r()));
  }

  /** Half-close: we send FIN but can still read. */
  end(): void {
    this.sock.end();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private changed(timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`raw client: timed out waiting for ${what}`)), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** The next frame (after `from`) satisfying `pred`; rejects if the socket closes first. */
  async next(pred: (f: Frame) => boolean = () => true, o: { from?: number; timeoutMs?: number; what?: string } = {}): Promise<Frame> {
    const what = o.what ?? 'a frame';
    let i = o.from ?? 0;
    for (;;) {
      for (; i < this.frames.length; i++) if (pred(this.frames[i]!)) return this.frames[i]!;
      if (this.closed) throw new Error(`raw client: connection closed before ${what}; got ${JSON.stringify(this.frames)}`);
      await this.changed(o.timeoutMs ?? 10_000, what);
    }
  }

  /** Resolves when the remote has closed its side (FIN or reset). */
  async remoteClosed(timeoutMs = 10_000): Promise<void> {
    while (!this.ended && !this.closed) await this.changed(timeoutMs, 'the remote to close');
  }
}

/** A raw listener on 127.0.0.1:0: the address a fake peer advertises. */
export class RawServer {
  readonly conns: RawClient[] = [];
  private waiters: (() => void)[] = [];
  private constructor(readonly server: net.Server, readonly port: number) {
    server.on('connection', (s) => {
      this.conns.push(new RawClient(s));
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(t: ExecutionContext, host = '127.0.0.1'): Promise<RawServer> {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, host, r));
    const rs = new RawServer(server, (server.address() as net.AddressInfo).port);
    t.teardown(async () => {
      for (const c of rs.conns) c.sock.destroy();
      await new Promise((r) => server.close(r));
    });
    return rs;
  }

  /** The `n`-th accepted connection (0-based), once it exists. */
  async accepted(n = 0, timeoutMs = 10_000): Promise<RawClient> {
    while (this.conns.length <= n) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('raw server: no connection')), timeoutMs);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.conns[n]!;
  }
}

/** A fake peer (see provingPeer): its port, and the id and token it proves (set them as they are issued). */
export interface ProvingPeer {
  readonly port: number;
  id: string;
  token: string;
}

/**
 * A fake peer at its own address that answers every ping as `p.id` with, when
 * challenged, proof of holding `p.token` (proofOf), so a metaserver's probe finds
 * it alive as that id: a real peer, or an attacker proving a token of its own.
 */
export async function provingPeer(t: ExecutionContext, id: string): Promise<ProvingPeer> {
  const rs = await RawServer.open(t);
  const p: ProvingPeer = { port: rs.port, id, token: '' };
  rs.server.removeAllListeners('connection');
  rs.server.on('connection', (s: net.Socket) => {
    const c = new RawClient(s);
    rs.conns.push(c);
    void c.next().then((ping) => {
      const nonce = typeof ping.nonce === 'string' ? ping.nonce : undefined;
      s.end(JSON.stringify({ t: 'pong', n: ping.n, id: p.id, ...(nonce ? { proof: proofOf(p.token, nonce, p.id) } : {}) }) + '\n');
    }, () => s.destroy());
    s.on('error', () => undefined);
  });
  return p;
}

/**
 * A TCP transport that counts every frame any of its Connections writes, by
 * type, from the Connections' own transport-level counters (Connection.frames):
 * what went on the wire, not what a peer believes it sent.
 */
export function countingTransport(): { transport: Transport; reset(): void; count(t: string): number } {
  const base = tcpTransport();
  const conns = new Set<Connection>();
  let zero = new Map<string, number>();
  const total = (t: string) => {
    let n = 0;
    for (const c of conns) n += c.frames.sent[t as Message['t']] ?? 0;
    return n;
  };
  const wrap = (c: Connection): Connection => {
    conns.add(c);
    return c;
  };
  const transport: Transport = {
    kind: 'tcp',
    listen: (o) => base.listen({ ...o, onConnection: (c) => o.onConnection(wrap(c)) }),
    connect: async (to, o) => wrap(await base.connect(to, o)),
  };
  return {
    transport,
    reset: () => {
      zero = new Map();
      for (const c of conns) for (const [t, n] of Object.entries(c.frames.sent)) zero.set(t, (zero.get(t) ?? 0) + n);
    },
    count: (t) => total(t) - (zero.get(t) ?? 0),
  };
}

/**
 * Joins `parent` (host:port) as a fake child speaking the wire protocol over
 * a raw socket: sends JOIN, expects `accept`, and answers heartbeats.
 */
export async function fakeChild(t: ExecutionContext, parent: { host: string; port: number }, me: { id: string; host?: string; port?: number }): Promise<RawClient> {
  const raw = await RawClient.open(t, parent.port, parent.host);
  raw.onFrame((f) => {
    if (f.t === 'ping') raw.send({ t: 'pong', n: f.n });
  });
  raw.send({ t: 'join', v: PROTOCOL_VERSION, id: me.id, host: me.host ?? '127.0.0.1', port: me.port ?? 4000, subtree: 1 });
  const acc = await raw.next(() => true, { what: 'an answer to JOIN' });
  if (acc.t !== 'accept') throw new Error(`fake child ${me.id}: expected accept, got ${JSON.stringify(acc)}`);
  return raw;
}
