/**
 * Comparing runs (bench/lib/compare.ts, scenarios/compare.ts): the noise
 * rules, two scenario runs and two bench results side by side, the HTML
 * page's charts, and files that cannot be compared refused in one line.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { compareFigure, mannWhitneyP, type Figure } from '../bench/lib/compare.ts';
import { printGroup, Report, type RunFile } from '../bench/lib/report.ts';
import { comparisonHtml, compareFiles } from '../scenarios/compare.ts';
import { REPO, type ScenarioResult } from '../scenarios/lib/index.ts';

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-compare-test-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const fig = (samples: number[], o: Partial<Figure> = {}): Figure => ({ id: 'x', label: 'x', unit: 'ms', better: 'lower', samples, ...o });

test('Mann–Whitney p-values: identical samples ~1, fully separated samples small', (t) => {
  const a = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  t.true(mannWhitneyP(a, a) > 0.9);
  const b = a.map((x) => x + 100);
  // Exact two-sided p for complete separation of 10 vs 10 is 1.08e-5; the normal approximation gives ~1.8e-4.
  t.true(mannWhitneyP(a, b) < 0.001);
  t.true(mannWhitneyP(a, a.map((x) => x + 1)) > 0.05);
});

test('noise rules: rank test from 8 samples, spread rule for repeats, unknown for single values', (t) => {
  const base = [10, 11, 12, 10, 11, 12, 10, 11, 12, 11];
  const slower = compareFigure(fig(base), fig(base.map((x) => x * 2)));
  t.is(slower.verdict, 'worse');
  t.regex(slower.how, /Mann–Whitney/);
  t.regex(slower.text, /^\+\d+% ▼ WORSE$/);
  const same = compareFigure(fig(base), fig(base.map((x) => x + 0.1)));
  t.is(same.verdict, 'same');
  t.regex(same.text, /~$/);
  // Three repeats each: +50% beyond max(10%, half the spread).
  t.is(compareFigure(fig([10, 10.5, 11]), fig([15, 15.5, 16])).verdict, 'worse');
  t.is(compareFigure(fig([10, 20, 30]), fig([15, 25, 35])).verdict, 'same');
  t.is(compareFigure(fig([10]), fig([20])).verdict, 'unknown');
  t.is(compareFigure(fig([10], { rme: 0.01 }), fig([20], { rme: 0.01 })).verdict, 'worse');
  t.is(compareFigure(fig([10, 10.5, 11], { better: 'higher' }), fig([15, 15.5, 16], { better: 'higher' })).verdict, 'better');
  t.is(compareFigure(undefined, fig([1])).text, '');
});

test("the bench's vs-previous column uses the same rules", (t) => {
  const mk = (samples: number[]) => {
    const r = new Report();
    r.add({ id: 'm', group: 'g', label: 'latency', unit: 'ms', better: 'lower', samples });
    return r;
  };
  const prev = { metrics: mk([10, 10.5, 11]).metrics, micro: [] } as unknown as RunFile;
  t.regex(printGroup(mk([15, 15.5, 16]), 'g', prev), /\+48% ▼ WORSE/);
  t.regex(printGroup(mk([10.2, 10.6, 11]), 'g', prev), /\+1\.0% ~/);
});

function scenarioRun(name: string, join: number[], search: number[]): ScenarioResult {
  return {
    scenario: name, ok: true, failures: [], seed: 1, command: 'x', startedAt: '2026-01-01T00:00:00.000Z', durationMs: 1000,
    options: { peers: join.length, runner: 'memory', maxChildren: 2, policy: 'root', latency: 0, bandwidth: 0, extra: {} },
    records: {
      joins: join.map((ms, i) => ({ round: '', peer: `S${i}`, at: 0, metaRttMs: 1, redirects: 0, finalConnectMs: 1, totalMs: ms, depth: 1, parent: null, referral: null, path: [] })),
      floods: search.map((ms) => ({ round: '', kind: 'search' as const, by: 'S1', name: 'a', label: 'search', at: 0, treeSize: 5, hits: [], hitHops: [], reached: 5, messages: 8, duplicates: 0, maxHops: 2, missing: [], firstHitMs: null, completionMs: ms, answered: true })),
      transfers: [], repairs: [], steps: [], checks: [], memory: [], phases: [], faults: [],
    },
    tree: null, summary: { repair: { maxMs: 12 } }, tables: [], trees: [], charts: [], files: {},
  };
}

test('two scenario runs side by side, with the HTML charts', async (t) => {
  const d = tmp(t);
  const joins = Array.from({ length: 12 }, (_, i) => 10 + i);
  const a = path.join(d, 'a.json');
  const b = path.join(d, 'b.json');
  fs.writeFileSync(a, JSON.stringify(scenarioRun('five-peers', joins, [5, 6, 7])));
  fs.writeFileSync(b, JSON.stringify(scenarioRun('five-peers', joins.map((x) => x * 3), [5, 6, 7])));
  const { kind, cmp } = compareFiles([a, b]);
  t.is(kind, 'scenario');
  const join = cmp.rows.find((r) => r.id === 'join.')!;
  t.is(join.values[0]!.n, 12);
  t.is(join.changes[1]!.verdict, 'worse');
  t.is(cmp.rows.find((r) => r.id === 'flood..search')!.changes[1]!.verdict, 'same');
  t.truthy(cmp.rows.find((r) => r.id === 'summary.repair.maxMs'));
  const html = await comparisonHtml('five-peers', [a, b], cmp);
  t.regex(html, /Change of each figure against run A/);
  t.true((html.match(/role-axis"/g) ?? []).length >= 4, 'charts with axes');
  t.regex(html, /role-mark/);
});

test('compare.ts on two bench results, and refusals in one line', async (t) => {
  const d = tmp(t);
  const bench = (ms: number[]): RunFile => {
    const r = new Report();
    r.add({ id: 'search.100', group: 'search (in-process)', label: 'N=100 search', unit: 'ms', better: 'lower', samples: ms });
    return r.toFile('quick', new Date('2026-01-01T00:00:00Z'), [0, 0, 0], 1000);
  };
  const a = path.join(d, 'A.json');
  const b = path.join(d, 'B.json');
  const s = path.join(d, 'S.json');
  fs.writeFileSync(a, JSON.stringify(bench([10, 10.5, 11])));
  fs.writeFileSync(b, JSON.stringify(bench([20, 21, 22])));
  fs.writeFileSync(s, JSON.stringify(scenarioRun('churn', [1, 2], [1])));
  const run = (args: string[]) => new Promise<{ code: number; out: string; err: string }>((resolve) =>
    execFile(process.execPath, ['--import', 'tsx', path.join(REPO, 'scenarios/compare.ts'), ...args], { cwd: REPO }, (e, out, err) => resolve({ code: e ? (e.code as number) : 0, out, err })));
  const ok = await run([a, b, '--out', d]);
  t.is(ok.code, 0, ok.err);
  t.regex(ok.out, /search: N=100 search .* ms .* 10\.5 \(median of 3\) .* 21 \(median of 3\) .* \+100% ▼ WORSE/);
  const htmlFile = /→ (.*\.html)/.exec(ok.out)?.[1];
  t.truthy(htmlFile && fs.existsSync(path.resolve(REPO, htmlFile)));
  const mixed = await run([a, s, '--no-html']);
  t.is(mixed.code, 2);
  t.is(mixed.err, 'compare: cannot compare a scenario result with a bench result\n');
  const one = await run([a]);
  t.is(one.code, 2);
  t.regex(one.err, /^compare: give two or more result files to compare\n$/);
  const missing = await run([a, path.join(d, 'nope.json')]);
  t.regex(missing.err, /^compare: cannot read .*nope\.json: ENOENT\n$/);
});

test('runs that differ in runner or options are called out loudly, before the table (CLI, JSON, HTML)', async (t) => {
  const d = tmp(t);
  const joins = Array.from({ length: 12 }, (_, i) => 10 + i);
  const a = path.join(d, 'a.json');
  const b = path.join(d, 'b.json');
  const same = path.join(d, 'same.json');
  const other = scenarioRun('latency', joins.map((x) => x * 2), [5, 6, 7]);
  other.options = { ...other.options, runner: 'process', latency: 20, extra: { latencies: '0,20' } };
  fs.writeFileSync(a, JSON.stringify(scenarioRun('latency', joins, [5, 6, 7])));
  fs.writeFileSync(b, JSON.stringify(other));
  fs.writeFileSync(same, JSON.stringify(scenarioRun('latency', joins, [5, 6, 7])));
  const r = compareFiles([a, b]);
  t.deepEqual(r.differences, ['runner: A memory, B process', 'latency: A 0, B 20', 'latencies: A —, B 0,20']);
  t.deepEqual(compareFiles([a, same]).differences, []);
  const run = (args: string[]) => new Promise<{ code: number; out: string; err: string }>((resolve) =>
    execFile(process.execPath, ['--import', 'tsx', path.join(REPO, 'scenarios/compare.ts'), ...args], { cwd: REPO }, (e, out, err) => resolve({ code: e ? (e.code as number) : 0, out, err })));
  const cli = await run([a, b, '--out', d]);
  t.is(cli.code, 0, cli.err);
  const warn = cli.out.indexOf('!! NOT LIKE FOR LIKE: these runs differ in runner: A memory, B process; latency: A 0, B 20');
  t.true(warn >= 0, cli.out);
  t.true(warn < cli.out.indexOf('▼ WORSE'), 'the warning comes before the table');
  const json = await run([a, b, '--json', '--no-html']);
  t.deepEqual(JSON.parse(json.out).differences, r.differences);
  t.regex(json.err, /!! NOT LIKE FOR LIKE/);
  t.regex(await comparisonHtml('latency', [a, b], r.cmp, r.differences), /NOT LIKE FOR LIKE: these runs differ in runner: A memory, B process/);
  const alike = await run([a, same, '--no-html']);
  t.notRegex(alike.out, /NOT LIKE FOR LIKE/);
});
