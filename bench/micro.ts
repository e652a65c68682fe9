/**
 * Micro suites (benny) for the hot paths: frame encode and decode, message
 * validation, duplicate suppression, flood forwarding decisions on a
 * 1,000-peer tree in memory, SHA-256 over streamed chunks. Each suite has a
 * plain-JS comparator case (what the step costs without treeshare's work).
 * benny's own JSON output is saved under bench/results/benny/.
 *
 * Message counts are checked on real frames: the simulated flood counts the
 * requests and replies it actually passes, and before the suites a search
 * over 64 real peers (in-memory transport) is checked against the frames
 * their Connections wrote (a target row in the report).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MemoryNetwork, Metaserver, Peer } from '../core/index.ts';
import { registerCloser, removeDir, tempDir } from '../testnet/cleanup.ts';
import b from 'benny';
import { encode, FrameDecoder, validate } from '../core/protocol/codec.ts';
import { Convergecast, emptyCounters, floodTargets, mergeCounters, SeenCache, type FloodCounters } from '../core/protocol/flood.ts';
import { PROTOCOL_VERSION, type Message } from '../core/protocol/messages.ts';
import { SimClock } from '../core/clock.ts';
import { memoryPair } from '../core/transport/memory.ts';
import { Connection } from '../core/transport/connection.ts';
import type { Ctx } from './lib/context.ts';
import { RESULTS_DIR, type MicroResult } from './lib/report.ts';

interface CaseDef {
  name: string;
  /** Returns the function benchmarked (setup runs once, outside timing). */
  fn: () => () => unknown;
  /** Derived throughput: units per op. */
  per?: { n: number; unit: string };
}

const origin = { id: 'S1', host: '127.0.0.1', port: 9001 };
const query: Message = { t: 'query', qid: 'S1:3f2a9c0b1d2e', name: 'holiday-photos-2024.tar', origin, ttl: 255, hops: 3, budget: 9940, want: 'download' };
const hits = Array.from({ length: 10 }, (_, i) => ({ id: `S${i + 2}`, host: '127.0.0.1', port: 9002 + i, size: 1_048_576 * (i + 1), hops: 2 + (i % 3) }));
const queryReply: Message = { t: 'query-reply', qid: 'S1:3f2a9c0b1d2e', hits, missing: [], reached: 57, messages: 112, duplicates: 0, maxHops: 6 };
const topoNodes = Array.from({ length: 100 }, (_, i) => ({ id: `P${i}`, host: '127.0.0.1', port: 10000 + i, parent: i ? `P${(i - 1) >> 1}` : null, children: [`P${2 * i + 1}`, `P${2 * i + 2}`], depth: Math.floor(Math.log2(i + 1)), files: 3 }));
const topoReply: Message = { t: 'topo-reply', qid: 'S1:77aa00bb11cc', nodes: topoNodes, missing: [], final: true, reached: 100, messages: 198, duplicates: 0, maxHops: 6 };
const register: Message = { t: 'register', v: PROTOCOL_VERSION, id: 'S7', host: '127.0.0.1', port: 9007, maxChildren: 2 };

function encodeSuite(): CaseDef[] {
  return [
    { name: 'encode query (~190 B)', fn: () => () => encode(query) },
    { name: 'encode query-reply, 10 hits (~900 B)', fn: () => () => encode(queryReply) },
    { name: 'comparator: JSON.stringify(query) only', fn: () => () => JSON.stringify(query) },
  ];
}

function decodeSuite(): CaseDef[] {
  const one = encode(query);
  const many = Buffer.concat(Array.from({ length: 64 }, () => one));
  const cut = Math.floor(one.length / 2);
  const a = one.subarray(0, cut);
  const z = one.subarray(cut);
  return [
    { name: 'decode: 1 query frame per chunk', fn: () => { const d = new FrameDecoder(); return () => d.push(one); }, per: { n: 1, unit: 'frames/s' } },
    { name: 'decode: 64 query frames in one chunk', fn: () => { const d = new FrameDecoder(); return () => d.push(many); }, per: { n: 64, unit: 'frames/s' } },
    { name: 'decode: 1 frame split over 2 chunks', fn: () => { const d = new FrameDecoder(); return () => (d.push(a), d.push(z)); }, per: { n: 1, unit: 'frames/s' } },
    { name: 'comparator: JSON.parse(line) only', fn: () => { const s = one.subarray(0, one.length - 1); return () => JSON.parse(s.toString('utf8')); }, per: { n: 1, unit: 'frames/s' } },
  ];
}

function validateSuite(): CaseDef[] {
  const parsed = (m: Message) => JSON.parse(JSON.stringify(m)) as unknown;
  const q = parsed(query);
  const qr = parsed(queryReply);
  const tr = parsed(topoReply);
  const reg = parsed(register);
  const bad = { ...(parsed(query) as object), hops: -1 };
  return [
    { name: 'validate register', fn: () => () => validate(reg) },
    { name: 'validate query', fn: () => () => validate(q) },
    { name: 'validate query-reply, 10 hits', fn: () => () => validate(qr) },
    { name: 'validate topo-reply, 100 nodes', fn: () => () => validate(tr) },
    {
      name: 'reject a query with a bad field',
      fn: () => () => {
        try {
          validate(bad);
        } catch (e) {
          return e;
        }
        throw new Error('accepted a bad message');
      },
    },
  ];
}

function seenSuite(): CaseDef[] {
  const ids = Array.from({ length: 100_000 }, (_, i) => `S${i % 97}:${(i * 2654435761 >>> 0).toString(16).padStart(12, '0')}`);
  return [
    {
      name: 'checkAndAdd new id (cache full at 10,000: insert + evict)',
      fn: () => {
        const c = new SeenCache({ maxEntries: 10_000 });
        let i = 0;
        let now = 0;
        for (; i < 10_000; i++) c.checkAndAdd(ids[i]!, now);
        return () => c.checkAndAdd(ids[i++ % ids.length]!, (now += 0.001));
      },
    },
    {
      name: 'checkAndAdd seen id (duplicate found)',
      fn: () => {
        const c = new SeenCache({ maxEntries: 10_000 });
        for (let i = 0; i < 10_000; i++) c.checkAndAdd(ids[i]!, 0);
        let i = 0;
        return () => c.checkAndAdd(ids[i++ % 10_000]!, 1);
      },
    },
    {
      name: 'comparator: Map has + set + delete oldest',
      fn: () => {
        const m = new Map<string, number>();
        let i = 0;
        for (; i < 10_000; i++) m.set(ids[i]!, 0);
        return () => {
          const id = ids[i++ % ids.length]!;
          if (m.has(id)) return true;
          m.set(id, i);
          m.delete(m.keys().next().value as string);
          return false;
        };
      },
    },
  ];
}

/**
 * One op = one whole flood (query down, convergecast up) over a 1,000-peer
 * binary tree held in memory: at each peer SeenCache.checkAndAdd,
 * floodTargets, Convergecast.begin, then a reply per child merged upward.
 */
function floodSuite(): CaseDef[] {
  const N = 1000;
  const nbrs: string[][] = Array.from({ length: N }, (_, i) => {
    const n: string[] = [];
    if (i > 0) n.push(`P${(i - 1) >> 1}`);
    for (const c of [2 * i + 1, 2 * i + 2]) if (c < N) n.push(`P${c}`);
    return n;
  });
  type Agg = { counters: FloodCounters };
  const setup = () => {
    const seen = Array.from({ length: N }, () => new SeenCache());
    const cc = Array.from({ length: N }, () => new Convergecast<Agg>((a, p) => mergeCounters(a.counters, p.counters)));
    let seq = 0;
    let now = 0;
    /** Requests and replies actually passed between simulated peers (not a formula). */
    const passed = { req: 0, reply: 0 };
    const visit = (i: number, from: string | null, hops: number, qid: string): Agg => {
      if (from !== null) passed.req++;
      if (seen[i]!.checkAndAdd(qid, now)) return { counters: { ...emptyCounters(), duplicates: 1, messages: 1 } };
      const { targets } = floodTargets(nbrs[i]!, from, hops, 255, 10_000 - 20 * hops, 5);
      const own: Agg = { counters: { reached: 1, messages: targets.length + (from === null ? 0 : 1), duplicates: 0, maxHops: hops, missing: [] } };
      let c = cc[i]!.begin(qid, from, targets, own);
      for (const t of targets) {
        const part = visit(Number(t.slice(1)), `P${i}`, hops + 1, qid);
        passed.reply++;
        c = cc[i]!.reply(qid, t, part) ?? c;
      }
      if (!c) throw new Error('flood did not complete');
      return c.acc;
    };
    const run = () => {
      now += 0.01;
      return visit(0, null, 0, `S0:${(seq++).toString(16)}`);
    };
    return Object.assign(run, { passed });
  };
  const probe = setup();
  const check = probe();
  const sent = probe.passed.req + probe.passed.reply;
  if (check.counters.reached !== N || sent !== 2 * (N - 1) || check.counters.messages !== sent) {
    throw new Error(`flood simulation: reached ${check.counters.reached}, ${sent} messages passed, counters say ${check.counters.messages}`);
  }
  return [
    { name: 'whole flood + convergecast, 1,000 peers', fn: setup, per: { n: N, unit: 'peer decisions/s' } },
    { name: 'floodTargets at one peer (3 neighbours)', fn: () => () => floodTargets(nbrs[5]!, 'P2', 3, 255, 9000, 5) },
  ];
}

function shaSuite(): CaseDef[] {
  const total = 16 * 1024 * 1024;
  const data = randomBytes(total);
  const chunks = (size: number) => Array.from({ length: total / size }, (_, i) => data.subarray(i * size, (i + 1) * size));
  const c64 = chunks(64 * 1024);
  const c1m = chunks(1024 * 1024);
  const per = { n: total / 1e6, unit: 'MB/s' };
  return [
    { name: '16 MiB as 64 KiB chunks (socket reads)', fn: () => () => { const h = createHash('sha256'); for (const c of c64) h.update(c); return h.digest(); }, per },
    { name: '16 MiB as 1 MiB chunks (file reads)', fn: () => () => { const h = createHash('sha256'); for (const c of c1m) h.update(c); return h.digest(); }, per },
    { name: 'comparator: 16 MiB in one update', fn: () => () => createHash('sha256').update(data).digest(), per },
  ];
}

/**
 * Simulated time: the SimClock heap (one op = 1,000 timers at spread-out
 * times pushed, then fired in order through fireNext, without the driver's
 * event-loop turns), and framed messages over a memory link on a SimClock
 * (one op = 100 query frames sent, delivered by the clock and decoded).
 */
function simSuite(): CaseDef[] {
  return [
    {
      name: 'SimClock: 1,000 timers scheduled and fired',
      fn: () => {
        const c = new SimClock();
        let x = 1;
        const noop = () => undefined;
        return () => {
          for (let i = 0; i < 1000; i++) c.setTimeout(noop, (x = (x * 48271) % 2147483647) % 10_000);
          while (c.fireNext());
        };
      },
      per: { n: 1000, unit: 'timers/s' },
    },
    {
      name: 'memory link on a SimClock (5 ms): 100 query frames',
      fn: () => {
        const clock = new SimClock();
        const [a, b] = memoryPair({ clock, shape: { latencyMs: 5 } });
        const tx = new Connection(a, 'b', false);
        const rx = new Connection(b, 'a', false);
        let got = 0;
        rx.on('message', () => got++);
        return () => {
          const want = got + 100;
          for (let i = 0; i < 100; i++) tx.send(query);
          while (clock.fireNext());
          if (got !== want) throw new Error(`memory link delivered ${got}, expected ${want}`);
        };
      },
      per: { n: 100, unit: 'messages/s' },
    },
  ];
}

/**
 * One search over N real peers (in-memory transport, real Connections and
 * codec): the query and query-reply frames written, summed over every peer's
 * Connections, must be exactly 2(N−1) and equal the search's own count.
 */
async function wireCheck(ctx: Ctx): Promise<void> {
  const N = 64;
  const dir = tempDir('treeshare-bench-');
  const net = new MemoryNetwork();
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, transport: net.transport(), peerTimeoutMs: 0 });
  const peers: Peer[] = [];
  const close = registerCloser(async () => {
    await Promise.allSettled(peers.map((p) => p.stop()));
    await meta.stop();
    removeDir(dir);
  });
  try {
    const ma = await meta.start();
    for (let i = 0; i < N; i++) {
      const share = path.join(dir, `P${i}`);
      fs.mkdirSync(share);
      const p = new Peer({ id: `P${i}`, host: '127.0.0.1', port: 0, share, meta: ma, transport: net.transport(), heartbeatMs: 0, announceMs: 0 });
      peers.push(p);
      await p.start();
      await p.join();
    }
    fs.writeFileSync(path.join(peers[N - 1]!.opts.share, 'needle.txt'), 'x');
    const sent = () => peers.reduce((n, p) => n + (p.wireFrames().sent.query ?? 0) + (p.wireFrames().sent['query-reply'] ?? 0), 0);
    const w0 = sent();
    const r = await peers[0]!.search('needle.txt');
    const wire = sent() - w0;
    ctx.log(`micro: one search over ${N} real peers wrote ${wire} flood frames (peers counted ${r.messages}, reached ${r.reached})`);
    ctx.report.target({
      id: 'micro.flood.wire==2(N-1)', text: `one search over ${N} in-memory peers: frames written = 2(N−1) = the peers' count, all reached`,
      measured: wire === r.messages && r.reached === N ? wire : -1, required: 2 * (N - 1), op: '==', unit: 'frames',
      detail: wire === r.messages && r.reached === N ? undefined : `wire ${wire}, counted ${r.messages}, reached ${r.reached}`,
    });
  } finally {
    await close();
  }
}

export async function microBench(ctx: Ctx, stamp: string): Promise<MicroResult[]> {
  await wireCheck(ctx);
  const suites: [string, () => CaseDef[]][] = [
    ['frame encode', encodeSuite],
    ['frame decode', decodeSuite],
    ['message validation', validateSuite],
    ['duplicate suppression', seenSuite],
    ['flood decisions, 1,000-peer tree', floodSuite],
    ['SHA-256 streamed', shaSuite],
    ['simulated time', simSuite],
  ];
  const cases = ctx.quick ? { minSamples: 4, minTime: 0.02, maxTime: 0.1, delay: 0.002 } : { minSamples: 10, maxTime: 0.5, delay: 0.01 };
  const folder = path.join(RESULTS_DIR, 'benny');
  const out: MicroResult[] = [];
  for (const [suite, make] of suites) {
    const defs = make();
    const slug = suite.replace(/[^a-z0-9]+/gi, '-').replace(/-+$/, '').toLowerCase();
    const summary = await b.suite(
      suite,
      b.configure({ cases }),
      ...defs.map((d) => b.add(d.name, d.fn)),
      b.complete(() => undefined),
      b.save({ file: `${stamp}-${slug}`, folder, format: 'json' }),
    );
    for (const r of summary.results) {
      const d = defs.find((x) => x.name === r.name);
      out.push({ suite, name: r.name, ops: r.ops, rme: r.margin, samples: r.samples, derived: d?.per ? { value: r.ops * d.per.n, unit: d.per.unit } : undefined });
    }
  }
  return out;
}
