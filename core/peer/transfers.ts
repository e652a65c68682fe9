/**
 * A peer's transfers (docs/PROTOCOL.md, flow I): downloads it asked for and the offers that
 * arrive for them, uploads it starts on a local hit, and the share lookups
 * floods use.
 *
 * Which way a download goes (offer or swarm) is decided in `download()`
 * (docs/SWARM.md, "When a download is a swarm").
 *
 * An offer download floods a query with want=download and waits for the first
 * holder's offer; later offers are declined (a file held by two peers is
 * transferred once). When the search ends with no holder the answer is a
 * definite not-found; with holders but no offer in time, `no-offer`.
 *
 * "In time" is `offerTimeoutMs` after the search ended or after the last
 * progress a holder reported while hashing the file for its first offer
 * (`preparing`), so a very large file is waited for as long as its holder
 * makes progress.
 */
import { describeError, NotFoundError, RemoteProtocolError, TransferError } from '../errors.ts';
import type { Message, Msg, PeerRef } from '../protocol/messages.ts';
import type { Connection } from '../transport/connection.ts';
import { assertName } from '../transfer/jail.ts';
import { receiveFile } from '../transfer/receive.ts';
import { offerFile } from '../transfer/send.ts';
import type { TimerHandle } from '../clock.ts';
import type { PeerContext } from './context.ts';
import type { SearchResult } from './types.ts';
import type { DownloadResult } from './types.ts';
import { downloadSwarm, hasResumable } from './swarm-download.ts';

/** Most download hits waiting for an upload slot at one holder; more are not offered (logged). */
export const UPLOAD_QUEUE = 1024;

/**
 * Longest an offer waits unanswered while its download's flood decides between the
 * offer path and a swarm, ms: well inside the holder's 10 s wait for an answer.
 */
export const HOLD_OFFERS_MS = 4000;

interface Download {
  qid: string;
  name: string;
  holder: PeerRef | null;
  /** An offer was accepted, or refused for its size (either way `settle` will be called). */
  offered: boolean;
  /** Fails the download with `no-offer` if no holder offers in time (armed after the search). */
  noOffer?: TimerHandle;
  /** (Re-)arms `noOffer`; set once the search ended without an offer. */
  armNoOffer?: () => void;
  /** Connections of holders still hashing the file (`preparing`), declined when the download ends. */
  preparing: Set<Connection>;
  settle: (r: { ok: true; value: Omit<DownloadResult, 'search'> } | { ok: false; err: Error }) => void;
  signal?: AbortSignal;
  /**
   * Set while the requester has not chosen between this offer path and a swarm (its one
   * flood is still running): offers wait here unanswered, for at most HOLD_OFFERS_MS.
   */
  held?: { offers: { conn: Connection; offer: Msg<'offer'> }[]; timer?: TimerHandle };
}

/** What transfers need from the flood handler (wired by peer.ts). */
export interface TransferDeps {
  /** Floods a search for `name` under query id `qid` (a download's search asks holders to offer). */
  search(name: string, want: 'search' | 'download', qid: string, o: { signal?: AbortSignal }): Promise<SearchResult>;
  /** An offer for query `qid` arrived: the query's first hit is known. */
  noteHit(qid: string): void;
}

export class Transfers {
  // Made on first use (most simulated peers never download or upload).
  private downloadsMap: Map<string, Download> | undefined;
  private uploadsSet: Set<AbortController> | undefined;
  private swarmsSet: Set<AbortController> | undefined;
  /** Download hits waiting for an upload slot, oldest first (made on first use). */
  private waitingHits: { q: Msg<'query'>; at: number }[] | undefined;

  private get downloads(): Map<string, Download> {
    return (this.downloadsMap ??= new Map());
  }

  private get uploads(): Set<AbortController> {
    return (this.uploadsSet ??= new Set());
  }

  private get swarms(): Set<AbortController> {
    return (this.swarmsSet ??= new Set());
  }

  constructor(
    private readonly ctx: PeerContext,
    private readonly deps: TransferDeps,
  ) {}

  /** Fails every running download and cancels every upload (the peer is stopping). */
  abortAll(): void {
    this.waitingHits = undefined;
    for (const u of this.uploadsSet ?? []) u.abort();
    for (const s of this.swarmsSet ?? []) s.abort();
    for (const d of this.downloadsMap?.values() ?? []) d.settle({ ok: false, err: new TransferError('aborted', `peer ${this.ctx.id} stopped`) });
  }

  /**
   * Finds `name` and downloads it into the share folder, verified by size and
   * SHA-256. Which way (docs/SWARM.md, "When a download is a swarm"):
   * `swarm: false` always takes the first holder's offer; `swarm: 'always'`
   * always swarms; by default a swarm when a resumable partial of `name` is
   * here or the search finds ≥ 2 holders, else the one holder's offer (its
   * receive path is the faster one). The default floods once (issue 29 item
   * 4), asking for offers (want=download): offers arriving before the flood
   * ends wait unanswered (at most HOLD_OFFERS_MS); with one holder found the
   * first is taken, with two or more they are declined and the file is
   * swarmed from the holders that flood found.
   */
  async download(name: string, o: { signal?: AbortSignal } = {}): Promise<DownloadResult> {
    assertName(name);
    if (await this.ctx.clock.hold(this.ctx.store.exists(name))) throw new TransferError('exists', `${name} already exists in ${this.ctx.store.label}; not overwritten`);
    const clock = this.ctx.clock;
    const mode = this.ctx.opts.swarm;
    // Swarm pieces are written into a file-system share (resume state beside the partial); a memory store
    // (the simulation's) takes the offer path.
    const store = this.ctx.store;
    if (mode === false || store.dir === undefined) return this.offerDownload(name, o);
    if (mode === 'always' || (await clock.hold(hasResumable(store.dir, this.ctx.id, name)))) return this.swarmDownload(name, o);
    const r = await this.offerDownload(name, o, true);
    if ('swarmFrom' in r) return this.swarmDownload(name, o, r.swarmFrom);
    return r;
  }

  /**
   * The protocol-1 way: floods want=download and takes the first holder's offer. With
   * `choose`, offers wait until the flood has ended; when it found ≥ 2 holders they are
   * declined and the answer is the search, for a swarm.
   */
  private async offerDownload(name: string, o: { signal?: AbortSignal }): Promise<DownloadResult>;
  private async offerDownload(name: string, o: { signal?: AbortSignal }, choose: true): Promise<DownloadResult | { swarmFrom: SearchResult }>;
  private async offerDownload(name: string, o: { signal?: AbortSignal }, choose = false): Promise<DownloadResult | { swarmFrom: SearchResult }> {
    const qid = this.ctx.newQid();
    let settle!: Download['settle'];
    const transfer = new Promise<{ ok: true; value: Omit<DownloadResult, 'search'> } | { ok: false; err: Error }>((r) => (settle = r));
    const d: Download = { qid, name, holder: null, offered: false, settle, signal: o.signal, preparing: new Set(), ...(choose ? { held: { offers: [] } } : {}) };
    // Abort and stop settle the one `transfer` promise, whatever stage the download is at.
    const onAbort = () => settle({ ok: false, err: new TransferError('aborted', `download of ${name} aborted`) });
    o.signal?.addEventListener('abort', onAbort, { once: true });
    this.downloads.set(qid, d);
    try {
      const search = await this.deps.search(name, 'download', qid, o);
      if (d.held) {
        if (this.ctx.life.stopping) throw new TransferError('aborted', `peer ${this.ctx.id} stopped`);
        if (o.signal?.aborted) throw new TransferError('aborted', `download of ${name} aborted`);
        const holders = new Set(search.hits.map((h) => h.id).filter((id) => id !== this.ctx.id));
        if (holders.size >= 2) {
          this.releaseHeld(d, `swarm download of ${name} from ${holders.size} holders`);
          return { swarmFrom: search };
        }
        this.releaseHeld(d);
      }
      if (!d.offered) {
        if (this.ctx.life.stopping) throw new TransferError('aborted', `peer ${this.ctx.id} stopped`);
        if (search.hits.length === 0) throw new NotFoundError(name, search.reached, search.missing);
        const ms = this.ctx.opts.offerTimeoutMs;
        const msg = `${search.hits.length} peer(s) have ${name} but none offered it within ${ms} ms (of the search, or of a holder's last hashing progress)`;
        d.armNoOffer = () => {
          this.ctx.clock.clearTimeout(d.noOffer);
          if (!d.offered) d.noOffer = this.ctx.clock.setTimeout(() => settle({ ok: false, err: new TransferError('no-offer', msg) }), ms);
        };
        d.armNoOffer();
      }
      const r = await transfer;
      if (!r.ok) throw r.err;
      const result: DownloadResult = { ...r.value, search };
      this.ctx.emit('downloaded', result);
      return result;
    } finally {
      this.releaseHeld(d, `download of ${name} ended`);
      this.ctx.clock.clearTimeout(d.noOffer);
      d.armNoOffer = undefined;
      o.signal?.removeEventListener('abort', onAbort);
      this.downloads.delete(qid);
      // Holders still hashing for this download can stop.
      for (const c of d.preparing) {
        c.send({ t: 'decline', reason: `download of ${name} ended` });
        c.end();
      }
      d.preparing.clear();
    }
  }

  /**
   * Ends the wait of offers held while the flood decided: declined with `decline`, or else
   * handled as if they arrived now (the first taken, the others declined).
   */
  private releaseHeld(d: Download, decline?: string): void {
    const held = d.held;
    if (!held) return;
    d.held = undefined;
    this.ctx.clock.clearTimeout(held.timer);
    for (const { conn, offer } of held.offers) {
      if (conn.closed) continue;
      if (decline !== undefined) declineOn(conn, decline);
      else void this.onOffer(conn, offer);
    }
  }

  /** Swarm download (docs/SWARM.md): every holder the search finds (`search`, when done already), piece by piece. */
  private async swarmDownload(name: string, o: { signal?: AbortSignal }, search?: SearchResult): Promise<DownloadResult> {
    const ctx = this.ctx;
    const ac = new AbortController();
    this.swarms.add(ac);
    const signal = o.signal ? AbortSignal.any([o.signal, ac.signal]) : ac.signal;
    try {
      const result = await downloadSwarm({
        id: ctx.id, ref: ctx.ref(), transport: ctx.transport, clock: ctx.clock, localHost: ctx.localHost(), share: ctx.opts.share,
        maxSources: ctx.opts.maxSources, swarmDepth: ctx.opts.swarmDepth, swarmAdaptive: ctx.opts.swarmAdaptive, idleTimeoutMs: ctx.opts.transferIdleTimeoutMs, minRateBytesPerSec: ctx.opts.minRateBytesPerSec,
        manifestTimeoutMs: ctx.opts.offerTimeoutMs, maxFileBytes: ctx.opts.maxFileBytes, fsync: ctx.opts.fsync,
        search: (n, signal) => (search && n === name ? Promise.resolve(search) : this.deps.search(n, 'search', ctx.newQid(), { signal })),
        emit: { progress: (x) => ctx.emit('progress', x), resume: (x) => ctx.emit('resume', x), log: (l, m) => ctx.log(l, m) },
      }, name, { signal });
      ctx.store.changed?.();
      ctx.emit('downloaded', result);
      return result;
    } finally {
      this.swarms.delete(ac);
    }
  }


  /**
   * Called by the flood handler for a local hit on a download query. Above
   * `maxUploads` the hit waits in a bounded queue (UPLOAD_QUEUE) for a free
   * slot, first come first served, for at most `offerTimeoutMs` (by then the
   * requester has given up): downloads above the limit wait instead of failing
   * `no-offer` (issue 22 defect 9).
   */
  serveHit(q: Msg<'query'>): void {
    if (this.ctx.life.stopping) return; // leaving: start no upload that stop() would cut at once
    if (this.uploads.size >= this.ctx.opts.maxUploads) {
      const waiting = (this.waitingHits ??= []);
      if (waiting.length >= UPLOAD_QUEUE) {
        this.ctx.log('warn', `not offering ${q.name} to ${q.origin.id}: ${this.uploads.size} uploads running and ${waiting.length} waiting`);
        return;
      }
      waiting.push({ q, at: this.ctx.clock.now() });
      return;
    }
    this.upload(q);
  }

  /** Starts queued hits while slots are free, skipping those whose requester has given up by now. */
  private nextWaiting(): void {
    const waiting = this.waitingHits;
    const now = this.ctx.clock.now();
    while (waiting && waiting.length > 0 && this.uploads.size < this.ctx.opts.maxUploads && !this.ctx.life.stopping) {
      const { q, at } = waiting.shift()!;
      if (now - at > this.ctx.opts.offerTimeoutMs) this.ctx.log('warn', `not offering ${q.name} to ${q.origin.id}: it waited ${Math.round(now - at)} ms for an upload slot`);
      else this.upload(q);
    }
  }

  private upload(q: Msg<'query'>): void {
    const ac = new AbortController();
    this.uploads.add(ac);
    offerFile({ transport: this.ctx.transport, to: q.origin, localHost: this.ctx.localHost(), qid: q.qid, self: this.ctx.ref(), shareDir: this.ctx.opts.share, store: this.ctx.store, name: q.name, signal: ac.signal, preparingIntervalMs: this.ctx.opts.preparingIntervalMs, stallTimeoutMs: this.ctx.opts.transferIdleTimeoutMs, clock: this.ctx.clock })
      .then((r) => {
        if (r.kind === 'sent') this.ctx.emit('uploaded', { name: r.name, to: `${q.origin.id}@${r.to}`, bytes: r.bytes, durationMs: r.durationMs, mbps: r.mbps });
      })
      .catch((err) => this.ctx.log('warn', `upload of ${q.name} to ${q.origin.id} failed: ${describeError(err)}`))
      .finally(() => {
        this.uploads.delete(ac);
        this.nextWaiting();
      });
  }

  /** Does this peer share `name`? At once when the store can tell (statNow), else a promise. */
  localHas(name: string): { size: number } | null | Promise<{ size: number } | null> {
    const now = this.ctx.store.statNow?.(name);
    return now !== undefined ? now : this.ctx.clock.hold(this.ctx.store.stat(name));
  }

  /** The download a holder's opener (offer or preparing) is for, or why it is declined. */
  private waitingFor(m: { qid: string; name: string }): Download | string {
    const d = this.downloads.get(m.qid);
    if (!d || d.name !== m.name) return 'no such download here (finished, expired or never asked)';
    if (d.holder) return `already downloading ${m.name} from ${d.holder.id}`;
    return d;
  }

  /**
   * A holder is hashing the file before its offer: while the bytes hashed
   * grow, the no-offer deadline moves with them. The offer follows on the
   * same connection and is handled like any other.
   */
  onPreparing(conn: Connection, first: Msg<'preparing'>): void {
    const decline = (reason: string) => declineOn(conn, reason);
    const d = this.waitingFor(first);
    if (typeof d === 'string') return decline(d);
    if (first.hashed > first.size) throw new RemoteProtocolError('bad-message', `preparing: hashed ${first.hashed} of ${first.size} bytes`);
    d.preparing.add(conn);
    let last = first.hashed;
    d.armNoOffer?.();
    const done = () => {
      conn.off('message', onMsg);
      conn.off('close', done);
      d.preparing.delete(conn);
    };
    const onMsg = (m: Message) => {
      if (m.t === 'preparing' || m.t === 'offer') {
        if (m.qid !== first.qid || m.name !== first.name || m.from.id !== first.from.id || m.size !== first.size) {
          done();
          return conn.fail(new RemoteProtocolError('bad-message', `${m.t} for another download than the one being prepared`));
        }
      }
      if (m.t === 'preparing') {
        if (m.hashed > m.size) {
          done();
          return conn.fail(new RemoteProtocolError('bad-message', `preparing: hashed ${m.hashed} of ${m.size} bytes`));
        }
        if (d.holder || this.downloads.get(m.qid) !== d) {
          done();
          return decline(d.holder ? `already downloading ${m.name} from ${d.holder.id}` : 'download finished');
        }
        // Only progress counts: a holder repeating the same figure does not hold the download open.
        if (m.hashed > last) {
          last = m.hashed;
          d.armNoOffer?.();
        }
        return;
      }
      done();
      if (m.t === 'offer') return void this.onOffer(conn, m);
      if (m.t === 'error') {
        this.ctx.log('warn', `${first.from.id} gave up preparing ${first.name}: ${m.message} [${m.code}]`);
        return conn.end();
      }
      conn.fail(new RemoteProtocolError('unexpected-message', `expected preparing or offer, got "${m.t}"`));
    };
    conn.on('message', onMsg);
    conn.on('close', done);
  }

  async onOffer(conn: Connection, offer: Msg<'offer'>): Promise<void> {
    const decline = (reason: string) => declineOn(conn, reason);
    const d = this.waitingFor(offer);
    if (typeof d === 'string') return decline(d);
    if (d.held) {
      // The flood has not ended: answered once it does (or HOLD_OFFERS_MS from the first).
      d.held.offers.push({ conn, offer });
      d.held.timer ??= this.ctx.clock.setTimeout(() => this.releaseHeld(d), HOLD_OFFERS_MS);
      return;
    }
    // Refusals for size end the download at once with the reason (every holder has the same file).
    const refuse = (code: 'too-large' | 'no-space', reason: string) => {
      decline(reason);
      d.offered = true;
      this.ctx.clock.clearTimeout(d.noOffer);
      d.settle({ ok: false, err: new TransferError(code, `${offer.name} from ${offer.from.id}: ${reason}`) });
    };
    if (offer.size > this.ctx.opts.maxFileBytes) return refuse('too-large', `file of ${offer.size} bytes is larger than the ${this.ctx.opts.maxFileBytes} bytes accepted (--max-file-bytes)`);
    d.holder = offer.from;
    const free = await this.ctx.clock.hold(this.ctx.store.freeBytes());
    if (offer.size > free) return refuse('no-space', `not enough disk space (${offer.size} bytes offered, ${free} free)`);
    d.offered = true;
    this.ctx.clock.clearTimeout(d.noOffer);
    this.deps.noteHit(offer.qid);
    this.ctx.emit('offer', { qid: offer.qid, name: offer.name, from: offer.from, size: offer.size, accepted: true });
    try {
      const m = await receiveFile(conn, offer, {
        shareDir: this.ctx.opts.share,
        store: this.ctx.store,
        signal: d.signal,
        idleTimeoutMs: this.ctx.opts.transferIdleTimeoutMs,
        minRateBytesPerSec: this.ctx.opts.minRateBytesPerSec,
        clock: this.ctx.clock,
        tmpTag: this.ctx.id,
        fsync: this.ctx.opts.fsync,
        onProgress: (bytes, size) => this.ctx.emit('progress', { qid: offer.qid, name: offer.name, bytes, size }),
      });
      d.settle({ ok: true, value: { ...m, holder: offer.from } });
    } catch (err) {
      d.settle({ ok: false, err: err instanceof Error ? err : new TransferError('io', String(err)) });
    }
  }
}

/** Answers a holder's opener with `decline` and closes. */
function declineOn(conn: Connection, reason: string): void {
  conn.send({ t: 'decline', reason });
  conn.end();
}
