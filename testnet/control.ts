/**
 * Client side of the `--json` control protocol (docs/CONTROL.md), on the
 * one process driver: starts core/bin/peer-main.ts or metaserver-main.ts (or
 * another program speaking the protocol: the faulty entry points), parses every stdout line with the protocol's schema
 * (core/control/schema.ts; a line that does not validate is kept for error
 * messages and never reaches a caller), sends commands with a fresh `id` and
 * resolves each with the typed result event that echoes it, or rejects with
 * a ControlError carrying the `error` event's code. Unprompted events are
 * re-emitted as 'event'.
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { ErrorCode } from '../core/errors.ts';
import {
  METASERVER_RESULT,
  MetaserverEvent,
  PEER_RESULT,
  PeerEvent,
  type EventOf,
  type MetaserverCommand,
  type PeerCommand,
} from '../core/control/schema.ts';
import { DriverError, LineProcess, REPO, type ExitInfo, type StartOptions } from './driver.ts';

export const PEER_MAIN = path.join(REPO, 'core/bin/peer-main.ts');
export const META_MAIN = path.join(REPO, 'core/bin/metaserver-main.ts');
/** The same mains with the harness's fault plane, clock and store around them and the fault side channel on fd 3. */
export const FAULTY_PEER_MAIN = path.join(REPO, 'testnet/faulty-peer-main.ts');
export const FAULTY_META_MAIN = path.join(REPO, 'testnet/faulty-metaserver-main.ts');

/** A command the process answered with an `error` event. */
export class ControlError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

export interface CommandOptions {
  signal?: AbortSignal;
  /** Default 30,000 ms. */
  timeoutMs?: number;
}

type Kind = 'peer' | 'metaserver';
type EventFor<K extends Kind> = K extends 'peer' ? PeerEvent : MetaserverEvent;
type CommandFor<K extends Kind> = K extends 'peer' ? PeerCommand : MetaserverCommand;
type ResultMap<K extends Kind> = K extends 'peer' ? typeof PEER_RESULT : typeof METASERVER_RESULT;
/** The result event of command `C` (without its id: the driver adds and matches it). */
export type ResultOf<K extends Kind, C extends CommandFor<K>['cmd']> = EventOf<EventFor<K>, ResultMap<K>[C & keyof ResultMap<K>] & EventFor<K>['event']>;
type WithoutId<C> = C extends unknown ? Omit<C, 'id'> : never;

interface ControlEvents<E> {
  event: [E];
  exit: [ExitInfo];
}

export class ControlProcess<K extends Kind> extends EventEmitter<ControlEvents<EventFor<K>>> {
  readonly proc: LineProcess;
  /** Every validated event so far, in order. */
  readonly events: EventFor<K>[] = [];
  private readonly schema: typeof PeerEvent | typeof MetaserverEvent;
  private readonly results: Record<string, string>;
  private readonly pending = new Map<string, { expect: string; resolve: (e: EventFor<K>) => void; reject: (e: Error) => void }>();
  private seq = 0;

  constructor(
    readonly kind: K,
    args: readonly string[],
    o: StartOptions & { program?: string },
  ) {
    super();
    this.schema = kind === 'peer' ? PeerEvent : MetaserverEvent;
    this.results = kind === 'peer' ? PEER_RESULT : METASERVER_RESULT;
    this.proc = new LineProcess(o.program ?? (kind === 'peer' ? PEER_MAIN : META_MAIN), args, o);
    this.proc.on('json', (v) => this.onJson(v));
    this.proc.on('exit', (e) => this.onExit(e));
  }

  get what(): string {
    return this.proc.what;
  }
  get pid(): number | null {
    return this.proc.pid;
  }
  get alive(): boolean {
    return this.proc.alive;
  }
  get exitInfo(): ExitInfo | null {
    return this.proc.exitInfo;
  }
  diagnostics(): string {
    return this.proc.diagnostics();
  }

  private onJson(v: Record<string, unknown>): void {
    const r = this.schema.safeParse(v);
    if (!r.success) {
      this.proc.noteJunk(`invalid event ${JSON.stringify(v).slice(0, 200)}: ${r.error.issues[0]?.message ?? ''}`);
      return;
    }
    // The schema of this process's kind validated it.
    const e = r.data as EventFor<K>;
    this.events.push(e);
    const id = e.id === undefined ? undefined : String(e.id);
    const p = id === undefined ? undefined : this.pending.get(id);
    if (p && e.event === 'error') {
      this.pending.delete(id!);
      p.reject(new ControlError(e.code, e.message));
      return;
    }
    if (p && e.event === p.expect) {
      this.pending.delete(id!);
      p.resolve(e);
      return;
    }
    this.emit('event', e);
  }

  private onExit(e: ExitInfo): void {
    const why = `${this.what} ${this.proc.exitReason()}${this.diagnostics()}`;
    for (const p of this.pending.values()) p.reject(new DriverError('exited', why));
    this.pending.clear();
    this.emit('exit', e);
  }

  /** Sends `cmd` with a fresh id; resolves with its result event. */
  command<C extends WithoutId<CommandFor<K>>>(cmd: C, o: CommandOptions = {}): Promise<ResultOf<K, C['cmd']>> {
    if (!this.alive) return Promise.reject(new DriverError('exited', `${this.what} is not running`));
    const id = `h${++this.seq}`;
    const expect = this.results[cmd.cmd]!;
    return new Promise<ResultOf<K, C['cmd']>>((resolve, reject) => {
      const ms = o.timeoutMs ?? 30_000;
      const cleanup = () => {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
      };
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DriverError('timeout', `${this.what}: no answer to ${cmd.cmd} within ${ms} ms${this.diagnostics()}`));
      }, ms);
      const onAbort = () => {
        cleanup();
        this.pending.delete(id);
        reject(new DriverError('aborted', `${this.what}: ${cmd.cmd} aborted`));
      };
      o.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        expect,
        // Matched on the event name PEER_RESULT / METASERVER_RESULT gives for this command.
        resolve: (e) => (cleanup(), resolve(e as ResultOf<K, C['cmd']>)),
        reject: (e) => (cleanup(), reject(e)),
      });
      this.proc.send({ ...cmd, id });
    });
  }

  /** The `ready` event (the first line either process prints), waiting for it if it has not come yet. */
  waitReady(timeoutMs = 30_000): Promise<EventOf<EventFor<K>, 'ready'>> {
    type R = EventOf<EventFor<K>, 'ready'>;
    const seen = this.events.find((e): e is R => e.event === 'ready');
    return seen ? Promise.resolve(seen) : this.waitEvent('ready', timeoutMs);
  }

  /** The next unprompted event named `name` (matching `pred`), or rejects on exit/timeout. */
  waitEvent<N extends EventFor<K>['event']>(name: N, timeoutMs: number, pred: (e: EventOf<EventFor<K>, N>) => boolean = () => true): Promise<EventOf<EventFor<K>, N>> {
    type E = EventOf<EventFor<K>, N>;
    return new Promise<E>((resolve, reject) => {
      if (!this.alive) return reject(new DriverError('exited', `${this.what} ${this.proc.exitReason()} before ${name}${this.diagnostics()}`));
      const done = () => {
        clearTimeout(t);
        this.off('event', onEvent);
        this.off('exit', onExit);
      };
      const t = setTimeout(() => {
        done();
        reject(new DriverError('timeout', `${this.what}: no ${name} within ${timeoutMs} ms${this.diagnostics()}`));
      }, timeoutMs);
      const onEvent = (e: EventFor<K>) => {
        if (e.event === name && pred(e as E)) {
          done();
          resolve(e as E);
        }
      };
      const onExit = () => {
        done();
        reject(new DriverError('exited', `${this.what} ${this.proc.exitReason()} before ${name}${this.diagnostics()}`));
      };
      this.on('event', onEvent);
      this.on('exit', onExit);
    });
  }

  exited(timeoutMs = 10_000): Promise<ExitInfo> {
    return this.proc.exited(timeoutMs);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.proc.kill(signal);
  }
}
