/**
 * A scenario run: options, the seeded random source, the records every
 * action appends to, recorded steps and checks, and the overlays (Clusters)
 * it started. `runScenario()` runs a definition and always closes what it
 * started, whatever happens; the result is plain JSON (see ScenarioResult).
 * The command-line wrapper is cli.ts.
 */
import type { TopoNode } from '../../core/index.ts';
import { SimClock } from '../../core/clock.ts';
import type { ChartSpec } from './charts.ts';
import type { CommonOptions, Defaults, ExtraOption } from './args.ts';
import { Cluster, type ClusterOptions } from './cluster.ts';
import { progress, type Progress } from './progress.ts';
import { createRng, type Rng } from './rng.ts';
import { renderTreeText } from './output.ts';
import { recordsDigest, type Records, type ScenarioResult, type StandardTables, type TableSpec, type TreeSnapshot } from './records.ts';

export type { CheckRow, PhaseRow, Records, ScenarioResult, StandardTables, TableSpec, TreeSnapshot } from './records.ts';
export { recordsDigest, WALL_FIELDS } from './records.ts';

export interface ScenarioDef {
  name: string;
  /** One paragraph for --help. */
  summary: string;
  defaults: Defaults;
  options?: Record<string, ExtraOption>;
  /** Help text replacing a common option's (with its default), where this scenario reads it differently. */
  commonHelp?: Partial<Record<string, string>>;
  /** Which standard tables to print (default: all that have rows; 'summary' = one row per round). */
  standard?: StandardTables;
  /** Checks the scenario's own options before anything starts; throw UsageError for a bad one. */
  validate?(opts: CommonOptions): void;
  run(s: Scenario): Promise<void>;
}

export class Scenario {
  readonly rng: Rng;
  readonly records: Records = { joins: [], floods: [], transfers: [], repairs: [], steps: [], checks: [], memory: [], phases: [], faults: [] };
  readonly tables: TableSpec[] = [];
  readonly charts: ChartSpec[] = [];
  readonly trees: TreeSnapshot[] = [];
  readonly summary: Record<string, unknown> = {};
  tree: ScenarioResult['tree'] = null;
  private readonly t0 = performance.now();
  readonly startedAt = new Date();
  /**
   * The simulated clock of memory-runner clusters (one for the whole
   * scenario, driven in the background from the first such cluster to
   * closeAll()); undefined for the other runners. When set, now() and every
   * step, phase and row time are simulated ms.
   */
  readonly sim: SimClock | undefined;
  private simT0 = 0;
  private simDriving = false;
  private readonly clusters = new Set<Cluster>();
  /** Log every successful step (false: failures only, for phases of many small requests). */
  logSteps = true;

  constructor(readonly def: ScenarioDef, readonly opts: CommonOptions, readonly argv: readonly string[] = []) {
    this.rng = createRng(opts.seed);
    this.sim = opts.runner === 'memory' ? new SimClock() : undefined;
    if (this.sim) this.simT0 = this.sim.now();
  }

  /** The scenario's SimClock, its background driver started (memory runner only). */
  simClock(): SimClock | undefined {
    if (this.sim && !this.simDriving) {
      this.simDriving = true;
      this.sim.start();
    }
    return this.sim;
  }

  /** Wall-clock ms since the scenario started (whatever the scenario's clock). */
  wallNow(): number {
    return performance.now() - this.t0;
  }

  get chatty(): boolean {
    return !this.opts.quiet && !this.opts.json;
  }

  /** ms since the scenario started, on the scenario's clock: simulated under the memory runner, wall otherwise. */
  now(): number {
    return this.sim ? this.sim.now() - this.simT0 : performance.now() - this.t0;
  }

  /** True when the scenario clock is simulated (memory runner). */
  get simulated(): boolean {
    return this.sim !== undefined;
  }

  /** Waits `ms` on the scenario clock (simulated under the memory runner). */
  sleep(ms: number): Promise<void> {
    if (this.sim) return this.sim.sleep(ms);
    return new Promise((r) => setTimeout(r, ms));
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
    try {
      const v = await fn();
      const ms = this.now() - at;
      this.records.steps.push({ name, ok: true, at, ms });
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
    try {
      return await c.start();
    } catch (err) {
      await this.closeCluster(c);
      throw err;
    }
  }

  async closeCluster(c: Cluster): Promise<void> {
    this.clusters.delete(c);
    await c.close();
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
    // Simulated time stops with the scenario: closing needs no timer (peers and metaservers stop at once).
    if (this.simDriving) {
      this.simDriving = false;
      this.sim!.stop();
    }
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
      command: ['npx tsx', `scenarios/${this.def.name}.ts`, ...this.argv, ...(o.given.has('seed') ? [] : ['--seed', String(o.seed)])].join(' '),
      startedAt: this.startedAt.toISOString(),
      clock: this.sim ? 'simulated' : 'wall',
      durationMs: this.now(),
      simMs: this.sim ? this.now() : null,
      wallMs: this.wallNow(),
      simDigest: this.sim ? recordsDigest(this.records) : null,
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
