/**
 * A scenario run: options, the seeded random source, the records every
 * action appends to, recorded steps and checks, and the overlays (Clusters)
 * it started. `runScenario()` runs a definition and always closes what it
 * started, whatever happens; the result is plain JSON (see ScenarioResult).
 * The command-line wrapper is cli.ts.
 */
import type { TopoNode } from '../../core/index.ts';
import { realClock, SimClock, type Clock } from '../../core/clock.ts';
import type { ChartSpec } from './charts.ts';
import { durationMs, type CommonOptions, type Defaults, type ExtraOption } from './args.ts';
import { applySchedule, type ScheduleEntry } from './fault-schedule.ts';
import type { InvariantSink, Violation } from './invariants.ts';
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
  /** Actions scheduled with at()/after() and not fired yet, by id. */
  private readonly pending = new Map<number, { label: string; at: number; cancel: () => void }>();
  /** Scheduled actions running now (awaited before the clusters close). */
  private readonly firing = new Set<Promise<void>>();
  private scheduled = 0;
  private scheduleEnded = false;
  private schedule: readonly ScheduleEntry[] | undefined;
  /** Invariant checks and violations of every cluster (invariants.ts); undefined with --no-invariants. */
  readonly invariants: InvariantSink | undefined;
  /** Resolves with why the run stops early (--stop-on-violation). */
  readonly stopped: Promise<string>;
  private stop!: (why: string) => void;

  constructor(readonly def: ScenarioDef, readonly opts: CommonOptions, readonly argv: readonly string[] = [], o: { schedule?: readonly ScheduleEntry[] } = {}) {
    this.rng = createRng(opts.seed);
    this.sim = opts.runner === 'memory' ? new SimClock() : undefined;
    if (this.sim) this.simT0 = this.sim.now();
    this.schedule = o.schedule?.length ? o.schedule : undefined;
    this.stopped = new Promise((resolve) => (this.stop = resolve));
    const violations: Violation[] = [];
    this.invariants = opts.invariants === false ? undefined : {
      checks: 0,
      violations,
      violated: (v) => {
        violations.push(v);
        if (violations.length <= VIOLATIONS_LOGGED) this.log(`  ✗ invariant ${v.invariant} violated at ${Math.round(v.at)} ms${v.round ? ` [${v.round}]` : ''}: ${v.detail}`);
        if (opts.stopOnViolation) this.stop(`stopped at the first invariant violation (--stop-on-violation): ${v.invariant}: ${v.detail}`);
      },
    };
  }

  /** The sink every cluster's invariant checker reports to (undefined with --no-invariants). */
  invariantSink(): InvariantSink | undefined {
    return this.invariants;
  }

  /**
   * Runs `fn` at `t` on the scenario clock (ms since the start, or a duration
   * string: '2m', '30s', '1500ms'; simulated under the memory runner), as a
   * recorded step named `label`: an error in it fails the scenario. At once
   * when `t` has passed. Still pending when the script ends: cancelled (and
   * said so).
   */
  at(t: number | string, fn: () => unknown, label = 'scheduled action'): void {
    const ms = typeof t === 'number' ? t : durationMs(t);
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`s.at: ${JSON.stringify(t)} is not a time (ms, or a duration like '30s', '2m', '1500ms')`);
    const name = `at ${fmtT(ms)}: ${label}`;
    if (this.scheduleEnded) {
      // Scheduled by an action that was still running when the script ended (a fault's undoing): never fires.
      this.log(`  · cancelled (the script has ended): ${name}`);
      ((this.summary.cancelledSchedule ??= []) as string[]).push(name);
      return;
    }
    const clock: Clock = this.simClock() ?? realClock;
    const id = ++this.scheduled;
    const h = clock.setTimeout(() => {
      this.pending.delete(id);
      const p = this.step(name, async () => void (await fn())).catch(() => undefined);
      this.firing.add(p);
      void p.finally(() => this.firing.delete(p));
    }, Math.max(0, ms - this.now()));
    this.pending.set(id, { label: name, at: ms, cancel: () => clock.clearTimeout(h) });
  }

  /** Runs `fn` `ms` from now on the scenario clock (see at()). */
  after(ms: number | string, fn: () => unknown, label?: string): void {
    const d = typeof ms === 'number' ? ms : durationMs(ms);
    if (!Number.isFinite(d) || d < 0) throw new Error(`s.after: ${JSON.stringify(ms)} is not a duration (ms, or '30s', '2m', '1500ms')`);
    this.at(this.now() + d, fn, label);
  }

  /** Cancels what at()/after() scheduled and did not fire yet (saying so), and waits for what is firing. */
  private async endSchedule(): Promise<void> {
    this.scheduleEnded = true;
    const left = [...this.pending.values()].sort((a, b) => a.at - b.at);
    for (const p of left) p.cancel();
    this.pending.clear();
    if (left.length) {
      this.log(`  · the script ended with ${left.length} scheduled action(s) still pending, cancelled: ${left.slice(0, 10).map((p) => p.label).join('; ')}${left.length > 10 ? '; …' : ''}`);
      ((this.summary.cancelledSchedule ??= []) as string[]).push(...left.map((p) => p.label));
    }
    await Promise.all([...this.firing]);
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
      await c.start();
    } catch (err) {
      await this.closeCluster(c);
      throw err;
    }
    // --faults FILE: applied to the first overlay of the run.
    if (this.schedule) {
      applySchedule(this.schedule, c, this.rng.fork(`faults:${c.round}`), (t, fn, label) => this.at(t, fn, c.round ? `[${c.round}] ${label}` : label));
      this.schedule = undefined;
    }
    return c;
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
    const vs = this.invariants?.violations ?? [];
    return [
      ...this.records.steps.filter((s) => !s.ok && !s.soft).map((s) => `step "${s.name}": ${s.error}`),
      ...this.records.checks.filter((c) => !c.ok).map((c) => `check "${c.what}"${c.detail ? `: ${c.detail}` : ''}`),
      ...vs.slice(0, VIOLATIONS_LOGGED).map((v) => `invariant "${v.invariant}" at ${Math.round(v.at)} ms${v.round ? ` [${v.round}]` : ''}: ${v.detail}`),
      ...(vs.length > VIOLATIONS_LOGGED ? [`… and ${vs.length - VIOLATIONS_LOGGED} more invariant violations (summary.invariants.list)`] : []),
    ];
  }

  async closeAll(): Promise<void> {
    await this.endSchedule();
    // Simulated time stops with the scenario: closing needs no timer (peers and metaservers stop at once).
    if (this.simDriving) {
      this.simDriving = false;
      this.sim!.stop();
    }
    await Promise.allSettled([...this.clusters].map((c) => this.closeCluster(c)));
  }

  result(): ScenarioResult {
    const o = this.opts;
    if (this.invariants) this.summary.invariants = { checks: this.invariants.checks, violations: this.invariants.violations.length, list: this.invariants.violations.slice(0, VIOLATIONS_KEPT) };
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

/** Violations named in the failures and the log (the rest are counted); kept in summary.invariants.list. */
const VIOLATIONS_LOGGED = 20;
const VIOLATIONS_KEPT = 200;

/** A scenario time for a step name: "1500 ms", "30 s", "2 min". */
function fmtT(ms: number): string {
  return ms < 10_000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${+(ms / 1000).toFixed(1)} s` : `${+(ms / 60_000).toFixed(2)} min`;
}

/** Runs a scenario to the end; never throws for a failed step (it is in `failures`); always closes what it started. */
export async function runScenario(def: ScenarioDef, opts: CommonOptions, argv: readonly string[] = [], o: { schedule?: readonly ScheduleEntry[] } = {}): Promise<{ s: Scenario; result: ScenarioResult }> {
  const s = new Scenario(def, opts, argv, o);
  try {
    const script = def.run(s);
    script.catch(() => undefined); // after a stop, its failure (the clusters closed under it) is not news
    const stop = await Promise.race([script.then(() => null), s.stopped]);
    if (stop !== null) s.records.steps.push({ name: 'scenario script', ok: false, at: s.now(), ms: 0, error: stop });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (!s.records.steps.some((x) => !x.ok && !x.soft && x.error === msg)) s.records.steps.push({ name: 'scenario script', ok: false, at: s.now(), ms: 0, error: msg });
  } finally {
    await s.closeAll();
  }
  return { s, result: s.result() };
}
