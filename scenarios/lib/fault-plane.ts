/**
 * The link half of the faults (LinkFaults, faults.ts) for nodes whose
 * transport lives in this process: the memory runner (MemoryNetwork on a
 * SimClock), the inproc runner (loopback TCP), and, later, each process of
 * the process runner (one plane per process, the other nodes' addresses told
 * with knowAddress).
 *
 * Every node's transport goes through `transportFor(id, inner)`: its
 * listeners are known by address, and each connection it opens is wrapped
 * once, at the connector's end, by a FaultyLink (through the transport's
 * `wrapLink` hook) that controls both directions of that connection:
 *
 * - outgoing bytes wait in an ordered queue (write() returns false past
 *   HIGH_WATER bytes, 'drain' follows), delivered to the inner link when due;
 * - incoming bytes are held by not reading the inner link (inner.pause()), so
 *   the sender's window fills as over TCP; a shaped direction also queues them.
 *
 * A connection no fault touched costs one small FaultyLink (listeners in
 * fields, no EventEmitter), one Set entry and a back-reference on the inner
 * link (about 500 bytes per memory peer): writes and reads go straight
 * through, with no timer and no queue, so a run without faults does exactly
 * what it did before (same simDigest). RunnerOptions.linkFaults: false runs
 * without a plane at all.
 *
 * What a fault means (the same on both runners):
 * - partition: bytes from a to b are held while no group holds both (one
 *   way: only from an earlier group to a later one); a connect across it does
 *   not complete (the SYN is lost) until heal() or the caller's signal.
 * - shape: per direction, each chunk is due at max(previous due, send time +
 *   serialisation at the bandwidth + latency + jitter), so jitter never
 *   reorders a link; a new connection takes a round trip (latency out and
 *   back) before it exists, as a TCP connect does. It comes on top of the runner's own --latency/--bandwidth
 *   (none by default on the memory runner).
 * - stall: bytes between a and b held for ms (clock ms: simulated on the
 *   memory runner), then delivered in order; a connect waits as across a partition.
 * - reset: every open connection between a and b dies at both ends (memory:
 *   the far end gets a RESET; TCP: an RST; this end sees ECONNRESET).
 * - isolate: pause's network half, nothing into or out of the node.
 */
import { sleepOn, type Clock, type TimerHandle } from '../../core/clock.ts';
import { addrKey, type HostPort, type Listener, type Transport } from '../../core/index.ts';
import { abortError, type ByteLink, type Connection } from '../../core/transport/connection.ts';
import type { ConnectOptions, ListenOptions } from '../../core/transport/transport.ts';
import { noFaults, regionLink, type FaultKind, type LinkFaults, type LinkSpec, type RegionMatrix, type RunnerFaults } from './faults.ts';

/** Bytes a FaultyLink queues in one direction before write() says false (outgoing) or the inner link is paused (incoming). */
export const HIGH_WATER = 1024 * 1024;

/** The end of a direction, queued behind its bytes. */
const END = 1;
type Item = Buffer | typeof END;

/** One direction's queue: [item, due, item, due, ...] in q[head, len). Made on first use. */
class Lane {
  q: Array<Item | number | undefined> = [];
  head = 0;
  len = 0;
  bytes = 0;
  /** Due time of the last queued item (jitter never goes before it). */
  lastDue = -Infinity;
  /** When the last queued byte has left at the shape's bandwidth. */
  txDone = -Infinity;
  armed = false;
  timer: TimerHandle | undefined;
}

function shaped(s: LinkSpec | undefined): LinkSpec | undefined {
  return s && ((s.latencyMs ?? 0) > 0 || (s.jitterMs ?? 0) > 0 || (s.bandwidthBytesPerSec ?? 0) > 0) ? s : undefined;
}

/** The wrapper of an inner link, found from the inner link's own events (see below). */
const OWNER = Symbol('faulty-link');
type Owned = ByteLink & { [OWNER]?: FaultyLink };

// The inner link's events, as shared functions: an EventEmitter calls a listener with `this`
// set to the emitter, and a memory link calls its data sink as its own method, so `this` is the
// inner link and its OWNER the wrapper. No closure per link (100,000 peers hold 200,000 links).
function innerData(this: Owned, b: Buffer): void {
  this[OWNER]!.arrived(b);
}
function innerEnd(this: Owned): void {
  this[OWNER]!.arrived(END);
}
function innerDrain(this: Owned): void {
  this[OWNER]!.innerDrained();
}
function innerError(this: Owned, e: Error): void {
  this[OWNER]!.error(e);
}
function innerClose(this: Owned): void {
  this[OWNER]!.innerClosed();
}
const pumpOut = (f: FaultyLink): void => f.pump(true);
const pumpIn = (f: FaultyLink): void => f.pump(false);

/** What a FaultyLink needs from its plane. */
export interface LinkHost {
  readonly clock: Clock;
  /** Jitter draws, in [0, 1). */
  rng(): number;
  /** The link closed. */
  forget?(f: FaultyLink): void;
}

// Flags, in one number (a 100,000-peer simulation holds 200,000 links). INNER_FULL: the inner
// link's last write said false and its 'drain' has not come yet; CLOSE_AFTER_END: the inner link
// closed after its end, so 'close' follows our queued end.
const HELD_OUT = 1, HELD_IN = 2, APP_PAUSED = 4, INNER_PAUSED = 8, NEED_DRAIN = 16;
const INNER_FULL = 32, END_OUT = 64, CLOSE_AFTER_END = 128, CLOSED = 256;

/** The shapes and queues of a link a fault touched (none on a link no fault ever touched). */
interface Shaped {
  shapeOut: LinkSpec | undefined;
  shapeIn: LinkSpec | undefined;
  out: Lane | undefined;
  inn: Lane | undefined;
}

type Fn = (...a: never[]) => void;
/** One listener, or several (rare). */
type Slot = Fn | Fn[] | undefined;

function call(s: Slot, a?: unknown): void {
  if (typeof s === 'function') (s as (x: unknown) => void)(a);
  else if (s) for (const f of [...s]) (f as (x: unknown) => void)(a);
}

/**
 * A ByteLink over another that holds, delays or resets what crosses it, as
 * its plane says (setRule, reset). `src` is the connecting node, `dst` the
 * node it reached (undefined: not known to the plane). Its listeners are
 * kept in fields, not an EventEmitter (a Connection adds one per event).
 */
export class FaultyLink implements ByteLink {
  private flags = 0;
  private st: Shaped | undefined;
  private sink: ((b: Buffer) => void) | undefined;
  private onData: Slot;
  private onDrain: Slot;
  private onEnd: Slot;
  private onClose: Slot;
  private onError: Slot;

  constructor(
    private readonly inner: ByteLink,
    private readonly host: LinkHost,
    readonly src: string,
    readonly dst: string | undefined,
  ) {
    (inner as Owned)[OWNER] = this;
    if (!inner.setDataSink?.(innerData)) inner.on('data', innerData);
    inner.on('end', innerEnd);
    inner.on('drain', innerDrain);
    inner.on('error', innerError);
    inner.on('close', innerClose);
  }

  on(ev: 'data', fn: (b: Buffer) => void): this;
  on(ev: 'drain' | 'end' | 'close', fn: () => void): this;
  on(ev: 'error', fn: (e: Error) => void): this;
  on(ev: string, fn: Fn): this {
    const add = (s: Slot): Slot => (s === undefined ? fn : typeof s === 'function' ? [s, fn] : [...s, fn]);
    if (ev === 'data') this.onData = add(this.onData);
    else if (ev === 'drain') this.onDrain = add(this.onDrain);
    else if (ev === 'end') this.onEnd = add(this.onEnd);
    else if (ev === 'close') this.onClose = add(this.onClose);
    else if (ev === 'error') this.onError = add(this.onError);
    return this;
  }

  get writableLength(): number {
    return (this.st?.out?.bytes ?? 0) + this.inner.writableLength;
  }

  get destroyed(): boolean {
    return this.inner.destroyed;
  }

  private has(f: number): boolean {
    return (this.flags & f) !== 0;
  }

  private set(f: number, on: boolean): void {
    this.flags = on ? this.flags | f : this.flags & ~f;
  }

  /** The faults in force on this link: each direction held or not, and its shape. */
  setRule(heldOut: boolean, heldIn: boolean, shapeOut: LinkSpec | undefined, shapeIn: LinkSpec | undefined): void {
    const freedOut = this.has(HELD_OUT) && !heldOut;
    const freedIn = this.has(HELD_IN) && !heldIn;
    this.set(HELD_OUT, heldOut);
    this.set(HELD_IN, heldIn);
    const so = shaped(shapeOut);
    const si = shaped(shapeIn);
    if (so || si || this.st) {
      const st = (this.st ??= { shapeOut: undefined, shapeIn: undefined, out: undefined, inn: undefined });
      st.shapeOut = so;
      st.shapeIn = si;
      if (freedOut && st.out) this.schedule(st.out, true);
      if (freedIn && st.inn) this.schedule(st.inn, false);
    }
    this.updatePause();
  }

  /** Nothing queued or shaped in a direction that is not held: bytes go straight through. */
  private clear(out: boolean): boolean {
    if (this.has(out ? HELD_OUT : HELD_IN | APP_PAUSED)) return false;
    const st = this.st;
    if (!st) return true;
    const l = out ? st.out : st.inn;
    return !(out ? st.shapeOut : st.shapeIn) && (!l || l.head === l.len);
  }

  // ---- outgoing ----

  write(data: Buffer): boolean {
    if (this.inner.destroyed || this.has(END_OUT)) return false;
    if (this.clear(true)) {
      if (this.inner.write(data)) return true;
      this.set(INNER_FULL | NEED_DRAIN, true);
      return false;
    }
    this.enqueue(true, data, data.length);
    if (this.has(INNER_FULL) || this.writableLength >= HIGH_WATER) {
      this.set(NEED_DRAIN, true);
      return false;
    }
    return true;
  }

  end(): void {
    if (this.has(END_OUT) || this.inner.destroyed) return;
    this.set(END_OUT, true);
    if (this.clear(true)) this.inner.end();
    else this.enqueue(true, END, 0);
  }

  destroy(err?: Error): void {
    this.drop();
    this.inner.destroy(err);
  }

  /** The fault: this end and the far end die as on ECONNRESET (a memory link's destroy resets its remote; TCP sends an RST). */
  reset(): void {
    if (this.inner.destroyed || this.has(CLOSED)) return;
    this.drop();
    const err = Object.assign(new Error('connection reset (fault)'), { code: 'ECONNRESET' });
    this.error(err);
    try {
      if (this.inner.resetAndDestroy) return this.inner.resetAndDestroy();
    } catch {
      // A socket that cannot send an RST (TLS over it): a destroy with the error.
    }
    this.inner.destroy(err);
  }

  error(e: Error): void {
    call(this.onError, e);
  }

  innerDrained(): void {
    this.set(INNER_FULL, false);
    this.maybeDrain();
  }

  private maybeDrain(): void {
    if (this.has(NEED_DRAIN) && !this.has(INNER_FULL | CLOSED) && this.writableLength < HIGH_WATER) {
      this.set(NEED_DRAIN, false);
      call(this.onDrain);
    }
  }

  // ---- incoming ----

  setDataSink(fn: (b: Buffer) => void): boolean {
    this.sink = fn;
    return true;
  }

  pause(): void {
    this.set(APP_PAUSED, true);
    this.updatePause();
  }

  resume(): void {
    if (!this.has(APP_PAUSED)) return;
    this.set(APP_PAUSED, false);
    this.updatePause();
    const l = this.st?.inn;
    if (l && l.head < l.len) this.schedule(l, false);
  }

  /** Bytes (or the end) from the inner link. */
  arrived(item: Item): void {
    if (this.clear(false)) return this.deliver(item);
    this.enqueue(false, item, item === END ? 0 : item.length);
    this.updatePause();
  }

  private deliver(item: Item): void {
    if (item === END) {
      call(this.onEnd);
      if (this.has(CLOSE_AFTER_END)) this.finish();
    } else {
      if (this.sink) this.sink(item);
      call(this.onData, item);
    }
  }

  innerClosed(): void {
    const l = this.st?.inn;
    // After a clean end the queued bytes and end are still delivered, then 'close'; after a reset they are lost.
    if (l && l.head < l.len && l.q[l.len - 2] === END) this.set(CLOSE_AFTER_END, true);
    else this.finish();
  }

  private finish(): void {
    if (this.has(CLOSED)) return;
    this.drop();
    this.set(CLOSED, true);
    this.host.forget?.(this);
    call(this.onClose);
  }

  /** Reads from the inner link stop while the app paused, the direction is held, or too much is queued. */
  private updatePause(): void {
    const want = this.has(APP_PAUSED | HELD_IN) || (this.st?.inn?.bytes ?? 0) >= HIGH_WATER;
    if (want === this.has(INNER_PAUSED) || this.inner.destroyed) return;
    this.set(INNER_PAUSED, want);
    if (want) this.inner.pause();
    else this.inner.resume();
  }

  // ---- the queues ----

  private enqueue(out: boolean, item: Item, len: number): void {
    const st = (this.st ??= { shapeOut: undefined, shapeIn: undefined, out: undefined, inn: undefined });
    const l = out ? (st.out ??= new Lane()) : (st.inn ??= new Lane());
    const s = out ? st.shapeOut : st.shapeIn;
    const now = this.host.clock.now();
    let due = now;
    if (s) {
      const bw = s.bandwidthBytesPerSec ?? 0;
      if (bw > 0) due = l.txDone = Math.max(now, l.txDone) + (len / bw) * 1000;
      const j = s.jitterMs ?? 0;
      due += Math.max(0, (s.latencyMs ?? 0) + (j > 0 ? (2 * this.host.rng() - 1) * j : 0));
    }
    due = Math.max(due, l.lastDue);
    l.lastDue = due;
    l.q[l.len] = item;
    l.q[l.len + 1] = due;
    l.len += 2;
    l.bytes += len;
    this.schedule(l, out);
  }

  private schedule(l: Lane, out: boolean): void {
    if (l.armed || l.head === l.len || this.has(CLOSED | (out ? HELD_OUT : HELD_IN | APP_PAUSED))) return;
    l.armed = true;
    const clock = this.host.clock;
    const wait = (l.q[l.head + 1] as number) - clock.now();
    if (wait <= 0) clock.defer(out ? pumpOut : pumpIn, this);
    else l.timer = clock.setTimeout(out ? pumpOut : pumpIn, wait, this);
  }

  /** Delivers what is due in one direction, in order, unless it is held. */
  pump(out: boolean): void {
    const l = out ? this.st!.out! : this.st!.inn!;
    l.armed = false;
    l.timer = undefined;
    if (this.has(CLOSED)) return;
    const clock = this.host.clock;
    const now = clock.now();
    // Node's timers may fire a fraction of a millisecond before performance.now() reaches the due time.
    const slack = clock.kind === 'real' ? 1 : 0;
    const held = out ? HELD_OUT : HELD_IN | APP_PAUSED;
    while (l.head < l.len && (l.q[l.head + 1] as number) <= now + slack) {
      if (this.has(held)) break;
      const item = l.q[l.head] as Item;
      l.q[l.head] = undefined;
      l.head += 2;
      if (item !== END) l.bytes -= item.length;
      if (!out) this.deliver(item);
      else if (item === END) this.inner.end();
      else if (!this.inner.write(item)) this.set(INNER_FULL, true);
      if (this.has(CLOSED)) return;
    }
    if (l.head === l.len) {
      l.head = l.len = 0;
      l.q = [];
    }
    this.schedule(l, out);
    if (out) this.maybeDrain();
    else this.updatePause();
  }

  private drop(): void {
    const st = this.st;
    if (!st) return;
    for (const l of [st.out, st.inn]) {
      if (!l) continue;
      this.host.clock.clearTimeout(l.timer);
      l.q = [];
      l.head = l.len = l.bytes = 0;
    }
  }
}

/** Waits for a connect across a fault. */
interface Waiter {
  src: string;
  dst: string | undefined;
  resolve(): void;
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

function checkMs(what: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`${what} must be a finite number ≥ 0 (got ${v})`);
}

function checkSpec(s: LinkSpec | null | undefined): void {
  if (!s) return;
  checkMs('latencyMs', s.latencyMs);
  checkMs('jitterMs', s.jitterMs);
  checkMs('bandwidthBytesPerSec', s.bandwidthBytesPerSec);
}

/** Node `id`'s transport through the plane. */
class PlaneTransport implements Transport {
  readonly kind: Transport['kind'];
  readonly withPsk?: (psk: Buffer) => Transport;

  constructor(private readonly plane: FaultPlane, private readonly id: string, private readonly inner: Transport) {
    this.kind = inner.kind;
    if (inner.withPsk) this.withPsk = (psk) => plane.transportFor(id, inner.withPsk!(psk));
  }

  async listen(o: ListenOptions): Promise<Listener> {
    const l = await this.inner.listen(o);
    this.plane.knowAddress(addrKey(l.address), this.id);
    return l;
  }

  async connect(to: HostPort, o: ConnectOptions = {}): Promise<Connection> {
    const p = this.plane;
    const dst = p.idAt(to);
    await p.connectable(this.id, dst, o.signal, addrKey(to));
    // A shaped pair's SYN and SYN-ACK take a round trip before the connection exists (as the memory network's own latency does).
    const rtt = p.connectRtt(this.id, dst);
    if (rtt > 0) await sleepOn(p.clock, rtt, o.signal).catch(() => Promise.reject(abortError(o.signal!, `a connection to ${addrKey(to)}`)));
    const outer = o.wrapLink;
    return this.inner.connect(to, { ...o, wrapLink: (l) => p.wrap(outer ? outer(l) : l, this.id, dst) });
  }
}

export class FaultPlane implements LinkFaults, LinkHost {
  /** Listening address (host:port) → node id. */
  private readonly at = new Map<string, string>();
  /** Open wrapped connections. */
  private readonly links = new Set<FaultyLink>();
  /** Once any fault was set, new links look up their rule (until then they need none). */
  private active = false;
  private groups: { of: Map<string, number[]>; oneWay: boolean } | undefined;
  private readonly isolated = new Set<string>();
  private readonly stalls = new Map<string, TimerHandle>();
  private readonly shapes = new Map<string, LinkSpec>();
  private regions: { of: ReadonlyMap<string, string>; m: RegionMatrix } | undefined;
  private readonly waiting = new Set<Waiter>();

  /** `rng`: the jitter draws (seeded, so a simulated run is a function of its seed). */
  constructor(
    readonly clock: Clock,
    readonly rng: () => number,
  ) {}

  transportFor(id: string, inner: Transport): Transport {
    return new PlaneTransport(this, id, inner);
  }

  knowAddress(key: string, id: string): void {
    this.at.set(key, id);
  }

  /** The node listening at `to`, if known. */
  idAt(to: HostPort): string | undefined {
    return this.at.get(addrKey(to)) ?? this.at.get(addrKey({ host: '0.0.0.0', port: to.port }));
  }

  /** Wraps a connection from `src` to `dst` (see FaultyLink). */
  wrap(inner: ByteLink, src: string, dst: string | undefined): FaultyLink {
    const f = new FaultyLink(inner, this, src, dst);
    this.links.add(f);
    if (this.active) this.apply(f);
    return f;
  }

  forget(f: FaultyLink): void {
    this.links.delete(f);
  }

  /** Open connections the plane controls (tests). */
  get openLinks(): number {
    return this.links.size;
  }

  /** Bytes from `from` to `to` are held now. */
  blocked(from: string | undefined, to: string | undefined): boolean {
    if (!this.active) return false;
    if ((from !== undefined && this.isolated.has(from)) || (to !== undefined && this.isolated.has(to))) return true;
    if (from === undefined || to === undefined) return false;
    if (this.stalls.has(pairKey(from, to))) return true;
    const g = this.groups;
    const a = g?.of.get(from);
    const b = g?.of.get(to);
    if (!a || !b || a.some((x) => b.includes(x))) return false;
    return !g!.oneWay || Math.min(...a) < Math.min(...b);
  }

  private shapeOf(from: string, to: string | undefined): LinkSpec | undefined {
    if (to === undefined) return undefined;
    const own = this.shapes.get(pairKey(from, to));
    if (own) return own;
    const r = this.regions;
    const ra = r?.of.get(from);
    const rb = r?.of.get(to);
    if (ra === undefined || rb === undefined) return undefined;
    return regionLink(r!.m, ra, rb);
  }

  /** Latency out and back between two nodes under their shapes, ms. */
  connectRtt(src: string, dst: string | undefined): number {
    if (!this.active || dst === undefined) return 0;
    return (shaped(this.shapeOf(src, dst))?.latencyMs ?? 0) + (shaped(this.shapeOf(dst, src))?.latencyMs ?? 0);
  }

  /** Resolves once a connect from src to dst would get through (both directions open); rejects as the connect would when `signal` aborts. */
  connectable(src: string, dst: string | undefined, signal: AbortSignal | undefined, where: string): Promise<void> {
    if (!this.blocked(src, dst) && !this.blocked(dst, src)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const what = `a connection to ${where}`;
      if (signal?.aborted) return reject(abortError(signal, what));
      const onAbort = () => {
        this.waiting.delete(w);
        reject(abortError(signal!, what));
      };
      const w: Waiter = {
        src,
        dst,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.waiting.add(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private apply(f: FaultyLink): void {
    f.setRule(this.blocked(f.src, f.dst), this.blocked(f.dst, f.src), this.shapeOf(f.src, f.dst), f.dst === undefined ? undefined : this.shapeOf(f.dst, f.src));
  }

  /** After a change: every link gets its rule again, and waiting connects that now get through go on. */
  private refresh(): void {
    this.active = true;
    for (const f of this.links) this.apply(f);
    for (const w of this.waiting) {
      if (this.blocked(w.src, w.dst) || this.blocked(w.dst, w.src)) continue;
      this.waiting.delete(w);
      w.resolve();
    }
  }

  partition(groups: readonly (readonly string[])[], o: { oneWay?: boolean } = {}): void {
    const of = new Map<string, number[]>();
    groups.forEach((g, i) => {
      for (const id of g) {
        const l = of.get(id);
        if (l) l.push(i);
        else of.set(id, [i]);
      }
    });
    this.groups = { of, oneWay: !!o.oneWay };
    this.refresh();
  }

  heal(): void {
    this.groups = undefined;
    this.refresh();
  }

  shape(a: string, b: string, s: LinkSpec | null): void {
    checkSpec(s);
    const k = pairKey(a, b);
    if (shaped(s ?? undefined)) this.shapes.set(k, s!);
    else this.shapes.delete(k);
    this.refresh();
  }

  shapeRegions(regionOf: ReadonlyMap<string, string>, m: RegionMatrix): void {
    for (const [a, row] of Object.entries(m.links)) {
      for (const [b, s] of Object.entries(row)) {
        if (!m.regions.includes(a) || !m.regions.includes(b)) throw new RangeError(`region matrix: unknown region in ${a} → ${b} (regions: ${m.regions.join(', ')})`);
        checkSpec(s);
      }
    }
    for (const [id, r] of regionOf) if (!m.regions.includes(r)) throw new RangeError(`node ${id}: unknown region ${r} (regions: ${m.regions.join(', ')})`);
    this.regions = { of: new Map(regionOf), m };
    this.refresh();
  }

  stall(a: string, b: string, ms: number): void {
    checkMs('stall ms', ms);
    const k = pairKey(a, b);
    this.clock.clearTimeout(this.stalls.get(k));
    const h = this.clock.setTimeout(() => {
      if (this.stalls.get(k) !== h) return;
      this.stalls.delete(k);
      this.refresh();
    }, ms);
    this.stalls.set(k, h);
    this.refresh();
  }

  reset(a: string, b: string): void {
    for (const f of [...this.links]) if ((f.src === a && f.dst === b) || (f.src === b && f.dst === a)) f.reset();
  }

  isolate(id: string, on: boolean): void {
    if (on) this.isolated.add(id);
    else this.isolated.delete(id);
    this.refresh();
  }

  /** Ends pending stalls (their timers would keep a clock going); links are left to their owners. */
  close(): void {
    for (const h of this.stalls.values()) this.clock.clearTimeout(h);
    this.stalls.clear();
  }
}

/** A runner's RunnerFaults with the link kinds applied by `plane` and every other kind refused with `why`. */
export function planeFaults(plane: LinkFaults, why: (kind: FaultKind) => string): RunnerFaults {
  const link = new Set<FaultKind>(['partition', 'heal', 'shape', 'stall', 'reset']);
  return {
    ...noFaults(why),
    unsupported: (kind) => (link.has(kind) ? null : why(kind)),
    partition: async (g, o) => plane.partition(g, o),
    heal: async () => plane.heal(),
    shape: async (a, b, s) => plane.shape(a, b, s),
    shapeRegions: async (r, m) => plane.shapeRegions(r, m),
    stall: async (a, b, ms) => plane.stall(a, b, ms),
    reset: async (a, b) => plane.reset(a, b),
  };
}
