/**
 * Peer: runs the treeshare protocol over a Transport.
 *
 * Lifecycle: start() listens; join() registers with the metaserver and joins
 * the tree (core/peer/join.ts); topo(), search() and download() flood the
 * tree and converge back (core/protocol/flood.ts); leave() hands the
 * children over and goes; stop() closes everything at once.
 *
 * Inbound connections open with one of: join (a newcomer or a reattaching
 * subtree), offer (a holder sending a file we asked for), ping (liveness
 * probe). Links to the parent and children carry size/depth updates,
 * heartbeats, floods and their answers; repair (parent gone) is in
 * repair.ts, floods in flood-handler.ts, downloads and uploads in transfers.ts.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { describeError, errorCode, LocalError, MetaserverUnreachableError, RemoteProtocolError, TreeshareError } from '../errors.ts';
import { request } from '../metaserver/client.ts';
import { PROTOCOL_VERSION, ID_RE, type Message, type Msg, type PeerRef } from '../protocol/messages.ts';
import { decideJoin, smallestChild } from '../protocol/placement.ts';
import type { Connection, FrameCounts } from '../transport/connection.ts';
import { tcpTransport } from '../transport/tcp.ts';
import { keyedTransport } from '../transport/auth.ts';
import type { HostPort, Listener, Transport } from '../transport/transport.ts';
import { assertName, listShared, shareRoot } from '../transfer/jail.ts';
import { sweepTemps } from '../transfer/receive.ts';
import { DEFAULT_PIECE_BYTES } from '../transfer/manifest.ts';
import { sweepPartials } from '../transfer/swarm.ts';
import { realClock } from '../clock.ts';
import { SwarmUploads } from './swarm-download.ts';
import { FloodHandler } from './flood-handler.ts';
import { joinOverlay, type JoinTimeline } from './join.ts';
import { Links, type Link } from './links.ts';
import { Repairer } from './repair.ts';
import { Transfers } from './transfers.ts';
import type { DownloadResult, PeerEvents, PeerOptions, PeerState, RepairRecord, SearchResult, TopoResult } from './types.ts';

type Resolved = Required<Omit<PeerOptions, 'transport' | 'connection' | 'advertiseHost' | 'share' | 'meta' | 'networkKey' | 'swarmTamper'>> & {
  share: string;
  meta: HostPort;
  advertiseHost: string;
};

/** Inbound connections a peer accepts at once unless told otherwise (--max-connections). */
export const PEER_MAX_CONNECTIONS = 1024;

export class Peer extends EventEmitter<PeerEvents> {
  readonly opts: Resolved;
  readonly transport: Transport;
  readonly links = new Links();
  depth = 0;
  joined = false;
  timeline: JoinTimeline | null = null;
  readonly repairs: RepairRecord[] = [];
  private listener: Listener | undefined;
  private conns = new Set<Connection>();
  readonly flood: FloodHandler;
  private readonly repairer: Repairer;
  readonly transfers: Transfers;
  private timers: NodeJS.Timeout[] = [];
  private announceTimer: NodeJS.Timeout | undefined;
  private lastReportedSubtree = 1;
  stopping = false;
  /** False while an orphaned subtree is reattaching: it must not announce itself as a root. */
  inTree = false;
  private lastAnnounceFailed = false;

  constructor(options: PeerOptions) {
    super();
    if (typeof options.id !== 'string' || !ID_RE.test(options.id)) {
      throw new LocalError('bad-option', `invalid peer id ${JSON.stringify(options.id)}: use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit`);
    }
    const host = options.host ?? '127.0.0.1';
    const maxChildren = options.maxChildren ?? 2;
    if (!Number.isInteger(maxChildren) || maxChildren < 1 || maxChildren > 1024) throw new LocalError('bad-option', `max children must be an integer from 1 to 1024, not ${maxChildren}`);
    this.opts = {
      id: options.id,
      host,
      advertiseHost: options.advertiseHost ?? (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host),
      port: options.port ?? 9001,
      share: options.share ?? path.join('shares', options.id),
      meta: options.meta ?? { host: '127.0.0.1', port: 9000 },
      maxChildren,
      maxRedirects: options.maxRedirects ?? 64,
      ttl: options.ttl ?? 255,
      floodTimeoutMs: options.floodTimeoutMs ?? 10_000,
      hopSlackMs: options.hopSlackMs ?? 20,
      offerTimeoutMs: options.offerTimeoutMs ?? 10_000,
      transferIdleTimeoutMs: options.transferIdleTimeoutMs ?? 15_000,
      fsync: options.fsync ?? true,
      preparingIntervalMs: options.preparingIntervalMs ?? 1000,
      maxUploads: options.maxUploads ?? 16,
      maxFileBytes: options.maxFileBytes ?? 64 * 1024 ** 3,
      seenCacheSize: options.seenCacheSize ?? 10_000,
      queryRatePerSec: options.queryRatePerSec ?? 1000,
      queryBurst: options.queryBurst ?? 2000,
      maxConnections: options.maxConnections ?? PEER_MAX_CONNECTIONS,
      joinRetries: options.joinRetries ?? 3,
      heartbeatMs: options.heartbeatMs ?? 1000,
      deadAfterMs: options.deadAfterMs ?? 4000,
      announceMs: options.announceMs ?? 5000,
      swarm: options.swarm ?? true,
      maxSources: options.maxSources ?? 8,
      swarmDepth: options.swarmDepth ?? 4,
      uploadRate: options.uploadRate ?? 0,
      minPieceBytes: options.minPieceBytes ?? DEFAULT_PIECE_BYTES,
      partialMaxAgeMs: options.partialMaxAgeMs ?? 7 * 24 * 3600 * 1000,
    };
    const base = options.transport ?? tcpTransport();
    this.transport = options.networkKey ? keyedTransport(base, options.networkKey) : base;
    this.connectionOptions = options.connection;
    this.flood = new FloodHandler(this);
    this.repairer = new Repairer(this);
    this.transfers = new Transfers(this);
    this.swarmUploads = new SwarmUploads({
      share: this.opts.share, clock: realClock, maxUploads: this.opts.maxUploads, uploadRate: this.opts.uploadRate, minPieceBytes: this.opts.minPieceBytes,
      hashingIntervalMs: this.opts.preparingIntervalMs, tamper: options.swarmTamper,
      log: (level, message) => this.log(level, message), uploaded: (u) => this.emit('uploaded', u),
    });
  }

  readonly swarmUploads: SwarmUploads;

  private readonly connectionOptions: PeerOptions['connection'];

  get id(): string {
    return this.opts.id;
  }

  /** This peer's identity as others see it. */
  get ref(): PeerRef {
    if (!this.listener) throw new LocalError('not-started', `peer ${this.id} is not started`);
    return { id: this.id, host: this.opts.advertiseHost, port: this.listener.address.port };
  }

  get address(): HostPort {
    return { host: this.opts.advertiseHost, port: this.ref.port };
  }

  /** The outgoing-bind host: our own host, so peers on 127.0.0.x talk from their own address. */
  get localHost(): string | undefined {
    const h = this.opts.host;
    return h === '0.0.0.0' || h === '::' ? undefined : h;
  }

  /** Listens on host:port. Checks the share folder exists. */
  async start(_o: { signal?: AbortSignal } = {}): Promise<HostPort> {
    if (this.listener) return this.address;
    const root = await shareRoot(this.opts.share);
    // Leftovers of downloads a crash cut short (nothing of ours is being written yet).
    const swept = await sweepTemps(root, this.id);
    if (swept.length) this.log('info', `removed ${swept.length} temporary file(s) left by an earlier run: ${swept.join(', ')}`);
    // Resumable swarm partials stay unless not advanced for partialMaxAgeMs.
    const stale = await sweepPartials(root, this.id, this.opts.partialMaxAgeMs);
    if (stale.length) this.log('info', `removed ${stale.length} stale partial download file(s): ${stale.join(', ')}`);
    this.listener = await this.transport.listen({
      host: this.opts.host,
      port: this.opts.port,
      connection: this.connectionOptions,
      maxConnections: this.opts.maxConnections,
      onConnection: (c) => this.onInbound(c),
    });
    if (this.opts.heartbeatMs > 0) this.every(this.opts.heartbeatMs, () => this.heartbeat());
    if (this.opts.announceMs > 0) this.every(this.opts.announceMs, () => this.joined && void this.announce());
    this.emit('listening', this.address);
    return this.address;
  }

  /** Registers and joins the tree; resolves with the join timeline. */
  async join(o: { signal?: AbortSignal } = {}): Promise<JoinTimeline> {
    if (!this.listener) await this.start(o);
    if (this.joined) throw new LocalError('already-joined', `peer ${this.id} has already joined`);
    const params = {
      transport: this.transport,
      meta: this.opts.meta,
      self: this.ref,
      maxChildren: this.opts.maxChildren,
      subtree: () => this.links.subtree(),
      localHost: this.localHost,
      maxRedirects: this.opts.maxRedirects,
      signal: o.signal,
      onReferral: (r: PeerRef | null) => this.emit('referral', r),
      onRedirect: (from: PeerRef, to: PeerRef) => this.emit('redirect', { from, to }),
    };
    // An unreachable metaserver is retried with backoff (joinRetries times), each retry logged.
    let out: Awaited<ReturnType<typeof joinOverlay>>;
    for (let attempt = 0, delay = 250; ; attempt++, delay *= 2) {
      try {
        out = await joinOverlay(params);
        break;
      } catch (err) {
        if (attempt >= this.opts.joinRetries || !(err instanceof MetaserverUnreachableError) || o.signal?.aborted) throw err;
        this.log('warn', `${(err as Error).message}; retrying in ${delay} ms (attempt ${attempt + 2} of ${this.opts.joinRetries + 1})`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    this.attach(out.conn, out.timeline);
    this.timeline = out.timeline;
    this.joined = true;
    this.emit('joined', out.timeline);
    return out.timeline;
  }

  /** Installs `conn` as the parent link (null: this peer is the root). */
  attach(conn: Connection | null, t: JoinTimeline): void {
    if (conn && t.parent) {
      const link: Link = { ref: t.parent, role: 'parent', conn, subtree: 0, lastHeard: performance.now(), leaving: false };
      this.links.parent = link;
      this.track(conn);
      this.serveLink(link);
    } else {
      this.links.parent = null;
    }
    this.setDepth(t.parent ? t.depth : 0);
    this.inTree = true;
    this.lastReportedSubtree = this.links.subtree();
    this.scheduleAnnounce(0);
  }

  state(): PeerState {
    return {
      id: this.id,
      address: this.address,
      joined: this.joined,
      parent: this.links.parent?.ref ?? null,
      children: [...this.links.children.values()].map((c) => ({ ...c.ref, subtree: c.subtree })),
      depth: this.depth,
      subtree: this.links.subtree(),
      timeline: this.timeline,
      repairs: [...this.repairs],
    };
  }

  async files(): Promise<{ name: string; size: number }[]> {
    return listShared(this.opts.share);
  }

  topo(o: { signal?: AbortSignal } = {}): Promise<TopoResult> {
    return this.flood.topo(o);
  }

  /** A refused name rejects (never throws synchronously), like every async method. */
  async search(name: string, o: { signal?: AbortSignal } = {}): Promise<SearchResult> {
    assertName(name);
    return this.flood.search(name, 'search', this.newQid(), o);
  }

  /**
   * Finds `name` and downloads it from the first holder that offers it,
   * verified by size and SHA-256, into the share folder (see transfers.ts).
   */
  download(name: string, o: { signal?: AbortSignal } = {}): Promise<DownloadResult> {
    return this.transfers.download(name, o);
  }

  /** Leaves gracefully: children get a new parent, the metaserver and neighbours are told. */
  async leave(o: { signal?: AbortSignal } = {}): Promise<void> {
    await this.repairer.leave(o.signal);
  }

  /** Closes everything at once (no goodbyes); graceful lets queued frames flush first. */
  async stop(o: { graceful?: boolean } = {}): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.announceTimer) clearTimeout(this.announceTimer);
    this.transfers.abortAll();
    this.swarmUploads.abortAll();
    this.flood.clear();
    const closing = this.listener?.close();
    for (const c of this.conns) {
      if (o.graceful) c.end();
      else c.destroy();
    }
    for (const c of this.conns) addFrames(this.closedFrames, c.frames);
    this.conns.clear();
    await closing;
    this.links.parent = null;
    this.links.children.clear();
  }

  // ---- internals shared with flood-handler.ts and repair.ts ----

  log(level: 'info' | 'warn', message: string): void {
    this.emit('log', { level, message });
  }

  newQid(): string {
    return `${this.id}:${randomBytes(6).toString('hex')}`;
  }

  setDepth(depth: number): void {
    this.depth = depth;
    for (const c of this.links.children.values()) c.conn.send({ t: 'depth', depth });
  }

  /** Tells the parent our subtree size when it changed. */
  reportSubtree(): void {
    const n = this.links.subtree();
    if (n !== this.lastReportedSubtree && this.links.parent) this.links.parent.conn.send({ t: 'size', subtree: n });
    this.lastReportedSubtree = n;
  }

  scheduleAnnounce(delayMs = 20): void {
    if (this.stopping || this.announceTimer) return;
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined;
      void this.announce();
    }, delayMs);
  }

  async announce(): Promise<void> {
    if (this.stopping || !this.inTree) return;
    try {
      await request(this.transport, this.opts.meta, {
        t: 'announce', v: PROTOCOL_VERSION, ...this.ref, parent: this.links.parent?.ref.id ?? null, depth: this.depth,
        children: this.links.children.size, maxChildren: this.opts.maxChildren,
      }, ['ok'], { localHost: this.localHost, timeoutMs: 3000 });
      if (this.lastAnnounceFailed) this.log('info', `metaserver ${this.opts.meta.host}:${this.opts.meta.port} reachable again`);
      this.lastAnnounceFailed = false;
    } catch (err) {
      if (errorCode(err) === 'second-root') {
        // Reachable, but this root's tree is the smaller of two: merge into the other (repair.ts).
        this.lastAnnounceFailed = false;
        this.repairer.merge(describeError(err));
        return;
      }
      if (!this.lastAnnounceFailed && !this.stopping) this.log('warn', `cannot announce to the metaserver: ${describeError(err)}`);
      this.lastAnnounceFailed = true;
    }
  }

  /** Frames counted by connections that have closed (see wireFrames). */
  private closedFrames: { sent: FrameCounts; received: FrameCounts } = { sent: {}, received: {} };

  /**
   * Frames this peer's overlay connections (links, inbound requests) wrote and
   * read since start, by message type, as counted at the transport; closed
   * connections included. Transfer connections the peer opens are not counted.
   */
  wireFrames(): { sent: FrameCounts; received: FrameCounts } {
    const out = { sent: { ...this.closedFrames.sent }, received: { ...this.closedFrames.received } };
    for (const c of this.conns) addFrames(out, c.frames);
    return out;
  }

  track(conn: Connection): void {
    this.conns.add(conn);
    conn.on('close', () => {
      if (this.conns.delete(conn)) addFrames(this.closedFrames, conn.frames);
    });
    conn.on('protocol-error', (e) => {
      this.emit('protocol-error', { remote: conn.remote, code: e.code, message: e.message });
      this.log('warn', `closed ${conn.remote}: ${e.message} [${e.code}]`);
    });
  }

  /** Serves requests on a parent or child link until it closes. */
  serveLink(link: Link): void {
    const { conn } = link;
    conn.on('message', (m) => {
      link.lastHeard = performance.now();
      try {
        this.onLinkMessage(link, m);
      } catch (err) {
        conn.fail(err);
      }
    });
    conn.on('close', () => this.onLinkClosed(link));
  }

  private onLinkMessage(link: Link, m: Message): void {
    switch (m.t) {
      case 'ping':
        link.conn.send({ t: 'pong', n: m.n });
        return;
      case 'pong':
        return;
      case 'size':
        if (link.role !== 'child') throw new RemoteProtocolError('unexpected-message', 'only a child reports its subtree size');
        link.subtree = m.subtree;
        this.reportSubtree();
        return;
      case 'depth':
        if (link.role !== 'parent') throw new RemoteProtocolError('unexpected-message', 'only a parent reports its depth');
        if (m.depth + 1 !== this.depth) {
          this.setDepth(m.depth + 1);
          this.scheduleAnnounce();
        }
        return;
      case 'leaving':
        link.leaving = true;
        this.repairer.onLeaving(link, m);
        return;
      case 'topo':
      case 'query':
      case 'topo-reply':
      case 'query-reply':
        this.flood.onMessage(link, m);
        return;
      case 'error':
        this.log('warn', `${link.role} ${link.ref.id} reported: ${m.message} [${m.code}]`);
        link.conn.end();
        return;
      default:
        throw new RemoteProtocolError('unexpected-message', `"${m.t}" is not valid on an overlay link`);
    }
  }

  private onLinkClosed(link: Link): void {
    if (this.detachParent(link)) {
      if (!this.stopping) this.repairer.onParentLost(link);
    } else if (this.removeChild(link) && !this.stopping) {
      this.repairer.onChildLost(link);
    }
  }

  /** Drops the parent link (it left or its connection is gone); false if `link` is not the parent. */
  detachParent(link: Link): boolean {
    if (this.links.parent !== link) return false;
    this.links.parent = null;
    this.inTree = false;
    this.flood.neighbourGone(link.ref.id);
    return true;
  }

  /** Drops a child link, tells the parent and the metaserver; false if `link` is not a child. */
  removeChild(link: Link): boolean {
    if (this.links.children.get(link.ref.id) !== link) return false;
    this.links.children.delete(link.ref.id);
    this.flood.neighbourGone(link.ref.id);
    if (this.stopping) return true;
    const reason = link.leaving ? 'left' : 'connection lost';
    this.emit('child-left', { id: link.ref.id, reason });
    this.log('info', `child ${link.ref.id} ${reason}`);
    this.reportSubtree();
    this.scheduleAnnounce();
    return true;
  }

  /** When heartbeat() last ran (first: construction; a late first tick only skips one judgement). */
  private lastBeat = performance.now();

  private heartbeat(): void {
    const now = performance.now();
    // After a stall of our own (GC, overload, SIGSTOP), frames from live neighbours may still sit
    // unread in the sockets: ping only, and judge silence on the next tick.
    const stalled = now - this.lastBeat > Math.max(2 * this.opts.heartbeatMs, this.opts.deadAfterMs / 2);
    this.lastBeat = now;
    for (const l of this.links.all()) {
      if (!stalled && now - l.lastHeard > this.opts.deadAfterMs) {
        this.log('warn', `${l.role} ${l.ref.id} silent for ${Math.round(now - l.lastHeard)} ms; declaring it dead`);
        this.repairer.silent.add(l); // already known unresponsive: repair skips the probe
        l.conn.destroy(new TreeshareError('heartbeat-timeout', `${l.ref.id} missed heartbeats`));
      } else {
        l.conn.send({ t: 'ping', n: Math.floor(now) });
      }
    }
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref?.();
    this.timers.push(t);
  }

  private onInbound(conn: Connection): void {
    this.track(conn);
    conn.once('message', (m) => {
      try {
        this.onOpener(conn, m);
      } catch (err) {
        conn.fail(err);
      }
    });
  }

  private onOpener(conn: Connection, m: Message): void {
    switch (m.t) {
      case 'join':
        return this.onJoinRequest(conn, m);
      case 'offer':
        void this.transfers.onOffer(conn, m);
        return;
      case 'preparing':
        this.transfers.onPreparing(conn, m);
        return;
      case 'swarm-open':
        if (this.stopping) throw new TreeshareError('leaving', `peer ${this.id} is leaving`);
        this.swarmUploads.serve(conn, m);
        return;
      case 'ping':
        conn.send({ t: 'pong', n: m.n });
        conn.end();
        return;
      default:
        throw new RemoteProtocolError('unexpected-message', `a peer does not handle "${m.t}" as a first message`);
    }
  }

  private onJoinRequest(conn: Connection, m: Msg<'join'>): void {
    if (this.stopping) throw new TreeshareError('leaving', `peer ${this.id} is leaving`);
    const children = [...this.links.children.values()].map((c) => ({ ref: c.ref, subtree: c.subtree }));
    const ancestors = new Set<string>(this.links.parent ? [this.links.parent.ref.id] : []);
    const d = decideJoin({ id: this.id, maxChildren: this.opts.maxChildren, ancestors }, children, m);
    if (d.kind === 'refuse') throw new TreeshareError(d.code, d.message);
    if (d.kind === 'redirect') {
      // Prefer a child heard from lately: one silent for two heartbeats may be frozen or gone.
      const now = performance.now();
      const fresh = this.opts.heartbeatMs > 0 ? children.filter((c) => now - (this.links.children.get(c.ref.id)?.lastHeard ?? 0) <= 2 * this.opts.heartbeatMs) : children;
      const to = fresh.some((c) => c.ref.id === d.to.id) || fresh.length === 0 ? d.to : smallestChild(fresh)!.ref;
      conn.send({ t: 'redirect', to });
      conn.end();
      return;
    }
    const old = this.links.children.get(m.id);
    if (old) {
      this.links.children.delete(m.id);
      old.conn.destroy();
    }
    const link: Link = { ref: { id: m.id, host: m.host, port: m.port }, role: 'child', conn, subtree: m.subtree, lastHeard: performance.now(), leaving: false };
    this.links.children.set(m.id, link);
    this.serveLink(link);
    conn.send({ t: 'accept', ...this.ref, depth: this.depth });
    this.emit('child-joined', link.ref);
    this.reportSubtree();
    this.scheduleAnnounce();
  }

}

function addFrames(into: { sent: FrameCounts; received: FrameCounts }, from: { sent: FrameCounts; received: FrameCounts }): void {
  for (const dir of ['sent', 'received'] as const) {
    for (const [t, n] of Object.entries(from[dir]) as [keyof FrameCounts, number][]) into[dir][t] = (into[dir][t] ?? 0) + n;
  }
}
