/**
 * Short request/response exchanges: one connection, one opener, one answer,
 * close. Used by peers to talk to the metaserver (register, announce, leave),
 * by anyone for `status`, and by the metaserver to probe a peer's liveness.
 */
import { TreeshareError } from '../errors.ts';
import { newNonce, proofOf, sameSecret } from '../protocol/proof.ts';
import { PROTOCOL_VERSION, type HostPortLike, type Message, type MessageType, type Msg, type RegistryEntry } from '../protocol/messages.ts';
import { nextMessage, type Connection } from '../transport/connection.ts';
import { realClock, type Clock, OpDeadline } from '../clock.ts';
import type { Transport } from '../transport/transport.ts';

export interface RequestOptions {
  signal?: AbortSignal;
  /** Default 5,000 ms. */
  timeoutMs?: number;
  localHost?: string;
  maxFrameBytes?: number;
  /** Clock of the timeout (and of the connection's timers). Default realClock. */
  clock?: Clock;
}

export async function request<T extends MessageType>(transport: Transport, to: HostPortLike, msg: Message, expect: readonly T[], opts: RequestOptions = {}): Promise<Msg<T>> {
  const clock = opts.clock ?? realClock;
  const d = new OpDeadline(clock, opts.timeoutMs ?? 5000, opts.signal);
  const signal = d.signal;
  try {
    const conn = await transport.connect(to, { signal, localHost: opts.localHost, connection: { maxFrameBytes: opts.maxFrameBytes, ...(opts.clock ? { clock } : {}) } });
    try {
      const reply = nextMessage(conn, expect, { signal });
      conn.send(msg);
      return await reply;
    } finally {
      conn.end();
    }
  } finally {
    d.done();
  }
}


/**
 * A peer's kept connection to the metaserver for its announces (the
 * metaserver keeps a connection opened by an accepted announce open for that
 * peer's next ones; see metaserver.ts). One request at a time, in order. A
 * connection that closed (idle, the metaserver restarted or over its limit)
 * is replaced on the next request; a request that finds its reused
 * connection closed is sent once more on a new one. After a failed connect,
 * new connects wait with backoff (250 ms doubling, at most `maxBackoffMs`); a
 * request meanwhile fails at once with `unreachable`.
 */
export class MetaChannel {
  private conn: Connection | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private failures = 0;
  private retryAt = 0;
  private closed = false;
  private readonly clock: Clock;

  /** `maxBackoffMs`: the longest wait between connects after failures (a peer passes its announce interval, so a restarted metaserver hears from it as soon as before). Default 15,000. */
  constructor(private readonly transport: Transport, private readonly meta: HostPortLike, private readonly o: { localHost?: string; clock?: Clock; maxBackoffMs?: number } = {}) {
    this.clock = o.clock ?? realClock;
  }

  /** Sends `msg` and waits for one of `expect` (an `error` answer rejects with its code). */
  request<T extends MessageType>(msg: Message, expect: readonly T[], o: { timeoutMs?: number } = {}): Promise<Msg<T>> {
    const run = this.tail.then(() => this.send(msg, expect, o.timeoutMs ?? 5000));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Closes the kept connection; later requests fail. */
  close(): void {
    this.closed = true;
    this.conn?.destroy();
    this.conn = undefined;
  }

  private async send<T extends MessageType>(msg: Message, expect: readonly T[], timeoutMs: number): Promise<Msg<T>> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new TreeshareError('aborted', 'the metaserver channel is closed');
      // On the kept connection (most announces) the timeout is a plain timer; a new connection's connect and answer share one deadline.
      const reused = this.conn !== undefined && !this.conn.closed;
      const d = reused ? undefined : new OpDeadline(this.clock, timeoutMs);
      try {
        const conn = d ? await this.connect(d.signal) : this.conn!;
        try {
          const reply = nextMessage(conn, expect, d ? { signal: d.signal } : { timeout: { clock: this.clock, ms: timeoutMs } });
          conn.send(msg);
          return await reply;
        } catch (err) {
          conn.destroy();
          if (this.conn === conn) this.conn = undefined;
          // The metaserver closed a kept connection (idle, restarted) just as we used it: once more on a new one.
          if (reused && attempt === 0 && err instanceof TreeshareError && err.code === 'connection-closed') continue;
          throw err;
        }
      } finally {
        d?.done();
      }
    }
  }

  private async connect(signal: AbortSignal): Promise<Connection> {
    const now = this.clock.now();
    if (now < this.retryAt) throw new TreeshareError('unreachable', `metaserver ${this.meta.host}:${this.meta.port} unreachable; next try in ${Math.ceil(this.retryAt - now)} ms`);
    try {
      const conn = await this.transport.connect(this.meta, { signal, localHost: this.o.localHost, connection: this.o.clock ? { clock: this.clock } : {} });
      this.failures = 0;
      if (this.closed) {
        conn.destroy();
        throw new TreeshareError('aborted', 'the metaserver channel is closed');
      }
      this.conn = conn;
      return conn;
    } catch (err) {
      if (!(err instanceof TreeshareError && err.code === 'aborted' && this.closed)) {
        this.failures++;
        this.retryAt = this.clock.now() + Math.min(this.o.maxBackoffMs ?? 15_000, 250 * 2 ** Math.min(this.failures - 1, 10));
      }
      throw err;
    }
  }
}

/** The metaserver's registry. */
export async function metaStatus(transport: Transport, meta: HostPortLike, opts: RequestOptions = {}): Promise<RegistryEntry[]> {
  const r = await request(transport, meta, { t: 'status', v: PROTOCOL_VERSION }, ['registry'], { maxFrameBytes: 256 * 1024 * 1024, ...opts });
  return r.peers;
}

/**
 * Tells the metaserver that peer `id` is gone: with `token` (its own), this
 * peer leaves; without, a report that a neighbour or a referral target is
 * dead, leaving or unresponsive (the metaserver probes it before acting).
 */
export async function metaLeave(transport: Transport, meta: HostPortLike, id: string, opts: RequestOptions & { token?: string } = {}): Promise<void> {
  const { token, ...rest } = opts;
  await request(transport, meta, { t: 'leave', v: PROTOCOL_VERSION, id, ...(token ? { token } : {}) }, ['ok'], { timeoutMs: 2000, ...rest });
}

/**
 * What answers at an address, for an expected holder:
 * - alive: the peer `id` itself (with `token`: it proved it holds that token);
 * - other: something answers, but not as that peer (another process took the address);
 * - leaving: the peer answers that it is leaving;
 * - dead: nothing answers in time.
 */
export type ProbeResult = 'alive' | 'other' | 'leaving' | 'dead';

export async function probePeer(transport: Transport, addr: HostPortLike, expect: { id: string; token?: string }, opts: RequestOptions = {}): Promise<ProbeResult> {
  const nonce = newNonce();
  try {
    const pong = await request(transport, addr, { t: 'ping', v: PROTOCOL_VERSION, n: 0, nonce }, ['pong'], { timeoutMs: 1500, ...opts });
    if (pong.id !== expect.id) return 'other';
    if (expect.token !== undefined && !sameSecret(pong.proof, proofOf(expect.token, nonce, expect.id))) return 'other';
    return 'alive';
  } catch (err) {
    if (err instanceof TreeshareError && err.code === 'aborted') throw err;
    if (err instanceof TreeshareError && err.code === 'leaving') return 'leaving';
    if (err instanceof TreeshareError && err.code === 'unexpected-message') return 'other';
    return 'dead';
  }
}

/** True when something answers `pong` at `addr` within the timeout. */
export async function probe(transport: Transport, addr: HostPortLike, opts: RequestOptions = {}): Promise<boolean> {
  try {
    await request(transport, addr, { t: 'ping', v: PROTOCOL_VERSION, n: 0 }, ['pong'], { timeoutMs: 1500, ...opts });
    return true;
  } catch (err) {
    if (err instanceof TreeshareError && err.code === 'aborted') throw err;
    return false;
  }
}
