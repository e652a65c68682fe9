/**
 * The plain records a scenario run produces: the rows every action appends
 * to, the tables printed, and the result JSON (ScenarioResult). Types only,
 * imported by scenario.ts, cluster.ts, output.ts and report.ts alike, so those
 * modules do not import each other for types (no import circle; checked by
 * test/unit/import-cycles.test.ts). What each field holds: docs/SCENARIOS.md.
 */
import { createHash } from 'node:crypto';
import type { TopoNode } from '../../core/index.ts';
import type { CommonOptions } from './args.ts';
import type { ChartSpec } from './charts.ts';
import type { FloodRow, JoinRow, RepairRow, StepRow, TransferRow } from './metrics.ts';
import type { FaultRow } from './faults.ts';
import type { MemorySample } from './runner.ts';

/** Which standard tables a scenario prints (default: all that have rows; 'summary' = one row per round). */
export type StandardTables = Partial<Record<'joins' | 'floods' | 'transfers' | 'repairs' | 'tree', 'auto' | 'rows' | 'summary' | 'off'>>;

export interface CheckRow {
  what: string;
  ok: boolean;
  detail?: string;
}

export interface PhaseRow {
  round: string;
  phase: string;
  peers: number;
  /** On the scenario's clock (`ScenarioResult.clock`): simulated ms under the memory runner, wall ms otherwise. */
  ms: number;
  /** Wall-clock ms of the same phase (equal to `ms` when the clock is the wall clock). */
  wallMs?: number;
}

/**
 * Fields of the records that carry wall-clock (or machine) figures and are
 * left out of `simDigest`, wherever they appear: `memory` (heap and RSS
 * samples) and every `wallMs` (wall time of a step or phase). Everything
 * else in the records is simulated under the memory runner.
 */
export const WALL_FIELDS: readonly string[] = ['memory', 'wallMs'];

/** SHA-256 (hex) of the records without WALL_FIELDS: equal for two runs of the same command under the memory runner. */
export function recordsDigest(records: Records): string {
  const drop = new Set(WALL_FIELDS);
  return createHash('sha256').update(JSON.stringify(records, (k, v) => (drop.has(k) ? undefined : v))).digest('hex');
}

export interface Records {
  joins: JoinRow[];
  floods: FloodRow[];
  transfers: TransferRow[];
  repairs: RepairRow[];
  steps: (StepRow & { soft?: boolean })[];
  checks: CheckRow[];
  memory: (MemorySample & { round: string })[];
  phases: PhaseRow[];
  /** Every fault applied, with the interval it was in force (scenarios/lib/faults.ts). */
  faults: FaultRow[];
}

export interface TableSpec {
  title: string;
  head: string[];
  rows: string[][];
  note?: string;
}

export interface TreeSnapshot {
  round: string;
  label: string;
  /** Harness clock, ms since the scenario started. */
  at: number;
  nodes: TopoNode[];
}

export interface ScenarioResult {
  scenario: string;
  ok: boolean;
  failures: string[];
  seed: number;
  options: Pick<CommonOptions, 'peers' | 'runner' | 'maxChildren' | 'policy' | 'latency' | 'bandwidth'> & { extra: CommonOptions['extra'] };
  command: string;
  startedAt: string;
  /**
   * What every `ms`/`at` figure in this result is measured on: `simulated`
   * (the memory runner's SimClock: simulated ms) or `wall` (real ms).
   */
  clock?: 'simulated' | 'wall';
  /** Length of the run on that clock, ms. */
  durationMs: number;
  /** Length of the run in simulated ms (memory runner), null on the wall clock. */
  simMs?: number | null;
  /**
   * Under the memory runner (simulated clock): SHA-256 of the records
   * without their wall-clock fields (WALL_FIELDS). Two runs of the same
   * command print the same digest. null on the wall clock.
   */
  simDigest?: string | null;
  /** Length of the run in wall-clock ms, whatever the clock. (clock, simMs, wallMs: absent from results written before they existed.) */
  wallMs?: number;
  records: Records;
  /** The final topology (last whole tree seen), if any. */
  tree: { round: string; nodes: TopoNode[]; text: string } | null;
  /** Scenario-specific figures (also shown in its tables). */
  summary: Record<string, unknown>;
  /** Every table printed, exactly as printed. */
  tables: TableSpec[];
  /** Trees kept along the way (e.g. before and after each repair), in order. */
  trees: TreeSnapshot[];
  /** The scenario's own charts (specs; the HTML report renders them). */
  charts: ChartSpec[];
  files: { json?: string; html?: string };
}
