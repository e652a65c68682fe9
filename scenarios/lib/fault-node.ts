/**
 * The node half of the faults (docs/FAULTS.md) for nodes in this process:
 * pause's clock side, clock skew and disk faults, applied around the
 * unchanged Peer or Metaserver. A NodeFaults is one object per node: it is
 * the Clock the node is constructed with (over the runner's clock: realClock
 * or the memory runner's SimClock) and makes the node's store wrapper.
 *
 * Clock: every timer, interval and defer of the node goes through a small
 * NodeTimer on the runner's clock, so a pause can hold the ones already
 * scheduled: what comes due while paused waits and fires after the resume,
 * in the order it came due (a SIGSTOP'd process's timers are late, not
 * lost; an interval that missed several periods fires once, as Node's do).
 * Work held with hold() whose result arrives while paused is delivered after
 * the resume the same way. now() keeps running (the world's time) unless
 * skewed: then now() = true now + offsetMs + driftPpm/1e6 × (true time since
 * the skew was set), and a timer's delay is measured on the node's clock (a
 * fast clock fires it early in true time; the offset moves no timer, as a
 * step of the wall clock moves no monotonic timer).
 *
 * Store (FaultyStore): the peer's ShareStore, with the disk fault in force
 * (enospc / eio-write: a temporary file's writes fail after afterBytes
 * written through it; eio-read: a served file's reads fail after afterBytes
 * read from it, and hashing it fails unless its hash is known; fsync-fails:
 * a durable download's fsync (seal) and folder fsync (commit) fail; slow:
 * every operation takes `ms` more on the node's clock). The errors are what
 * the file system throws (code ENOSPC/EIO, errno, syscall), so what is tested
 * is the peer's own handling. Also the tampering holder (tamperingStore):
 * every read of a served file comes back with one bit flipped.
 *
 * What goes through the store: the offer path on both sides (the holder's
 * open, hash and reads; the requester's temporary file, seal and commit),
 * swarm serving (open, manifest, piece reads), listings and query answers.
 * Swarm downloads on a folder store write their pieces, partials and resume
 * state straight into the folder (issue 27): disk faults do not reach them.
 */
import { sleepOn, timeoutReason, type Clock, type TimerHandle } from '../../core/clock.ts';
import type { ShareStore, StoreFile, TempFile } from '../../core/index.ts';
import type { DiskSpec, NodeFaultHandle, SkewSpec } from './faults.ts';

/** A timer of a node, scheduled on the runner's clock through `fireNodeTimer`. */
class NodeTimer implements TimerHandle {
  inner: TimerHandle | undefined;
  /** false once fired (one-shot) or cancelled. */
  live = true;
  /** Came due while the node was paused: waiting in its late queue. */
  late = false;
  refed = true;
  constructor(
    readonly node: NodeFaults,
    public fn: (arg: unknown) => void,
    public arg: unknown,
    readonly every: number,
  ) {}

  ref(): this {
    this.refed = true;
    this.inner?.ref();
    return this;
  }

  unref(): this {
    this.refed = false;
    this.inner?.unref();
    return this;
  }

  hasRef(): boolean {
    return this.refed;
  }
}

/** One shared function for every node timer (a closure per timer costs memory at 100,000 peers). */
function fireNodeTimer(t: NodeTimer): void {
  t.node.due(t);
}

function releaseLate(n: NodeFaults): void {
  n.releaseLate();
}

function abortTimedOut(ac: AbortController): void {
  ac.abort(timeoutReason());
}

const noop = (): void => undefined;

/** Promises of FaultyStore whose real work is held already: NodeFaults.hold must not hold the wait around it (a simulated clock would never reach the wait's end). */
const heldInside = new WeakSet<Promise<unknown>>();

export class NodeFaults implements NodeFaultHandle, Clock {
  readonly kind: 'real' | 'sim';
  private paused = false;
  /** What came due while paused, in the order it came due. */
  private late: NodeTimer[] = [];
  /** Skew in force: offset, rate (1 + ppm/1e6) and the true time it was set at. */
  private skew: { offsetMs: number; rate: number; since: number } | undefined;
  /** The disk fault in force on this node's store(s). */
  disk: DiskSpec | null = null;

  constructor(readonly id: string, readonly base: Clock) {
    this.kind = base.kind;
  }

  /** This node's clock (the object itself: one object per node). */
  get clock(): Clock {
    return this;
  }

  // ---------------------------------------------------------------- switches

  setPaused(on: boolean): void {
    if (on === this.paused) return;
    this.paused = on;
    if (!on && this.late.length) this.base.defer(releaseLate, this);
  }

  setSkew(s: SkewSpec): void {
    const offsetMs = s.offsetMs ?? 0;
    const ppm = s.driftPpm ?? 0;
    if (!Number.isFinite(offsetMs) || !Number.isFinite(ppm) || ppm <= -1e6) throw new RangeError(`skew: offsetMs and driftPpm must be finite and driftPpm above -1,000,000 (got ${offsetMs}, ${ppm})`);
    this.skew = offsetMs === 0 && ppm === 0 ? undefined : { offsetMs, rate: 1 + ppm / 1e6, since: this.base.now() };
  }

  setDisk(d: DiskSpec | null): void {
    this.disk = d;
  }

  wrapStore(inner: ShareStore): ShareStore {
    return new FaultyStore(inner, this);
  }

  // ---------------------------------------------------------------- clock

  now(): number {
    const t = this.base.now();
    const s = this.skew;
    return s ? t + s.offsetMs + (s.rate - 1) * (t - s.since) : t;
  }

  /** A delay on this node's clock, in true ms. */
  private trueMs(ms: number): number {
    return this.skew ? ms / this.skew.rate : ms;
  }

  setTimeout<A = void>(fn: (arg: A) => void, ms: number, arg?: A): TimerHandle {
    const t = new NodeTimer(this, fn as (a: unknown) => void, arg, 0);
    t.inner = this.base.setTimeout(fireNodeTimer, this.trueMs(ms), t);
    return t;
  }

  setInterval<A = void>(fn: (arg: A) => void, ms: number, arg?: A): TimerHandle {
    const t = new NodeTimer(this, fn as (a: unknown) => void, arg, 1);
    t.inner = this.base.setInterval(fireNodeTimer, this.trueMs(ms), t);
    return t;
  }

  clearTimeout(h: TimerHandle | undefined): void {
    if (!(h instanceof NodeTimer) || h.node !== this || !h.live) return;
    h.live = false;
    if (h.every) this.base.clearInterval(h.inner);
    else this.base.clearTimeout(h.inner);
    h.fn = noop;
    h.arg = undefined;
  }

  clearInterval(h: TimerHandle | undefined): void {
    this.clearTimeout(h);
  }

  defer<A = void>(fn: (arg: A) => void, arg?: A): void {
    this.base.defer(fireNodeTimer, new NodeTimer(this, fn as (a: unknown) => void, arg, 0));
  }

  timeoutSignal(ms: number): AbortSignal {
    const ac = new AbortController();
    this.setTimeout(abortTimedOut, ms, ac).unref();
    return ac.signal;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  hold<T>(p: Promise<T>): Promise<T> {
    const q = heldInside.has(p) ? p : this.base.hold(p);
    return q.then(
      (v) => (this.paused ? this.afterResume<T>(() => v) : v),
      (e: unknown) => (this.paused ? this.afterResume<T>(() => Promise.reject(e)) : Promise.reject(e)),
    );
  }

  /** A promise of `value()` once the node is resumed (queued as a late timer). */
  private afterResume<T>(value: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve) => {
      const t = new NodeTimer(this, () => resolve(value()), undefined, 0);
      t.late = true;
      this.late.push(t);
    });
  }

  /** A node timer came due on the runner's clock. */
  due(t: NodeTimer): void {
    if (!t.live) return;
    if (this.paused) {
      if (!t.late) {
        t.late = true;
        this.late.push(t);
      }
      return;
    }
    if (t.every === 0) t.live = false;
    t.fn(t.arg);
  }

  /** After a resume: fires what came due while paused, in order (stopping if paused again). */
  releaseLate(): void {
    const q = this.late;
    this.late = [];
    for (let i = 0; i < q.length; i++) {
      if (this.paused) {
        this.late = q.slice(i).concat(this.late);
        return;
      }
      const t = q[i]!;
      t.late = false;
      if (!t.live) continue;
      if (t.every === 0) t.live = false;
      t.fn(t.arg);
    }
  }
}

// ---------------------------------------------------------------- store

/** What a FaultyStore asks of its owner: the fault in force and the clock of `slow`. */
export interface StoreFaultSource {
  readonly disk: DiskSpec | null;
  readonly clock: Clock;
  /** Every read of a served file comes back with a bit flipped (the tampering holder). */
  readonly corrupt?: boolean;
}

const ERRNO = { ENOSPC: [-28, 'no space left on device'], EIO: [-5, 'i/o error'] } as const;

/** An error as the file system throws it: `ENOSPC: no space left on device, write`, with code, errno and syscall. */
export function fsError(code: keyof typeof ERRNO, syscall: string): NodeJS.ErrnoException {
  const [errno, text] = ERRNO[code];
  return Object.assign(new Error(`${code}: ${text}, ${syscall}`), { code, errno, syscall });
}

/** A ShareStore with the faults of `src` in force at each operation (see the file's comment). */
export class FaultyStore implements ShareStore {
  constructor(readonly inner: ShareStore, private readonly src: StoreFaultSource) {}

  get kind(): ShareStore['kind'] {
    return this.inner.kind;
  }
  get label(): string {
    return this.inner.label;
  }
  get dir(): string | undefined {
    return this.inner.dir;
  }
  changed(): void {
    this.inner.changed?.();
  }

  /** `slow`: the operation after `ms` on the node's clock (its real work held inside); else the operation. */
  private op<T>(fn: () => Promise<T>): Promise<T> {
    const d = this.src.disk;
    if (d?.kind !== 'slow') return fn();
    const clock = this.src.clock;
    const p = sleepOn(clock, d.ms ?? 0).then(() => clock.hold(fn()));
    heldInside.add(p);
    return p;
  }

  prepare(ownerId: string): Promise<string[]> {
    return this.op(() => this.inner.prepare(ownerId));
  }
  list(): Promise<{ name: string; size: number }[]> {
    return this.op(() => this.inner.list());
  }
  stat(name: string): Promise<{ size: number } | null> {
    return this.op(() => this.inner.stat(name));
  }
  statNow(name: string): { size: number } | null | undefined {
    // A slow disk answers nothing at once: stat() takes its time.
    return this.src.disk?.kind === 'slow' ? undefined : this.inner.statNow?.(name);
  }
  countNow(): number | undefined {
    return this.inner.countNow?.();
  }
  exists(name: string): Promise<boolean> {
    return this.op(() => this.inner.exists(name));
  }
  freeBytes(): Promise<number> {
    return this.op(() => this.inner.freeBytes());
  }
  open(name: string): Promise<StoreFile> {
    return this.op(async () => this.file(await this.inner.open(name)));
  }
  createTemp(o: { tag?: string; fsync: boolean }): Promise<TempFile> {
    return this.op(async () => this.temp(await this.inner.createTemp(o), o.fsync));
  }

  private file(f: StoreFile): StoreFile {
    const src = this.src;
    let read = 0;
    /** eio-read: hashing reads the whole file, so it fails unless the hash is known. */
    const unreadable = () => src.disk?.kind === 'eio-read' && (src.disk.afterBytes ?? 0) < f.size;
    return {
      name: f.name,
      size: f.size,
      read: (buf, offset, length, position) =>
        this.op(async () => {
          const d = src.disk;
          let n = length;
          if (d?.kind === 'eio-read') {
            const room = (d.afterBytes ?? 0) - read;
            if (room <= 0) throw fsError('EIO', 'read');
            n = Math.min(n, room);
          }
          const r = await f.read(buf, offset, n, position);
          read += r.bytesRead;
          if (src.corrupt && r.bytesRead > 0) buf[offset] ^= 0x01;
          return r;
        }),
      knownSha256: () => f.knownSha256(),
      sha256: (o) =>
        this.op(async () => {
          const known = await f.knownSha256();
          if (known !== undefined) return known;
          if (unreadable()) throw fsError('EIO', 'read');
          return f.sha256(o);
        }),
      ...(f.manifest && {
        cachedManifest: (min?: number) => f.cachedManifest?.(min),
        manifest: (o: Parameters<NonNullable<StoreFile['manifest']>>[0]) =>
          this.op(async () => {
            const known = f.cachedManifest?.(o.minPieceBytes);
            if (known) return known;
            if (unreadable()) throw fsError('EIO', 'read');
            return f.manifest!(o);
          }),
      }),
      close: () => f.close(),
    };
  }

  private temp(t: TempFile, durable: boolean): TempFile {
    const src = this.src;
    let written = 0;
    return {
      write: (b) => {
        const d = src.disk;
        if (d?.kind === 'enospc' || d?.kind === 'eio-write') {
          const room = (d.afterBytes ?? 0) - written;
          if (b.length > room) {
            // As writeSync on a filling disk: what fits is written, then the error.
            if (room > 0) {
              t.write(b.subarray(0, room));
              written += room;
            }
            throw fsError(d.kind === 'enospc' ? 'ENOSPC' : 'EIO', 'write');
          }
        }
        t.write(b);
        written += b.length;
      },
      seal: () =>
        this.op(async () => {
          if (durable && src.disk?.kind === 'fsync-fails') throw fsError('EIO', 'fsync');
          return t.seal();
        }),
      commit: (name, sha256) =>
        this.op(async () => {
          if (durable && src.disk?.kind === 'fsync-fails') throw fsError('EIO', 'fsync');
          return t.commit(name, sha256);
        }),
      discard: () => t.discard(),
    };
  }
}

/** The tampering holder (scenarios/swarm.ts's BAD): `inner` whose served reads come back with one bit flipped each; hashes and manifests stay true. */
export function tamperingStore(inner: ShareStore, clock: Clock): ShareStore {
  return new FaultyStore(inner, { disk: null, clock, corrupt: true });
}
