/**
 * Studies as processes (scenarios/example.ts on the memory runner, a few
 * peers): a bad sweep exits 2 before anything runs; Ctrl-C in the middle of
 * a study keeps every finished run and `--resume` finishes it with the same
 * per-run results (simDigest) as uninterrupted runs of the same seeds; a
 * failed run is recorded and the study goes on (exit 1); compare.ts on two
 * study files exits 0 for the same study and 1 with --fail-on-regression
 * when a figure got worse, printing p-values.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { example } from '../scenarios/example.ts';
import { REPO, run } from '../scenarios/lib/index.ts';
import { loadStudy, recordRun, type Study } from '../scenarios/lib/study.ts';
import { LineProcess, runScript } from '../testnet/driver.ts';

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-study-test-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function script(t: { teardown(fn: () => void): void }, file: string, args: string[]) {
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  return runScript(path.join(REPO, file), args, { signal: ac.signal });
}

const studyFile = (dir: string) => {
  const f = fs.readdirSync(dir).filter((x) => /-study-.*\.json$/.test(x));
  return f.length === 1 ? path.join(dir, f[0]!) : null;
};

test('a bad sweep is a usage error: exit 2, one line, nothing run', async (t) => {
  const out = tmp(t);
  const r = await script(t, 'scenarios/example.ts', ['--sweep', 'peers=10..1', '--out', out]);
  t.is(r.code, 2);
  t.regex(r.stderr, /^example: --sweep peers: range "10\.\.1" ends below its start \(see --help\)\n$/);
  t.deepEqual(fs.readdirSync(out), []);
});

test('runScript with a signal that fired before the program started never starts it (a study stopped between two runs)', async (t) => {
  const dir = tmp(t);
  const marker = path.join(dir, 'started');
  const prog = path.join(dir, 'long.mts');
  fs.writeFileSync(prog, `import fs from 'node:fs';\nfs.writeFileSync(${JSON.stringify(marker)}, '');\nsetTimeout(() => {}, 120_000);\n`);
  const ac = new AbortController();
  ac.abort();
  const r = await runScript(prog, [], { signal: ac.signal });
  t.not(r.code, 0);
  t.false(fs.existsSync(marker), 'the program ran although its run was stopped before it began');
});

test('Ctrl-C keeps the finished runs; --resume finishes the study with the same per-run results as uninterrupted runs', async (t) => {
  t.timeout(240_000, 'four runs as processes on a loaded machine');
  const out = tmp(t);
  const p = new LineProcess(path.join(REPO, 'scenarios/example.ts'), ['--repeat', '4', '--parallel', '1', '--seed', '5', '--out', out, '--no-html'], { what: 'study', keepOutput: true });
  t.teardown(() => void p.kill());
  await p.waitFor((l) => (/^ {2}\[1\/4\] run #1 seed \d+: ok/.test(l) ? true : undefined), 'the first run done', { timeoutMs: 120_000 });
  process.kill(p.pid!, 'SIGINT');
  const e = await p.exited(30_000);
  t.is(e.code, 130, p.stderr);
  // Runs go on while the signal is on its way: at least the first is kept, and (four runs of a
  // loaded machine's example) not all of them.
  const stopped = /example study stopped: (\d) of 4 runs kept in .*continue with: npx tsx scenarios\/example\.ts --resume /.exec(p.stderr);
  t.truthy(stopped, p.stderr);
  const file = studyFile(out)!;
  const partial = loadStudy(file);
  t.false(partial.finished);
  const kept = partial.points[0]!.runs;
  t.is(kept.length, Number(stopped![1]));
  t.true(kept.length >= 1 && kept.length < 4, `${kept.length} runs kept`);

  const r = await script(t, 'scenarios/example.ts', ['--resume', file, '--no-html']);
  t.is(r.code, 0, r.stderr + r.stdout);
  t.true(r.stdout.includes(`4 runs, ${kept.length} already done`), r.stdout);
  const s = loadStudy(file);
  t.true(s.finished);
  t.deepEqual(s.points[0]!.runs.map((x) => x.rep), [0, 1, 2, 3]);
  for (const k of kept) t.deepEqual(s.points[0]!.runs[k.rep], k, 'a kept run is not run again');
  // Each run is a function of its seed: the same seed run alone gives the same simDigest.
  for (const x of s.points[0]!.runs) {
    t.true(x.ok, x.failures.join('; '));
    t.regex(x.command, new RegExp(`^npx tsx scenarios/example\\.ts --seed ${x.seed}$`));
    const alone = await run(example, ['--seed', String(x.seed), '--quiet'], { write: false });
    t.is(x.simDigest, alone.simDigest ?? null, `run #${x.rep + 1} (seed ${x.seed})`);
  }
  const f = s.points[0]!.figures['join'];
  t.truthy(f);
  t.is(f!.n, 4);
  t.deepEqual(Object.keys(f!).sort(), ['ci95', 'mean', 'meanCi95', 'median', 'method', 'n', 'sd']);
});

test('a failed run is recorded with its error and the study goes on: exit 1 at the end, one study JSON and its report', async (t) => {
  const out = tmp(t);
  // With 5 peers the holder's parent is the peer that downloads again after the crash: that run fails its checks.
  const r = await script(t, 'scenarios/example.ts', ['--sweep', 'peers=5,7', '--seed', '3', '--parallel', '2', '--out', out]);
  t.is(r.code, 1, r.stderr);
  const s = loadStudy(studyFile(out)!);
  t.true(s.finished);
  t.false(s.ok);
  t.deepEqual(s.points.map((p) => [p.key, p.runs.length, p.runs[0]!.ok]), [['peers=5', 1, false], ['peers=7', 1, true]]);
  t.true(s.points[0]!.runs[0]!.failures.length > 0);
  t.deepEqual(s.counts, { runs: 2, done: 2, failed: 1 });
  t.regex(r.stdout, /example study: FAILED \(1 of 2 runs\)/);
  t.regex(r.stdout, /re-run alone: npx tsx scenarios\/example\.ts --peers 5 --seed \d+/);
  const html = fs.readFileSync(s.files.html!, 'utf8');
  t.regex(html, /treeshare study: example/);
  t.notRegex(html, /could not be drawn/);
});

function synthetic(dir: string, name: string, shift: number): string {
  const s: Study = {
    kind: 'treeshare-study', version: 1, scenario: 'example', command: 'x', startedAt: '', updatedAt: '', finished: true, ok: true, seed: 1, repeat: 10,
    sweeps: [{ name: 'latency', values: [String(10 + shift)] }], base: [], method: {}, counts: { runs: 0, done: 0, failed: 0 }, figureInfo: {},
    points: [{ key: `latency=${10 + shift}`, params: { latency: 10 + shift }, runs: [], figures: {} }], files: {},
  };
  for (let rep = 0; rep < 10; rep++) {
    recordRun(s, { point: s.points[0]!, rep, seed: rep, argv: [] }, {
      run: { seed: rep, ok: true, failures: [], simDigest: null, durationMs: 1, wallMs: 1, figures: { 'flood.search': 100 + rep + 20 * shift, 'flood.search.messages': 12 }, summary: {}, tables: [] },
      figureInfo: { 'flood.search': { label: 'search completion', unit: 'ms', better: 'lower' }, 'flood.search.messages': { label: 'search messages per request', unit: 'msgs', better: 'lower' } },
    });
  }
  const f = path.join(dir, `${name}.json`);
  fs.writeFileSync(f, JSON.stringify(s));
  return f;
}

test('compare.ts on two studies: same → exit 0; a worse figure → exit 1 with --fail-on-regression, p-values printed; a bad file → exit 2', async (t) => {
  const d = tmp(t);
  const a = synthetic(d, 'a', 0);
  const b = synthetic(d, 'b', 2);
  const same = await script(t, 'scenarios/compare.ts', [a, a, '--fail-on-regression', '--no-html']);
  t.is(same.code, 0, same.stderr);
  t.regex(same.stdout, /0 of 2 comparisons \(1 pairs of points\) moved beyond noise \(Holm-corrected p < 0\.05\)/);
  const worse = await script(t, 'scenarios/compare.ts', [a, b, '--fail-on-regression', '--out', d]);
  t.is(worse.code, 1, worse.stderr);
  t.regex(worse.stdout, /latency=10 → latency=12 │ search completion │ ms +│ 105 \[101, 108\] n=10 │ 145 \[141, 148\] n=10 │ \+38% +│ 1\.1e-5 │ 2\.2e-5 +│ ▼ WORSE/);
  t.notRegex(worse.stdout, /search messages per request/, 'unchanged figures are not listed');
  t.regex(worse.stdout, /compare: 1 figure\(s\) got worse beyond noise \(--fail-on-regression\)/);
  t.true(fs.readdirSync(d).some((f) => /^compare-study-.*\.html$/.test(f)));
  const without = await script(t, 'scenarios/compare.ts', [a, b, '--no-html']);
  t.is(without.code, 0, 'without --fail-on-regression a regression is reported, not an error');
  fs.writeFileSync(path.join(d, 'bad.json'), '{"kind":"treeshare-study","version":1}');
  const bad = await script(t, 'scenarios/compare.ts', [a, path.join(d, 'bad.json'), '--no-html']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^compare: .*bad\.json is not a study file: scenario: /);
});
