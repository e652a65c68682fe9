/**
 * Metaserver: the bootstrap point (docs/PROTOCOL.md, flows A/B). Each connection carries one
 * request (register, announce, leave, status, ping) and one answer, then
 * closes. It never carries searches or files.
 *
 * A duplicate id is refused while its holder is alive; if the registered
 * holder no longer answers a ping, the old entry is dropped and the newcomer
 * takes the id (a peer restarted after a crash). A root whose announce shows
 * it roots a second, smaller tree is answered `second-root` and rejoins
 * (see Registry.rivalRoot and core/peer/repair.ts). Peers re-announce
 * periodically; entries not heard from within `peerTimeoutMs` are dropped,
 * and a restarted metaserver rebuilds its registry from those announcements.
 */
import { EventEmitter } from 'node:events';
import { RemoteProtocolError, TreeshareError } from '../errors.ts';
import { addrKey, type Message, type Msg, type PeerRef, type RegistryEntry } from '../protocol/messages.ts';
import { isPolicy, type Policy } from '../protocol/referral.ts';
import type { Connection, ConnectionOptions } from '../transport/connection.ts';
import { tcpTransport } from '../transport/tcp.ts';
import { keyedTransport } from '../transport/auth.ts';
import type { HostPort, Listener, Transport } from '../transport/transport.ts';
import { probe } from './client.ts';
import { Registry } from './registry.ts';
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
  /** Entries not announced for this long are dropped, ms. Default 30,000; 0 disables. */
  peerTimeoutMs?: number;
  /** How long a referral counts against a peer's free slots until confirmed, ms. Default 5,000. */
  pendingTtlMs?: number;
  /** Most simultaneous connections. Default 10,000. */
  maxConnections?: number;
  connection?: ConnectionOptions;
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
  private listener: Listener | undefined;
  private conns = new Set<Connection>();
  private sweep: NodeJS.Timeout | undefined;
  private readonly rng: () => number;
  private readonly t0 = Date.now() - performance.now();

  constructor(private readonly opts: MetaserverOptions = {}) {
    super();
    const policy = opts.policy ?? 'least-loaded';
    if (!isPolicy(policy)) throw new LocalError('bad-option', `unknown referral policy ${JSON.stringify(policy)} (root, random or least-loaded)`);
    this.policy = policy;
    const base = opts.transport ?? tcpTransport();
    this.transport = opts.networkKey ? keyedTransport(base, opts.networkKey) : base;
    this.registry = new Registry(opts.pendingTtlMs ?? 5000);
    this.rng = opts.rng ?? Math.random;
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
      this.sweep = setInterval(() => {
        for (const e of this.registry.stale(performance.now(), timeout)) this.drop(e.id, `not heard from in ${Math.round(timeout / 1000)} s`);
      }, Math.max(100, Math.floor(timeout / 4)));
      this.sweep.unref?.();
    }
    this.emit('listening', this.listener.address);
    return this.listener.address;
  }

  async stop(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
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
    if (this.registry.remove(id)) this.emit('drop', { id, reason });
  }

  private onConnection(conn: Connection): void {
    this.conns.add(conn);
    conn.on('close', () => this.conns.delete(conn));
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
        return this.onRegister(conn, m);
      case 'announce': {
        const known = this.registry.get(m.id);
        if (known && (known.host !== m.host || known.port !== m.port)) {
          throw new TreeshareError('id-mismatch', `peer id ${m.id} is registered at ${addrKey(known)}, not ${addrKey(m)}`);
        }
        // An unknown id (e.g. after a metaserver restart) is added only if something answers at its address.
        if (!known && !(await probe(this.transport, m))) {
          throw new TreeshareError('unreachable', `announced address ${addrKey(m)} of ${m.id} does not answer`);
        }
        const { isNew } = this.registry.announce(m, performance.now(), this.wallNow());
        this.emit('announce', { id: m.id, parent: m.parent, depth: m.depth, isNew });
        // Two trees (a frozen root woke up; an orphan became root while the registry was rebuilt):
        // the smaller root is told to rejoin, if the larger one is really there.
        const rival = this.registry.rivalRoot(m.id);
        // Re-checked after the probe, so of two roots announcing at once only one is told.
        if (rival && (await probe(this.transport, rival, { timeoutMs: 1000 })) && this.registry.rivalRoot(m.id)) {
          this.registry.markRejoining(m.id);
          this.emit('second-root', { id: m.id, rival: rival.id });
          throw new TreeshareError('second-root', `${m.id} roots a second tree; ${rival.id} at ${addrKey(rival)} roots the larger one: rejoin through the metaserver`);
        }
        conn.send({ t: 'ok' });
        return conn.end();
      }
      case 'leave': {
        const known = this.registry.remove(m.id);
        if (known) this.emit('leave', { id: m.id });
        conn.send({ t: 'ok' });
        return conn.end();
      }
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

  private async onRegister(conn: Connection, m: Msg<'register'>): Promise<void> {
    const existing = this.registry.get(m.id);
    if (existing) {
      const sameAddr = existing.host === m.host && existing.port === m.port;
      // Same id at the same address: the old process is gone (the port is taken by the new one).
      const alive = !sameAddr && (await probe(this.transport, existing));
      if (alive) {
        throw new TreeshareError('duplicate-id', `peer id ${m.id} is already registered by a live peer at ${addrKey(existing)}`);
      }
      this.drop(m.id, sameAddr ? 're-registered from the same address' : 'not answering; id taken over');
    }
    const holder = this.registry.byAddress(m.host, m.port);
    if (holder && holder.id !== m.id) this.drop(holder.id, `its address ${addrKey(holder)} was re-registered by ${m.id}`);
    const { referral } = this.registry.register(m, this.policy, performance.now(), this.wallNow(), this.rng);
    const ref = referral ? { id: referral.id, host: referral.host, port: referral.port } : null;
    conn.send({ t: 'registered', id: m.id, referral: ref, peers: this.registry.size });
    conn.end();
    this.emit('register', { id: m.id, host: m.host, port: m.port, referral: ref });
  }

  private wallNow(): number {
    return Math.round(this.t0 + performance.now());
  }
}

