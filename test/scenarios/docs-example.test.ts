/**
 * The scenario written from docs/SCENARIOS.md alone works: the page's
 * complete example is exactly scenarios/example.ts, and it runs to the end on
 * the memory runner with the records, checks, table and summary the page
 * says it produces.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { example } from '../../scenarios/example.ts';
import { REPO, run, type ScenarioResult } from '../../scenarios/lib/index.ts';

test('docs/SCENARIOS.md shows scenarios/example.ts exactly', (t) => {
  const doc = fs.readFileSync(path.join(REPO, 'docs/SCENARIOS.md'), 'utf8');
  const at = doc.indexOf('## A complete example');
  t.true(at >= 0, 'the page has a "A complete example" section');
  const block = /```ts\n([\s\S]*?)```/.exec(doc.slice(at));
  t.truthy(block, 'the section has a ts code block');
  t.is(block![1], fs.readFileSync(path.join(REPO, 'scenarios/example.ts'), 'utf8'));
});

test('the docs example runs on the memory runner and records what the page says', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-docs-example-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const res = await run(example, ['--runner', 'memory', '--seed', '5', '--quiet', '--no-html', '--out', out]);
  t.true(res.ok, res.failures.join('\n'));
  t.is(res.options.runner, 'memory');
  t.is(res.records.joins.length, 7);
  t.true(res.records.checks.length >= 3 && res.records.checks.every((c) => c.ok));

  const xfers = res.records.transfers;
  t.is(xfers.length, 2);
  for (const x of xfers) t.true(x.ok && x.verified && x.diskSha256Ok === true && x.bytes === 256 * 1024, `${x.to} ← ${x.from}`);
  t.is(xfers[0]!.from, 'P7');

  const crashed = res.summary.crashed as string;
  t.regex(crashed, /^P\d$/);
  const repairs = res.records.repairs.filter((r) => r.lost === crashed);
  t.deepEqual(repairs.map((r) => r.peer).sort(), [...(res.summary.orphans as string[])].sort());
  t.true(repairs.some((r) => r.peer === 'P7'));
  t.false(res.tree!.nodes.some((n) => n.id === crashed));
  t.is(res.tree!.nodes.length, 6);
  t.true(res.tables.some((x) => x.title === 'Example: the same file before and after the crash' && x.rows.length === 2));
  t.is(res.trees.length, 2);

  // The result file on disk is the same run.
  const files = fs.readdirSync(out).filter((f) => f.endsWith('.json'));
  t.is(files.length, 1);
  const onDisk = JSON.parse(fs.readFileSync(path.join(out, files[0]!), 'utf8')) as ScenarioResult;
  t.deepEqual(onDisk.summary, res.summary);
});
