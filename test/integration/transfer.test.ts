/**
 * Verified direct transfer over real TCP (docs/PROTOCOL.md, flow I): a file held by two peers
 * is transferred once; a 256 MiB generated file arrives with a matching
 * SHA-256 while the receiving process (its own OS process) stays small; a
 * fake holder speaking the wire protocol that sends wrong, truncated or too
 * many bytes (or stalls, or vanishes) leaves no file and no temporary file
 * behind and the download fails with the right code; traversal names and
 * symlinks out of the share are refused on the query and transfer sides;
 * concurrent downloads both ways; an existing file is never overwritten.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { errorCode, NotFoundError, PROTOCOL_VERSION, type Peer, type PeerOptions } from '../../core/index.ts';
import { offerFile } from '../../core/transfer/send.ts';
import { tcpTransport } from '../../core/transport/tcp.ts';
import { cluster, demoCluster, nextEvent, spawnPeer, until, type Cluster } from '../helpers.ts';
import { countingTransport, fakeChild, RawClient, RawServer, type Frame } from './wire.ts';
import { demoFile } from '../../testnet/demo-shares.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * These tests prove the guarantees of the single-holder offer transfer (swarm: false, the
 * protocol-1 flow kept behind that option); swarm downloads have their own in swarm.test.ts.
 */
const LEGACY = { swarm: false } as const;

async function open(t: ExecutionContext, o: Parameters<typeof cluster>[0] = {}): Promise<Cluster> {
  const c = await cluster({ ...o, peer: { ...LEGACY, ...o.peer } });
  t.teardown(() => c.close());
  return c;
}

/** Files in a share folder, temporary ones included (they start with a dot). */
const listing = (dir: string) => fs.readdirSync(dir).sort();
const temps = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('.treeshare-'));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return errorCode(err);
  }
}

test('a file held by two peers is transferred once, with its metrics', async (t) => {
  const wire = countingTransport();
  const c = await demoCluster({ transport: wire.transport, peer: LEGACY });
  t.teardown(() => c.close());
  const s1 = c.peer('S1');
  const uploads: string[] = [];
  for (const p of c.peers) p.on('uploaded', (u) => uploads.push(`${p.id}:${u.name}:${u.bytes}`));
  const progress: number[] = [];
  s1.on('progress', (p) => progress.push(p.bytes));
  wire.reset();
  const d = await s1.download('common.txt');
  const original = demoFile('S2', 'common.txt');
  t.deepEqual(d.search.hits.map((h) => h.id).sort(), ['S2', 'S4'], 'both holders found');
  t.true(['S2', 'S4'].includes(d.holder.id));
  t.deepEqual(fs.readFileSync(path.join(s1.opts.share, 'common.txt')), original);
  // Both holders offer; the first is acked, the other declined.
  await until(() => wire.count('offer') === 2 && wire.count('decline') === 1, { what: 'both offers answered' });
  t.is(wire.count('ack'), 1);
  await until(() => uploads.length >= 1, { what: 'uploaded event' });
  t.deepEqual(uploads, [`${d.holder.id}:common.txt:${original.length}`]);
  // Metrics.
  t.is(d.name, 'common.txt');
  t.is(d.bytes, original.length);
  t.is(d.sha256, sha(original));
  t.true(d.verified);
  t.true(d.ttfbMs >= 0 && d.ttfbMs <= d.durationMs);
  t.true(d.mbps > 0);
  t.regex(d.from, new RegExp(`^${d.holder.id}@127\\.0\\.0\\.1:\\d+$`));
  t.is(progress[progress.length - 1], original.length);
  t.deepEqual(temps(s1.opts.share), []);
  // The downloaded file is shared by the requester now.
  t.deepEqual((await c.peer('S5').search('common.txt')).hits.map((h) => h.id).sort(), ['S1', 'S2', 'S4']);
  t.true((await s1.files()).some((f) => f.name === 'common.txt'));
});

// Serial: ava runs serial tests before the concurrent ones, so this heavy one runs alone.
test.serial('a 256 MiB file transfers with matching SHA-256 while the receiving process stays small', async (t) => {
  t.timeout(120_000);
  const c = await open(t);
  const holderShare = path.join(c.dir, 'H');
  fs.mkdirSync(holderShare);
  const SIZE = 256 * 1024 * 1024;
  const big = path.join(holderShare, 'big.bin');
  t.teardown(() => fs.rmSync(big, { force: true }));
  const h = createHash('sha256');
  const fh = await fs.promises.open(big, 'w');
  const block = randomBytes(1024 * 1024);
  for (let i = 0; i < SIZE / block.length; i++) {
    block.writeUInt32LE(i, (i * 4096) % (block.length - 4)); // every MiB differs
    h.update(block);
    await fh.write(block);
  }
  await fh.close();
  const want = h.digest('hex');
  await c.add('H');

  const rshare = path.join(c.dir, 'R');
  fs.mkdirSync(rshare);
  const opts: PeerOptions = { id: 'R', host: '127.0.0.1', port: 0, share: rshare, meta: c.meta.address };
  const r = await spawnPeer(opts);
  t.teardown(() => r.kill());
  await r.next('joined');
  const before = (await (r.send({ cmd: 'memory' }), r.next('memory'))).maxRssBytes as number;
  r.send({ cmd: 'download', name: 'big.bin' });
  // Polled rather than raced with two next() calls: the loser's long timer would keep the worker alive.
  const out = await until(() => r.lines.find((l) => l.event === 'downloaded' || l.event === 'error'), { timeoutMs: 110_000, what: 'the download result', pollMs: 50 });
  t.is(out.event, 'downloaded', JSON.stringify(out));
  const res = out.result as { bytes: number; sha256: string; verified: boolean; holder: { id: string }; mbps: number; readPath: string };
  r.send({ cmd: 'memory' });
  const after = (await r.next('memory')).maxRssBytes as number;
  t.is(res.bytes, SIZE);
  t.is(res.sha256, want);
  t.true(res.verified);
  // The receiver runs with the defaults: one holder and no partial, so the offer path and its fast receive.
  t.is(res.readPath, 'fast');
  t.is(res.holder.id, 'H');
  // The bytes on disk, hashed independently.
  const got = path.join(rshare, 'big.bin');
  t.is(fs.statSync(got).size, SIZE);
  const h2 = createHash('sha256');
  for await (const chunk of fs.createReadStream(got, { highWaterMark: 4 * 1024 * 1024 })) h2.update(chunk as Buffer);
  t.is(h2.digest('hex'), want);
  t.deepEqual(temps(rshare), []);
  t.log(`receiver max RSS ${(before / 1e6).toFixed(0)} MB before, ${(after / 1e6).toFixed(0)} MB after a ${SIZE / 1e6} MB transfer at ${res.mbps.toFixed(0)} MB/s`);
  t.true(after < 200e6, `receiver max RSS ${after} bytes`);
  t.true(after - before < 100e6, `receiver grew by ${after - before} bytes`);
  fs.rmSync(got, { force: true });
});

type Mode = 'good' | 'wrong' | 'short' | 'long' | 'late-extra' | 'stall' | 'gone' | 'exists-race' | 'bad-name';

/**
 * A fake holder: a raw child of `requester` that answers its next download
 * query for `name` by offering `content`, then misbehaves as `mode` says.
 * Returns the requester's answer to the offer (ack/decline).
 */
async function fakeHolder(t: ExecutionContext, link: RawClient, requester: Peer, name: string, content: Buffer, mode: Mode, seen: Set<unknown>): Promise<Frame> {
  const q = await link.next((f) => f.t === 'query' && f.name === name && !seen.has(f.qid), { what: `a query for ${name}` });
  seen.add(q.qid);
  const conn = await RawClient.open(t, requester.address.port);
  const me = { id: 'FAKE', host: '127.0.0.1', port: 4000 };
  conn.send({ t: 'offer', v: PROTOCOL_VERSION, qid: q.qid, from: me, name: mode === 'bad-name' ? `../${name}` : name, size: content.length, sha256: sha(content) });
  const answer = await conn.next(() => true, { what: 'ack or decline' });
  link.send({ t: 'query-reply', qid: q.qid, hits: [{ ...me, size: content.length, hops: q.hops }], missing: [], reached: 1, messages: 1, duplicates: 0, maxHops: q.hops });
  if (answer.t !== 'ack') return answer;
  const half = content.subarray(0, content.length >> 1);
  switch (mode) {
    case 'good':
      await conn.write(content);
      conn.end();
      break;
    case 'wrong': {
      const bad = Buffer.from(content);
      bad[bad.length >> 1] ^= 0xff;
      await conn.write(bad);
      conn.end();
      break;
    }
    case 'short':
      await conn.write(half);
      conn.end();
      break;
    case 'long':
      await conn.write(Buffer.concat([content, Buffer.from('and then some more bytes')]));
      conn.end();
      break;
    case 'late-extra': {
      // Exactly the offered bytes first; only once the requester has counted them all, more.
      const all = nextEvent<[{ bytes: number }]>(requester as never, 'progress', (p) => p.bytes === content.length);
      await conn.write(content);
      await all;
      await conn.write(Buffer.from('surprise'));
      conn.end();
      break;
    }
    case 'stall':
      await conn.write(half);
      break; // and say nothing more
    case 'gone':
      conn.sock.destroy();
      break;
    case 'exists-race':
      fs.writeFileSync(path.join(requester.opts.share, name), 'created meanwhile\n');
      await conn.write(content);
      conn.end();
      break;
  }
  return answer;
}

/**
 * Over plain TCP the body takes the fast path (reused buffer, Connection.rawInto);
 * over a shaped TCP link it takes the stream path ('data' chunks). Both must catch
 * every misbehaviour the same way.
 */
const misbehavingHolders = (transport: ReturnType<typeof tcpTransport> | undefined, readPath: 'fast' | 'stream') => async (t: ExecutionContext) => {
  const c = await open(t, { transport, peer: { transferIdleTimeoutMs: 1500, offerTimeoutMs: 3000 } });
  const r = await c.add('R');
  const link = await fakeChild(t, r.address, { id: 'FAKE' });
  await until(() => r.state().children.some((x) => x.id === 'FAKE'), { what: 'FAKE joined' });
  const content = randomBytes(50_000);
  const share = r.opts.share;
  const clean = listing(share);
  const seen = new Set<unknown>();
  const outside = path.dirname(share);
  const outsideBefore = listing(outside);
  const cases: [Mode, string][] = [
    ['wrong', 'hash-mismatch'],
    ['short', 'truncated'],
    ['long', 'too-long'],
    ['late-extra', 'too-long'],
    ['stall', 'timeout'],
    ['gone', 'truncated'],
  ];
  for (const [mode, code] of cases) {
    const name = `f-${mode}.bin`;
    const dl = r.download(name);
    const [got, answer] = await Promise.all([codeOf(dl), fakeHolder(t, link, r, name, content, mode, seen)]);
    t.is(answer.t, 'ack', mode);
    t.is(got, code, `${mode}: ${await dl.catch((e: Error) => e.message)}`);
    t.deepEqual(listing(share), clean, `${mode}: no file and no temporary file`);
    t.false(fs.existsSync(path.join(share, name)));
  }
  t.deepEqual(listing(outside), outsideBefore, 'nothing written next to the share either');
  // The same fake, behaving, delivers: the harness itself is sound, and R recovered.
  const [d] = await Promise.all([r.download('f-good.bin'), fakeHolder(t, link, r, 'f-good.bin', content, 'good', seen)]);
  t.true(d.verified);
  t.is(d.readPath, readPath);
  t.is(sha(fs.readFileSync(path.join(share, 'f-good.bin'))), sha(content)); // (t.deepEqual on big buffers is very slow)
  t.deepEqual(temps(share), []);
};

test('a fake holder sending wrong, truncated, too many or no bytes leaves nothing behind; the error says what happened', misbehavingHolders(undefined, 'fast'));
test('the same misbehaviours are caught on the stream path (shaped TCP link)', misbehavingHolders(tcpTransport({ shape: { latencyMs: 1 } }), 'stream'));

test('a holder offering a traversal name is declined and nothing is written outside the share', async (t) => {
  const c = await open(t, { peer: { offerTimeoutMs: 500 } });
  const r = await c.add('R');
  const link = await fakeChild(t, r.address, { id: 'FAKE' });
  await until(() => r.state().children.some((x) => x.id === 'FAKE'), { what: 'FAKE joined' });
  const outside = path.dirname(r.opts.share);
  const before = listing(outside);
  const dl = r.download('evil.txt');
  const [got, answer] = await Promise.all([codeOf(dl), fakeHolder(t, link, r, 'evil.txt', Buffer.from('pwned\n'), 'bad-name', new Set())]);
  t.is(answer.t, 'decline');
  t.is(got, 'no-offer');
  t.deepEqual(listing(outside), before);
  t.deepEqual(listing(r.opts.share), []);
});

test('path-traversal names and symlinks out of the share are refused on the query and the transfer side', async (t) => {
  const c = await open(t);
  const h = await c.add('H');
  const r = await c.add('R');
  const outsideDir = path.join(c.dir, 'outside');
  fs.mkdirSync(outsideDir);
  fs.writeFileSync(path.join(outsideDir, 'secret.txt'), 'top secret\n');
  fs.writeFileSync(path.join(h.opts.share, 'ok.txt'), 'fine\n');
  fs.writeFileSync(path.join(h.opts.share, '.hidden'), 'hidden\n');
  fs.mkdirSync(path.join(h.opts.share, 'sub'));
  fs.writeFileSync(path.join(h.opts.share, 'sub', 'inner.txt'), 'inner\n');
  fs.symlinkSync(path.join(outsideDir, 'secret.txt'), path.join(h.opts.share, 'escape.txt'));
  fs.symlinkSync('../outside/secret.txt', path.join(h.opts.share, 'relescape.txt'));
  fs.symlinkSync(outsideDir, path.join(h.opts.share, 'outdir'));

  // Requester side: bad names never leave the peer.
  for (const n of ['../outside/secret.txt', 'sub/inner.txt', '/etc/passwd', '..', '.hidden', 'a\0b', '']) {
    t.is(await codeOf(r.download(n)), 'bad-name', JSON.stringify(n));
    t.is(await codeOf(r.search(n)), 'bad-name', JSON.stringify(n));
  }
  // Escaping symlinks are not shared: a definite not-found.
  for (const n of ['escape.txt', 'relescape.txt', 'outdir']) {
    t.deepEqual((await r.search(n)).hits, [], n);
    const err = await t.throwsAsync(r.download(n), { instanceOf: NotFoundError });
    t.is(err!.searched, 2);
  }
  t.deepEqual((await h.files()).map((f) => f.name), ['ok.txt']);

  // Holder, query side, with raw queries that skip the requester's own checks.
  const spy = await RawServer.open(t);
  const link = await fakeChild(t, h.address, { id: 'SPY', port: spy.port });
  const origin = { id: 'SPY', host: '127.0.0.1', port: spy.port };
  const hostile = ['../outside/secret.txt', 'sub/inner.txt', '/etc/passwd', `${outsideDir}/secret.txt`, 'escape.txt', 'relescape.txt', 'outdir', '.hidden', 'a\0b', '..', 'sub', 'ok.txt/..'];
  for (const [i, name] of hostile.entries()) {
    const qid = `SPY:q${i}`;
    link.send({ t: 'query', qid, name, origin, ttl: 255, hops: 0, budget: 2000, want: 'download' });
    const rep = await link.next((f) => f.t === 'query-reply' && f.qid === qid, { what: `the answer for ${name}` });
    t.deepEqual(rep.hits, [], JSON.stringify(name));
    t.is(rep.reached, 2);
  }
  // Positive control: a real file is offered to SPY's address, and it is the only offer made.
  link.send({ t: 'query', qid: 'SPY:ok', name: 'ok.txt', origin, ttl: 255, hops: 0, budget: 2000, want: 'download' });
  const rep = await link.next((f) => f.t === 'query-reply' && f.qid === 'SPY:ok');
  t.deepEqual((rep.hits as { id: string }[]).map((x) => x.id), ['H']);
  const offerConn = await spy.accepted(0);
  const offer = await offerConn.next((f) => f.t === 'offer');
  t.is(offer.name, 'ok.txt');
  t.is(offer.qid, 'SPY:ok');
  offerConn.send({ t: 'decline', reason: 'just checking' });
  await offerConn.remoteClosed();
  t.is(spy.conns.length, 1, 'no offer for any hostile name');

  // Holder, transfer side: even if asked directly, the jail refuses to open them.
  const self = h.ref;
  for (const [name, code] of [['escape.txt', 'outside-share'], ['relescape.txt', 'outside-share'], ['../outside/secret.txt', 'bad-name'], ['sub', 'not-regular'], ['outdir', 'outside-share']] as const) {
    t.is(await codeOf(offerFile({ transport: tcpTransport(), to: { host: '127.0.0.1', port: spy.port }, qid: 'SPY:x', self, shareDir: h.opts.share, name })), code, name);
  }
  t.is(spy.conns.length, 1, 'the jail refused before connecting');
});

test('concurrent downloads run both ways between the same two peers', async (t) => {
  const c = await open(t);
  const a = await c.add('A');
  const b = await c.add('B');
  const files = new Map<string, Buffer>();
  for (const [p, prefix] of [[a, 'a'], [b, 'b']] as const) {
    for (let i = 0; i < 3; i++) {
      const data = randomBytes(3 * 1024 * 1024 + i * 1000);
      files.set(`${prefix}${i}.bin`, data);
      fs.writeFileSync(path.join(p.opts.share, `${prefix}${i}.bin`), data);
    }
  }
  let inFlight = 0;
  let maxInFlight = 0;
  for (const p of [a, b]) {
    p.on('offer', () => (maxInFlight = Math.max(maxInFlight, ++inFlight)));
    p.on('downloaded', () => inFlight--);
  }
  const jobs = [
    ...[0, 1, 2].map((i) => a.download(`b${i}.bin`).then((d) => ['A', d] as const)),
    ...[0, 1, 2].map((i) => b.download(`a${i}.bin`).then((d) => ['B', d] as const)),
  ];
  const done = await Promise.all(jobs);
  for (const [who, d] of done) {
    t.true(d.verified);
    t.is(d.holder.id, who === 'A' ? 'B' : 'A');
    const dest = who === 'A' ? a : b;
    t.is(sha(fs.readFileSync(path.join(dest.opts.share, d.name))), sha(files.get(d.name)!), d.name);
  }
  t.true(maxInFlight >= 2, `transfers overlapped (max ${maxInFlight} at once)`);
  t.deepEqual(temps(a.opts.share), []);
  t.deepEqual(temps(b.opts.share), []);
});

test('an existing file of the same name is not overwritten', async (t) => {
  const c = await demoCluster({ peer: { ...LEGACY, offerTimeoutMs: 1000 } });
  t.teardown(() => c.close());
  const s1 = c.peer('S1');
  const mine = path.join(s1.opts.share, 'pwd1.txt');
  fs.writeFileSync(mine, 'my own pwd1\n');
  const err = await t.throwsAsync(s1.download('pwd1.txt'));
  t.is(errorCode(err), 'exists');
  t.regex(err!.message, /not overwritten/);
  t.is(fs.readFileSync(mine, 'utf8'), 'my own pwd1\n');
  // A dangling symlink of that name is not followed either.
  const target = path.join(c.dir, 'outside-target.txt');
  fs.symlinkSync(target, path.join(s1.opts.share, 'song.txt'));
  t.is(errorCode(await t.throwsAsync(s1.download('song.txt'))), 'exists');
  t.false(fs.existsSync(target));
  t.deepEqual(temps(s1.opts.share), []);
});

test('a file created while the download runs is not overwritten; the temporary file is removed', async (t) => {
  const c = await open(t);
  const r = await c.add('R');
  const link = await fakeChild(t, r.address, { id: 'FAKE' });
  await until(() => r.state().children.some((x) => x.id === 'FAKE'), { what: 'FAKE joined' });
  const content = randomBytes(20_000);
  const dl = r.download('race.bin');
  const [got] = await Promise.all([codeOf(dl), fakeHolder(t, link, r, 'race.bin', content, 'exists-race', new Set())]);
  t.is(got, 'exists');
  t.is(fs.readFileSync(path.join(r.opts.share, 'race.bin'), 'utf8'), 'created meanwhile\n');
  t.deepEqual(listing(r.opts.share), ['race.bin']);
});
