/**
 * Hostile holders (issue 22): a real peer downloads from fake holders (hostile-holder.ts) that
 * send any manifest, frames, bytes and timing, on the swarm path and the offer path. Whatever
 * they send, the peer drops them with a clear reason and keeps running; honest holders finish
 * what a liar spoiled.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { errorCode, tcpTransport, type Connection, type Peer } from '../../core/index.ts';
import { cluster, until } from '../helpers.ts';
import { FakeSwarmHolder, fakeFile, HostileMember, manifestFrame, pieceOf, sha256, type FakeFile, type HostileMemberOptions, type SwarmScript } from './hostile-holder.ts';
import { swarmNet } from './swarm-net.ts';
import { RawClient } from './wire.ts';

/** A requester R alone in a cluster (its own root), with `peer` options. */
async function requester(t: ExecutionContext, peer: Record<string, unknown> = {}): Promise<Peer> {
  const c = await cluster({ peer: { heartbeatMs: 0, announceMs: 0, ...peer } });
  t.teardown(() => c.close());
  return c.add('R');
}

/** A hostile member joined under `r`. */
async function member(t: ExecutionContext, r: Peer, o: HostileMemberOptions): Promise<HostileMember> {
  const m = await HostileMember.join(t, r.address, o);
  await until(() => r.state().children.some((x) => x.id === m.id), { what: `${m.id} joined` });
  return m;
}

/** Fake swarm holders, each with its script, named in the hits of one hostile member under `r`. */
async function swarmHolders(t: ExecutionContext, r: Peer, size: number, scripts: Record<string, SwarmScript>): Promise<FakeSwarmHolder[]> {
  const hs = await Promise.all(Object.entries(scripts).map(([id, s]) => FakeSwarmHolder.open(t, id, s)));
  await member(t, r, { hits: () => hs.map((h) => h.hit(size)) });
  return hs;
}

/** The download's error, with its message. */
async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return { code: errorCode(err), message: (err as Error).message };
  }
  throw new Error('the download succeeded');
}

const small = fakeFile('f.bin', randomBytes(100));
const file = fakeFile('f.bin', randomBytes(4 * 64 * 1024 + 1000));
/** Serves `f` honestly. */
const honest = (f: FakeFile): SwarmScript => (c) => {
  c.send(manifestFrame(f));
  c.serve(f);
};

// ---- defect 1: manifest fields bounded by the file's size; a remote's data never kills the peer ----

for (const [what, patch] of [
  ['a piece size of 2^40 for a 100-byte file (over the wire bound)', { pieceSize: 2 ** 40 }],
  ['a piece size of 2^29 for a 100-byte file (within the wire bound, not the size\'s)', { pieceSize: 2 ** 29 }],
] as const) {
  test(`swarm: a manifest with ${what} drops that holder (bad-manifest); the peer keeps running`, async (t) => {
    const r = await requester(t, { swarm: 'always' });
    await swarmHolders(t, r, small.size, {
      EVIL: (c) => {
        c.send(manifestFrame(small, patch));
        // Whatever is asked, the 100 bytes follow (the requester would fill a piece buffer of pieceSize).
        void c.wanted().then(() => c.write(small.body), () => undefined);
      },
    });
    const err = await failure(r.download('f.bin'));
    t.is(err.code, 'all-holders-gone', err.message);
    t.regex(err.message, /EVIL: bad-manifest: /);
    t.false(fs.existsSync(path.join(r.opts.share, 'f.bin')));
    // Still serving: a search answers.
    t.is((await r.search('f.bin')).hits.length, 1);
  });
}

test('a Connection whose handler throws on a remote\'s data closes that connection (internal), the process goes on', async (t) => {
  const closed: { code?: string; message?: string }[] = [];
  const conns: Connection[] = [];
  const listener = await tcpTransport().listen({
    host: '127.0.0.1', port: 0,
    onConnection: (conn: Connection) => {
      conns.push(conn);
      conn.on('message', (m) => {
        if (m.t === 'swarm-open' && m.name === 'raw.bin') {
          // Raw mode with a reused buffer (the fast path): the bytes callback throws.
          conn.rawInto(Buffer.alloc(16), () => {
            throw new RangeError('boom in rawInto');
          });
          return;
        }
        throw new RangeError('boom in a message handler');
      });
      conn.on('close', (e) => closed.push({ code: (e as { code?: string } | undefined)?.code, message: e?.message }));
    },
  });
  t.teardown(() => listener.close());
  const open = { t: 'swarm-open', v: 2, from: { id: 'X', host: '127.0.0.1', port: 1 }, sha256: null };
  const a = await RawClient.open(t, listener.address.port);
  a.send({ ...open, name: 'f.bin' });
  await a.remoteClosed();
  const b = await RawClient.open(t, listener.address.port);
  b.send({ ...open, name: 'raw.bin' });
  await until(() => conns.length === 2, { what: 'the second connection' });
  await b.write(Buffer.alloc(100, 1));
  await b.remoteClosed();
  await until(() => closed.length === 2, { what: 'both closes' });
  t.deepEqual(closed.map((c) => c.code), ['internal', 'internal']);
  t.regex(closed[0]!.message!, /boom in a message handler/);
  t.regex(closed[1]!.message!, /boom in rawInto/);
});

test('hits in a search reply are checked at the edge: one per holder address, none claiming our id or an unspecified address', async (t) => {
  const r = await requester(t);
  const at = { host: '127.0.0.1', port: 4567, size: 10, hops: 1 };
  await member(t, r, { hits: () => [{ id: 'X1', ...at }, { id: 'X2', ...at }, { id: 'R', ...at, port: 4568 }, { id: 'X3', ...at, host: '0.0.0.0', port: 4569 }, { id: 'X4', ...at, port: 4570, hops: 9 }] });
  const res = await r.search('f.bin');
  t.deepEqual(res.hits.map((h) => h.id), ['X1']);
});

// ---- defect 10: drop reasons that say what happened; bytes in the manifest's read are not lost ----

test('swarm: a manifest failing the schema is reported as bad-manifest, not as a closed connection', async (t) => {
  const r = await requester(t, { swarm: 'always' });
  await swarmHolders(t, r, file.size, { EVIL: (c) => c.send(manifestFrame(file, { pieces: 'all of them' })) });
  const err = await failure(r.download('f.bin'));
  t.is(err.code, 'all-holders-gone', err.message);
  t.regex(err.message, /EVIL: bad-manifest: .*pieces/);
  t.notRegex(err.message, /connection closed/);
});

test('swarm (fast path): bytes in the same read as the manifest drop the holder at once (too-long), not after the idle timeout', async (t) => {
  const r = await requester(t, { swarm: 'always', transferIdleTimeoutMs: 3000 });
  await swarmHolders(t, r, file.size, {
    EVIL: (c) => void c.write(Buffer.concat([Buffer.from(JSON.stringify(manifestFrame(file)) + '\n'), Buffer.from('unasked bytes')])),
  });
  const err = await failure(r.download('f.bin'));
  t.is(err.code, 'all-holders-gone', err.message);
  t.regex(err.message, /EVIL: sent bytes nobody asked for \(too-long\)/);
});

// ---- defect 4: slow-loris holders and hashing frames ----

test('swarm: a holder trickling piece bytes (each resets the idle timer) is dropped by the minimum-progress rule', async (t) => {
  const r = await requester(t, { swarm: 'always', transferIdleTimeoutMs: 400 });
  let trickle: { sent(): number } | undefined;
  await swarmHolders(t, r, file.size, {
    SLOW: async (c) => {
      c.send(manifestFrame(file));
      await c.want();
      // One byte every 50 ms, 120 bytes (6 s): far below 1 KiB/s, never 400 ms without a byte.
      trickle = c.trickle(pieceOf(file, 0).subarray(0, 120), 50);
    },
  });
  const err = await failure(r.download('f.bin'));
  t.is(err.code, 'all-holders-gone', err.message);
  t.regex(err.message, /SLOW: sent \d+ bytes in \d+ ms, below the minimum of 1024 bytes\/s \(too slow\)/);
  t.true(trickle!.sent() < 120, `dropped while still trickling (${trickle!.sent()} bytes sent)`);
});

test('offer path: a holder trickling the body is failed by the minimum-progress rule (default 1 KiB/s; the peer option minRateBytesPerSec, --min-rate, sets it; 0 turns it off)', async (t) => {
  for (const minRateBytesPerSec of [undefined, 4096, 0]) {
    const r = await requester(t, { swarm: false, transferIdleTimeoutMs: 400, ...(minRateBytesPerSec !== undefined ? { minRateBytesPerSec } : {}) });
    let trickle: { sent(): number } | undefined;
    await member(t, r, {
      hits: () => [{ id: 'EVIL', host: '127.0.0.1', port: 1, size: file.size, hops: 1 }],
      offer: async (c) => {
        const answer = await c.offer(file);
        if (answer.t === 'ack') trickle = c.trickle(file.body.subarray(0, 60), 50);
      },
    });
    const err = await failure(r.download('f.bin'));
    t.is(err.code, 'timeout', err.message);
    if (minRateBytesPerSec !== 0) {
      t.regex(err.message, new RegExp(`below the minimum of ${minRateBytesPerSec ?? 1024} bytes/s \\(too slow\\)`));
      t.true(trickle!.sent() < 60, `failed while still trickling (${trickle!.sent()} bytes sent)`);
    } else {
      // No floor: the trickle runs to its end and only the silence after it fails the download.
      t.notRegex(err.message, /too slow/);
      t.is(trickle!.sent(), 60);
    }
    t.deepEqual(fs.readdirSync(r.opts.share).filter((n) => n.startsWith('.treeshare-') || n === 'f.bin'), []);
  }
});

for (const [what, frames, reason] of [
  ['hashed > size', [{ t: 'hashing', hashed: 200, size: 100 }], /protocol violation: hashing: 200 of 100 bytes/],
  ['hashed going backwards', [{ t: 'hashing', hashed: 50, size: 100 }, { t: 'hashing', hashed: 40, size: 100 }], /protocol violation: hashing: went back from 50 to 40/],
  ['a size that changes', [{ t: 'hashing', hashed: 50, size: 100 }, { t: 'hashing', hashed: 60, size: 200 }], /protocol violation: hashing: size changed/],
] as const) {
  test(`swarm: a hashing frame with ${what} is a protocol violation by that holder`, async (t) => {
    const r = await requester(t, { swarm: 'always', offerTimeoutMs: 3000 });
    await swarmHolders(t, r, 100, { EVIL: (c) => frames.forEach((f) => c.send(f)) });
    const err = await failure(r.download('f.bin'));
    t.is(err.code, 'all-holders-gone', err.message);
    t.regex(err.message, reason);
  });
}

test('swarm: hashing progress at a trickle (each report re-arms the manifest timer) is dropped by the minimum-progress rule', async (t) => {
  const r = await requester(t, { swarm: 'always', transferIdleTimeoutMs: 400, offerTimeoutMs: 400 });
  let sent = 0;
  await swarmHolders(t, r, 1e9, {
    EVIL: (c) => {
      const timer = setInterval(() => {
        if (sent >= 100) return clearInterval(timer);
        c.send({ t: 'hashing', hashed: ++sent, size: 1e9 });
      }, 50);
      void c.closed.then(() => clearInterval(timer));
    },
  });
  const err = await failure(r.download('f.bin'));
  t.is(err.code, 'all-holders-gone', err.message);
  t.regex(err.message, /EVIL: reported hashing \d+ bytes in \d+ ms, below the minimum/);
  t.true(sent < 100, `dropped while still reporting (${sent} reports)`);
});

// ---- defect 9 (swarm side): busy is retried with backoff ----

test('swarm: a holder answering busy is asked again with backoff, and the download completes', async (t) => {
  const r = await requester(t, { swarm: 'always' });
  let refused = 0;
  const [h] = await swarmHolders(t, r, file.size, {
    FULL: (c) => {
      if (refused < 3) {
        refused++;
        c.send({ t: 'error', code: 'busy', message: '16 uploads already running (--max-uploads); try later' });
        return c.close();
      }
      return honest(file)(c);
    },
  });
  const res = await r.download('f.bin');
  t.is(sha256(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), file.sha256);
  t.is(h!.opens.length, 4, 'three busy answers, then served');
  t.is(res.swarm!.sources[0]!.dropped, undefined);
});

test('a holder at --max-uploads answers busy: concurrent swarm downloads wait and retry with backoff, every one completes (real peers)', async (t) => {
  const body = randomBytes(512 * 1024);
  // One upload slot, capped: the four requesters overlap, three of them are told busy at first.
  const { c, holders } = await swarmNet(t, 1, body, { maxUploads: 1, uploadRate: 4e6 });
  const rs = [];
  for (let i = 1; i <= 4; i++) rs.push(await c.add(`R${i}`, { swarm: 'always' }));
  const res = await Promise.all(rs.map((r) => r.download('f.bin')));
  for (const [i, r] of rs.entries()) {
    t.is(sha256(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), sha256(body), r.id);
    t.deepEqual(res[i]!.swarm!.sources.map((s) => [s.id, s.dropped]), [['H1', undefined]]);
  }
  t.true(holders[0]!.swarmUploads.count <= 1);
});

// ---- defect 5: one liar does not fail the download nor blame the honest ----

/** The liar: the true size and SHA-256, piece hashes of other bytes, and those bytes. */
function liar(f: FakeFile, o: { wanted?: () => void } = {}): SwarmScript {
  const fake = fakeFile(f.name, randomBytes(f.size), f.pieceSize);
  return (c) => {
    c.send(manifestFrame(f, { pieces: fake.pieces }));
    void c.wanted().then(() => o.wanted?.(), () => undefined);
    c.serve(fake);
  };
}

test('swarm: a liar whose manifest comes first (true SHA-256, piece hashes of fake bytes) is found and dropped; the honest holders finish', async (t) => {
  const r = await requester(t);
  let liarWanted!: () => void;
  const first = new Promise<void>((res) => (liarWanted = res));
  // The honest holders answer once the requester asked the liar for pieces: its manifest came first and was taken.
  const late: SwarmScript = async (c) => {
    await first;
    return honest(file)(c);
  };
  await swarmHolders(t, r, file.size, { LIAR: liar(file, { wanted: () => liarWanted() }), H1: late, H2: late });
  const res = await r.download('f.bin');
  t.is(sha256(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), file.sha256);
  const by = new Map(res.swarm!.sources.map((s) => [s.id, s]));
  t.regex(by.get('LIAR')!.dropped ?? '', /lying manifest/);
  for (const id of ['H1', 'H2']) t.notRegex(by.get(id)?.dropped ?? '', /another version|lying/, `${id}: ${by.get(id)?.dropped}`);
  t.true(res.swarm!.sources.filter((s) => s.id !== 'LIAR').reduce((a, s) => a + s.pieces, 0) === res.swarm!.pieces);
  t.deepEqual(fs.readdirSync(r.opts.share).filter((n) => n.startsWith('.treeshare-')), []);
});

test('swarm: a liar alone fails the download with hash-mismatch naming it', async (t) => {
  const r = await requester(t, { swarm: 'always' });
  await swarmHolders(t, r, file.size, { LIAR: liar(file) });
  const err = await failure(r.download('f.bin'));
  t.is(err.code, 'hash-mismatch', err.message);
  t.regex(err.message, /piece hashes of LIAR are false/);
  t.false(fs.existsSync(path.join(r.opts.share, 'f.bin')));
});

test('swarm: a liar whose manifest comes second is kept out (reserve) and named; the download never uses it', async (t) => {
  const r = await requester(t);
  let honestWanted!: () => void;
  const first = new Promise<void>((res) => (honestWanted = res));
  let liarClosed!: () => void;
  const closed = new Promise<void>((res) => (liarClosed = res));
  const lying = liar(file);
  await swarmHolders(t, r, file.size, {
    // H1's manifest is taken first; it serves once the requester has closed the liar's connection (reserve).
    H1: async (c) => {
      c.send(manifestFrame(file));
      await c.wanted();
      honestWanted();
      await closed;
      c.serve(file);
    },
    LIAR: async (c) => {
      await first;
      void c.closed.then(liarClosed);
      return lying(c);
    },
  });
  const res = await r.download('f.bin');
  t.is(sha256(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), file.sha256);
  const l = res.swarm!.sources.find((s) => s.id === 'LIAR')!;
  t.regex(l.dropped ?? '', /piece hashes disagree with the manifest in use \(kept in reserve/);
  t.is(l.pieces, 0);
  t.is(l.bytes, 0);
});

test('swarm: when every holder of the manifest in use leaves, the download goes on from the holders in reserve', async (t) => {
  const r = await requester(t);
  let wanted!: () => void;
  const first = new Promise<void>((res) => (wanted = res));
  const fake = fakeFile(file.name, randomBytes(file.size), file.pieceSize);
  await swarmHolders(t, r, file.size, {
    // Its manifest comes first, then it leaves without sending a byte.
    GONE: async (c) => {
      c.send(manifestFrame(file, { pieces: fake.pieces }));
      await c.wanted();
      wanted();
      c.close();
    },
    H1: async (c) => {
      await first;
      return honest(file)(c);
    },
  });
  const res = await r.download('f.bin');
  t.is(sha256(fs.readFileSync(path.join(r.opts.share, 'f.bin'))), file.sha256);
  t.regex(res.swarm!.sources.find((s) => s.id === 'GONE')!.dropped ?? '', /connection closed/);
  t.is(res.swarm!.sources.find((s) => s.id === 'H1')!.pieces, res.swarm!.pieces);
});
