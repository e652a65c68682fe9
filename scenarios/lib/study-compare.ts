/**
 * Two studies compared point by point and figure by figure (what
 * `scenarios/compare.ts A-study.json B-study.json` does): per matched pair
 * of points and per figure both have, a two-sided Mann–Whitney U test of the
 * runs' values (stats.ts), the p-values of every comparison corrected for
 * their number (Holm by default, or Benjamini–Hochberg); a figure moved
 * beyond noise when its corrected p is below alpha. `--fail-on-regression`:
 * exit 1 when a figure got worse beyond noise (figures of the machine, wall
 * or CPU time and memory, are shown but not counted when the runs' time is
 * simulated: they move with the machine's load, not with the code).
 *
 * Points are matched on their parameters' values; a parameter with one value
 * in each study and another value in B (latency 10 in A, 12 in B) is what is
 * being compared and is left out of the match. Points without a partner are
 * listed, not compared.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { fmt, fmtPct } from '../../bench/lib/report.ts';
import type { ChartSpec } from './charts.ts';
import { CSS, esc, figure, tableHtml } from './report.ts';
import { REPO } from './shares.ts';
import { adjustP, CORRECTIONS, mannWhitney, type Correction, type FigureStats } from './stats.ts';
import { isMachineFigure, loadStudy, StudyFileError, type Study, type StudyPoint } from './study-file.ts';
import { pointKey } from './sweep.ts';

export interface FigureChange {
  /** The pair of points: "peers=1000" or "latency=10 → latency=12". */
  point: string;
  figure: string;
  label: string;
  unit: string;
  better?: 'higher' | 'lower';
  a: FigureStats;
  b: FigureStats;
  /** B's median / A's median − 1; null when A's median is 0. */
  rel: number | null;
  p: number;
  /** The test's distribution: exact (no ties, small samples) or normal approximation. */
  exact: boolean;
  /** p corrected for the number of comparisons. */
  pAdj: number;
  /**
   * A figure of the machine (wall or CPU time, memory) in runs whose overlay
   * time is simulated (memory runner): judged and shown, but it depends on
   * what else the machine did, so --fail-on-regression does not count it.
   */
  machine: boolean;
  verdict: 'better' | 'worse' | 'changed' | 'same';
}

export interface StudyComparison {
  pairs: { a: StudyPoint; b: StudyPoint; label: string }[];
  /** Points of either study without a partner. */
  unmatched: string[];
  correction: Correction;
  alpha: number;
  changes: FigureChange[];
}

/** Pairs the points of A and B: equal values of every parameter but one that has a single, different value in each study. */
export function matchPoints(A: Study, B: Study): Pick<StudyComparison, 'pairs' | 'unmatched'> {
  const values = (s: Study, n: string) => new Set(s.points.map((p) => String(p.params[n])));
  const names = [...new Set([...A.points, ...B.points].flatMap((p) => Object.keys(p.params)))];
  // A parameter with one value in each study, different (latency 10 in A, 12 in B), is what is compared; every other one must match.
  const same = names.filter((n) => {
    const a = values(A, n);
    const b = values(B, n);
    return !(a.size === 1 && b.size === 1 && [...a][0] !== [...b][0]);
  });
  const keyOf = (p: StudyPoint) => pointKey(Object.fromEntries(same.filter((n) => n in p.params).map((n) => [n, p.params[n]!])));
  const groupsB = new Map<string, StudyPoint[]>();
  for (const p of B.points) groupsB.set(keyOf(p), [...(groupsB.get(keyOf(p)) ?? []), p]);
  const pairs: StudyComparison['pairs'] = [];
  const unmatched: string[] = [];
  for (const a of A.points) {
    const b = groupsB.get(keyOf(a))?.shift();
    if (!b) {
      unmatched.push(`A: ${a.key || 'all runs'}`);
      continue;
    }
    pairs.push({ a, b, label: a.key === b.key ? a.key || 'all runs' : `${a.key || 'all runs'} → ${b.key || 'all runs'}` });
  }
  for (const rest of groupsB.values()) for (const b of rest) unmatched.push(`B: ${b.key || 'all runs'}`);
  return { pairs, unmatched };
}

const valuesOf = (p: StudyPoint, name: string) => p.runs.filter((r) => r.ok && name in r.figures).map((r) => r.figures[name]!);

export function compareStudies(A: Study, B: Study, o: { alpha?: number; correction?: Correction } = {}): StudyComparison {
  if (A.scenario !== B.scenario) throw new StudyFileError(`studies of different scenarios (${A.scenario}, ${B.scenario}): compare studies of one scenario`);
  const alpha = o.alpha ?? 0.05;
  const correction = o.correction ?? 'holm';
  const { pairs, unmatched } = matchPoints(A, B);
  const raw: Omit<FigureChange, 'pAdj' | 'verdict'>[] = [];
  const simulated = (p: StudyPoint) => p.runs.length > 0 && p.runs.every((r) => r.simDigest !== null);
  for (const { a, b, label } of pairs) {
    for (const [name, fa] of Object.entries(a.figures)) {
      const fb = b.figures[name];
      const info = A.figureInfo[name] ?? B.figureInfo[name];
      if (!fb || !info) continue;
      const t = mannWhitney(valuesOf(a, name), valuesOf(b, name));
      raw.push({ point: label, figure: name, label: info.label, unit: info.unit, ...(info.better ? { better: info.better } : {}), a: fa, b: fb, rel: fa.median !== 0 ? fb.median / fa.median - 1 : null, p: t.p, exact: t.exact, machine: isMachineFigure(name) && simulated(a) && simulated(b) });
    }
  }
  const adj = adjustP(raw.map((r) => r.p), correction);
  const changes = raw.map((r, i): FigureChange => {
    const pAdj = adj[i]!;
    const up = r.b.median !== r.a.median ? r.b.median > r.a.median : r.b.mean > r.a.mean;
    const verdict: FigureChange['verdict'] = pAdj >= alpha ? 'same' : !r.better ? 'changed' : up === (r.better === 'higher') ? 'better' : 'worse';
    return { ...r, pAdj, verdict };
  });
  return { pairs, unmatched, correction, alpha, changes };
}

const pFmt = (p: number) => (p < 0.001 ? p.toExponential(1) : p.toFixed(3));
const CORRECTION_NAME: Record<Correction, string> = { holm: 'Holm', bh: 'Benjamini–Hochberg' };

function changeText(c: FigureChange): string {
  if (c.rel === null) return `${fmt(c.a.median)} → ${fmt(c.b.median)}`;
  return `${c.rel >= 0 ? '+' : '−'}${fmtPct(Math.abs(c.rel))}`;
}

export function changesTable(cmp: StudyComparison, all: boolean): { head: string[]; rows: string[][] } {
  const cell = (f: FigureStats) => `${fmt(f.median)} [${fmt(f.ci95[0])}, ${fmt(f.ci95[1])}] n=${f.n}`;
  return {
    head: ['point', 'figure', 'unit', 'A median [95%]', 'B median [95%]', 'change', 'p', `p (${CORRECTION_NAME[cmp.correction]})`, 'verdict'],
    rows: cmp.changes.filter((c) => all || c.verdict !== 'same').map((c) => [
      c.point, c.label, c.unit, cell(c.a), cell(c.b), changeText(c), `${pFmt(c.p)}${c.exact ? '' : ' ≈'}`, pFmt(c.pAdj),
      `${c.verdict === 'worse' ? '▼ WORSE' : c.verdict === 'better' ? '▲ better' : c.verdict === 'changed' ? 'changed' : '~'}${c.machine && c.verdict !== 'same' ? ' (machine)' : ''}`,
    ]),
  };
}

function changesChart(cmp: StudyComparison): ChartSpec | null {
  const data = cmp.changes.filter((c) => c.verdict !== 'same' && c.rel !== null).map((c) => ({ figure: `${c.label} (${c.point})`, change: c.rel! * 100, verdict: c.verdict, p: pFmt(c.pAdj) }));
  if (!data.length) return null;
  return {
    title: 'Figures that moved beyond noise: change of the median, B against A',
    note: `Bars: (B / A − 1) of the median over each point's runs, in %. Beyond noise: Mann–Whitney p corrected (${CORRECTION_NAME[cmp.correction]}) below ${cmp.alpha}.`,
    lite: {
      width: 520, height: Math.max(60, data.length * 18), data: { values: data }, mark: 'bar',
      encoding: {
        y: { field: 'figure', type: 'nominal', title: null, sort: null, axis: { labelLimit: 360 } },
        x: { field: 'change', type: 'quantitative', title: 'change, %' },
        color: { field: 'verdict', type: 'nominal', title: 'verdict', scale: { domain: ['better', 'worse', 'changed'], range: ['#2a9d4a', '#d9534f', '#e0a526'] } },
        tooltip: [{ field: 'figure' }, { field: 'change', format: '.1f' }, { field: 'p', title: 'corrected p' }],
      },
    },
  };
}

async function changesHtml(files: readonly string[], cmp: StudyComparison, scenario: string): Promise<string> {
  const t = changesTable(cmp, true);
  const chart = changesChart(cmp);
  return [
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>treeshare · compare ${esc(scenario)} studies</title><style>${CSS}</style></head><body>`,
    `<h1>treeshare: compare two ${esc(scenario)} studies</h1><ul><li><b>A</b>: ${esc(files[0]!)}</li><li><b>B</b>: ${esc(files[1]!)}</li></ul>`,
    `<p>${summaryLine(cmp)}</p>`,
    chart ? await figure(chart) : '<p>No figure moved beyond noise.</p>',
    `<h2>Every comparison</h2>${tableHtml(t.head, t.rows)}`,
    `<p class="note">p: two-sided Mann–Whitney U over the runs of each point (exact without ties, "≈": normal approximation); corrected for ${cmp.changes.length} comparisons (${CORRECTION_NAME[cmp.correction]}).</p>`,
    '</body></html>\n',
  ].join('\n');
}

/** The figures that got worse beyond noise and count as a regression (not the machine's, under simulated time). */
export function regressions(cmp: StudyComparison): FigureChange[] {
  return cmp.changes.filter((c) => c.verdict === 'worse' && !c.machine);
}

function summaryLine(cmp: StudyComparison): string {
  const moved = cmp.changes.filter((c) => c.verdict !== 'same');
  const worse = regressions(cmp).length;
  const machine = moved.filter((c) => c.machine).length;
  return `${moved.length} of ${cmp.changes.length} comparisons (${cmp.pairs.length} pairs of points) moved beyond noise (${CORRECTION_NAME[cmp.correction]}-corrected p < ${cmp.alpha}): ${worse} worse, ${moved.filter((c) => c.verdict === 'better' && !c.machine).length} better, ${moved.filter((c) => c.verdict === 'changed' && !c.machine).length} changed without a better direction${machine ? `; ${machine} figure(s) of the machine (wall or CPU time, memory) moved too, not counted: the overlay's time is simulated` : ''}.`;
}

/** The loud line printed before a comparison of runs that differ in runner or options. */
export function differenceWarning(diffs: readonly string[]): string {
  return `!! NOT LIKE FOR LIKE: these runs differ in ${diffs.join('; ')}. Each change below is (also) the effect of that difference, not only of the code.`;
}

const HELP = `Usage: npx tsx scenarios/compare.ts A-study.json B-study.json [options]

Compares two studies of one scenario point by point: for every figure, a
Mann–Whitney U test of the two points' runs, corrected for the number of
comparisons; prints the figures that moved beyond noise (with p-values) and
writes an HTML page.

Options:
  --fail-on-regression   exit 1 when a figure got worse beyond noise
  --alpha A              significance level after correction (default 0.05)
  --correction holm|bh   Holm (family-wise error, default) or Benjamini–Hochberg (false discovery rate)
  --all                  print every comparison, not only those beyond noise
  --out DIR              where the HTML page goes (default: results/)
  --no-html              print only
  --json                 print the comparison as JSON
  -h, --help             this text
`;

/** The command line for two study files; returns the exit code (2: usage, 1: regression with --fail-on-regression). */
export async function studyCompareCli(argv: readonly string[]): Promise<number> {
  let a;
  try {
    a = parseArgs({
      args: [...argv], allowPositionals: true,
      options: { 'fail-on-regression': { type: 'boolean' }, alpha: { type: 'string' }, correction: { type: 'string' }, all: { type: 'boolean' }, out: { type: 'string' }, 'no-html': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    process.stderr.write(`compare: ${(err as Error).message.split('\n')[0]} (see --help)\n`);
    return 2;
  }
  if (a.values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const alpha = a.values.alpha === undefined ? 0.05 : Number(a.values.alpha);
  const correction = a.values.correction ?? 'holm';
  const bad = a.positionals.length !== 2 ? 'give exactly two study files (A, then B)'
    : !(alpha > 0 && alpha < 1) ? `--alpha must be a number between 0 and 1, not ${JSON.stringify(a.values.alpha)}`
      : !(CORRECTIONS as readonly string[]).includes(correction) ? `--correction must be one of ${CORRECTIONS.join(', ')}, not ${JSON.stringify(correction)}` : null;
  if (bad) {
    process.stderr.write(`compare: ${bad} (see --help)\n`);
    return 2;
  }
  let cmp: StudyComparison;
  let scenario: string;
  let bases: [string, string];
  try {
    const [A, B] = a.positionals.map(loadStudy) as [Study, Study];
    scenario = A.scenario;
    // The options every run had (besides the swept ones), shown when they differ: e.g. --max-children 3 in B only.
    bases = [A.base.join(' '), B.base.join(' ')];
    cmp = compareStudies(A, B, { alpha, correction: correction as Correction });
  } catch (err) {
    if (err instanceof StudyFileError) {
      process.stderr.write(`compare: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const out = a.values.json ? process.stderr : process.stdout;
  if (a.values.json && bases[0] !== bases[1]) out.write(`${differenceWarning([`their options (A: ${bases[0] || 'none'}; B: ${bases[1] || 'none'})`])}\n`);
  if (a.values.json) process.stdout.write(JSON.stringify({ ...cmp, pairs: cmp.pairs.map((p) => ({ a: p.a.key, b: p.b.key, label: p.label })) }, null, 2) + '\n');
  else {
    const t = changesTable(cmp, a.values.all === true);
    process.stdout.write(`Compare ${scenario} studies\n  A: ${a.positionals[0]}${bases[0] !== bases[1] ? `  (${bases[0] || 'no options'})` : ''}\n  B: ${a.positionals[1]}${bases[0] !== bases[1] ? `  (${bases[1] || 'no options'})` : ''}\n`);
    if (bases[0] !== bases[1]) process.stdout.write(`${differenceWarning([`their options (A: ${bases[0] || 'none'}; B: ${bases[1] || 'none'})`])}\n`);
    if (t.rows.length) {
      const table = new Table({ head: t.head, style: { head: [], border: [], compact: true } });
      for (const r of t.rows) table.push(r);
      process.stdout.write(`${table.toString()}\n`);
    }
    process.stdout.write(`${summaryLine(cmp)}\n  p: two-sided Mann–Whitney U over the runs of each point (exact without ties; ≈: normal approximation).\n`);
  }
  if (cmp.unmatched.length) out.write(`  points without a partner (not compared): ${cmp.unmatched.join(', ')}\n`);
  if (!a.values['no-html']) {
    const dir = path.resolve(a.values.out ?? path.join(REPO, 'results'));
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `compare-study-${new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '')}.html`);
    fs.writeFileSync(file, await changesHtml(a.positionals, cmp, scenario));
    out.write(`→ ${path.relative(process.cwd(), file)}\n`);
  }
  const worse = regressions(cmp).length;
  if (a.values['fail-on-regression'] && worse > 0) {
    out.write(`compare: ${worse} figure(s) got worse beyond noise (--fail-on-regression)\n`);
    return 1;
  }
  return 0;
}
