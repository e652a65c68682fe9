/**
 * A hostile holder for tests (issue 22): a fake member that joins a real peer's tree as a child
 * (wire.ts fakeChild) and answers its searches with hits at fake holders' listening addresses,
 * so the real peer's own search and download code runs against it. Each fake holder runs a
 * script per connection, with any manifest, frames, piece bytes and timing:
 *
 * - swarm path: `FakeSwarmHolder` is a listener; on every `swarm-open` its script gets a
 *   `SwarmConn` (send any frame, write any bytes, wait for `want`, serve pieces, trickle, close);
 * - offer path: `HostileMember` with `offer` set connects to the requester on a
 *   `want: 'download'` query and its script gets an `OfferConn` (send any offer, wait for the
 *   ack, write, trickle, close).
 *
 * Nothing here validates anything: frames are plain objects written as JSON lines.
 */
import { createHash } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { PROTOCOL_VERSION } from '../../core/index.ts';
import { fakeChild, RawClient, RawServer, type Frame } from './wire.ts';

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A file as a fake holder describes and serves it. */
export interface FakeFile {
  name: string;
  body: Buffer;
  size: number;
  sha256: string;
  pieceSize: number;
  pieces: string[];
}

export function fakeFile(name: string, body: Buffer, pieceSize = 64 * 1024): FakeFile {
  const pieces: string[] = [];
  for (let o = 0; o < body.length; o += pieceSize) pieces.push(sha256(body.subarray(o, o + pieceSize)));
  return { name, body, size: body.length, sha256: sha256(body), pieceSize, pieces };
}

/** `f`'s manifest frame, any field replaced or added by `patch`. */
export function manifestFrame(f: FakeFile, patch: Record<string, unknown> = {}): Frame {
  return { t: 'manifest', name: f.name, size: f.size, sha256: f.sha256, pieceSize: f.pieceSize, pieces: f.pieces, ...patch };
}

export function pieceOf(f: FakeFile, i: number): Buffer {
  return f.body.subarray(i * f.pieceSize, Math.min(f.size, (i + 1) * f.pieceSize));
}

/** Writes `bytes` one at a time, `everyMs` apart, until done, `stop()` or the socket closes (a slow-loris). */
function trickleOn(raw: RawClient, bytes: Buffer, everyMs: number): { stop(): void; sent(): number } {
  let i = 0;
  const timer = setInterval(() => {
    if (i >= bytes.length || raw.closed || raw.sock.destroyed) return clearInterval(timer);
    raw.sock.write(bytes.subarray(i, i + 1));
    i++;
  }, everyMs);
  raw.closedP.then(() => clearInterval(timer), () => undefined);
  return { stop: () => clearInterval(timer), sent: () => i };
}

/** What a script can do on a connection (either path). */
class ScriptConn {
  constructor(readonly raw: RawClient) {}
  send(f: object): void {
    this.raw.send(f);
  }
  write(b: Buffer | string): Promise<void> {
    return this.raw.write(b);
  }
  trickle(bytes: Buffer, everyMs: number): { stop(): void; sent(): number } {
    return trickleOn(this.raw, bytes, everyMs);
  }
  close(): void {
    this.raw.sock.destroy();
  }
  /** Resolves when the requester closed the connection. */
  get closed(): Promise<void> {
    return this.raw.closedP;
  }
}

/** One swarm connection at a fake holder, as the requester opened it (`open` is its swarm-open). */
export class SwarmConn extends ScriptConn {
  private wants = 0;
  constructor(raw: RawClient, readonly open: Frame) {
    super(raw);
  }

  /** The piece indexes of the next `want` frame (after those already returned). */
  async want(timeoutMs = 10_000): Promise<number[]> {
    let seen = 0;
    const f = await this.raw.next((x) => x.t === 'want' && seen++ === this.wants, { timeoutMs, what: 'a want' });
    this.wants++;
    return f.pieces as number[];
  }

  /** Resolves once the requester sent a want (any; none is taken: see want()). */
  async wanted(timeoutMs = 10_000): Promise<void> {
    await this.raw.next((x) => x.t === 'want', { timeoutMs, what: 'a want' });
  }

  /** Answers every want with `f`'s pieces (or what `piece` makes of them), in order, until the connection closes. */
  serve(f: FakeFile, o: { piece?: (i: number, data: Buffer) => Buffer } = {}): void {
    void (async () => {
      try {
        for (;;) for (const i of await this.want(60_000)) await this.write(o.piece ? o.piece(i, pieceOf(f, i)) : pieceOf(f, i));
      } catch {
        /* closed */
      }
    })();
  }
}

export type SwarmScript = (c: SwarmConn) => void | Promise<void>;

/** A fake holder's listening address: runs `script` on every swarm-open it accepts (all in `opens`). */
export class FakeSwarmHolder {
  readonly opens: SwarmConn[] = [];
  private constructor(readonly id: string, readonly server: RawServer) {}

  static async open(t: ExecutionContext, id: string, script: SwarmScript): Promise<FakeSwarmHolder> {
    const server = await RawServer.open(t);
    const h = new FakeSwarmHolder(id, server);
    // RawServer's own 'connection' listener runs first: the newest RawClient is the last of its conns.
    server.server.on('connection', () => {
      const raw = server.conns[server.conns.length - 1]!;
      void raw.next((f) => f.t === 'swarm-open', { what: 'swarm-open', timeoutMs: 60_000 }).then(
        (open) => {
          const c = new SwarmConn(raw, open);
          h.opens.push(c);
          return script(c);
        },
        () => raw.sock.destroy(),
      ).catch(() => raw.sock.destroy());
    });
    return h;
  }

  get port(): number {
    return this.server.port;
  }

  /** A search hit naming this holder. */
  hit(size: number, hops = 1): { id: string; host: string; port: number; size: number; hops: number } {
    return { id: this.id, host: '127.0.0.1', port: this.port, size, hops };
  }
}

/** The offer path: a transfer connection the hostile member opened to the requester, for `query`. */
export class OfferConn extends ScriptConn {
  constructor(raw: RawClient, readonly query: Frame, readonly member: { id: string; port: number }) {
    super(raw);
  }

  /** Sends an offer of `f` (fields replaced by `patch`) and resolves with the requester's answer (ack or decline). */
  async offer(f: FakeFile, patch: Record<string, unknown> = {}): Promise<Frame> {
    this.send({ t: 'offer', v: PROTOCOL_VERSION, qid: this.query.qid, from: { id: this.member.id, host: '127.0.0.1', port: this.member.port }, name: f.name, size: f.size, sha256: f.sha256, ...patch });
    return this.raw.next((x) => x.t === 'ack' || x.t === 'decline' || x.t === 'error', { what: 'an answer to the offer' });
  }
}

export type OfferScript = (c: OfferConn) => void | Promise<void>;

export interface HostileMemberOptions {
  id?: string;
  /** The hits this member answers a query with (default: none). */
  hits?: (query: Frame) => object[];
  /** On a `want: 'download'` query: connect to the requester and run this. */
  offer?: OfferScript;
}

/** A fake member joined as a child of a real peer: answers its searches with `hits`, download queries with `offer`. */
export class HostileMember {
  readonly queries: Frame[] = [];
  readonly offers: OfferConn[] = [];
  private constructor(readonly link: RawClient, readonly id: string) {}

  static async join(t: ExecutionContext, parent: { host: string; port: number }, o: HostileMemberOptions = {}): Promise<HostileMember> {
    const id = o.id ?? 'EVIL';
    const link = await fakeChild(t, parent, { id, port: 1 });
    const m = new HostileMember(link, id);
    link.onFrame((q) => {
      if (q.t !== 'query') return;
      m.queries.push(q);
      link.send({ t: 'query-reply', qid: q.qid, hits: o.hits?.(q) ?? [], missing: [], reached: 1, messages: 1, duplicates: 0, maxHops: q.hops });
      if (q.want !== 'download' || !o.offer) return;
      const origin = q.origin as { host: string; port: number };
      void RawClient.open(t, origin.port, origin.host).then((raw) => {
        const c = new OfferConn(raw, q, { id, port: 1 });
        m.offers.push(c);
        return o.offer!(c);
      }).catch(() => undefined);
    });
    return m;
  }
}
