/**
 * Metaserver: the bootstrap point (docs/PROTOCOL.md, flows A/B). A connection carries one
 * request (register, announce, leave, status, ping) and one answer, then
 * closes; except that a connection opened by an accepted `announce` stays
 * open for that peer's later announces (same id, one at a time), so a peer
 * keeps one metaserver connection instead of one per announce. Such kept
 * connections are closed when idle for `announceIdleMs` and are limited to
 * `maxConnections` minus a reserve left for one-shot requests (over it, an
 * announce is answered and its connection closed, as before). It never
 * carries searches or files.
 *
 * Each register is answered with a secret token that the peer must show on
 * every announce and on its own leave; reports about other peers (leave
 * without the token) are checked by probing (core/metaserver/service.ts).
 * A duplicate id or address is refused while its holder still proves itself
 * there; otherwise the old entry is dropped and the newcomer takes the id
 * (a peer restarted after a crash). A root whose announce shows
 * it roots a second, smaller tree is answered `second-root` and rejoins
 * (see Registry.rivalRoot and core/peer/repair.ts). Peers re-announce
 * periodically; entries not heard from within `peerTimeoutMs` are dropped,
 * and a restarted metaserver rebuilds its registry from those announcements.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { RemoteProtocolError } from '../errors.ts';
import type { Message, PeerRef, RegistryEntry } from '../protocol/messages.ts';
import { isPolicy, type Policy } from '../protocol/referral.ts';
import type { Connection, ConnectionOptions } from '../transport/connection.ts';
import { tcpTransport } from '../transport/tcp.ts';
import { keyedTransport, MIN_KEY_BYTES } from '../transport/auth.ts';
import type { HostPort, Listener, Transport } from '../transport/transport.ts';
import { probePeer } from './client.ts';
import { realClock, type Clock, type TimerHandle } from '../clock.ts';
import { Registry } from './registry.ts';
import { MetaService } from './service.ts';
import { LocalError } from '../errors.ts';

export interface MetaserverOptions {
  /** Bind host. Default 0.0.0.0. */
  host?: string;
  /** Port; 0 picks a free one. Default 9000. */
  port?: number;
  /** Referral policy. Default least-loaded. */
  policy?: Policy;
  transport?: Transport;
  /** Shared network key: every connection runs over TLS with this pre-shared key (at least 32 bytes; see docs/SECURITY.md). Default none. */
  networkKey?: string | Buffer;
  /** Random source for the `random` policy, returns [0,1). Default Math.random. */
  rng?: () => number;
  /**
   * Issues register tokens. SIMULATION ONLY (the memory runner, so a run is a
   * function of its seed): tokens from a seeded source are guessable. Default:
   * 128 bits of crypto randomness.
   */
  tokenSource?: () => string;
  /**
   * Token key, at least 32 bytes, the same across restarts (`--token-key-file`): tokens are
   * issued under it (with their issue time), and after a restart an id is taken back only
   * with a token issued under it for that id (see MetaService). Default: one random key per
   * process, shared by every Metaserver in it (restarts within a process are safe); none
   * with a `tokenSource` (simulation).
   */
  tokenKey?: string | Buffer;
  /** Entries not announced for this long are dropped, ms. Default 30,000; 0 disables. */
  peerTimeoutMs?: number;
  /** How long a referral counts against a peer's free slots until confirmed, ms. Default 5,000. */
  pendingTtlMs?: number;
  /** Most simultaneous connections. Default 10,000. */
  maxConnections?: number;
  /**
   * A kept announce connection (see above) silent for this long is closed, ms
   * (peers announce every 5 s by default). Default 30,000; 0 keeps no announce
   * connection open (every announce is one-shot).
   */
  announceIdleMs?: number;
  connection?: ConnectionOptions;
  /** Time source of registry times, the stale-entry sweep and probe timeouts. Default realClock (the memory runner passes its SimClock). */
  clock?: Clock;
}

export interface MetaserverEvents {
  listening: [HostPort];
  register: [{ id: string; host: string; port: number; referral: PeerRef | null }];
  announce: [{ id: string; parent: string | null; depth: number; isNew: boolean }];
  leave: [{ id: string }];
  drop: [{ id: string; reason: string }];
  /** A root announced while a larger tree exists; it was told to rejoin (merge). */
  'second-root': [{ id: string; rival: string }];
  /** A connection misbehaved; it was answered with an error and closed. */
  'protocol-error': [{ remote: string; code: string; message: string }];
}

export class Metaserver extends EventEmitter<MetaserverEvents> {
  readonly policy: Policy;
  private readonly transport: Transport;
  private readonly registry: Registry;
  private readonly service: MetaService;
  private listener: Listener | undefined;
  private conns = new Set<Connection>();
  /** Kept announce connections: the id they announce for and when they last did (simulated or real ms). */
  private sessions = new Map<Connection, { id: string; at: number }>();
  private sweep: TimerHandle | undefined;
  private idleSweep: TimerHandle | undefined;
  private readonly clock: Clock;
  private readonly rng: () => number;
  /** Date.now() at clock.now() = 0: wall-clock timestamps shown to users (under a SimClock: simulated, counted from the real start). */
  private readonly t0: number;

  constructor(private readonly opts: MetaserverOptions = {}) {
    super();
    const policy = opts.policy ?? 'least-loaded';
    if (!isPolicy(policy)) throw new LocalError('bad-option', `unknown referral policy ${JSON.stringify(policy)} (root, random or least-loaded)`);
    this.policy = policy;
    const base = opts.transport ?? tcpTransport();
    this.transport = opts.networkKey ? keyedTransport(base, opts.networkKey) : base;
    this.registry = new Registry(opts.pendingTtlMs ?? 5000);
    this.rng = opts.rng ?? Math.random;
    this.clock = opts.clock ?? realClock;
    this.t0 = Date.now() - this.clock.now();
    this.service = new MetaService(this.registry, {
      policy, rng: this.rng, now: () => this.clock.now(), wallNow: () => this.wallNow(),
      probe: (a, expect) => probePeer(this.transport, a, expect, { timeoutMs: 1500, ...(opts.clock ? { clock: this.clock } : {}) }),
      events: {
        register: (e) => this.emit('register', e),
        announce: (e) => this.emit('announce', e),
        leave: (e) => this.emit('leave', e),
        drop: (e) => this.emit('drop', e),
        secondRoot: (e) => this.emit('second-root', e),
      },
      ...(opts.tokenSource ? { newToken: opts.tokenSource } : {}),
      ...(opts.tokenKey !== undefined ? { tokenKey: tokenKeyOf(opts.tokenKey) } : opts.tokenSource ? {} : { tokenKey: processTokenKey() }),
    });
  }

  get address(): HostPort {
    if (!this.listener) throw new LocalError('not-started', 'metaserver is not started');
    return this.listener.address;
  }

  async start(_opts: { signal?: AbortSignal } = {}): Promise<HostPort> {
    this.listener = await this.transport.listen({
      host: this.opts.host ?? '0.0.0.0',
      port: this.opts.port ?? 9000,
      maxConnections: this.opts.maxConnections,
      connection: this.opts.connection,
      onConnection: (c) => this.onConnection(c),
    });
    const timeout = this.opts.peerTimeoutMs ?? 30_000;
    if (timeout > 0) {
      this.sweep = this.clock.setInterval(() => {
        for (const e of this.registry.stale(this.clock.now(), timeout)) this.drop(e.id, `not heard from in ${Math.round(timeout / 1000)} s`);
      }, Math.max(100, Math.floor(timeout / 4)));
      this.sweep.unref();
    }
    const idle = this.announceIdleMs;
    if (idle > 0) {
      this.idleSweep = this.clock.setInterval(() => this.closeIdle(idle), Math.max(250, Math.floor(idle / 4)));
      this.idleSweep.unref();
    }
    this.emit('listening', this.listener.address);
    return this.listener.address;
  }

  async stop(): Promise<void> {
    if (this.sweep) this.clock.clearInterval(this.sweep);
    if (this.idleSweep) this.clock.clearInterval(this.idleSweep);
    this.sessions.clear();
    const closing = this.listener?.close();
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    await closing;
  }

  registryList(): RegistryEntry[] {
    return this.registry.list();
  }

  /** Drops a peer known dead (also used by peers' reports and the timeout sweep). */
  drop(id: string, reason: string): void {
    this.service.drop(id, reason);
  }

  private onConnection(conn: Connection): void {
    this.conns.add(conn);
    conn.on('close', () => {
      this.conns.delete(conn);
      this.sessions.delete(conn);
    });
    conn.on('protocol-error', (e) => this.emit('protocol-error', { remote: conn.remote, code: e.code, message: e.message }));
    conn.once('message', (m) => {
      this.handle(conn, m).catch((err) => {
        conn.fail(err);
      });
    });
  }

  private async handle(conn: Connection, m: Message): Promise<void> {
    switch (m.t) {
      case 'register':
        conn.send(await this.service.register(m));
        return conn.end();
      case 'announce':
        await this.service.announce(m);
        conn.send({ t: 'ok' });
        return this.keep(conn, m.id) ? undefined : conn.end();
      case 'leave':
        await this.service.leave(m);
        conn.send({ t: 'ok' });
        return conn.end();
      case 'status':
        conn.send({ t: 'registry', peers: this.registry.list() });
        return conn.end();
      case 'ping':
        conn.send({ t: 'pong', n: m.n });
        return conn.end();
      default:
        throw new RemoteProtocolError('unexpected-message', `the metaserver does not handle "${m.t}"`);
    }
  }

  private get announceIdleMs(): number {
    return this.opts.announceIdleMs ?? 30_000;
  }

  /** Kept announce connections allowed: the connection limit less a reserve for one-shot requests (registers, reports, status). */
  private get maxSessions(): number {
    const max = this.opts.maxConnections ?? 10_000;
    return Math.max(0, max - Math.min(1000, Math.ceil(max / 10)));
  }

  /**
   * After an accepted announce: keeps `conn` open for `id`'s next announce, if
   * kept connections are on and below their limit. The next message must be an
   * announce for the same id (its token is checked again by the service); anything
   * else is answered with an error and closes the connection. (A register is
   * answered and closed as before: one-shot clients wait for that close.)
   */
  private keep(conn: Connection, id: string): boolean {
    const known = this.sessions.get(conn);
    if (!known && (this.announceIdleMs <= 0 || this.sessions.size >= this.maxSessions || conn.closed)) return false;
    if (known) known.at = this.clock.now();
    else this.sessions.set(conn, { id, at: this.clock.now() });
    conn.once('message', (m) => {
      const run = m.t === 'announce' && m.id === id
        ? this.handle(conn, m)
        : Promise.reject(new RemoteProtocolError('unexpected-message', m.t === 'announce' ? `this connection announces for ${id}, not ${m.id}` : `only announces for ${id} may follow an announce, not "${m.t}"`));
      run.catch((err) => {
        this.sessions.delete(conn);
        conn.fail(err);
      });
    });
    return true;
  }

  /** Closes kept announce connections silent for `idleMs` (their peers reconnect on their next announce). */
  private closeIdle(idleMs: number): void {
    const now = this.clock.now();
    for (const [conn, s] of this.sessions) {
      if (now - s.at <= idleMs) continue;
      this.sessions.delete(conn);
      conn.end();
    }
  }

  private wallNow(): number {
    return Math.round(this.t0 + this.clock.now());
  }
}

let processKey: Buffer | undefined;
/** The token key of Metaservers given none: random, made once per process. */
function processTokenKey(): Buffer {
  return (processKey ??= randomBytes(32));
}

/** The token key as bytes; shorter than 32 bytes is refused. */
function tokenKeyOf(k: string | Buffer): Buffer {
  const b = typeof k === 'string' ? Buffer.from(k, 'utf8') : k;
  if (b.length < MIN_KEY_BYTES) throw new LocalError('bad-option', `the token key must be at least ${MIN_KEY_BYTES} bytes, not ${b.length}`);
  return b;
}
