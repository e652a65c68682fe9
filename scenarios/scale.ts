/**
 * scale: N = 100, 1,000 and 10,000 peers. For each N: time to join all
 * (several joins at once), the join latency spread, a topology request from
 * the root (completion time, messages, peers reached), searches from seeded
 * peers for a file one seeded peer holds and one for a name nobody has, and
 * memory per peer.
 *
 * Runner per N unless --runner is given: inproc (one process, loopback TCP)
 * up to 2,000 peers — about 3 sockets per peer against the 20,000 open-file
 * limit — and the memory runner (core's MemoryNetwork, heartbeats and
 * periodic announces off) beyond. Memory per peer in-process is the JS heap
 * growth after a forced GC divided by N (sockets' kernel buffers are not in
 * it; RSS growth per peer is shown beside it); under the process runner it
 * is each peer process's RSS.
 *
 *   npx tsx scenarios/scale.ts [--sizes 100,1000,10000] [--peers N] [--join-concurrency 32] [--runner …]
 */
import { intOption, isMain, lineChart, main, ms, int, sizesOption, summarize, type CommonOptions, type RunnerKind, type ScenarioDef } from './lib/index.ts';

const INPROC_MAX = 2000;

const sizes = (o: CommonOptions) => sizesOption(o, [100, 1000, 10000]);
const concurrency = (o: CommonOptions) => intOption(o, 'join-concurrency', 32, 10_000);

const kib = (b: number | null | undefined) => (b === null || b === undefined ? '—' : (b / 1024).toFixed(1));

export const scale: ScenarioDef = {
  name: 'scale',
  summary: 'N = 100, 1,000, 10,000 peers: time to join all, topology and search completion and fan-out, memory per peer (inproc up to 2,000, memory runner beyond).',
  defaults: { runner: 'inproc', peers: 1000, maxChildren: 2, policy: 'least-loaded' },
  options: {
    sizes: { type: 'string', placeholder: 'LIST', description: 'overlay sizes, comma-separated (default 100,1000,10000)' },
    'join-concurrency': { type: 'string', placeholder: 'N', description: 'joins in flight at once (default 32)' },
  },
  commonHelp: { peers: 'run one overlay of N peers instead of the --sizes list', runner: 'process, inproc or memory, for every size (default: inproc up to 2,000 peers, memory beyond)' },
  standard: { joins: 'summary', floods: 'summary', tree: 'auto' },
  validate(o) {
    sizes(o);
    concurrency(o);
  },
  async run(s) {
    const Ns = sizes(s.opts);
    const conc = concurrency(s.opts);
    const rows: (string | number | null)[][] = [];
    const figures: Record<string, unknown>[] = [];
    for (const N of Ns) {
      const runner: RunnerKind = s.opts.given.has('runner') ? s.opts.runner : N <= INPROC_MAX ? 'inproc' : 'memory';
      const round = `N=${N} ${runner}`;
      const c = await s.cluster({ round, runner });
      const ids = s.ids('P', N);
      const holder = s.rng.pick(ids.slice(1));
      await c.addPeers(ids.map((id) => (id === holder ? { id, files: [{ name: 'needle.txt', bytes: 4096 }] } : { id, folder: 'common' as const })), { joinConcurrency: conc });
      const phase = s.records.phases.find((p) => p.round === round)!;
      // Simulated ms under the memory runner (0 on unshaped links); the rate is per wall second.
      const joinAll = phase.ms;
      const joinAllWall = phase.wallMs ?? phase.ms;
      const mem = await c.memory();
      const t = await c.topo(ids[0]!, { expectWhole: true });
      const searches = [];
      for (const by of s.rng.shuffle(ids).slice(0, 3)) searches.push(await c.search(by, 'needle.txt', { expectFrom: holder }));
      const none = await c.search(ids[0]!, 'nobody-has-this.txt', { expect: 'none', label: 'not-found' });
      for (const f of [...searches, none]) {
        s.check(f.messages === 2 * (N - 1) && f.reached === N && f.missing.length === 0, `[${round}] ${f.by}'s search reached all ${N} peers with 2(N−1) messages`, `reached ${f.reached}, messages ${f.messages}, missing ${f.missing.length}`);
      }
      const js = s.records.joins.filter((j) => j.round === round);
      const jt = summarize(js.map((j) => j.totalMs))!;
      const sd = summarize(searches.map((f) => f.completionMs))!;
      rows.push([
        int(N), runner, ms(joinAll), int(N / (joinAllWall / 1000)), ms(jt.median), ms(jt.p95), t.check.depth,
        ms(t.row.completionMs), int(t.row.messages), int(t.row.reached), ms(sd.median), ms(sd.max), int(searches[0]!.messages), ms(none.completionMs),
        mem.kind === 'heap' ? kib(mem.perPeerBytes) : '—', kib(mem.rssPerPeerBytes),
      ]);
      figures.push({ N, runner, joinAllMs: joinAll, joinAllWallMs: joinAllWall, joinMedianMs: jt.median, joinP95Ms: jt.p95, depth: t.check.depth, topoMs: t.row.completionMs, topoMessages: t.row.messages, searchMedianMs: sd.median, searchMaxMs: sd.max, searchMessages: searches[0]!.messages, notFoundMs: none.completionMs, memory: mem });
      if (N <= 2500) s.setTree(round, t.nodes);
      s.log(`  N=${N}: joined in ${ms(joinAll)} ms, search ${ms(sd.median)} ms, ${kib(mem.perPeerBytes)} KiB ${mem.kind === 'heap' ? 'heap' : 'RSS'} per peer`);
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
    s.table('Scale', [
      'N', 'runner', 'join all ms', 'joins/s (wall)', 'join median ms', 'join p95 ms', 'depth', 'topo done ms', 'topo msgs', 'topo reached',
      'search median ms', 'search max ms', 'search msgs', 'not-found ms', 'heap/peer KiB', 'RSS/peer KiB',
    ], rows, `max-children ${s.opts.maxChildren}, policy ${s.opts.policy}, ${conc} joins in flight; times (ms) are simulated under the memory runner (0 on unshaped links: see --latency), wall elsewhere; joins/s is per wall second; heap/peer: JS heap growth after GC ÷ N (in-process runners); RSS/peer: process RSS growth ÷ N in-process, each peer process's RSS under the process runner.`);
  },
};

if (isMain(import.meta.url)) await main(scale);
