/**
 * The process runner's fault side channel: JSON lines on an extra pipe, fd 3
 * of the node process (spawned with stdio [pipe, pipe, pipe, pipe]), which
 * only the harness that started the process holds. Nothing of it is in core:
 * the faulty entry points (testnet/faulty-*-main.ts) run the production main
 * with a fault plane and a node fault handle around its transport, clock and
 * store (scenarios/lib/faults.ts), and serve this channel beside it.
 *
 * Commands mirror LinkFaults (partition, heal, shape, shapeRegions, stall,
 * reset, isolate, knowAddress) and NodeFaultHandle (skew, disk); `recorded`
 * reads back what the recording stand-ins saw (testnet/fault-factories.ts).
 * Each command `{"id": n, "cmd": …}` is answered once it is in force, with
 * `{"id": n, "ok": true}` or `{"id": n, "ok": false, "error": "…"}`. A line
 * that is not a valid command gets that error answer (with its id when one
 * could be read), nothing is applied, and the node keeps running.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { z } from 'zod';
import { parseHostPort } from '../core/control/args.ts';
import { MAX_COMMAND_CHARS, parseCommand } from '../core/control/commands.ts';
import { CommandId } from '../core/control/schema.ts';
import { readLines } from '../core/control/lines.ts';
import { Id } from '../core/protocol/messages.ts';
import { describeError } from '../core/errors.ts';
import { DISK_FAULTS, type LinkFaults, type NodeFaultHandle } from '../scenarios/lib/faults.ts';
import { realClock } from '../core/clock.ts';
import { DriverError } from './driver.ts';
import { makeNodeFaults, makePlane, type Recording } from './fault-factories.ts';

/** The side channel's file descriptor in the node process. */
export const FAULT_FD = 3;

const NodeId = Id;
const Addr = z.string().max(300).refine((s) => {
  try {
    parseHostPort('address', s);
    return true;
  } catch {
    return false;
  }
}, 'an address must be host:port');
const Ms = z.number().finite().min(0).max(24 * 3600_000);
const LinkSpecZ = z.strictObject({ latencyMs: Ms.optional(), jitterMs: Ms.optional(), bandwidthBytesPerSec: z.number().finite().min(0).max(1e12).optional() });
const SkewSpecZ = z.strictObject({ offsetMs: z.number().finite().min(-1e12).max(1e12).optional(), driftPpm: z.number().finite().min(-999_999).max(1e6).optional() });
const DiskSpecZ = z.strictObject({ kind: z.enum(DISK_FAULTS), afterBytes: z.number().int().min(0).max(2 ** 53 - 1).optional(), ms: Ms.optional() });
const RegionName = z.string().min(1).max(64);
const RegionMatrixZ = z.strictObject({ regions: z.array(RegionName).max(1000), links: z.record(RegionName, z.record(RegionName, LinkSpecZ)) });

const cmd = <C extends string, S extends z.ZodRawShape>(name: C, shape: S) => z.strictObject({ cmd: z.literal(name), id: CommandId.optional(), ...shape });

export const FaultCommand = z.discriminatedUnion('cmd', [
  cmd('knowAddress', { addr: Addr, node: NodeId }),
  cmd('partition', { groups: z.array(z.array(NodeId).max(100_000)).max(1000), oneWay: z.boolean().optional() }),
  cmd('heal', {}),
  cmd('shape', { a: NodeId, b: NodeId, spec: LinkSpecZ.nullable() }),
  cmd('shapeRegions', { regionOf: z.record(NodeId, RegionName), matrix: RegionMatrixZ }),
  cmd('stall', { a: NodeId, b: NodeId, ms: Ms }),
  cmd('reset', { a: NodeId, b: NodeId }),
  cmd('isolate', { node: NodeId, on: z.boolean() }),
  cmd('skew', { spec: SkewSpecZ }),
  cmd('disk', { spec: DiskSpecZ.nullable() }),
  cmd('recorded', {}),
]);
export type FaultCommand = z.infer<typeof FaultCommand>;
type WithoutId<C> = C extends unknown ? Omit<C, 'id'> : never;
export type FaultRequest = WithoutId<FaultCommand>;

export const FaultReply = z.union([
  z.object({ id: CommandId.optional(), ok: z.literal(true), calls: z.array(z.object({ method: z.string(), args: z.array(z.unknown()) })).optional() }),
  z.object({ id: CommandId.optional(), ok: z.literal(false), error: z.string().max(10_000) }),
]);
export type FaultReply = z.infer<typeof FaultReply>;

const recordingOf = (x: object): Recording | null => ('calls' in x && Array.isArray((x as Recording).calls) ? (x as Recording) : null);

export interface FaultTargets {
  plane: LinkFaults;
  node: NodeFaultHandle;
  /** False for the metaserver: it has no share store, so a disk fault is refused. */
  hasStore: boolean;
}

/** Applies one validated command; returns extra fields of the answer. */
function apply(c: FaultCommand, t: FaultTargets): { calls?: { method: string; args: unknown[] }[] } {
  const { plane, node } = t;
  switch (c.cmd) {
    case 'knowAddress':
      plane.knowAddress(c.addr, c.node);
      return {};
    case 'partition':
      plane.partition(c.groups, c.oneWay !== undefined ? { oneWay: c.oneWay } : {});
      return {};
    case 'heal':
      plane.heal();
      return {};
    case 'shape':
      plane.shape(c.a, c.b, c.spec);
      return {};
    case 'shapeRegions':
      plane.shapeRegions(new Map(Object.entries(c.regionOf)), c.matrix);
      return {};
    case 'stall':
      plane.stall(c.a, c.b, c.ms);
      return {};
    case 'reset':
      plane.reset(c.a, c.b);
      return {};
    case 'isolate':
      plane.isolate(c.node, c.on);
      return {};
    case 'skew':
      node.setSkew(c.spec);
      return {};
    case 'disk':
      if (!t.hasStore) throw new Error('the metaserver has no share store: a disk fault needs a peer');
      node.setDisk(c.spec);
      return {};
    case 'recorded': {
      const calls = [...(recordingOf(plane)?.calls ?? []), ...(recordingOf(node)?.calls ?? [])];
      if (!recordingOf(plane) && !recordingOf(node)) throw new Error('recorded: this process runs the real fault classes, not the recording stand-ins (TREESHARE_FAULT_STANDIN=1)');
      return { calls };
    }
  }
}

/**
 * Node side: opens fd 3 (it must be a socket the harness holds; otherwise a
 * clear error) and answers every command line on it. The channel does not
 * keep the process alive.
 */
export function serveFaultChannel(t: FaultTargets, fd = FAULT_FD): void {
  let isSocket = false;
  try {
    isSocket = fs.fstatSync(fd).isSocket();
  } catch {
    /* not open */
  }
  if (!isSocket) throw new Error(`fd ${fd} is not the harness's fault side channel: this entry point is started by the process runner (scenarios/lib/runner-process.ts), with stdio [pipe, pipe, pipe, pipe]`);
  const sock = new net.Socket({ fd, readable: true, writable: true });
  sock.unref();
  sock.on('error', () => {
    /* the harness went away: nothing more to answer */
  });
  const answer = (r: FaultReply) => {
    if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n');
  };
  readLines(sock, MAX_COMMAND_CHARS, {
    line: (raw) => {
      const line = raw.trim();
      if (line === '') return;
      const p = parseCommand(line, FaultCommand);
      if (!p.ok) return answer({ ok: false, error: p.message, ...(p.id !== undefined ? { id: p.id } : {}) });
      const id = p.cmd.id !== undefined ? { id: p.cmd.id } : {};
      try {
        answer({ ok: true, ...id, ...apply(p.cmd, t) });
      } catch (err) {
        answer({ ok: false, ...id, error: describeError(err) });
      }
    },
    tooLong: (chars) => answer({ ok: false, error: `command line longer than ${MAX_COMMAND_CHARS} characters (${chars} skipped)` }),
    end: () => undefined,
  });
}

/**
 * What a faulty entry point does before it runs the production main: makes
 * this process's fault plane and node fault handle (testnet/fault-factories.ts)
 * and serves the side channel for them; without the channel on fd 3 it
 * says so and exits 2.
 */
export function startFaultyNode(program: string, hasStore: boolean): { plane: LinkFaults; node: NodeFaultHandle } {
  const plane = makePlane(realClock);
  const node = makeNodeFaults(realClock);
  try {
    serveFaultChannel({ plane, node, hasStore });
  } catch (err) {
    process.stderr.write(`${program}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  return { plane, node };
}

/** A command the node answered with `ok: false`. */
export class FaultRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FaultRefusedError';
  }
}

interface ChannelEvents {
  /** An answer that matches no pending command (e.g. the error for a line without an id). */
  unmatched: [FaultReply];
}

/**
 * Harness side of one node's channel: sends commands with fresh ids and
 * resolves each with its answer (rejects with FaultRefusedError on `ok:
 * false`, DriverError on timeout or when the process is gone).
 */
export class FaultChannel extends EventEmitter<ChannelEvents> {
  private readonly pending = new Map<string, { resolve: (r: FaultReply) => void; reject: (e: Error) => void }>();
  private seq = 0;
  private closed = false;
  /** Lines the node wrote that were not valid answers (for error messages). */
  readonly junk: string[] = [];

  constructor(
    private readonly stream: Duplex,
    readonly what: string,
  ) {
    super();
    stream.on('error', () => this.close());
    readLines(stream, MAX_COMMAND_CHARS, {
      line: (l) => this.onLine(l),
      tooLong: (n) => this.junk.push(`(a line of ${n} characters)`),
      end: () => this.close(),
    });
  }

  private onLine(line: string): void {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      v = undefined;
    }
    const r = FaultReply.safeParse(v);
    if (!r.success) {
      this.junk.push(line.slice(0, 200));
      if (this.junk.length > 20) this.junk.shift();
      return;
    }
    const id = r.data.id === undefined ? undefined : String(r.data.id);
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p) return void this.emit('unmatched', r.data);
    this.pending.delete(id!);
    p.resolve(r.data);
  }

  /** The process is gone: every pending command fails now. */
  close(why = `${this.what} exited`): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new DriverError('exited', `${why} before answering a fault command`));
    this.pending.clear();
  }

  /** Writes one raw line (tests: a malformed command). */
  sendRaw(line: string): void {
    if (this.closed) throw new DriverError('exited', `${this.what} exited`);
    this.stream.write(line + '\n');
  }

  /**
   * Sends `c`; resolves with the answer once the node has it in force.
   * timeoutMs 0: no timeout (a paused process answers when resumed; the
   * command still fails if the process exits).
   */
  request(c: FaultRequest, o: { timeoutMs?: number } = {}): Promise<FaultReply & { ok: true }> {
    if (this.closed) return Promise.reject(new DriverError('exited', `${this.what} exited`));
    const id = `f${++this.seq}`;
    const ms = o.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const t = ms > 0 ? setTimeout(() => {
        this.pending.delete(id);
        reject(new DriverError('timeout', `${this.what}: no answer to fault command ${c.cmd} within ${ms} ms`));
      }, ms) : undefined;
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(t);
          if (r.ok) resolve(r);
          else reject(new FaultRefusedError(`${this.what} refused ${c.cmd}: ${r.error}`));
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.stream.write(JSON.stringify({ ...c, id }) + '\n');
    });
  }
}
