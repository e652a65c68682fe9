/**
 * A scenario run: options, the seeded random source, the records every
 * action appends to, recorded steps and checks, and the overlays (Clusters)
 * it started. `runScenario()` runs a definition and always closes what it
 * started, whatever happens; the result is plain JSON (see ScenarioResult).
 * The command-line wrapper is cli.ts.
 */
import { createHash } from 'node:crypto';
import type { Clock, TopoNode } from '../../core/index.ts';
import type { ChartSpec } from './charts.ts';
import type { CommonOptions, Defaults, ExtraOption } from './args.ts';
import { Cluster, type ClusterOptions } from './cluster.ts';
import type { FloodRow, JoinRow, RepairRow, StepRow, TransferRow } from './metrics.ts';
import { progress, type Progress } from './progress.ts';
import { createRng, type Rng } from './rng.ts';
import type { MemorySample } from './runner.ts';
import { renderTreeText } from './output.ts';

export interface ScenarioDef {
  name: string;
  /** One paragraph for --help. */
  summary: string;
  defaults: Defaults;
  options?: Record<string, ExtraOption>;
  /** Help text replacing a common option's (with its default), where this scenario reads it differently. */
  commonHelp?: Partial<Record<string, string>>;
  /** Which standard tables to print (default: all that have rows; 'summary' = one row per round). */
  standard?: Partial<Record<'joins' | 'floods' | 'transfers' | 'repairs' | 'tree', 'auto' | 'rows' | 'summary' | 'off'>>;
  /** Checks the scenario's own options before anything starts; throw UsageError for a bad one. */
  validate?(opts: CommonOptions): void;
  run(s: Scenario): Promise<void>;
}

export interface CheckRow {
  what: string;
  ok: boolean;
  detail?: string;
}

export interface PhaseRow {
  round: string;
  phase: string;
  peers: number;
  /** Scenario clock: simulated ms under the memory runner, wall ms otherwise. */
  ms: number;
  /** Wall-clock ms (left out of simDigest). */
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
  durationMs: number;
  /**
   * Under the memory runner (every overlay of the run simulated): SHA-256 of
   * the records without their wall-clock fields (WALL_FIELDS). Two runs of
   * the same command print the same digest. null when any overlay ran on
   * real time (inproc or process runner).
   */
  simDigest?: string | null;
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

export class Scenario {
  readonly rng: Rng;
  readonly records: Records = { joins: [], floods: [], transfers: [], repairs: [], steps: [], checks: [], memory: [], phases: [] };
  readonly tables: TableSpec[] = [];
  readonly charts: ChartSpec[] = [];
  readonly trees: TreeSnapshot[] = [];
  readonly summary: Record<string, unknown> = {};
  tree: ScenarioResult['tree'] = null;
  private readonly t0 = performance.now();
  readonly startedAt = new Date();
  private readonly clusters = new Set<Cluster>();
  /** Log every successful step (false: failures only, for phases of many small requests). */
  logSteps = true;
  /** The simulated clock of the overlay running now (memory runner), if any. */
  private sim: Clock | undefined;
  /** Simulated ms of earlier simulated overlays (each clock starts at 0). */
  private simBase = 0;
  /** Overlays started: every one simulated so far? */
  private simOnly = true;
  private simSeen = false;

  constructor(readonly def: ScenarioDef, readonly opts: CommonOptions, readonly argv: readonly string[] = []) {
    this.rng = createRng(opts.seed);
  }

  get chatty(): boolean {
    return !this.opts.quiet && !this.opts.json;
  }

  /**
   * ms since the scenario started on the scenario clock: simulated time
   * while a memory-runner overlay runs (and frozen between simulated
   * overlays), wall time otherwise.
   */
  now(): number {
    if (this.sim) return this.simBase + this.sim.now();
    return this.simSeen && this.simOnly ? this.simBase : this.wallNow();
  }

  /** Wall-clock ms since the scenario started (always real). */
  wallNow(): number {
    return performance.now() - this.t0;
  }

  /** True while the scenario clock is simulated. */
  get simulated(): boolean {
    return this.sim !== undefined;
  }

  /** Waits `ms` on the scenario clock (simulated under the memory runner). */
  sleep(ms: number): Promise<void> {
    if (this.sim) return this.sim.sleep(ms);
    return new Promise((r) => setTimeout(r, ms));
  }

  /** An overlay starts on `clock` (the memory runner's SimClock, or undefined for real time). */
  attachClock(clock: Clock | undefined): void {
    if (clock?.kind === 'sim') {
      this.simSeen = true;
      this.sim = clock;
    } else this.simOnly = false;
  }

  /** The overlay on `clock` is closed: its simulated time is added to the base. */
  detachClock(clock: Clock | undefined): void {
    if (clock && clock === this.sim) {
      this.simBase += clock.now();
      this.sim = undefined;
    }
  }

  /** Step log: stdout in human mode (in order with the tables), stderr with --json; nothing with --quiet. */
  log(msg: string): void {
    if (this.opts.quiet) return;
    (this.opts.json ? process.stderr : process.stdout).write(`${msg}\n`);
  }

  progress(label: string, total: number): Progress {
    return progress(this.chatty, label, total);
  }

  /** Runs and records a step; a failure is logged and re-thrown (soft: recorded as expected). */
  async step<T>(name: string, fn: () => Promise<T>, o: { soft?: boolean } = {}): Promise<T> {
    const at = this.now();
    const w0 = this.wallNow();
    try {
      const v = await fn();
      const ms = this.now() - at;
      this.records.steps.push({ name, ok: true, at, ms, ...(this.sim ? { wallMs: this.wallNow() - w0 } : {}) });
      if (this.logSteps) this.log(`  ✓ ${name} (${ms.toFixed(0)} ms)`);
      return v;
    } catch (err) {
      const ms = this.now() - at;
      const error = err instanceof Error ? err.message : String(err);
      this.records.steps.push({ name, ok: false, at, ms, error, ...(o.soft ? { soft: true } : {}) });
      if (this.logSteps || !o.soft) this.log(`  ${o.soft ? '·' : '✗'} ${name}: ${error}`);
      throw err;
    }
  }

  /** Records a check; a false one makes the run fail (exit 1) but does not stop it. */
  check(ok: boolean, what: string, detail?: string): boolean {
    this.records.checks.push({ what, ok, ...(ok || !detail ? {} : { detail }) });
    if (!ok) this.log(`  ✗ check failed: ${what}${detail ? ` (${detail})` : ''}`);
    return ok;
  }

  /** Starts an overlay (runner + metaserver); closed when the scenario ends. */
  async cluster(o: ClusterOptions = {}): Promise<Cluster> {
    const c = new Cluster(this, o);
    this.clusters.add(c);
    this.attachClock(c.runner.clock);
    try {
      return await c.start();
    } catch (err) {
      await this.closeCluster(c);
      throw err;
    }
  }

  async closeCluster(c: Cluster): Promise<void> {
    this.clusters.delete(c);
    try {
      await c.close();
    } finally {
      this.detachClock(c.runner.clock);
    }
  }

  /**
   * Runs `fn` (e.g. one small round) to warm up the JIT and the sockets, then
   * drops what it recorded: its figures are not part of the result. Its
   * failures still count.
   */
  async warmup(fn: () => Promise<void>): Promise<void> {
    const r = this.records;
    const n = { joins: r.joins.length, floods: r.floods.length, transfers: r.transfers.length, repairs: r.repairs.length, memory: r.memory.length, phases: r.phases.length };
    await fn();
    r.joins.length = n.joins;
    r.floods.length = n.floods;
    r.transfers.length = n.transfers;
    r.repairs.length = n.repairs;
    r.memory.length = n.memory;
    r.phases.length = n.phases;
  }

  /** Keeps `nodes` as the scenario's final tree (shown as text and SVG). */
  setTree(round: string, nodes: readonly TopoNode[]): void {
    this.tree = { round, nodes: [...nodes], text: renderTreeText(nodes) };
  }

  /** Keeps a tree along the way (drawn in the report in order, e.g. before and after a repair). */
  snapshot(round: string, label: string, nodes: readonly TopoNode[]): void {
    this.trees.push({ round, label, at: this.now(), nodes: [...nodes] });
  }

  /** Adds a chart to the HTML report (build it with the helpers in charts.ts). */
  chart(c: ChartSpec): void {
    this.charts.push(c);
  }

  table(title: string, head: string[], rows: (string | number | null | undefined)[][], note?: string): void {
    this.tables.push({ title, head, rows: rows.map((r) => r.map((c) => (c === null || c === undefined ? '—' : String(c)))), ...(note ? { note } : {}) });
  }

  /** S1..Sn (or any prefix). */
  ids(prefix: string, n: number, from = 1): string[] {
    return Array.from({ length: n }, (_, i) => `${prefix}${i + from}`);
  }

  failures(): string[] {
    return [
      ...this.records.steps.filter((s) => !s.ok && !s.soft).map((s) => `step "${s.name}": ${s.error}`),
      ...this.records.checks.filter((c) => !c.ok).map((c) => `check "${c.what}"${c.detail ? `: ${c.detail}` : ''}`),
    ];
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.clusters].map((c) => this.closeCluster(c)));
  }

  result(): ScenarioResult {
    const o = this.opts;
    const failures = this.failures();
    return {
      scenario: this.def.name,
      ok: failures.length === 0,
      failures,
      seed: o.seed,
      options: { peers: o.peers, runner: o.runner, maxChildren: o.maxChildren, policy: o.policy, latency: o.latency, bandwidth: o.bandwidth, extra: o.extra },
      simDigest: this.simSeen && this.simOnly ? recordsDigest(this.records) : null,
      command: ['npx tsx', `scenarios/${this.def.name}.ts`, ...this.argv, ...(o.given.has('seed') ? [] : ['--seed', String(o.seed)])].join(' '),
      startedAt: this.startedAt.toISOString(),
      durationMs: this.wallNow(),
      records: this.records,
      tree: this.tree,
      summary: this.summary,
      tables: [],
      trees: this.trees,
      charts: this.charts,
      files: {},
    };
  }
}

/** Runs a scenario to the end; never throws for a failed step (it is in `failures`); always closes what it started. */
export async function runScenario(def: ScenarioDef, opts: CommonOptions, argv: readonly string[] = []): Promise<{ s: Scenario; result: ScenarioResult }> {
  const s = new Scenario(def, opts, argv);
  try {
    await def.run(s);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (!s.records.steps.some((x) => !x.ok && !x.soft && x.error === msg)) s.records.steps.push({ name: 'scenario script', ok: false, at: s.now(), ms: 0, error: msg });
  } finally {
    await s.closeAll();
  }
  return { s, result: s.result() };
}
