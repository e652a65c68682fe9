/** The scenario library: what scenario scripts import. */
export { main, run, isMain } from './cli.ts';
export { Scenario, runScenario, type ScenarioDef } from './scenario.ts';
export type { CheckRow, PhaseRow, Records, ScenarioResult, StandardTables, TableSpec, TreeSnapshot } from './records.ts';
export { Cluster, type ClusterHost, type ClusterOptions, type PeerDef } from './cluster.ts';
export { pool, waitEvent } from './async.ts';
export { UsageError, durationOption, numberOption, intOption, numberList, parseRate, parseOptions, sizesOption, type CommonOptions } from './args.ts';
export { summarize, type JoinRow, type FloodRow, type TransferRow, type RepairRow, type Summary } from './metrics.ts';
export { ms, int, mib, mbpsCell, ratesOf, transferMBps } from './output.ts';
export { barChart, cdfChart, lineChart, pointChart, renderChart, treeChart, type ChartSpec } from './charts.ts';
export { checkTree, canonicalTree } from '../../testnet/tree.ts';
export { createRunner } from './runners.ts';
export { points, deriveSeed, parseSweep, expandValues } from './sweep.ts';
export { RUNNERS, OpError, type Runner, type RunnerKind, type PeerHandle, type MetaHandle, type MemorySample } from './runner.ts';
export { cleanupAll, pidExists } from '../../testnet/cleanup.ts';
export { sha256File, leftoverParts, REPO } from './shares.ts';
