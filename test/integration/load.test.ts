/**
 * Load: many concurrent searches and downloads across a 50-peer overlay, and
 * a burst of registrations at the metaserver. Asserts nothing is lost; the
 * rates are logged (speed targets live in the benchmarks, not here).
 */
import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PROTOCOL_VERSION, request, tcpTransport } from '../../core/index.ts';
import { cluster } from '../helpers.ts';

test.serial('1,000 concurrent searches and 20 concurrent downloads on 50 peers: every search answered, every download verified', async (t) => {
  const c = await cluster({ peer: { heartbeatMs: 0, announceMs: 0 } });
  t.teardown(() => c.close());
  for (let i = 0; i < 50; i++) await c.add(`P${i}`);
  // 20 distinct files of 256 KiB, each on one peer.
  const files: { name: string; sha: string; holder: number }[] = [];
  for (let k = 0; k < 20; k++) {
    const holder = (k * 7) % 50;
    const data = crypto.randomBytes(256 * 1024);
    const name = `load-${k}.bin`;
    fs.writeFileSync(path.join(c.dir, `P${holder}`, name), data);
    files.push({ name, sha: crypto.createHash('sha256').update(data).digest('hex'), holder });
  }
  const t0 = performance.now();
  const searches = Array.from({ length: 1000 }, (_, i) => c.peers[i % 50]!.search(files[i % 20]!.name));
  const downloads = files.map((f, k) => c.peers[(f.holder + 25 + k) % 50]!.download(f.name));
  const [sr, dr] = await Promise.all([Promise.allSettled(searches), Promise.allSettled(downloads)]);
  const ms = performance.now() - t0;
  const failedSearches = sr.filter((r) => r.status === 'rejected');
  t.is(failedSearches.length, 0, String((failedSearches[0] as PromiseRejectedResult | undefined)?.reason));
  for (const r of sr) {
    if (r.status !== 'fulfilled') continue;
    t.is(r.value.reached, 50, `missing ${r.value.missing.join(',')} after ${r.value.completionMs.toFixed(0)} ms`);
    // Downloads finishing during the run make their requester a second holder.
    t.true(r.value.hits.length >= 1);
    t.deepEqual(r.value.missing, []);
  }
  const failedDownloads = dr.filter((r) => r.status === 'rejected');
  t.is(failedDownloads.length, 0, String((failedDownloads[0] as PromiseRejectedResult | undefined)?.reason));
  dr.forEach((r, k) => {
    if (r.status === 'fulfilled') {
      t.true(r.value.verified);
      t.is(r.value.sha256, files[k]!.sha);
    }
  });
  t.log(`1,000 searches + 20 downloads on 50 peers: ${ms.toFixed(0)} ms (${(1000 / (ms / 1000)).toFixed(0)} searches/s)`);
});

test.serial('the metaserver answers 2,000 registrations from 64 concurrent clients, each one', async (t) => {
  const c = await cluster();
  t.teardown(() => c.close());
  const tr = tcpTransport();
  const meta = c.meta.address;
  const N = 2000;
  let next = 0;
  const results: PromiseSettledResult<unknown>[] = [];
  const worker = async () => {
    while (next < N) {
      const i = next++;
      const r = request(tr, { host: '127.0.0.1', port: meta.port }, { t: 'register', v: PROTOCOL_VERSION, id: `R${i}`, host: '127.0.0.1', port: 10000 + i, maxChildren: 2 }, ['registered'], { timeoutMs: 30_000 });
      results.push(await r.then((value) => ({ status: 'fulfilled' as const, value }), (reason) => ({ status: 'rejected' as const, reason })));
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 64 }, worker));
  const ms = performance.now() - t0;
  const bad = results.filter((r) => r.status === 'rejected');
  t.is(bad.length, 0, String((bad[0] as PromiseRejectedResult | undefined)?.reason));
  t.is(results.length, N);
  t.is(c.meta.registryList().length, N);
  t.log(`${N} registrations in ${ms.toFixed(0)} ms = ${(N / (ms / 1000)).toFixed(0)} registrations/s`);
});
