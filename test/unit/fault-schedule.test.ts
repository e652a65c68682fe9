/**
 * Fault schedules (scenarios/lib/fault-schedule.ts, docs/FAULTS.md#schedules)
 * and the scenario clock's s.at / s.after: a good file parses, a bad field is
 * a usage error (exit 2 from the command line) naming its path, a schedule
 * the runner cannot apply is refused before the run, selectors are drawn by
 * the seed, every/count expand, and scheduled actions fire on simulated time
 * exactly, through the Cluster's fault methods (a fake RunnerFaults) with
 * their undoing after `duration`.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { expandSchedule, loadSchedule, parseSchedule, resolveSelectors, type ScheduleEntry } from '../../scenarios/lib/fault-schedule.ts';
import { FAULT_KINDS, noFaults, type FaultKind, type RunnerFaults } from '../../scenarios/lib/faults.ts';
import { SimClock } from '../../core/clock.ts';
import { createRng } from '../../scenarios/lib/rng.ts';
import { createRunner, parseOptions, runScenario, UsageError, type ScenarioDef } from '../../scenarios/lib/index.ts';
import { REPO, tmpDir } from '../helpers.ts';

function file(t: { teardown(fn: () => void): void }, json: unknown): string {
  const dir = tmpDir('treeshare-faults-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'faults.json');
  fs.writeFileSync(f, typeof json === 'string' ? json : JSON.stringify(json));
  return f;
}

test('a good schedule file parses, durations in ms; the shipped example is valid', (t) => {
  const f = file(t, [
    { at: '10s', kind: 'partition', groups: ['half', 'rest'], duration: '30s' },
    { at: 1500, kind: 'pause', targets: 'random:3', duration: '1500ms', every: '2m', count: 5 },
    { at: '1m', kind: 'disk', targets: ['S1', 'meta'], disk: { kind: 'enospc', afterBytes: 1024 } },
    { at: '2m', kind: 'shape', between: ['meta', 'all'], latencyMs: 20, jitterMs: 5, duration: '10s' },
  ]);
  const s = loadSchedule(f);
  t.is(s.length, 4);
  t.like(s[0], { at: 10_000, kind: 'partition', duration: 30_000 });
  t.like(s[1], { at: 1500, duration: 1500, every: 120_000, count: 5 });
  t.like(s[2], { at: 60_000 });
  t.true(loadSchedule(path.join(REPO, 'scenarios/faults/split-half.json')).length > 0);
});

const bad: [string, unknown, RegExp][] = [
  ['missing groups', [{ at: '10s', kind: 'partition' }], /\[0\]\.groups: required for kind "partition"/],
  ['a bad duration', [{ at: '1s', kind: 'heal' }, { at: 'soon', kind: 'heal' }], /\[1\]\.at: not a duration: "soon"/],
  ['an unknown kind', [{ at: 0, kind: 'explode' }], /\[0\]\.kind:/],
  ['an unknown field', [{ at: 0, kind: 'heal', grops: 1 }], /\[0\]\.grops: unknown field/],
  ['a bad selector in a group', [{ at: 0, kind: 'partition', groups: ['half', ''] }], /\[0\]\.groups\[1\]/],
  ['every without count', [{ at: 0, kind: 'heal', every: '1m' }], /\[0\]\.count: every and count go together/],
  ['a duration on a kind with nothing to undo', [{ at: 0, kind: 'reset', between: ['a', 'b'], duration: '1s' }], /\[0\]\.duration: kind "reset" has nothing to undo/],
  ['a bad disk fault', [{ at: 0, kind: 'disk', targets: 'S1', disk: { kind: 'melt' } }], /\[0\]\.disk\.kind/],
  ['not an array', { at: 0 }, /\(top level\): must be a JSON array/],
];
for (const [what, json, re] of bad) {
  test(`a schedule with ${what} is a usage error naming the field`, (t) => {
    const err = t.throws(() => parseSchedule(json), { instanceOf: UsageError });
    t.regex(err!.message, re);
  });
}

test('from the command line: a bad field exits 2 naming it; a file the runner cannot apply exits 2 before the run starts', async (t) => {
  const badFile = file(t, [{ at: '10s', kind: 'partition', groups: ['half', 'rest'], duration: '-1s' }]);
  const out = tmpDir('treeshare-faults-out-');
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const cli = (f: string) => new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const p = execFile(process.execPath, ['--import', 'tsx', 'scenarios/five-peers.ts', '--runner', 'memory', '--quiet', '--out', out, '--faults', f], { cwd: REPO, encoding: 'utf8', timeout: 60_000 },
      (_err, _stdout, stderr) => resolve({ status: p.exitCode, stderr }));
  });
  // A kind the memory runner cannot apply (today: every kind; as the runners learn them, another kind or none).
  const probe = createRunner('memory', { clock: new SimClock() });
  const kind = FAULT_KINDS.find((k) => probe.faults.unsupported(k) !== null);
  await probe.close();
  const minimal: Record<FaultKind, object> = {
    partition: { groups: ['half', 'rest'] }, heal: {}, shape: { between: ['meta', 'all'] }, stall: { between: ['meta', 'all'], ms: 10 }, reset: { between: ['meta', 'all'] },
    pause: { targets: 'meta' }, resume: { targets: 'meta' }, skew: { targets: 'meta', offsetMs: 5 }, disk: { targets: 'meta', disk: { kind: 'enospc' } },
  };
  const [r1, r2] = await Promise.all([cli(badFile), kind ? cli(file(t, [{ at: '1m', kind, ...minimal[kind] }])) : null]);
  t.is(r1.status, 2, r1.stderr);
  t.regex(r1.stderr, /five-peers: --faults .*faults\.json: \[0\]\.duration: not a duration: "-1s"/);
  if (r2) {
    t.is(r2.status, 2, r2.stderr);
    t.regex(r2.stderr, new RegExp(`the memory runner cannot ${kind}: `));
  } else t.log('the memory runner applies every fault kind: no refusal to check');
  t.deepEqual(fs.readdirSync(out), [], 'nothing ran, nothing written');
  t.throws(() => loadSchedule(path.join(out, 'none.json')), { instanceOf: UsageError, message: /--faults: cannot read .*none\.json: ENOENT/ });
});

test('every/count expand into occurrences in time order', (t) => {
  const s = parseSchedule([
    { at: '1m', kind: 'pause', targets: 'S1', duration: '10s', every: '2m', count: 3 },
    { at: '90s', kind: 'heal' },
  ]);
  t.deepEqual(expandSchedule(s).map((o) => [o.at, o.entry.kind, o.index, o.rep]), [
    [60_000, 'pause', 0, 0], [90_000, 'heal', 1, 0], [180_000, 'pause', 0, 1], [300_000, 'pause', 0, 2],
  ]);
});

test('selectors are drawn by the seed: the same seed draws the same peers, "rest" is the others, "meta" and ids as given', (t) => {
  const live = Array.from({ length: 20 }, (_, i) => `S${i + 1}`);
  const draw = (seed: number) => resolveSelectors(['half', 'rest', 'meta'], live, createRng(seed).fork('faults:0:0'));
  const a = draw(7);
  t.deepEqual(draw(7), a);
  t.is(a[0]!.length, 10);
  t.deepEqual([...a[0]!, ...a[1]!].sort(), [...live].sort());
  t.deepEqual(a[2], ['meta']);
  t.notDeepEqual(draw(8)[0], a[0], 'another seed, another half');
  const r3 = resolveSelectors(['random:3'], live, createRng(7).fork('x'));
  t.is(r3[0]!.length, 3);
  t.deepEqual(resolveSelectors(['random:3'], live, createRng(7).fork('x')), r3);
  t.throws(() => resolveSelectors(['S99'], live, createRng(1)), { message: /S99 is not a live peer/ });
});

function memoryOpts(extra: string[] = []) {
  return parseOptions(['--runner', 'memory', '--seed', '3', '--quiet', '--no-html', ...extra], {});
}

test('s.at and s.after fire on simulated time exactly; an error in one fails the scenario; pending ones are cancelled at the end and said so', async (t) => {
  const fired: [string, number][] = [];
  const def: ScenarioDef = {
    name: 'sched', summary: '', defaults: {},
    async run(s) {
      s.at(5000, () => void fired.push(['at 5000', s.now()]));
      s.at('2m', () => void fired.push(['at 2m', s.now()]));
      s.after('1500ms', () => {
        fired.push(['after 1500ms', s.now()]);
        s.after(250, () => void fired.push(['after +250', s.now()]));
      });
      s.at('30s', () => {
        throw new Error('the fault could not be applied');
      }, 'a failing fault');
      s.at('10m', () => void fired.push(['never', s.now()]), 'too late');
      await s.sleep(150_000);
    },
  };
  const { result } = await runScenario(def, memoryOpts());
  t.deepEqual(fired, [['after 1500ms', 1500], ['after +250', 1750], ['at 5000', 5000], ['at 2m', 120_000]]);
  t.false(result.ok);
  t.true(result.failures.some((f) => f.includes('at 30 s: a failing fault') && f.includes('the fault could not be applied')), result.failures.join('\n'));
  t.deepEqual(result.summary.cancelledSchedule, ['at 10 min: too late']);
});

/** A fake RunnerFaults that can do everything and writes down what it was asked, with the scenario time. */
function recordingFaults(now: () => number): RunnerFaults & { calls: string[] } {
  const calls: string[] = [];
  const base = noFaults(() => 'unused');
  const rec = (name: string) => async (...args: unknown[]) => void calls.push(`${Math.round(now())} ${name} ${JSON.stringify(args)}`);
  return { ...base, unsupported: (_k: FaultKind) => null, partition: rec('partition'), heal: rec('heal'), pause: rec('pause'), resume: rec('resume'), calls };
}

test('--faults through the Cluster: each occurrence applied at its time with its targets drawn by the seed, undone after its duration, recorded in records.faults', async (t) => {
  const schedule: ScheduleEntry[] = parseSchedule([
    { at: '10s', kind: 'partition', groups: ['half', 'rest'], duration: '5s', every: '20s', count: 2 },
    { at: '12s', kind: 'pause', targets: 'random:1', duration: '1s' },
  ]);
  const go = async () => {
    let fake!: ReturnType<typeof recordingFaults>;
    const def: ScenarioDef = {
      name: 'sched', summary: '', defaults: {},
      async run(s) {
        const c = await s.cluster();
        fake = recordingFaults(() => s.now());
        (c.runner as { faults: RunnerFaults }).faults = fake;
        await c.addPeers(s.ids('S', 6));
        await s.sleep(60_000 - s.now());
      },
    };
    const { result } = await runScenario(def, memoryOpts(), [], { schedule });
    return { calls: fake.calls, result };
  };
  const { calls, result } = await go();
  t.true(result.ok, result.failures.join('\n'));
  t.is(calls.length, 6, calls.join('\n'));
  t.regex(calls[0]!, /^10000 partition \[\[\[("S\d",?){3}\],\[("S\d",?){3}\]\],\{\}\]$/);
  t.regex(calls[1]!, /^12000 pause \["S\d"\]$/);
  t.regex(calls[2]!, /^13000 resume \["S\d"\]$/);
  t.is(calls[3], '15000 heal []');
  t.regex(calls[4]!, /^30000 partition /);
  t.is(calls[5], '35000 heal []');
  t.deepEqual(result.records.faults.map((f) => [f.kind, f.at, f.until]), [['partition', 10_000, 15_000], ['pause', 12_000, 13_000], ['resume', 13_000, 13_000], ['heal', 15_000, 15_000], ['partition', 30_000, 35_000], ['heal', 35_000, 35_000]]);
  t.deepEqual((await go()).calls, calls, 'the same seed: the same faults on the same peers at the same times');
});

test('an action still running when the script ends may schedule no more: what it schedules is cancelled and said so', async (t) => {
  let undone = false;
  const def: ScenarioDef = {
    name: 'sched', summary: '', defaults: {},
    async run(s) {
      s.at(1000, async () => {
        await s.sleep(5000);
        s.after(1000, () => void (undone = true), 'undo');
      }, 'slow fault');
      await s.sleep(2000);
    },
  };
  const { result } = await runScenario(def, memoryOpts());
  t.true(result.ok, result.failures.join('\n'));
  t.false(undone);
  t.deepEqual(result.summary.cancelledSchedule, ['at 7000 ms: undo']);
});
