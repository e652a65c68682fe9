/**
 * The --regions file: the shipped example loads; every bad field is a usage
 * error naming the field; links fall back to the reverse direction; peers are
 * assigned to regions by the seed, in proportion to the weights, whatever the
 * order they are assigned in.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { UsageError } from '../../scenarios/lib/args.ts';
import { loadRegions, regionFor, regionLink } from '../../scenarios/lib/regions.ts';
import { createRng } from '../../scenarios/lib/rng.ts';
import { REPO } from '../../scenarios/lib/shares.ts';

const example = path.join(REPO, 'scenarios/regions/three-continents.json');

function withFile(t: { teardown(fn: () => void): void }, body: unknown): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-regions-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  const f = path.join(d, 'r.json');
  fs.writeFileSync(f, typeof body === 'string' ? body : JSON.stringify(body));
  return f;
}

test('the shipped example loads: three regions, the metaserver in eu, links both ways', (t) => {
  const r = loadRegions(example);
  t.deepEqual(r.matrix.regions, ['eu', 'us', 'asia']);
  t.is(r.metaserver, 'eu');
  t.is(regionLink(r.matrix, 'eu', 'asia')!.latencyMs, 110);
  t.is(regionLink(r.matrix, 'asia', 'eu')!.latencyMs, 110, 'falls back to the reverse direction');
  t.is(regionLink(r.matrix, 'asia', 'eu')!.bandwidthBytesPerSec, 2_000_000);
});

test('every bad field is a usage error that names it', (t) => {
  const cases: [unknown, RegExp][] = [
    ['{not json', /is not JSON/],
    [{ regions: {}, links: {} }, /give 1 to 64 regions/],
    [{ regions: { eu: 1 }, links: { us: {} } }, /links\.us: no region named "us"/],
    [{ regions: { eu: 1 }, links: { eu: { eu: { latencyMs: -1 } } } }, /links\.eu\.eu\.latencyMs/],
    [{ regions: { eu: 1 }, links: { eu: { eu: { latencyMs: 5, color: 'red' } } } }, /links\.eu\.eu/],
    [{ regions: { eu: 1 }, links: { eu: { eu: { bandwidth: 'fast' } } } }, /links\.eu\.eu\.bandwidth: bytes per second/],
    [{ regions: { 'e u': 1 }, links: {} }, /regions/],
    [{ regions: { eu: 0 }, links: {} }, /regions\.eu/],
    [{ regions: { eu: 1 }, metaserver: 'mars', links: {} }, /metaserver: no region named "mars"/],
  ];
  for (const [body, re] of cases) {
    const err = t.throws(() => loadRegions(withFile(t, body)), { instanceOf: UsageError }, JSON.stringify(body));
    t.regex(err!.message, /^--regions: /);
    t.regex(err!.message, re);
  }
  t.throws(() => loadRegions('/nonexistent/regions.json'), { instanceOf: UsageError, message: /cannot read/ });
});

test('regions are drawn by the seed, per peer, in proportion to the weights', (t) => {
  const r = loadRegions(example);
  const ids = Array.from({ length: 4000 }, (_, i) => `P${i + 1}`);
  const a = ids.map((id) => regionFor(r, createRng(7), id));
  const b = [...ids].reverse().map((id) => regionFor(r, createRng(7), id)).reverse();
  t.deepEqual(a, b, 'the same region for a peer whatever the order');
  const c = ids.map((id) => regionFor(r, createRng(8), id));
  t.notDeepEqual(a, c, 'another seed, another assignment');
  const share = (n: string) => a.filter((x) => x === n).length / ids.length;
  t.true(Math.abs(share('eu') - 0.5) < 0.04, `eu ${share('eu')}`);
  t.true(Math.abs(share('us') - 0.25) < 0.04, `us ${share('us')}`);
  t.true(Math.abs(share('asia') - 0.25) < 0.04, `asia ${share('asia')}`);
});

test('--regions shapes every link of a run, the metaserver\'s too, and a bad file is refused before anything runs', async (t) => {
  const { run } = await import('../../scenarios/lib/cli.ts');
  const { example } = await import('../../scenarios/example.ts');
  const f = withFile(t, { regions: { here: 1 }, links: { here: { here: { latencyMs: 50 } } } });
  const base = ['--runner', 'memory', '--peers', '3', '--seed', '4', '--quiet'];
  const plain = await run(example, base, { write: false });
  const shaped = await run(example, [...base, '--regions', f], { write: false });
  t.true(plain.ok && shaped.ok, [...plain.failures, ...shaped.failures].join('; '));
  // A metaserver round trip: the connect's round trip (2 × 50 ms) and the request and its answer (2 × 50 ms).
  t.is(plain.records.joins[0]!.metaRttMs, 0);
  t.true(shaped.records.joins[0]!.metaRttMs >= 200, `${shaped.records.joins[0]!.metaRttMs} ms`);
  t.deepEqual(shaped.records.faults, [], 'the regions are the run\'s network, not a fault');
  await t.throwsAsync(run(example, [...base, '--regions', withFile(t, { regions: {}, links: {} })], { write: false }), { instanceOf: UsageError, message: /give 1 to 64 regions/ });
});
