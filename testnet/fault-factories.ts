/**
 * Where the faulty entry points (testnet/faulty-*-main.ts) get their fault
 * plane (LinkFaults) and node fault handle (NodeFaultHandle) from, so the
 * entry points are written against the interfaces of
 * scenarios/lib/faults.ts only.
 *
 * makePlane returns a FaultPlane (scenarios/lib/fault-plane.ts) and
 * makeNodeFaults a NodeFaults (scenarios/lib/fault-node.ts), unless
 * TREESHARE_FAULT_STANDIN=1: then the recording stand-ins below.
 *
 * The stand-ins record every call (read back with the side channel's
 * `recorded` command) and change nothing: their transport, clock and store
 * are the ones they were given.
 */
import type { Clock } from '../core/clock.ts';
import type { ShareStore, Transport } from '../core/index.ts';
import { randomInt } from 'node:crypto';
import { mulberry32 } from '../core/index.ts';
import { NodeFaults } from '../scenarios/lib/fault-node.ts';
import { FaultPlane } from '../scenarios/lib/fault-plane.ts';
import type { DiskSpec, LinkFaults, LinkSpec, NodeFaultHandle, RegionMatrix, SkewSpec } from '../scenarios/lib/faults.ts';

/** Set to 1 in a node's environment: the recording stand-ins even where the real classes exist. */
export const STANDIN_ENV = 'TREESHARE_FAULT_STANDIN';

type Call = { method: string; args: unknown[] };

/** What a recording stand-in saw; a real implementation has no such list. */
export interface Recording {
  readonly calls: readonly Call[];
}

export class RecordingPlane implements LinkFaults, Recording {
  readonly calls: Call[] = [];
  private rec(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
  }
  transportFor(id: string, inner: Transport): Transport {
    this.rec('transportFor', id);
    return inner;
  }
  knowAddress(addrKey: string, id: string): void {
    this.rec('knowAddress', addrKey, id);
  }
  partition(groups: readonly (readonly string[])[], o?: { oneWay?: boolean }): void {
    this.rec('partition', groups, o ?? {});
  }
  heal(): void {
    this.rec('heal');
  }
  shape(a: string, b: string, s: LinkSpec | null): void {
    this.rec('shape', a, b, s);
  }
  shapeRegions(regionOf: ReadonlyMap<string, string>, m: RegionMatrix): void {
    this.rec('shapeRegions', Object.fromEntries(regionOf), m);
  }
  stall(a: string, b: string, ms: number): void {
    this.rec('stall', a, b, ms);
  }
  reset(a: string, b: string): void {
    this.rec('reset', a, b);
  }
  isolate(id: string, on: boolean): void {
    this.rec('isolate', id, on);
  }
}

export class RecordingNodeFaults implements NodeFaultHandle, Recording {
  readonly calls: Call[] = [];
  constructor(readonly clock: Clock) {}
  wrapStore(inner: ShareStore): ShareStore {
    this.calls.push({ method: 'wrapStore', args: [inner.label] });
    return inner;
  }
  setPaused(on: boolean): void {
    this.calls.push({ method: 'setPaused', args: [on] });
  }
  setSkew(s: SkewSpec): void {
    this.calls.push({ method: 'setSkew', args: [s] });
  }
  setDisk(d: DiskSpec | null): void {
    this.calls.push({ method: 'setDisk', args: [d] });
  }
}

/** The fault plane of one node process (real clock). */
export function makePlane(clock: Clock): LinkFaults {
  // Jitter draws: each process its own unseeded generator (real time is not repeatable anyway).
  if (process.env[STANDIN_ENV] !== '1') return new FaultPlane(clock, mulberry32(randomInt(2 ** 32)));
  return new RecordingPlane();
}

/** The clock/store fault handle of the one node in this process. */
export function makeNodeFaults(clock: Clock): NodeFaultHandle {
  if (process.env[STANDIN_ENV] !== '1') return new NodeFaults('this process', clock);
  return new RecordingNodeFaults(clock);
}
