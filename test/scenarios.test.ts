/**
 * The scenario harness: the five-peer demo end to end (real processes, its
 * JSON), a small churn run, cleanup after a failing step, and the memory
 * and TCP runners agreeing on tree and fan-out for one seed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { churn } from '../scenarios/churn.ts';
import { runScript } from '../testnet/driver.ts';
import { canonicalTree, parseOptions, pidExists, REPO, run, runScenario, UsageError, type ScenarioDef, type ScenarioResult } from '../scenarios/lib/index.ts';

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-scenario-test-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Runs a scenario file as its own process to its end (testnet's runScript); killed in teardown if still running. */
function runFile(t: { teardown(fn: () => void): void }, file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  return runScript(path.join(REPO, file), args, { signal: ac.signal });
}

test.serial('five-peers runs to completion with real processes and its JSON is consistent', async (t) => {
  const out = tmp(t);
  const r = await runFile(t, 'scenarios/five-peers.ts', ['--json', '--quiet', '--seed', '7', '--out', out]);
  t.is(r.code, 0, r.stderr + r.stdout.slice(-2000));
  const res = JSON.parse(r.stdout) as ScenarioResult;
  t.true(res.ok, res.failures.join('\n'));
  t.is(res.seed, 7);
  t.is(res.options.runner, 'process');
  // The file on disk holds the same run.
  const files = fs.readdirSync(out).filter((f) => f.endsWith('.json'));
  t.is(files.length, 1);
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(out, files[0]!), 'utf8')).records, res.records);

  const rec = res.records;
  t.deepEqual(rec.joins.map((j) => j.peer), ['S1', 'S2', 'S3', 'S4', 'S5']);
  for (const j of rec.joins) t.true(j.totalMs >= j.metaRttMs && j.totalMs > 0);
  const floods = rec.floods.filter((f) => f.kind !== 'topo');
  t.true(floods.length >= 12);
  for (const f of floods) {
    t.true(f.answered, `${f.by} ${f.name}`);
    t.is(f.messages, 2 * (f.treeSize! - 1), `fan-out of ${f.by}'s ${f.kind} for ${f.name}`);
    t.is(f.reached, f.treeSize!);
    t.is(f.duplicates, 0);
  }
  const pwd = floods.find((f) => f.name === 'pwd1.txt' && f.kind === 'search')!;
  t.deepEqual(pwd.hits, ['S3']);
  const none = floods.find((f) => f.name === 'no-such-file.txt')!;
  t.deepEqual(none.hits, []);
  t.is(none.reached, 5);
  t.true(rec.transfers.length >= 7);
  for (const x of rec.transfers) {
    t.true(x.ok && x.verified && x.diskSha256Ok === true, `${x.to} ← ${x.file}`);
    t.regex(x.sha256 ?? '', /^[0-9a-f]{64}$/);
  }
  t.true(rec.repairs.some((x) => x.lost === 'S3' && x.ms !== null));
  t.is(res.tree?.nodes.length, 4);
  t.false(res.tree!.nodes.some((n) => n.id === 'S3'));
  t.true(res.tables.some((x) => x.title === 'Transfers'));
});

test.serial('a small churn run loses no search', async (t) => {
  const res = await run(churn, ['--runner', 'inproc', '--peers', '6', '--events', '4', '--workers', '2', '--seed', '11', '--quiet', '--no-html', '--out', tmp(t)]);
  t.true(res.ok, res.failures.join('\n'));
  const searches = res.records.floods.filter((f) => f.kind === 'search' && f.label === 'under churn');
  t.true(searches.length > 0);
  t.true(searches.every((f) => f.answered));
  for (const x of res.records.transfers) t.true(x.ok || (x.errorCode !== undefined && x.errorCode !== 'internal'), `${x.to} ← ${x.file}: ${x.error}`);
  t.true(res.records.steps.some((x) => x.name === 'tree is whole' && x.ok));
  t.true(res.records.checks.some((c) => c.what.startsWith('the metaserver lists') && c.ok));
});

test.serial('a step that throws leaves no process and no temporary folder behind', async (t) => {
  const seen: { pids: number[]; dir: string } = { pids: [], dir: '' };
  const def: ScenarioDef = {
    name: 'throws',
    summary: 'test',
    defaults: { runner: 'process', peers: 2 },
    async run(s) {
      const c = await s.cluster();
      await c.addPeers(['T1', 'T2']);
      seen.pids = [c.meta.pid!, ...[...c.peers.values()].map((p) => p.pid!)];
      seen.dir = c.ws.dir;
      await s.step('a step that fails', async () => {
        throw new Error('boom');
      });
    },
  };
  const opts = parseOptions(['--quiet', '--seed', '1'], def.defaults);
  const { result } = await runScenario(def, opts);
  t.false(result.ok);
  t.true(result.failures.some((f) => f.includes('boom')));
  t.is(seen.pids.length, 3);
  for (const pid of seen.pids) t.false(pidExists(pid), `pid ${pid} still running`);
  t.false(fs.existsSync(seen.dir));
});

test.serial('memory and TCP runners give the same tree and fan-out for the same seed', async (t) => {
  const shapes: Record<string, { tree: string; fanout: number[][] }> = {};
  for (const runner of ['inproc', 'memory'] as const) {
    const def: ScenarioDef = {
      name: 'same-seed',
      summary: 'test',
      defaults: { runner, peers: 14, maxChildren: 2, policy: 'random' },
      async run(s) {
        const c = await s.cluster();
        const ids = s.ids('M', s.opts.peers);
        const holder = s.rng.pick(ids);
        await c.addPeers(ids.map((id) => (id === holder ? { id, files: [{ name: 'x.txt', bytes: 100 }] } : id)), { settle: true });
        const tp = await c.topo(ids[0]!, { expectWhole: true });
        s.setTree('', tp.nodes);
        for (const by of s.rng.shuffle(ids).slice(0, 3)) await c.search(by, 'x.txt', { expectFrom: holder });
      },
    };
    const { result } = await runScenario(def, parseOptions(['--quiet', '--seed', '42'], def.defaults));
    t.true(result.ok, result.failures.join('\n'));
    shapes[runner] = {
      tree: canonicalTree(result.tree!.nodes),
      fanout: result.records.floods.map((f) => [f.reached, f.messages, f.duplicates, f.maxHops, ...f.hitHops]),
    };
  }
  t.is(shapes.memory!.tree, shapes.inproc!.tree);
  t.deepEqual(shapes.memory!.fanout, shapes.inproc!.fanout);
});

test('bad options are one UsageError line', (t) => {
  t.throws(() => parseOptions(['--runner', 'bogus'], {}), { instanceOf: UsageError, message: /--runner must be one of process, inproc, memory/ });
  t.throws(() => parseOptions(['--peers', 'x'], {}), { instanceOf: UsageError, message: /--peers must be a whole number/ });
  t.throws(() => parseOptions(['--nope'], {}), { instanceOf: UsageError, message: /nope/ });
  t.throws(() => parseOptions(['--bandwidth', 'fast'], {}), { instanceOf: UsageError });
  t.is(parseOptions(['--bandwidth', '4MiB', '--seed', '3'], {}).bandwidth, 4 * 1024 * 1024);
});
