/**
 * Studies, in process: the sweep parser (values, ranges, bad values), seed
 * derivation, the plan of a study (each point validated by the scenario),
 * the statistics against known values, and the comparison of two studies
 * with its correction for many comparisons. The processes (exit codes,
 * Ctrl-C and --resume, a failed run) are in study-run.test.ts.
 */
import test from 'ava';
import { example } from '../scenarios/example.ts';
import { scale } from '../scenarios/scale.ts';
import { numberList, UsageError } from '../scenarios/lib/index.ts';
import { adjustP, figureStats, mannWhitney, medianCiRanks, tQuantile975 } from '../scenarios/lib/stats.ts';
import { planStudy, recordRun, type Study } from '../scenarios/lib/study.ts';
import { compareStudies, matchPoints, regressions } from '../scenarios/lib/study-compare.ts';
import { studyCharts, studyHtml } from '../scenarios/lib/study-report.ts';
import { renderChart } from '../scenarios/lib/charts.ts';
import { deriveSeed, expandValues, parseSweep, points } from '../scenarios/lib/sweep.ts';

/** deriveSeed(1, 'peers=1000 latency=0', 0) since studies exist. */
const PINNED_SEED = 4231380612;
const NAMES = new Set(['peers', 'latency', 'policy', 'sizes']);

test('sweep parser: values, multiplying and adding ranges, mixed lists', (t) => {
  t.deepEqual(parseSweep('peers=1000,10000', NAMES), { name: 'peers', values: ['1000', '10000'] });
  t.deepEqual(parseSweep('peers=1000..100000*10', NAMES).values, ['1000', '10000', '100000']);
  t.deepEqual(parseSweep('latency=0..50+10', NAMES).values, ['0', '10', '20', '30', '40', '50']);
  t.deepEqual(parseSweep('latency=1..4', NAMES).values, ['1', '2', '3', '4']);
  t.deepEqual(parseSweep('latency=0.1..0.3+0.1', NAMES).values, ['0.1', '0.2', '0.3'], 'no float noise');
  t.deepEqual(parseSweep('latency=0..25+10', NAMES).values, ['0', '10', '20'], 'the end is a bound, not a value');
  t.deepEqual(parseSweep('peers=10, 100..1000*10', NAMES).values, ['10', '100', '1000']);
  t.deepEqual(parseSweep('policy=root,least-loaded', NAMES).values, ['root', 'least-loaded'], 'words are kept for the option to judge');
  t.deepEqual(expandValues('--sizes', '2..32*2'), ['2', '4', '8', '16', '32']);
  t.deepEqual(numberList('latencies', '0..20+5', []), [0, 5, 10, 15, 20], 'scenario lists take the same ranges');
});

test('sweep parser: bad sweeps are usage errors naming what is wrong', (t) => {
  const bad: [string, RegExp][] = [
    ['peers', /NAME=V1,V2/],
    ['=1,2', /NAME=V1,V2/],
    ['seed=1,2', /not an option that can be swept/],
    ['nosuch=1', /not an option that can be swept/],
    ['peers=', /empty value/],
    ['peers=1,,2', /empty value/],
    ['peers=10..1', /ends below its start/],
    ['peers=1..10*1', /factor above 1/],
    ['peers=0..10*2', /start above 0/],
    ['peers=1..5+0', /step .* must be above 0/],
    ['peers=1..x', /not a range/],
    ['peers=1...5', /not a range/],
    ['peers=1,2,1', /given twice/],
    ['peers=1..100000', /more than 1000 values/],
  ];
  for (const [spec, re] of bad) {
    const err = t.throws(() => parseSweep(spec, NAMES), { instanceOf: UsageError }, spec);
    t.regex(err!.message, re, spec);
  }
});

test('cross-product: first sweep outermost; no sweeps: one point', (t) => {
  t.deepEqual(points({ a: [1, 2], b: ['x', 'y'] }), [{ a: 1, b: 'x' }, { a: 1, b: 'y' }, { a: 2, b: 'x' }, { a: 2, b: 'y' }]);
  t.deepEqual(points({}), [{}]);
});

test('seed derivation: a function of the study seed, the point and the repetition, in 0..2^32−1', (t) => {
  const s = deriveSeed(1, 'peers=1000 latency=0', 0);
  t.is(deriveSeed(1, 'peers=1000 latency=0', 0), s, 'deterministic');
  const all = new Set<number>();
  for (const base of [1, 2]) for (const key of ['peers=1000 latency=0', 'peers=1000 latency=10', '']) for (let rep = 0; rep < 10; rep++) all.add(deriveSeed(base, key, rep));
  t.is(all.size, 60, 'every (seed, point, repetition) gets its own seed');
  for (const x of all) t.true(Number.isInteger(x) && x >= 0 && x <= 2 ** 32 - 1);
  // Pinned: a run's seed must not change between versions (the seeds a study printed re-run its runs).
  t.is(s, PINNED_SEED);
});

test('plan: every point × repetition with its derived seed, the command that re-runs it alone', (t) => {
  const plan = planStudy(scale, ['--runner', 'memory', '--sweep', 'peers=1000,10000', '--sweep', 'latency=0,10', '--repeat', '3', '--seed', '1', '--quiet'], new Date('2026-01-01T00:00:00Z'));
  const s = plan.study;
  t.is(s.points.length, 4);
  t.deepEqual(s.points.map((p) => p.params), [{ peers: 1000, latency: 0 }, { peers: 1000, latency: 10 }, { peers: 10000, latency: 0 }, { peers: 10000, latency: 10 }]);
  t.is(plan.jobs.length, 12);
  t.is(s.counts.runs, 12);
  t.deepEqual(s.base, ['--runner', 'memory'], 'the study\'s own options (seed, quiet) are not passed on');
  t.is(plan.parallel >= 1, true);
  t.regex(plan.file, /scale-study-2026-01-01T00-00-00-000\.json$/);
  const j = plan.jobs.find((x) => x.point.key === 'peers=10000 latency=10' && x.rep === 2)!;
  t.is(j.seed, deriveSeed(1, 'peers=10000 latency=10', 2));
  t.deepEqual(j.argv, ['--runner', 'memory', '--peers', '10000', '--latency', '10', '--seed', String(j.seed)]);
  // Repetition-major order: every point's first run comes before any second run.
  t.deepEqual(plan.jobs.slice(0, 4).map((x) => x.rep), [0, 0, 0, 0]);
});

test('plan: bad values are caught for each point before anything runs', (t) => {
  const bad: [string[], RegExp][] = [
    [['--sweep', 'peers=0,5'], /at peers=0: --peers must be between 1/],
    [['--sweep', 'policy=root,best'], /at policy=best: --policy must be one of/],
    [['--sweep', 'file-kib=1,big'], /at file-kib=big: --file-kib must be a whole number/],
    [['--peers', '5', '--sweep', 'peers=5,6'], /--peers is both given and swept/],
    [['--sweep', 'peers=5', '--sweep', 'peers=6'], /given twice/],
    [['--repeat', '0'], /--repeat must be a whole number from 1/],
    [['--repeat', '2', '--parallel', 'x'], /--parallel must be a whole number/],
    [['--repeat', '2', '--run-timeout', 'soon'], /--run-timeout must be a positive duration/],
    [['--repeat', '2', '--bogus'], /Unknown option '--bogus'/],
    [['--resume', '/nonexistent/study.json'], /cannot read/],
    [['--resume', 'x.json', '--sweep', 'peers=5'], /--resume takes the study's options from its file/],
  ];
  for (const [argv, re] of bad) {
    const err = t.throws(() => planStudy(example, argv), { instanceOf: UsageError }, argv.join(' '));
    t.regex(err!.message, re, argv.join(' '));
  }
});

test('statistics against known values', (t) => {
  const s = figureStats([3, 1, 2, 10, 9, 8, 4, 5, 7, 6])!;
  t.is(s.n, 10);
  t.is(s.median, 5.5);
  t.is(s.mean, 5.5);
  t.true(Math.abs(s.sd - 3.0276503540974917) < 1e-12, String(s.sd)); // sqrt(82.5 / 9)
  t.deepEqual(s.ci95, [2, 9], 'n = 10: the 2nd and 9th of the sorted values (coverage 97.85%)');
  t.regex(s.method, /order statistics.*2 and 9 of 10, coverage 97\.9%/);
  // t(0.975, 9) = 2.262: 5.5 ± 2.262 · 3.02765 / √10 = 5.5 ± 2.1657.
  t.true(Math.abs(s.meanCi95![0] - 3.3343) < 1e-3 && Math.abs(s.meanCi95![1] - 7.6657) < 1e-3, String(s.meanCi95));
  t.deepEqual(medianCiRanks(10), { lo: 2, hi: 9, coverage: 1 - 2 * (11 / 1024) });
  t.deepEqual(medianCiRanks(6), { lo: 1, hi: 6, coverage: 1 - 2 / 64 });
  t.deepEqual(medianCiRanks(20), { lo: 6, hi: 15, coverage: medianCiRanks(20).coverage });
  t.true(Math.abs(medianCiRanks(20).coverage - 0.9586) < 1e-4);
  t.is(medianCiRanks(5).lo, 1);
  t.true(medianCiRanks(5).coverage < 0.95);
  t.regex(figureStats([1, 2, 3])!.method, /too few runs for 95%/);
  const one = figureStats([4])!;
  t.deepEqual([one.median, one.sd, one.ci95, one.meanCi95], [4, 0, [4, 4], null]);
  t.is(figureStats([]), null);
  t.is(figureStats([NaN, Infinity]), null);
  t.is(tQuantile975(1), 12.706);
  t.is(tQuantile975(9), 2.262);
  t.true(Math.abs(tQuantile975(60) - 2.0003) < 1e-3);
  t.true(Math.abs(tQuantile975(120) - 1.9799) < 1e-3);
});

test('Mann–Whitney U: exact p without ties, normal approximation with them', (t) => {
  const a = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const sep = mannWhitney(a, a.map((x) => x + 100));
  t.true(sep.exact);
  t.true(Math.abs(sep.p - 2 / 184756) < 1e-12, String(sep.p)); // 2 / C(20, 10)
  t.deepEqual(mannWhitney([1, 2, 3], [4, 5, 6]), { p: 0.1, exact: true }); // 2 / C(6, 3)
  t.true(Math.abs(mannWhitney([1, 3, 5], [2, 4, 6]).p - 0.7) < 1e-12); // U = 3: P(U ≤ 3) = 7/20, two-sided 0.7
  t.is(mannWhitney([5, 5, 5], [5, 5, 5]).p, 1);
  t.false(mannWhitney([1, 2, 2], [3, 4, 4]).exact);
});

test('corrections for many comparisons: Holm and Benjamini–Hochberg (R p.adjust values)', (t) => {
  const close = (xs: number[], ys: number[]) => xs.every((x, i) => Math.abs(x - ys[i]!) < 1e-12);
  t.true(close(adjustP([0.01, 0.04, 0.03, 0.005], 'holm'), [0.03, 0.06, 0.06, 0.02]));
  t.true(close(adjustP([0.01, 0.04, 0.03, 0.005], 'bh'), [0.02, 0.04, 0.04, 0.02]));
  t.true(close(adjustP([0.5, 0.9], 'holm'), [1, 1]));
  t.deepEqual(adjustP([], 'holm'), []);
});

/** A study of `points` (params → each figure's values over the runs), built the way the runner records runs. */
function study(pts: { params: Record<string, number>; figs: Record<string, number[]> }[], better: 'lower' | 'higher' = 'lower', simDigest: string | null = null): Study {
  const names = Object.keys(pts[0]!.figs);
  const s: Study = {
    kind: 'treeshare-study', version: 1, scenario: 'example', command: 'x', startedAt: '', updatedAt: '', finished: true, ok: true, seed: 1,
    repeat: pts[0]!.figs[names[0]!]!.length, sweeps: [], base: [], method: {}, counts: { runs: 0, done: 0, failed: 0 }, figureInfo: {},
    points: pts.map((p) => ({ key: Object.entries(p.params).map(([k, v]) => `${k}=${v}`).join(' '), params: p.params, runs: [], figures: {} })),
    files: {},
  };
  s.points.forEach((point, i) => {
    for (let rep = 0; rep < s.repeat; rep++) {
      const figures = Object.fromEntries(names.map((n) => [n, pts[i]!.figs[n]![rep]!]));
      recordRun(s, { point, rep, seed: rep, argv: [] }, { run: { seed: rep, ok: true, failures: [], simDigest, durationMs: 1, wallMs: 1, figures, summary: {}, tables: [] }, figureInfo: Object.fromEntries(names.map((n) => [n, { label: n, unit: 'ms', better }])) });
    }
  });
  return s;
}

test('compare: points matched on the parameters both sweep alike; the changed one is what is compared', (t) => {
  const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const A = study([{ params: { peers: 10, latency: 10 }, figs: { x: v } }, { params: { peers: 20, latency: 10 }, figs: { x: v } }]);
  const B = study([{ params: { peers: 20, latency: 12 }, figs: { x: v } }, { params: { peers: 10, latency: 12 }, figs: { x: v } }]);
  const m = matchPoints(A, B);
  t.deepEqual(m.pairs.map((p) => p.label), ['peers=10 latency=10 → peers=10 latency=12', 'peers=20 latency=10 → peers=20 latency=12']);
  t.deepEqual(m.unmatched, []);
  // peers differs in its set of values: it must match, so only peers=10 pairs up.
  const C = study([{ params: { peers: 30, latency: 10 }, figs: { x: v } }, { params: { peers: 10, latency: 10 }, figs: { x: v } }]);
  const mc = matchPoints(A, C);
  t.deepEqual(mc.pairs.map((p) => p.label), ['peers=10 latency=10']);
  t.deepEqual(mc.unmatched, ['A: peers=20 latency=10', 'B: peers=30 latency=10']);
});

test("compare: the correction keeps many small p-values from being flagged; one real shift is flagged worse with its p-values", (t) => {
  // 4 runs each, fully separated: exact p = 2 / C(8, 4) = 0.0286 < 0.05 for one comparison alone.
  const lo = [1, 2, 3, 4];
  const hi = [11, 12, 13, 14];
  const one = compareStudies(study([{ params: { latency: 10 }, figs: { x: lo } }]), study([{ params: { latency: 12 }, figs: { x: hi } }]));
  t.is(one.changes.length, 1);
  t.true(Math.abs(one.changes[0]!.p - 2 / 70) < 1e-12);
  t.is(one.changes[0]!.verdict, 'worse', 'lower is better and it went up');
  t.true(Math.abs(one.changes[0]!.rel! - (12.5 / 2.5 - 1)) < 1e-12);
  // The same shift among 10 figures: Holm multiplies the smallest p by 10 → 0.286: not beyond noise.
  const figs = (xs: number[]) => Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, xs]));
  const ten = compareStudies(study([{ params: {}, figs: figs(lo) }]), study([{ params: {}, figs: figs(hi) }]));
  t.is(ten.changes.length, 10);
  for (const c of ten.changes) {
    t.true(c.p < 0.05);
    t.true(Math.abs(c.pAdj - 10 * (2 / 70)) < 1e-9 || c.pAdj === 1);
    t.is(c.verdict, 'same');
  }
  // With 10 runs a point the shift survives the correction (2/C(20,10) × 10 ≪ 0.05); higher-is-better figures that rose are better.
  const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const up = compareStudies(study([{ params: {}, figs: figs(v) }], 'higher'), study([{ params: {}, figs: figs(v.map((x) => x + 20)) }], 'higher'));
  t.true(up.changes.every((c) => c.verdict === 'better' && c.pAdj < 0.001));
  // Benjamini–Hochberg is less strict: 10 equal p-values of 0.0286 stay 0.0286.
  const bh = compareStudies(study([{ params: {}, figs: figs(lo) }]), study([{ params: {}, figs: figs(hi) }]), { correction: 'bh' });
  t.true(bh.changes.every((c) => c.verdict === 'worse' && Math.abs(c.pAdj - 2 / 70) < 1e-12));
  // The same study against itself: nothing moved.
  const same = study([{ params: {}, figs: figs(v) }]);
  t.true(compareStudies(same, same).changes.every((c) => c.verdict === 'same' && c.p > 0.9));
});

test('report: each figure against the swept N (log axis over a decade), one line per latency, intervals as error bars', async (t) => {
  const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const same = v.map(() => 7);
  const s = study([
    { params: { peers: 1000, latency: 0 }, figs: { search: v, same } },
    { params: { peers: 1000, latency: 10 }, figs: { search: v.map((x) => x + 200), same } },
    { params: { peers: 10000, latency: 0 }, figs: { search: v.map((x) => x + 1), same } },
    { params: { peers: 10000, latency: 10 }, figs: { search: v.map((x) => x + 300), same } },
  ]);
  s.sweeps = [{ name: 'peers', values: ['1000', '10000'] }, { name: 'latency', values: ['0', '10'] }];
  const charts = studyCharts(s);
  t.deepEqual(charts.map((c) => c.title), ['search against peers'], 'a figure with one value in every run of every point is not drawn');
  const lite = charts[0]!.lite as { data: { values: Record<string, unknown>[] }; encoding: { x: { scale: { type?: string } }; color: { field: string } }; layer: { mark: { type: string } }[] };
  t.is(lite.encoding.x.scale.type, 'log');
  t.deepEqual([...new Set(lite.data.values.map((r) => r.series))], ['latency=0', 'latency=10']);
  t.deepEqual(lite.layer.map((l) => l.mark.type), ['errorbar', 'line']);
  t.deepEqual(lite.data.values[1], { x: 1000, series: 'latency=10', median: 205.5, lo: 202, hi: 209, n: 10, point: 'peers=1000 latency=10' });
  t.regex(await renderChart(charts[0]!), /^<svg/);
  const html = await studyHtml(s);
  t.regex(html, /<h2>peers=10000 latency=10<\/h2>/);
  t.notRegex(html, /could not be drawn/);
});

test('compare: under simulated time a figure of the machine (wall time) that got worse is shown but is not a regression', (t) => {
  const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const figs = (d: number) => ({ 'summary.phases[0].wallMs': v.map((x) => x + d), 'flood.search': v });
  const sim = compareStudies(study([{ params: {}, figs: figs(0) }], 'lower', 'd'), study([{ params: {}, figs: figs(50) }], 'lower', 'd'));
  const wall = sim.changes.find((c) => c.figure === 'summary.phases[0].wallMs')!;
  t.is(wall.verdict, 'worse');
  t.true(wall.machine);
  t.deepEqual(regressions(sim), []);
  // On the wall clock (no simDigest: inproc, process) the same change is a regression.
  const real = compareStudies(study([{ params: {}, figs: figs(0) }]), study([{ params: {}, figs: figs(50) }]));
  t.deepEqual(regressions(real).map((c) => c.figure), ['summary.phases[0].wallMs']);
});
