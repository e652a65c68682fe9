/**
 * scale: N = 100, 1,000 and 10,000 peers (100,000 with --runner memory).
 * For each N, phase by phase: join all (several joins at once), a topology
 * request from the first peer (one whole tree), searches from seeded peers
 * for a file one seeded peer holds and one for a name nobody has, 1% of the
 * peers crash and 1% leave at once, every orphan reattaches, and a last
 * topology shows one whole tree of the live peers. Each phase's simulated
 * time (memory runner) and wall time are printed, with memory per peer and,
 * with --latency, search completion against 2 × depth × latency.
 *
 * Runner per N unless --runner is given: inproc (one process, loopback TCP)
 * up to 2,000 peers — about 3 sockets per peer against the 20,000 open-file
 * limit — and the memory runner (core's MemoryNetwork on a SimClock, shares
 * in memory stores) beyond. Memory per peer in-process is the JS heap
 * growth after a forced GC divided by N (sockets' kernel buffers are not in
 * it; RSS growth per peer is shown beside it); under the process runner it
 * is each peer process's RSS.
 *
 *   npx tsx scenarios/scale.ts [--sizes 100,1000,10000] [--peers N] [--join-concurrency N] [--searches 10] [--runner …]
 *
 * --sizes is a sweep over N inside one run (ranges as in --sweep: 100..10000*10);
 * a study (--sweep peers=…, --repeat) runs each N as its own run (lib/study.ts).
 */
import { UsageError, intOption, isMain, lineChart, main, ms, int, points, sizesOption, summarize, type CommonOptions, type RunnerKind, type ScenarioDef } from './lib/index.ts';
import { respawnWithHeapRoom } from './lib/heap.ts';

const INPROC_MAX = 2000;

const sizes = (o: CommonOptions) => sizesOption(o, [100, 1000, 10000]);
const concurrency = (o: CommonOptions) => intOption(o, 'join-concurrency', 32, 10_000);

const kib = (b: number | null | undefined) => (b === null || b === undefined ? '—' : (b / 1024).toFixed(1));

export const scale: ScenarioDef = {
  name: 'scale',
  summary: 'N = 100, 1,000, 10,000 peers (100,000 with --runner memory): join all, topology, 10 searches and a not-found, 1% crash and 1% leave, repair, one whole tree; simulated and wall time per phase, memory per peer (inproc up to 2,000, memory runner beyond).',
  defaults: { runner: 'inproc', peers: 1000, maxChildren: 2, policy: 'least-loaded' },
  options: {
    sizes: { type: 'string', placeholder: 'LIST', description: 'overlay sizes, comma-separated (default 100,1000,10000)' },
    'join-concurrency': { type: 'string', placeholder: 'N', description: 'joins in flight at once (default 32)' },
    searches: { type: 'string', placeholder: 'N', description: 'searches for the one held file, from random peers (default 10)' },
    'heartbeat-ms': { type: 'string', placeholder: 'MS', description: 'heartbeat interval on links, 0 = off (default: the core default, 1000)' },
    'announce-ms': { type: 'string', placeholder: 'MS', description: 'periodic re-announce to the metaserver, 0 = off (and its stale-entry sweep) (default: the core default, 5000)' },
  },
  commonHelp: { peers: 'run one overlay of N peers instead of the --sizes list', runner: 'process, inproc or memory, for every size (default: inproc up to 2,000 peers, memory beyond)' },
  standard: { joins: 'summary', floods: 'summary', tree: 'auto', repairs: 'off' },
  validate(o) {
    sizes(o);
    concurrency(o);
    intOption(o, 'searches', 10, 1000);
    for (const k of ['heartbeat-ms', 'announce-ms']) {
      const v = o.extra[k];
      if (v !== undefined && !(typeof v === 'string' && /^\d+$/.test(v) && Number(v) <= 3_600_000)) throw new UsageError(`--${k} must be a whole number of ms from 0 to 3600000, not ${JSON.stringify(v)}`);
    }
  },
  async run(s) {
    const Ns = sizes(s.opts);
    const nSearch = intOption(s.opts, 'searches', 10, 1000);
    const rows: (string | number | null)[][] = [];
    const phaseRows: (string | number | null)[][] = [];
    const figures: Record<string, unknown>[] = [];
    for (const { N } of points({ N: Ns })) {
      const runner: RunnerKind = s.opts.given.has('runner') ? s.opts.runner : N <= INPROC_MAX ? 'inproc' : 'memory';
      const conc = concurrency(s.opts);
      const round = `N=${N} ${runner}`;
      const timer = (name: string) => (s.opts.extra[name] === undefined ? undefined : Number(s.opts.extra[name]));
      const c = await s.cluster({ round, runner, heartbeatMs: timer('heartbeat-ms'), announceMs: timer('announce-ms') });
      const phases: { phase: string; simMs: number | null; wallMs: number; cpuMs: number }[] = [];
      /** Runs one phase, recording its time on the scenario clock (simulated under the memory runner) and on the wall. */
      const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
        const t0 = s.now();
        const w0 = s.wallNow();
        const c0 = cpuMs();
        const v = await fn();
        const simMs = s.simulated ? s.now() - t0 : null;
        const wallMs = s.wallNow() - w0;
        // CPU of this process (user + system, GC threads included): the in-process runners' peers and metaserver.
        phases.push({ phase: name, simMs, wallMs, cpuMs: cpuMs() - c0 });
        s.records.phases.push({ round, phase: name, peers: c.alive().length, ms: s.now() - t0, wallMs });
        return v;
      };
      const ids = s.ids('P', N);
      const holder = s.rng.pick(ids.slice(1));
      await phase('join all', () => c.addPeers(ids.map((id) => (id === holder ? { id, files: [{ name: 'needle.txt', bytes: 4096 }] } : { id, folder: 'common' as const })), { joinConcurrency: conc }));
      const joinAll = phases[0]!.simMs ?? phases[0]!.wallMs;
      if (runner !== 'process') s.log(`  N=${N}: overlay frames sent per join ${framesPerJoin(c.alive().map((id) => c.peer(id)), N)}`);
      const mem = await c.memory();
      const t = await phase('topology', () => c.topo(ids[0]!, { expectWhole: true }));
      const searches = await phase(`${nSearch} searches + 1 not-found`, async () => {
        const out = [];
        for (const by of s.rng.shuffle(ids).slice(0, nSearch)) out.push(await c.search(by, 'needle.txt', { expectFrom: holder }));
        out.push(await c.search(ids[0]!, 'nobody-has-this.txt', { expect: 'none', label: 'not-found' }));
        return out;
      });
      const none = searches.pop()!;
      for (const f of [...searches, none]) {
        s.check(f.messages === 2 * (N - 1) && f.reached === N && f.missing.length === 0, `[${round}] ${f.by}'s search reached all ${N} peers with 2(N−1) messages`, `reached ${f.reached}, messages ${f.messages}, missing ${f.missing.length}`);
      }
      // ---- churn: 1% crash and 1% leave at once (never the holder or the asking peer), then repair ----
      const k = Math.max(1, Math.round(N / 100));
      const victims = N >= 10 ? s.rng.shuffle(ids.filter((id) => id !== holder && id !== ids[0])).slice(0, 2 * k) : [];
      const crashed = victims.slice(0, k);
      const left = victims.slice(k);
      let repairs = 0;
      if (victims.length) {
        const pending = new Set<string>();
        const unsubscribe: (() => void)[] = [];
        for (const h of c.peers.values()) {
          if (!h.alive || victims.includes(h.id)) continue;
          const lost = () => pending.add(h.id);
          const fixed = () => {
            repairs++;
            pending.delete(h.id);
          };
          h.on('parent-lost', lost);
          h.on('repaired', fixed);
          unsubscribe.push(() => (h.off('parent-lost', lost), h.off('repaired', fixed)));
        }
        try {
          await phase(`${crashed.length} crash + ${left.length} leave`, () => Promise.all([
            ...crashed.map((id) => c.peer(id).crash()),
            ...left.map((id) => c.peer(id).leave({ timeoutMs: 60_000 })),
          ]));
          await phase('repair (every orphan reattached)', async () => {
            const deadline = s.now() + 120_000;
            while (pending.size > 0 && s.now() < deadline) await s.sleep(100);
            s.check(pending.size === 0, `[${round}] every orphan reattached`, `${pending.size} still orphaned`);
          });
        } finally {
          for (const u of unsubscribe) u();
        }
      }
      const whole = await phase('one whole tree (topology)', () => c.waitWhole({ timeoutMs: 120_000, label: 'whole after churn' }));
      s.check(whole.length === N - victims.length, `[${round}] one whole tree of the ${N - victims.length} live peers`, `${whole.length} in the tree`);
      const js = s.records.joins.filter((j) => j.round === round);
      const jt = summarize(js.map((j) => j.totalMs))!;
      const sd = summarize(searches.map((f) => f.completionMs))!;
      const depth = t.check.depth;
      const lat = s.opts.latency;
      const ratio = lat > 0 && depth > 0 ? sd.median / (2 * depth * lat) : null;
      // A search from a peer at depth d reaches the deepest peer after about d + depth hops: per search, completion ÷ (2 × its deepest hop × latency).
      const hopRatio = lat > 0 ? summarize(searches.filter((f) => f.maxHops > 0).map((f) => f.completionMs / (2 * f.maxHops * lat))) : null;
      // The not-found search starts at the first peer, the root (nobody has left yet), so it reaches the deepest peer after `depth` hops.
      const rootRatio = lat > 0 && depth > 0 ? none.completionMs / (2 * depth * lat) : null;
      const rssPeak = process.resourceUsage().maxRSS * 1024;
      rows.push([
        int(N), runner, ms(joinAll), int(N / (phases[0]!.wallMs / 1000)), ms(jt.median), ms(jt.p95), depth,
        ms(t.row.completionMs), int(t.row.messages), int(t.row.reached), ms(sd.median), ms(sd.max), ratio === null ? '—' : ratio.toFixed(2), hopRatio ? hopRatio.median.toFixed(2) : '—', int(searches[0]!.messages), ms(none.completionMs), rootRatio === null ? '—' : rootRatio.toFixed(2),
        mem.kind === 'heap' ? kib(mem.perPeerBytes) : '—', kib(mem.rssPerPeerBytes), (rssPeak / 1024 ** 3).toFixed(2),
      ]);
      for (const p of phases) phaseRows.push([int(N), runner, p.phase, p.simMs === null ? '—' : ms(p.simMs), ms(p.wallMs), runner === 'process' ? '—' : ms(p.cpuMs)]);
      if (runner !== 'process') s.log(`  N=${N}: CPU per join ${(1000 * phases[0]!.cpuMs / N).toFixed(0)} µs (join all: ${ms(phases[0]!.cpuMs)} ms CPU, ${ms(phases[0]!.wallMs)} ms wall)`);
      figures.push({ N, runner, joinConcurrency: conc, joinAllMs: joinAll, joinMedianMs: jt.median, joinP95Ms: jt.p95, depth, topoMs: t.row.completionMs, topoMessages: t.row.messages, searchMedianMs: sd.median, searchMaxMs: sd.max, searchRatio: ratio, searchHopRatio: hopRatio?.median ?? null, rootSearchRatio: rootRatio, searchMessages: searches[0]!.messages, notFoundMs: none.completionMs, memory: mem, crashed: crashed.length, left: left.length, repairs, phases, peakRssBytes: rssPeak, simulated: s.simulated });
      if (N <= 2500) s.setTree(round, whole);
      s.log(`  N=${N}: joined in ${ms(joinAll)} ms${s.simulated ? ' (simulated)' : ''}, search ${ms(sd.median)} ms, ${kib(mem.perPeerBytes)} KiB ${mem.kind === 'heap' ? 'heap' : 'RSS'} per peer, ${repairs} repairs`);
      await s.closeCluster(c);
    }
    s.summary.sizes = figures;
    const long = (pairs: [string, (f: Record<string, unknown>) => unknown][]) =>
      figures.flatMap((f) => pairs.map(([what, get]) => ({ N: f.N as number, what, value: get(f) as number | null })).filter((r) => typeof r.value === 'number' && r.value > 0));
    const logN = { x: 'N', xTitle: 'peers N (log)', logX: true, logY: true, color: 'what', colorTitle: '', y: 'value', tooltip: ['N', 'what', 'value'] } as const;
    s.chart(lineChart('Time against N (log–log)', { ...logN, yTitle: 'ms (log)', data: long([['join all', (f) => f.joinAllMs], ['topology done', (f) => f.topoMs], ['search median', (f) => f.searchMedianMs], ['not-found search', (f) => f.notFoundMs]]) },
      'join all: the whole overlay joined, several joins at once; searches and topology: request sent → definite answer.'));
    s.chart(lineChart('Per-join latency against N (log–log)', { ...logN, yTitle: 'ms (log)', data: long([['join median', (f) => f.joinMedianMs], ['join p95', (f) => f.joinP95Ms]]) }));
    s.chart(lineChart('Messages per flood against N (log–log)', { ...logN, yTitle: 'messages (log)', data: long([['topology', (f) => f.topoMessages], ['search', (f) => f.searchMessages]]) }, 'On a tree a flood costs 2(N−1) messages.'));
    s.chart(lineChart('Memory per peer against N (log x)', { ...logN, logY: false, yTitle: 'KiB per peer', data: long([
      ['heap / peer', (f) => { const m = f.memory as { kind: string; perPeerBytes?: number | null }; return m.kind === 'heap' && m.perPeerBytes ? m.perPeerBytes / 1024 : null; }],
      ['RSS / peer', (f) => { const m = f.memory as { kind: string; perPeerBytes?: number | null; rssPerPeerBytes?: number | null }; const b = m.kind === 'rss' ? m.perPeerBytes : m.rssPerPeerBytes; return b ? b / 1024 : null; }],
    ]) }));
    // Tables of one row per N, each narrow enough for a terminal (one was ~300 columns wide); the JSON's summary keeps every figure.
    const cols = (...at: number[]) => rows.map((r) => at.map((i) => r[i]!));
    s.table('Scale: joins', ['N', 'runner', 'join all ms', 'joins/s (wall)', 'join median ms', 'join p95 ms', 'depth'], cols(0, 1, 2, 3, 4, 5, 6),
      `max-children ${s.opts.maxChildren}, policy ${s.opts.policy}; times are simulated under the memory runner, wall clock otherwise; join all: the whole overlay joined, several joins at once.`);
    s.table('Scale: floods', ['N', 'topo ms', 'topo msgs', 'topo reached', 'search median ms', 'search max ms', 'search msgs', 'not-found ms'], cols(0, 7, 8, 9, 10, 11, 14, 15),
      'request sent → definite answer; the not-found search starts at the root.');
    if (s.opts.latency > 0) {
      s.table('Scale: searches against one round trip per level', ['N', 'search ÷ 2·depth·L', 'search ÷ 2·hops·L', 'not-found ÷ 2·depth·L'], cols(0, 12, 13, 16),
        `L = ${s.opts.latency} ms, the link latency; hops: each search's deepest hop.`);
    }
    s.table('Scale: memory', ['N', 'heap/peer KiB', 'RSS/peer KiB', 'peak RSS GiB'], cols(0, 17, 18, 19),
      'heap/peer: JS heap growth after GC ÷ N (in-process runners); RSS/peer: process RSS growth ÷ N in-process, each peer process\'s RSS under the process runner; peak RSS: this process\'s maximum so far.');
    s.table('Phases', ['N', 'runner', 'phase', 'simulated ms', 'wall ms', 'CPU ms'], phaseRows, 'simulated: on the memory runner\'s SimClock; wall: this machine\'s clock for the same phase; CPU: this process\'s user + system time in the phase (in-process runners).');
  },
};

/** Overlay frames the in-process peers sent so far ÷ joins, by type (a log line: not in the records). */
function framesPerJoin(handles: unknown[], joins: number): string {
  const sum: Record<string, number> = {};
  for (const h of handles) {
    const p = (h as { peer?: { wireFrames(): { sent: Record<string, number> } } }).peer;
    for (const [t, n] of Object.entries(p?.wireFrames().sent ?? {})) sum[t] = (sum[t] ?? 0) + n;
  }
  const total = Object.values(sum).reduce((a, b) => a + b, 0);
  return `${(total / joins).toFixed(2)} (${Object.entries(sum).sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t} ${(n / joins).toFixed(2)}`).join(', ')})`;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

if (isMain(import.meta.url)) {
  const code = await respawnWithHeapRoom({ oldMiB: 6144, semiMiB: 64 });
  if (code === null) await main(scale);
  else process.exitCode = code;
}
