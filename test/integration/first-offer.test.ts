/**
 * First download of a large file (issue 11 item 6): the holder has to hash the
 * whole file before its first offer. It connects first and reports its
 * progress (`preparing`), and the requester waits as long as that progress
 * grows — not merely `offerTimeoutMs` after the search. A holder that reports
 * without progressing is not waited for.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { errorCode, PROTOCOL_VERSION, type SearchResult } from '../../core/index.ts';
import { cluster } from '../helpers.ts';
import { fakeChild, RawClient } from './wire.ts';

test('a file that takes longer to hash than the offer timeout still gets its offer: the holder reports its progress', async (t) => {
  t.timeout(60_000);
  const c = await cluster({ peer: { heartbeatMs: 0, swarm: false } });
  t.teardown(() => c.close());
  const holder = await c.add('H', { preparingIntervalMs: 20 });
  // Sparse: no disk used, but hashing still reads all of it (~0.8 s on this machine when idle), far longer than the offer timeout.
  const size = 512 * 1024 * 1024;
  const file = path.join(holder.opts.share, 'big.bin');
  fs.writeFileSync(file, 'head');
  fs.truncateSync(file, size);
  const offerTimeoutMs = 400;
  const r = await c.add('R', { offerTimeoutMs });
  let searchDone = 0;
  let offerAt = 0;
  // The offer is what the old code never waited for; once it is accepted the bytes are not the point: stop there.
  const ac = new AbortController();
  r.on('search-done', (s: SearchResult) => void (s.name === 'big.bin' && (searchDone = performance.now())));
  r.on('offer', (o) => {
    offerAt = performance.now();
    t.is(o.size, size);
    t.true(o.accepted);
    ac.abort();
  });
  const err = await r.download('big.bin', { signal: ac.signal }).then(() => undefined, (e: unknown) => e);
  t.is(errorCode(err), 'aborted', `the download got its offer (not ${errorCode(err)})`);
  t.true(offerAt > 0, 'the offer arrived');
  // The test is only meaningful when the offer came later than the old deadline would have allowed.
  t.true(offerAt - searchDone > offerTimeoutMs, `offer ${(offerAt - searchDone).toFixed(0)} ms after the search (timeout ${offerTimeoutMs} ms)`);
  t.true((r.wireFrames().received.preparing ?? 0) >= 2, 'progress reports arrived');
  t.false(fs.existsSync(path.join(r.opts.share, 'big.bin')));
});

test('a holder that reports without progress is not waited for; its connection is declined when the download ends', async (t) => {
  const c = await cluster({ peer: { heartbeatMs: 0, swarm: false } });
  t.teardown(() => c.close());
  const offerTimeoutMs = 150;
  const r = await c.add('R', { offerTimeoutMs });
  // A fake holder in the tree: answers the query with a hit, then "prepares" forever at 1 byte.
  const fake = await fakeChild(t, r.address, { id: 'FAKE' });
  const from = { id: 'FAKE', host: '127.0.0.1', port: 4000 };
  let prep: RawClient | undefined;
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  t.teardown(() => clearInterval(timer));
  fake.onFrame((f) => {
    if (f.t !== 'query') return;
    fake.send({ t: 'query-reply', qid: f.qid, hits: [{ ...from, size: 1000, hops: 1 }], missing: [], reached: 1, messages: 1, duplicates: 0, maxHops: 1 });
    void RawClient.open(t, r.address.port).then((raw) => {
      prep = raw;
      const tell = () => {
        sent++;
        raw.send({ t: 'preparing', v: PROTOCOL_VERSION, qid: f.qid, from, name: 'stuck.bin', size: 1000, hashed: 1 });
      };
      tell();
      timer = setInterval(tell, 10);
    });
  });
  const t0 = performance.now();
  const err = await r.download('stuck.bin').then(() => undefined, (e: unknown) => e);
  const took = performance.now() - t0;
  t.is(errorCode(err), 'no-offer');
  t.true(sent >= 3, `${sent} progress-free reports were sent`);
  t.true(took < 5000);
  // The fake holder is told to stop.
  const decline = await prep!.next((f) => f.t === 'decline');
  t.regex(String(decline.reason), /ended|finished/);
  await prep!.remoteClosed();
  t.false(fs.existsSync(path.join(r.opts.share, 'stuck.bin')));
});

test('a preparing holder that makes progress keeps the download waiting past the offer timeout, then its offer is taken', async (t) => {
  const c = await cluster({ peer: { heartbeatMs: 0, swarm: false } });
  t.teardown(() => c.close());
  const offerTimeoutMs = 400;
  const r = await c.add('R', { offerTimeoutMs });
  const fake = await fakeChild(t, r.address, { id: 'SLOW' });
  const from = { id: 'SLOW', host: '127.0.0.1', port: 4000 };
  const body = Buffer.alloc(4096, 'p'); // hashed grows by 1 per report: it must not reach the size before the offer
  const { createHash } = await import('node:crypto');
  const sha256 = createHash('sha256').update(body).digest('hex');
  let timer: NodeJS.Timeout | undefined;
  t.teardown(() => clearInterval(timer));
  fake.onFrame((f) => {
    if (f.t !== 'query') return;
    fake.send({ t: 'query-reply', qid: f.qid, hits: [{ ...from, size: body.length, hops: 1 }], missing: [], reached: 1, messages: 1, duplicates: 0, maxHops: 1 });
    void RawClient.open(t, r.address.port).then((raw) => {
      const t0 = performance.now();
      let hashed = 0;
      timer = setInterval(() => {
        // Progress every 20 ms for 3 offer timeouts, then the offer.
        if (performance.now() - t0 < 3 * offerTimeoutMs) {
          raw.send({ t: 'preparing', v: PROTOCOL_VERSION, qid: f.qid, from, name: 'slow.bin', size: body.length, hashed: Math.min(body.length, ++hashed) });
          return;
        }
        clearInterval(timer);
        raw.send({ t: 'offer', v: PROTOCOL_VERSION, qid: f.qid, from, name: 'slow.bin', size: body.length, sha256 });
        void raw.next((x) => x.t === 'ack').then(() => raw.sock.end(body));
      }, 20);
    });
  });
  const t0 = performance.now();
  const d = await r.download('slow.bin');
  t.true(performance.now() - t0 > 2 * offerTimeoutMs);
  t.true(d.verified);
  t.deepEqual(fs.readFileSync(path.join(r.opts.share, 'slow.bin')), body);
});
