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
import { realClock, type Clock, type TimerHandle } from '../clock.ts';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { backoffDelays, retry } from '../backoff.ts';
import { describeError, errorCode, LocalError, MetaserverUnreachableError, RemoteProtocolError, TreeshareError } from '../errors.ts';
import { MetaChannel, request } from '../metaserver/client.ts';
import { PATH_MAX, PROTOCOL_VERSION, ID_RE, type Message, type Msg, type PeerRef } from '../protocol/messages.ts';
import { proofOf, tagOf } from '../protocol/proof.ts';
import { heartbeatFrame, type Frame } from '../protocol/codec.ts';
import { decideJoin, RedirectLedger, smallestChild } from '../protocol/placement.ts';
import type { Connection, FrameCounts } from '../transport/connection.ts';
import { tcpTransport } from '../transport/tcp.ts';
import { keyedTransport } from '../transport/auth.ts';
import type { HostPort, Listener, Transport } from '../transport/transport.ts';
import { assertName } from '../transfer/jail.ts';
import { FsStore, type ShareStore } from '../transfer/store.ts';
import { DEFAULT_PIECE_BYTES } from '../transfer/manifest.ts';
import { MIN_RATE_BYTES_PER_SEC } from '../transfer/receive.ts';
import { sweepPartials } from '../transfer/swarm.ts';
import { SwarmUploads } from './swarm-download.ts';
import type { PeerContext, ResolvedPeerOptions } from './context.ts';
import { FloodHandler, type FloodDeps } from './flood-handler.ts';
import { Lifecycle } from './lifecycle.ts';
import { joinOverlay, type JoinTimeline } from './join.ts';
import { Links, type Link } from './links.ts';
import { Repairer, type RepairDeps } from './repair.ts';
import { Transfers, type TransferDeps } from './transfers.ts';
import type { DownloadResult, PeerEvents, PeerOptions, PeerState, RepairRecord, SearchResult, TopoResult } from './types.ts';

type Resolved = ResolvedPeerOptions;

/** Inbound connections a peer accepts at once unless told otherwise (--max-connections). */
export const PEER_MAX_CONNECTIONS = 1024;

export class Peer extends EventEmitter<PeerEvents> {
  readonly opts: Resolved;
  readonly transport: Transport;
  readonly links = new Links();
  depth = 0;
  /** Where this peer is (joined, in the tree, stopping, reattaching): changed only through its transitions (lifecycle.ts). */
  readonly life = new Lifecycle();
  timeline: JoinTimeline | null = null;
  readonly repairs: RepairRecord[] = [];
  private listener: Listener | undefined;
  private conns = new Set<Connection>();
  readonly flood: FloodHandler;
  private readonly repairer: Repairer;
  readonly transfers: Transfers;
  /** What the helpers see of this peer (context.ts). */
  private readonly ctx: PeerContext;
  /** Every now(), timer and timeout of this peer (realClock unless a simulation passes its SimClock). */
  readonly clock: Clock;
  private readonly rng: (() => number) | undefined;
  private timers: TimerHandle[] = [];
  private announceTimer: TimerHandle | undefined;
  private lastReportedSubtree = 1;
  private lastAnnounceFailed = false;
  /** The kept metaserver connection for announces (made by the first announce). */
  private metaChannel: MetaChannel | undefined;
  /** An announce is in flight; `announceAgain`: another was asked for meanwhile (sent when it ends, with the state then). */
  private announcing: Promise<void> | undefined;
  private announceAgain = false;
  /** Secret issued by the metaserver at register: shown on announce and leave, and proves us to its probes. */
  token: string | undefined;
  /** Tags of our ancestors, root first, parent last (see messages.ts PathTag): JOINs from them are refused. */
  private rootPath: string[] = [];
  /** `rootPath` as a Set when it is long (made by setDepth; a short path is scanned). */
  private rootPathSet: Set<string> | undefined;
  /** Newcomers redirected into each child's subtree that its reports do not show yet (made by the first redirect). */
  private ledger: RedirectLedger | undefined;

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
      minRateBytesPerSec: options.minRateBytesPerSec ?? MIN_RATE_BYTES_PER_SEC,
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
      swarmDepth: options.swarmDepth ?? 0,
      swarmAdaptive: options.swarmAdaptive ?? true,
      uploadRate: options.uploadRate ?? 0,
      minPieceBytes: options.minPieceBytes ?? DEFAULT_PIECE_BYTES,
      partialMaxAgeMs: options.partialMaxAgeMs ?? 7 * 24 * 3600 * 1000,
    };
    this.clock = options.clock ?? realClock;
    this.rng = options.rng;
    this.lastBeat = this.clock.now();
    const base = options.transport ?? tcpTransport();
    this.transport = options.networkKey ? keyedTransport(base, options.networkKey) : base;
    this.connectionOptions = options.connection;
    this.store = options.store ?? new FsStore(this.opts.share);
    // The helpers' views of this peer are small objects with prototype methods, not closures: a peer
    // made ~25 closures here (each, under tsx's keep-names, with its own property dictionary: ~6 KiB a peer).
    this.ctx = new PeerView(this);
    this.flood = new FloodHandler(this.ctx, new FloodHooks(this));
    this.transfers = new Transfers(this.ctx, new TransferHooks(this));
    this.repairer = new Repairer(this.ctx, new RepairHooks(this));
  }

  private swarm: SwarmUploads | undefined;

  /** Swarm uploads this peer serves (made on first use: most peers never serve one). */
  get swarmUploads(): SwarmUploads {
    return (this.swarm ??= new SwarmUploads({
      store: this.store, clock: this.clock, maxUploads: this.opts.maxUploads, uploadRate: this.opts.uploadRate, minPieceBytes: this.opts.minPieceBytes,
      hashingIntervalMs: this.opts.preparingIntervalMs, idleMs: this.opts.transferIdleTimeoutMs,
      log: (level, message) => this.log(level, message), uploaded: (u) => this.emit('uploaded', u),
    }));
  }


  private readonly connectionOptions: PeerOptions['connection'];
  /** What this peer shares and where downloads land (the share folder unless PeerOptions.store). */
  readonly store: ShareStore;

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

  /** Listens on host:port. Checks the share (folder) exists. */
  async start(_o: { signal?: AbortSignal } = {}): Promise<HostPort> {
    if (this.listener) return this.address;
    // Leftovers of downloads a crash cut short (nothing of ours is being written yet).
    const swept = await this.clock.hold(this.store.prepare(this.id));
    if (swept.length) this.log('info', `removed ${swept.length} temporary file(s) left by an earlier run: ${swept.join(', ')}`);
    // Resumable swarm partials (file-system shares) stay unless not advanced for partialMaxAgeMs.
    if (this.store.dir !== undefined) {
      const stale = await this.clock.hold(sweepPartials(this.store.dir, this.id, this.opts.partialMaxAgeMs));
      if (stale.length) this.log('info', `removed ${stale.length} stale partial download file(s): ${stale.join(', ')}`);
    }
    this.listener = await this.transport.listen({
      host: this.opts.host,
      port: this.opts.port,
      connection: this.connectionOptions,
      maxConnections: this.opts.maxConnections,
      onConnection: this.onInbound.bind(this),
    });
    if (this.opts.heartbeatMs > 0) this.every(this.opts.heartbeatMs, () => this.heartbeat());
    if (this.opts.announceMs > 0) this.every(this.opts.announceMs, () => this.life.joined && void this.announce());
    this.emit('listening', this.address);
    return this.address;
  }

  /** Registers and joins the tree; resolves with the join timeline. */
  async join(o: { signal?: AbortSignal } = {}): Promise<JoinTimeline> {
    if (!this.listener) await this.start(o);
    if (this.life.joined) throw new LocalError('already-joined', `peer ${this.id} has already joined`);
    if (this.life.stopping) throw new TreeshareError('aborted', `peer ${this.id} is stopped`);
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
      token: () => this.token,
      clock: this.clock,
    };
    // An unreachable metaserver is retried with backoff (joinRetries times), each retry logged.
    const out = await retry(() => joinOverlay(params), {
      delays: backoffDelays({ first: 250, count: this.opts.joinRetries }),
      retryIf: (err) => err instanceof MetaserverUnreachableError,
      onRetry: (err, attempt, delay) => this.log('warn', `${(err as Error).message}; retrying in ${delay} ms (attempt ${attempt + 1} of ${this.opts.joinRetries + 1})`),
      signal: o.signal,
      clock: this.clock,
    });
    if (this.life.state !== 'idle') {
      // Stopped (or left) while the join ran.
      out.conn?.destroy();
      throw new TreeshareError('aborted', `peer ${this.id} stopped while joining`);
    }
    if (out.token) this.token = out.token;
    this.timeline = out.timeline;
    this.attach(out.conn, out.timeline, out.path);
    this.emit('joined', out.timeline);
    return out.timeline;
  }

  /**
   * Installs `conn` as the parent link (null: this peer is the root); `path`: the parent's root path,
   * its own tag last. The lifecycle moves to attached: joined (first join) or reattached (repair).
   */
  attach(conn: Connection | null, t: JoinTimeline, path?: string[]): void {
    this.life.to(this.life.state === 'idle' ? 'joined' : 'attached');
    if (conn && t.parent) {
      const link: Link = { ref: t.parent, role: 'parent', conn, subtree: 0, lastHeard: this.clock.now(), sendsAtTick: conn.sends, sendsAtPing: conn.sends, leaving: false, floods: undefined };
      this.links.parent = link;
      this.track(conn);
      this.serveLink(link);
    } else {
      this.links.parent = null;
    }
    this.setDepth(t.parent ? t.depth : 0, conn && t.parent ? (path ?? [tagOf(t.parent.id)]) : []);
    this.lastReportedSubtree = this.links.subtree();
    this.scheduleAnnounce(0);
  }

  state(): PeerState {
    return {
      id: this.id,
      address: this.address,
      joined: this.life.joined,
      parent: this.links.parent?.ref ?? null,
      children: [...this.links.children.values()].map((c) => ({ ...c.ref, subtree: c.subtree })),
      depth: this.depth,
      subtree: this.links.subtree(),
      timeline: this.timeline,
      repairs: [...this.repairs],
    };
  }

  async files(): Promise<{ name: string; size: number }[]> {
    // A memory store does no I/O (it settles in microtasks, before the clock's next turn): no hold needed.
    return this.store.kind === 'memory' ? this.store.list() : this.clock.hold(this.store.list());
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
    this.life.to('stop');
    for (const t of this.timers) this.clock.clearInterval(t);
    this.timers = [];
    if (this.announceTimer) this.clock.clearTimeout(this.announceTimer);
    this.metaChannel?.close();
    this.transfers.abortAll();
    this.swarm?.abortAll();
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

  /** Joined the overlay (also while reattaching or leaving; false once left). See lifecycle.ts. */
  get joined(): boolean {
    return this.life.joined;
  }

  /** leave() or stop() has begun. */
  get stopping(): boolean {
    return this.life.stopping;
  }

  /** In the tree: attached under a parent, or the root (false while orphaned or reattaching). */
  get inTree(): boolean {
    return this.life.inTree;
  }

  // ---- internals (the helpers reach them through the context and callbacks wired in the constructor) ----

  log(level: 'info' | 'warn', message: string): void {
    this.emit('log', { level, message });
  }

  newQid(): string {
    if (!this.rng) return `${this.id}:${randomBytes(6).toString('hex')}`;
    // Seeded runs: 48 bits from the given generator, so the same seed gives the same query ids.
    const hi = Math.floor(this.rng() * 0x1000000), lo = Math.floor(this.rng() * 0x1000000);
    return `${this.id}:${hi.toString(16).padStart(6, '0')}${lo.toString(16).padStart(6, '0')}`;
  }

  /** Sets our depth and root path and passes both down (children refuse JOINs from their ancestors). */
  setDepth(depth: number, path: string[] = this.rootPath): void {
    this.depth = depth;
    if (path !== this.rootPath) {
      this.rootPath = path;
      this.rootPathSet = path.length > 32 ? new Set(path) : undefined;
    }
    const down = this.childPath();
    for (const c of this.links.children.values()) c.conn.send({ t: 'depth', depth, path: down });
  }

  /** The root path our children get: ours and our own tag (the top part when deeper than PATH_MAX). */
  private childPath(): string[] {
    return [...this.rootPath, tagOf(this.id)].slice(0, PATH_MAX);
  }

  /**
   * Tells the parent our subtree size when it changed: once per event-loop turn (clock.defer), with
   * the size then. Every join changes the sizes all the way up, so near the root many changes of one
   * turn go up as one frame instead of one each.
   */
  reportSubtree(): void {
    if (this.reportQueued) return;
    this.reportQueued = true;
    this.clock.defer(flushSubtreeReport, this);
  }

  /** A size report is queued for the end of this turn (reportSubtree). */
  private reportQueued = false;

  /** Sends the queued size report (see reportSubtree). */
  flushSubtreeReport(): void {
    this.reportQueued = false;
    const n = this.links.subtree();
    if (n !== this.lastReportedSubtree && this.links.parent) this.links.parent.conn.send({ t: 'size', subtree: n });
    this.lastReportedSubtree = n;
  }

  scheduleAnnounce(delayMs = 20): void {
    if (this.life.stopping || this.announceTimer) return;
    this.announceTimer = this.clock.setTimeout(() => {
      this.announceTimer = undefined;
      void this.announce();
    }, delayMs);
  }

  /**
   * Tells the metaserver where we are, over our kept metaserver connection.
   * One at a time: asked for while one is in flight, it is sent once that one
   * ends (with the state then).
   */
  announce(): Promise<void> {
    if (this.announcing) {
      this.announceAgain = true;
      return this.announcing;
    }
    const run = (async () => {
      try {
        do {
          this.announceAgain = false;
          await this.announceOnce();
        } while (this.announceAgain && !this.life.stopping);
      } finally {
        // Cleared with no await after the last check: a later ask starts a new run.
        this.announcing = undefined;
      }
    })();
    this.announcing = run;
    return run;
  }

  /** The kept metaserver connection for announces, made on first use. */
  private metaChannelOf(): MetaChannel {
    // Backoff after failed connects at most one announce interval: periodic announces are what a restarted metaserver rebuilds from.
    const maxBackoffMs = this.opts.announceMs > 0 ? this.opts.announceMs : 5000;
    return (this.metaChannel ??= new MetaChannel(this.transport, this.opts.meta, { localHost: this.localHost, clock: this.clock, maxBackoffMs }));
  }

  private async announceOnce(): Promise<void> {
    if (!this.life.inTree || !this.token || this.life.stopping) return;
    try {
      await this.metaChannelOf().request({
        t: 'announce', v: PROTOCOL_VERSION, ...this.ref, parent: this.links.parent?.ref.id ?? null, depth: this.depth,
        children: this.links.children.size, maxChildren: this.opts.maxChildren, token: this.token,
      }, ['ok'], { timeoutMs: 3000 });
      if (this.lastAnnounceFailed) this.log('info', `metaserver ${this.opts.meta.host}:${this.opts.meta.port} reachable again`);
      this.lastAnnounceFailed = false;
    } catch (err) {
      if (errorCode(err) === 'second-root') {
        // Reachable, but this root's tree is the smaller of two: merge into the other (repair.ts).
        this.lastAnnounceFailed = false;
        this.repairer.merge(describeError(err));
        return;
      }
      if (errorCode(err) === 'bad-token' || errorCode(err) === 'unverified') {
        // bad-token: our id was taken over while we did not answer probes (frozen), or registered by
        // another after a metaserver restart; unverified: a restarted metaserver does not know our
        // token (its token key was replaced or lost). Register it again, in place, showing our token
        // (with it, a registration made since the restart gives the id back: docs/PROTOCOL.md).
        this.lastAnnounceFailed = false;
        await this.reclaim();
        return;
      }
      if (!this.lastAnnounceFailed && !this.life.stopping) this.log('warn', `cannot announce to the metaserver: ${describeError(err)}`);
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

  /** Registers our id again (our entry now holds another token) and announces where we are. */
  private async reclaim(): Promise<void> {
    try {
      const r = await request(this.transport, this.opts.meta, { t: 'register', v: PROTOCOL_VERSION, ...this.ref, maxChildren: this.opts.maxChildren, ...(this.token ? { token: this.token } : {}) }, ['registered'], { localHost: this.localHost, timeoutMs: 3000, clock: this.clock });
      this.token = r.token;
      this.log('warn', `the metaserver did not take our announce (our id ${this.id} held under another token, or our token unknown to it); registered it again`);
      this.scheduleAnnounce(0);
    } catch (err) {
      this.log('warn', `cannot register our id again: ${describeError(err)}`);
    }
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
    conn.on('handler-error', (e) => this.log('warn', `closed ${conn.remote}: ${e.message} [${e.code}]`));
  }

  /** Serves requests on a parent or child link until it closes. */
  serveLink(link: Link): void {
    const { conn } = link;
    conn.serve((m) => {
      link.lastHeard = this.clock.now();
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
      case 'ping': {
        // Liveness on a link is "heard from lately", and any frame counts: a neighbour that sent us
        // anything since its previous ping has been heard from since, so a pong would only add a
        // frame. We answer when we sent it nothing since then (our heartbeats are off or slower than
        // its own, our link was idle, or this is its first ping).
        if (link.conn.sends === link.sendsAtPing) link.conn.sendFrame(heartbeatFrame('pong', m.n));
        link.sendsAtPing = link.conn.sends;
        return;
      }
      case 'pong':
        return;
      case 'size':
        if (link.role !== 'child') throw new RemoteProtocolError('unexpected-message', 'only a child reports its subtree size');
        this.ledger?.reported(link.ref.id, link.subtree, m.subtree);
        link.subtree = m.subtree;
        this.reportSubtree();
        return;
      case 'depth':
        if (link.role !== 'parent') throw new RemoteProtocolError('unexpected-message', 'only a parent reports its depth');
        if (m.path && !samePath(m.path, this.rootPath)) {
          this.setDepth(m.depth + 1, m.path);
          this.scheduleAnnounce();
        } else if (m.depth + 1 !== this.depth) {
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
      if (!this.life.stopping) this.repairer.onParentLost(link);
    } else if (this.removeChild(link) && !this.life.stopping) {
      this.repairer.onChildLost(link);
    }
  }

  /** Drops the parent link (it left or its connection is gone); false if `link` is not the parent. */
  detachParent(link: Link): boolean {
    if (this.links.parent !== link) return false;
    this.links.parent = null;
    if (this.life.state === 'attached') this.life.to('parent-lost');
    this.flood.neighbourGone(link.ref.id);
    return true;
  }

  /** Drops a child link, tells the parent and the metaserver; false if `link` is not a child. */
  removeChild(link: Link): boolean {
    if (this.links.children.get(link.ref.id) !== link) return false;
    this.links.children.delete(link.ref.id);
    this.ledger?.forget(link.ref.id);
    this.flood.neighbourGone(link.ref.id);
    if (this.life.stopping) return true;
    const reason = link.leaving ? 'left' : 'connection lost';
    this.emit('child-left', { id: link.ref.id, reason });
    this.log('info', `child ${link.ref.id} ${reason}`);
    this.reportSubtree();
    this.scheduleAnnounce();
    return true;
  }

  /** When heartbeat() last ran (first: construction; a late first tick only skips one judgement). */
  private lastBeat: number;

  private heartbeat(): void {
    const now = this.clock.now();
    // After a stall of our own (GC, overload, SIGSTOP), frames from live neighbours may still sit
    // unread in the sockets: ping only, and judge silence on the next tick.
    const stalled = now - this.lastBeat > Math.max(2 * this.opts.heartbeatMs, this.opts.deadAfterMs / 2);
    this.lastBeat = now;
    // n is only echoed back; the wire allows [0, 1e9]: the clock's ms wrapped into it (performance.now()
    // passes 1e9 after 11.6 days up, and a skewed clock may read below 0: such pings were refused as
    // bad-message and cut the link on every heartbeat).
    const ping = heartbeatFrame('ping', ((Math.floor(now) % 1e9) + 1e9) % 1e9);
    const p = this.links.parent;
    if (p) this.beat(p, now, stalled, ping);
    for (const l of this.links.children.values()) this.beat(l, now, stalled, ping);
  }

  /**
   * One link's heartbeat: declared dead after `deadAfterMs` of silence; otherwise pinged, unless we
   * sent it anything since the previous tick (a flood, an answer: it heard from us already, as a
   * keepalive is only sent on an idle connection).
   */
  private beat(l: Link, now: number, stalled: boolean, ping: Frame): void {
    if (!stalled && now - l.lastHeard > this.opts.deadAfterMs) {
      this.log('warn', `${l.role} ${l.ref.id} silent for ${Math.round(now - l.lastHeard)} ms; declaring it dead`);
      this.repairer.silent.add(l); // already known unresponsive: repair skips the probe
      l.conn.destroy(new TreeshareError('heartbeat-timeout', `${l.ref.id} missed heartbeats`));
      return;
    }
    if (stalled || l.conn.sends === l.sendsAtTick) l.conn.sendFrame(ping);
    l.sendsAtTick = l.conn.sends;
  }

  private every(ms: number, fn: () => void): void {
    const t = this.clock.setInterval(fn, ms);
    t.unref();
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
        if (this.life.stopping) throw new TreeshareError('leaving', `peer ${this.id} is leaving`);
        this.swarmUploads.serve(conn, m);
        return;
      case 'ping':
        // A probe: a leaving peer says so (the metaserver stops referring to it); otherwise we answer
        // with our id and, when challenged, proof that we hold our token.
        if (this.life.stopping) throw new TreeshareError('leaving', `peer ${this.id} is leaving`);
        conn.send({ t: 'pong', n: m.n, id: this.id, ...(m.nonce && this.token ? { proof: proofOf(this.token, m.nonce, this.id) } : {}) });
        conn.end();
        return;
      default:
        throw new RemoteProtocolError('unexpected-message', `a peer does not handle "${m.t}" as a first message`);
    }
  }

  private onJoinRequest(conn: Connection, m: Msg<'join'>): void {
    if (this.life.stopping) throw new TreeshareError('leaving', `peer ${this.id} is leaving`);
    // A child's size counts the newcomers we redirected into it that its reports do not show yet.
    const now = this.clock.now();
    const ledger = this.ledger;
    const children = [...this.links.children.values()].map((c) => ({ ref: c.ref, subtree: c.subtree + (ledger ? ledger.pending(c.ref.id, now) : 0) }));
    // Our whole root path, not only the parent: a peer above us joining here would close a cycle.
    const parentId = this.links.parent?.ref.id;
    const rootPath = this.rootPath, rootPathSet = this.rootPathSet;
    const ancestors = { has: (id: string) => id === parentId || (rootPathSet ? rootPathSet.has(tagOf(id)) : rootPath.includes(tagOf(id))) };
    const d = decideJoin({ id: this.id, maxChildren: this.opts.maxChildren, ancestors }, children, m);
    if (d.kind === 'refuse') throw new TreeshareError(d.code, d.message);
    if (d.kind === 'redirect') {
      // Prefer a child heard from lately: one silent for two heartbeats may be frozen or gone.
      const fresh = this.opts.heartbeatMs > 0 ? children.filter((c) => now - (this.links.children.get(c.ref.id)?.lastHeard ?? 0) <= 2 * this.opts.heartbeatMs) : children;
      const to = fresh.some((c) => c.ref.id === d.to.id) || fresh.length === 0 ? d.to : smallestChild(fresh)!.ref;
      (this.ledger ??= new RedirectLedger()).redirected(to.id, now);
      conn.send({ t: 'redirect', to });
      conn.end();
      return;
    }
    const old = this.links.children.get(m.id);
    if (old) {
      this.links.children.delete(m.id);
      this.ledger?.forget(m.id);
      old.conn.destroy();
    }
    const link: Link = { ref: { id: m.id, host: m.host, port: m.port }, role: 'child', conn, subtree: m.subtree, lastHeard: this.clock.now(), sendsAtTick: conn.sends, sendsAtPing: conn.sends, leaving: false, floods: undefined };
    this.links.children.set(m.id, link);
    this.serveLink(link);
    conn.send({ t: 'accept', ...this.ref, depth: this.depth, path: this.childPath() });
    this.emit('child-joined', link.ref);
    this.reportSubtree();
    this.scheduleAnnounce();
  }

}

/** What the helpers see of a peer (context.ts). */
class PeerView implements PeerContext {
  readonly id: string;
  readonly opts: Resolved;
  readonly links: Links;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly store: ShareStore;
  readonly life: Lifecycle;

  constructor(private readonly p: Peer) {
    this.id = p.opts.id;
    this.opts = p.opts;
    this.links = p.links;
    this.transport = p.transport;
    this.clock = p.clock;
    this.store = p.store;
    this.life = p.life;
  }

  get depth(): number {
    return this.p.depth;
  }

  ref(): PeerRef {
    return this.p.ref;
  }

  localHost(): string | undefined {
    return this.p.localHost;
  }

  log(level: 'info' | 'warn', message: string): void {
    this.p.log(level, message);
  }

  emit<K extends keyof PeerEvents>(event: K, ...args: PeerEvents[K]): void {
    (this.p.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
  }

  newQid(): string {
    return this.p.newQid();
  }
}

class FloodHooks implements FloodDeps {
  constructor(private readonly p: Peer) {}

  localHas(name: string): { size: number } | null | Promise<{ size: number } | null> {
    return this.p.transfers.localHas(name);
  }

  fileCount(): number | undefined {
    return this.p.store.countNow?.();
  }

  serveHit(q: Msg<'query'>): void {
    this.p.transfers.serveHit(q);
  }

  files(): Promise<{ name: string; size: number }[]> {
    return this.p.files();
  }
}

class TransferHooks implements TransferDeps {
  constructor(private readonly p: Peer) {}

  search(name: string, want: 'search' | 'download', qid: string, o: { signal?: AbortSignal }): Promise<SearchResult> {
    return this.p.flood.search(name, want, qid, o);
  }

  noteHit(qid: string): void {
    this.p.flood.noteHit(qid);
  }
}

class RepairHooks implements RepairDeps {
  constructor(private readonly p: Peer) {}

  attach(conn: Connection | null, t: JoinTimeline, path?: string[]): void {
    this.p.attach(conn, t, path);
  }

  detachParent(link: Link): boolean {
    return this.p.detachParent(link);
  }

  removeChild(link: Link): boolean {
    return this.p.removeChild(link);
  }

  stop(o: { graceful?: boolean }): Promise<void> {
    return this.p.stop(o);
  }

  timeline(): JoinTimeline | null {
    return this.p.timeline;
  }

  token(): string | undefined {
    return this.p.token;
  }

  setToken(token: string): void {
    this.p.token = token;
  }

  record(rec: RepairRecord): void {
    this.p.repairs.push(rec);
  }
}

function addFrames(into: { sent: FrameCounts; received: FrameCounts }, from: { sent: FrameCounts; received: FrameCounts }): void {
  for (const dir of ['sent', 'received'] as const) {
    for (const [t, n] of Object.entries(from[dir]) as [keyof FrameCounts, number][]) into[dir][t] = (into[dir][t] ?? 0) + n;
  }
}

function flushSubtreeReport(p: Peer): void {
  p.flushSubtreeReport();
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
