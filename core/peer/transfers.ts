/**
 * A peer's transfers (flow I): downloads it asked for and the offers that
 * arrive for them, uploads it starts on a local hit, and the share lookups
 * floods use.
 *
 * A download floods a query with want=download and waits for the first
 * holder's offer; later offers are declined (a file held by two peers is
 * transferred once). When the search ends with no holder the answer is a
 * definite not-found; with holders but no offer in time, `no-offer`.
 *
 * "In time" is `offerTimeoutMs` after the search ended or after the last
 * progress a holder reported while hashing the file for its first offer
 * (`preparing`), so a very large file is waited for as long as its holder
 * makes progress.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describeError, NotFoundError, RemoteProtocolError, TransferError } from '../errors.ts';
import type { Message, Msg, PeerRef } from '../protocol/messages.ts';
import type { Connection } from '../transport/connection.ts';
import { assertName, hasShared, shareRoot } from '../transfer/jail.ts';
import { freeBytes, receiveFile } from '../transfer/receive.ts';
import { offerFile } from '../transfer/send.ts';
import type { Peer } from './peer.ts';
import type { DownloadResult } from './types.ts';
import { downloadSwarm } from './swarm-download.ts';
import { realClock } from '../clock.ts';

interface Download {
  qid: string;
  name: string;
  holder: PeerRef | null;
  /** An offer was accepted, or refused for its size (either way `settle` will be called). */
  offered: boolean;
  /** Fails the download with `no-offer` if no holder offers in time (armed after the search). */
  noOffer?: NodeJS.Timeout;
  /** (Re-)arms `noOffer`; set once the search ended without an offer. */
  armNoOffer?: () => void;
  /** Connections of holders still hashing the file (`preparing`), declined when the download ends. */
  preparing: Set<Connection>;
  settle: (r: { ok: true; value: Omit<DownloadResult, 'search'> } | { ok: false; err: Error }) => void;
  signal?: AbortSignal;
}

export class Transfers {
  private downloads = new Map<string, Download>();
  private uploads = new Set<AbortController>();
  private shareCache: { at: number; names: Promise<Set<string> | null> } | undefined;

  constructor(private readonly peer: Peer) {}

  /** Fails every running download and cancels every upload (the peer is stopping). */
  abortAll(): void {
    for (const u of this.uploads) u.abort();
    for (const s of this.swarms) s.abort();
    for (const d of this.downloads.values()) d.settle({ ok: false, err: new TransferError('aborted', `peer ${this.peer.id} stopped`) });
  }

  /**
   * Finds `name` and downloads it from the first holder that offers it,
   * verified by size and SHA-256, into the share folder.
   */
  async download(name: string, o: { signal?: AbortSignal } = {}): Promise<DownloadResult> {
    if (this.peer.opts.swarm) return this.swarmDownload(name, o);
    assertName(name);
    const root = await shareRoot(this.peer.opts.share);
    try {
      await fsp.lstat(path.join(root, name));
      throw new TransferError('exists', `${name} already exists in ${this.peer.opts.share}; not overwritten`);
    } catch (err) {
      if (err instanceof TransferError) throw err;
    }
    const qid = this.peer.newQid();
    let settle!: Download['settle'];
    const transfer = new Promise<{ ok: true; value: Omit<DownloadResult, 'search'> } | { ok: false; err: Error }>((r) => (settle = r));
    const d: Download = { qid, name, holder: null, offered: false, settle, signal: o.signal, preparing: new Set() };
    // Abort and stop settle the one `transfer` promise, whatever stage the download is at.
    const onAbort = () => settle({ ok: false, err: new TransferError('aborted', `download of ${name} aborted`) });
    o.signal?.addEventListener('abort', onAbort, { once: true });
    this.downloads.set(qid, d);
    try {
      const search = await this.peer.flood.search(name, 'download', qid, o);
      if (!d.offered) {
        if (this.peer.stopping) throw new TransferError('aborted', `peer ${this.peer.id} stopped`);
        if (search.hits.length === 0) throw new NotFoundError(name, search.reached);
        const ms = this.peer.opts.offerTimeoutMs;
        const msg = `${search.hits.length} peer(s) have ${name} but none offered it within ${ms} ms (of the search, or of a holder's last hashing progress)`;
        d.armNoOffer = () => {
          clearTimeout(d.noOffer);
          if (!d.offered) d.noOffer = setTimeout(() => settle({ ok: false, err: new TransferError('no-offer', msg) }), ms);
        };
        d.armNoOffer();
      }
      const r = await transfer;
      if (!r.ok) throw r.err;
      const result: DownloadResult = { ...r.value, search };
      this.peer.emit('downloaded', result);
      return result;
    } finally {
      clearTimeout(d.noOffer);
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

  /** Swarm download (docs/SWARM.md): every holder the search finds, piece by piece. */
  private async swarmDownload(name: string, o: { signal?: AbortSignal }): Promise<DownloadResult> {
    const p = this.peer;
    const ac = new AbortController();
    this.swarms.add(ac);
    const signal = o.signal ? AbortSignal.any([o.signal, ac.signal]) : ac.signal;
    try {
      const result = await downloadSwarm({
        id: p.id, ref: p.ref, transport: p.transport, clock: realClock, localHost: p.localHost, share: p.opts.share,
        maxSources: p.opts.maxSources, swarmDepth: p.opts.swarmDepth, idleTimeoutMs: p.opts.transferIdleTimeoutMs,
        manifestTimeoutMs: p.opts.offerTimeoutMs, maxFileBytes: p.opts.maxFileBytes, fsync: p.opts.fsync,
        search: (n, signal) => p.flood.search(n, 'search', p.newQid(), { signal }),
        emit: { progress: (x) => p.emit('progress', x), resume: (x) => p.emit('resume', x), log: (l, m) => p.log(l, m) },
      }, name, { signal });
      this.shareCache = undefined;
      p.emit('downloaded', result);
      return result;
    } finally {
      this.swarms.delete(ac);
    }
  }

  private swarms = new Set<AbortController>();

  /** Called by the flood handler for a local hit on a download query. */
  serveHit(q: Msg<'query'>): void {
    if (this.peer.stopping) return; // leaving: start no upload that stop() would cut at once
    if (this.uploads.size >= this.peer.opts.maxUploads) {
      this.peer.log('warn', `not offering ${q.name} to ${q.origin.id}: ${this.uploads.size} uploads already running`);
      return;
    }
    const ac = new AbortController();
    this.uploads.add(ac);
    offerFile({ transport: this.peer.transport, to: q.origin, localHost: this.peer.localHost, qid: q.qid, self: this.peer.ref, shareDir: this.peer.opts.share, name: q.name, signal: ac.signal, preparingIntervalMs: this.peer.opts.preparingIntervalMs })
      .then((r) => {
        if (r.kind === 'sent') this.peer.emit('uploaded', { name: r.name, to: `${q.origin.id}@${r.to}`, bytes: r.bytes, durationMs: r.durationMs, mbps: r.mbps });
      })
      .catch((err) => this.peer.log('warn', `upload of ${q.name} to ${q.origin.id} failed: ${describeError(err)}`))
      .finally(() => this.uploads.delete(ac));
  }

  /**
   * Does this peer share `name`? Names absent from a cached listing of the
   * share folder (at most 1 s old, refreshed after each download)
   * are answered without touching the disk; present ones go through the jail.
   */
  async localHas(name: string): Promise<{ size: number } | null> {
    const now = performance.now();
    if (!this.shareCache || now - this.shareCache.at > 1000) {
      this.shareCache = {
        at: now,
        names: fsp.readdir(this.peer.opts.share).then((n) => new Set(n), () => null),
      };
    }
    const names = await this.shareCache.names;
    if (names && !names.has(name)) return null;
    return hasShared(this.peer.opts.share, name);
  }

  /**
   * A holder is hashing the file before its offer: while the bytes hashed
   * grow, the no-offer deadline moves with them. The offer follows on the
   * same connection and is handled like any other.
   */
  onPreparing(conn: Connection, first: Msg<'preparing'>): void {
    const d = this.downloads.get(first.qid);
    const decline = (reason: string) => {
      conn.send({ t: 'decline', reason });
      conn.end();
    };
    if (!d || d.name !== first.name) return decline('no such download here (finished, expired or never asked)');
    if (d.holder) return decline(`already downloading ${first.name} from ${d.holder.id}`);
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
        this.peer.log('warn', `${first.from.id} gave up preparing ${first.name}: ${m.message} [${m.code}]`);
        return conn.end();
      }
      conn.fail(new RemoteProtocolError('unexpected-message', `expected preparing or offer, got "${m.t}"`));
    };
    conn.on('message', onMsg);
    conn.on('close', done);
  }

  async onOffer(conn: Connection, offer: Msg<'offer'>): Promise<void> {
    const d = this.downloads.get(offer.qid);
    const decline = (reason: string) => {
      conn.send({ t: 'decline', reason });
      conn.end();
    };
    if (!d || d.name !== offer.name) return decline('no such download here (finished, expired or never asked)');
    if (d.holder) return decline(`already downloading ${offer.name} from ${d.holder.id}`);
    // Refusals for size end the download at once with the reason (every holder has the same file).
    const refuse = (code: 'too-large' | 'no-space', reason: string) => {
      decline(reason);
      d.offered = true;
      clearTimeout(d.noOffer);
      d.settle({ ok: false, err: new TransferError(code, `${offer.name} from ${offer.from.id}: ${reason}`) });
    };
    if (offer.size > this.peer.opts.maxFileBytes) return refuse('too-large', `file of ${offer.size} bytes is larger than the ${this.peer.opts.maxFileBytes} bytes accepted (--max-file-bytes)`);
    d.holder = offer.from;
    const free = await freeBytes(this.peer.opts.share);
    if (offer.size > free) return refuse('no-space', `not enough disk space (${offer.size} bytes offered, ${free} free)`);
    d.offered = true;
    clearTimeout(d.noOffer);
    this.peer.flood.noteHit(offer.qid);
    this.peer.emit('offer', { qid: offer.qid, name: offer.name, from: offer.from, size: offer.size, accepted: true });
    try {
      const m = await receiveFile(conn, offer, {
        shareDir: this.peer.opts.share,
        signal: d.signal,
        idleTimeoutMs: this.peer.opts.transferIdleTimeoutMs,
        tmpTag: this.peer.id,
        fsync: this.peer.opts.fsync,
        onProgress: (bytes, size) => this.peer.emit('progress', { qid: offer.qid, name: offer.name, bytes, size }),
      });
      this.shareCache = undefined;
      d.settle({ ok: true, value: { ...m, holder: offer.from } });
    } catch (err) {
      d.settle({ ok: false, err: err instanceof Error ? err : new TransferError('io', String(err)) });
    }
  }
}
