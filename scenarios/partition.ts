/**
 * partition: the overlay split in two, then healed; then a phase of mixed
 * faults. Searches and downloads from random live peers run throughout.
 *
 * 1. Split: the metaserver and a random half of the peers on one side, the
 *    rest on the other, for --split (default 30 s). Links across the cut
 *    carry nothing: established links stall, new connections time out.
 *    Every search must still end with a definite answer (the other side
 *    unreachable), every download be verified or fail cleanly.
 * 2. Heal: how long until a topology flood sees one whole tree of every
 *    live peer, compared with the peers' deadAfterMs (4 s).
 * 3. Mixed (--mixed, default 30 s): one flaky link (reset every 5 s), one
 *    paused peer, one peer whose clock is 30 s ahead, one downloader whose
 *    disk fills (ENOSPC) half-way through a download; the table shows what
 *    each did to the requests that touched it. A fault the runner cannot
 *    apply is listed as such, not faked.
 *
 * Fault vocabulary and the runner table: docs/FAULTS.md.
 *
 *   npx tsx scenarios/partition.ts [--runner memory|inproc|process] [--peers 20] [--split 30s] [--mixed 30s] [--seed N]
 */
import { durationOption, intOption, isMain, main, ms, UsageError, type Cluster, type FloodRow, type Scenario, type ScenarioDef, type TransferRow } from './lib/index.ts';
import { META, type FaultKind } from './lib/faults.ts';

/** The peers' default deadAfterMs (core/peer/peer.ts): a link silent this long is declared dead. */
const DEAD_AFTER_MS = 4000;
const FILE_BYTES = 16 * 1024;
const BIG_BYTES = 1024 * 1024;

interface Req {
  phase: string;
  at: number;
  kind: 'search' | 'download';
  by: string;
  name: string;
  /** The requester and the file's first holder were on the same side of the cut (split phase only). */
  sameSide: boolean | null;
  answered: boolean;
  found: boolean;
  ok: boolean;
  reached: number;
  missing: number;
  alive: number;
  errorCode: string | null;
}

export const partition: ScenarioDef = {
  name: 'partition',
  summary: 'The overlay split in two (metaserver on one side) while searches and downloads run, then healed: every request answered, time to one tree after the heal; then a flaky link, a paused peer, a clock 30 s ahead and a full disk.',
  // 10 ms links: on the memory runner's 0 ms default every time of this scenario would be 0 (the heal would take no time).
  defaults: { runner: 'memory', peers: 20, maxChildren: 2, policy: 'least-loaded', latency: 10 },
  options: {
    split: { type: 'string', placeholder: 'TIME', description: 'how long the overlay stays split (default 30s; simulated under the memory runner)' },
    mixed: { type: 'string', placeholder: 'TIME', description: 'length of the mixed-faults phase after the heal (default 30s); 0 skips it' },
    workers: { type: 'string', placeholder: 'N', description: 'requests in flight at once (default 2)' },
    think: { type: 'string', placeholder: 'TIME', description: 'pause of each worker between two requests (default 1s)' },
  },
  standard: { tree: 'auto', floods: 'summary', transfers: 'summary' },
  validate(o) {
    durationOption(o, 'split');
    mixedMs(o);
    intOption(o, 'workers', 2, 64);
    durationOption(o, 'think');
    if (o.peers < 4) throw new UsageError('--peers must be at least 4 (two on each side)');
  },
  async run(s) {
    const splitMs = durationOption(s.opts, 'split') ?? 30_000;
    const mixed = mixedMs(s.opts);
    const workers = intOption(s.opts, 'workers', 2, 64);
    const think = durationOption(s.opts, 'think') ?? 1000;
    const ids = s.ids('P', s.opts.peers);
    const big = ids.length > 200;
    s.logSteps = !big;

    const c = await s.cluster();
    // Every peer holds one small file; one holder also has a 1 MiB file (the disk-fault download).
    const bigHolder = ids[ids.length - 1]!;
    await c.addPeers(ids.map((id) => ({ id, files: [{ name: fileOf(id), bytes: FILE_BYTES }, ...(id === bigHolder ? [{ name: 'big.dat', bytes: BIG_BYTES }] : [])] })), big ? { joinConcurrency: 32 } : { settle: true });
    s.snapshot(c.round, 'start', await c.waitWhole({ timeoutMs: 120_000 }));

    const reqs: Req[] = [];
    const load = startLoad(s, c, reqs, workers, think);

    // ---- 1. split ----
    const shuffled = s.rng.fork('split').shuffle(ids);
    const sideA = new Set(shuffled.slice(0, Math.ceil(ids.length / 2)));
    const sideB = ids.filter((id) => !sideA.has(id));
    load.side = (id) => (sideA.has(id) ? 'A' : 'B');
    s.log(`  split: metaserver + ${sideA.size} peers | ${sideB.length} peers, for ${splitMs / 1000} s`);
    load.phase = 'before';
    await s.sleep(Math.min(5000, splitMs));
    load.phase = 'split';
    const splitAt = s.now();
    await s.step(`the overlay splits: metaserver + ${sideA.size} peers | ${sideB.length} peers`, () => c.partition([[META, ...sideA], sideB]));
    await s.sleep(splitMs);
    load.phase = 'after heal';
    await s.step('the partition heals', () => c.heal());
    const healedAt = s.now();
    const whole = await c.waitWhole({ timeoutMs: Math.max(120_000, 30 * DEAD_AFTER_MS), label: 'one tree after the heal' });
    const oneTreeAfterMs = s.now() - healedAt;
    s.snapshot(c.round, 'after the heal', whole);
    s.check(oneTreeAfterMs <= 3 * DEAD_AFTER_MS, `one whole tree within 3 × deadAfterMs (${3 * DEAD_AFTER_MS} ms) of the heal`, `took ${oneTreeAfterMs} ms`);
    await s.sleep(Math.min(5000, splitMs));
    s.summary.partition = {
      splitMs: healedAt - splitAt,
      healedAtMs: healedAt,
      oneTreeAfterMs,
      ratioToDeadAfter: Number((oneTreeAfterMs / DEAD_AFTER_MS).toFixed(2)),
      sides: { withMetaserver: sideA.size, without: sideB.length },
    };

    // ---- 3. mixed faults ----
    const mixedRows: (string | number)[][] = [];
    if (mixed > 0) {
      load.side = undefined;
      load.phase = 'mixed';
      await mixedPhase(s, c, reqs, mixed, bigHolder, mixedRows);
    }
    await load.stop();
    s.setTree(c.round, await c.waitWhole({ timeoutMs: 120_000, label: 'tree whole at the end' }));

    // ---- tables and checks ----
    const phases = ['before', 'split', 'after heal', ...(mixed > 0 ? ['mixed'] : [])];
    const rows = phases.flatMap((p) => {
      const rs = reqs.filter((r) => r.phase === p);
      const byKind = (k: Req['kind']) => rs.filter((r) => r.kind === k);
      const searches = byKind('search');
      const downloads = byKind('download');
      const cross = searches.filter((r) => r.sameSide === false);
      return [[p, searches.length, searches.filter((r) => r.answered).length, searches.filter((r) => r.found).length,
        p === 'split' ? `${cross.filter((r) => r.found).length} of ${cross.length}` : '—',
        searches.filter((r) => r.reached < r.alive).length,
        `${downloads.filter((r) => r.ok).length} of ${downloads.length}`,
        [...new Set(downloads.filter((r) => !r.ok).map((r) => r.errorCode ?? '?'))].join(', ') || '—']];
    });
    s.table('Requests by phase', ['phase', 'searches', 'answered', 'found', 'found across the cut', 'answers with peers unreachable', 'downloads verified', 'download errors'], rows,
      'A search across the cut cannot find the file: it must still be answered, naming the peers it could not reach. Downloads that fail must fail cleanly (a coded error, no partial file).');
    if (mixedRows.length) s.table('Mixed faults: what each did to the requests that touched it', ['fault', 'target', 'in force', 'searches by it (answered / found)', 'downloads of its files (verified / all)', 'repairs around it', 'outcome'], mixedRows);

    const unanswered = reqs.filter((r) => r.kind === 'search' && !r.answered);
    s.check(unanswered.length === 0, 'every search ended with a definite answer', unanswered.slice(0, 3).map((r) => `${r.by} ${r.name} at ${ms(r.at)}: ${r.errorCode}`).join('; '));
    const during = reqs.filter((r) => r.phase === 'split' && r.kind === 'search');
    s.check(during.length > 0, 'searches ran while the overlay was split', `${during.length}`);
    s.summary.requests = Object.fromEntries(phases.map((p) => [p, { searches: reqs.filter((r) => r.phase === p && r.kind === 'search').length, downloads: reqs.filter((r) => r.phase === p && r.kind === 'download').length }]));
  },
};

type ReqWhere = Pick<Req, 'phase' | 'at' | 'by' | 'name' | 'sameSide' | 'alive'>;

/** A search's record: answered unless the request failed; the reached and missing counts of its flood. */
function searchReq(w: ReqWhere, f: FloodRow): Req {
  return { ...w, kind: 'search', answered: f.answered && !f.error, found: f.hits.length > 0, ok: f.answered, reached: f.reached, missing: f.missing.length, errorCode: f.error ?? null };
}

/** A download's record: verified or its error code. */
function downloadReq(w: ReqWhere, t: TransferRow): Req {
  return { ...w, kind: 'download', answered: true, found: t.ok, ok: t.ok, reached: 0, missing: 0, errorCode: t.ok ? null : t.errorCode ?? null };
}

function fileOf(id: string): string {
  return `${id.toLowerCase()}.dat`;
}

function mixedMs(o: Pick<Scenario['opts'], 'extra'>): number {
  if (o.extra.mixed === '0') return 0;
  return durationOption(o, 'mixed') ?? 30_000;
}

interface Load {
  phase: string;
  /** The side of a peer during the split (undefined outside it). */
  side: ((id: string) => string) | undefined;
  stop(): Promise<void>;
}

/** `workers` loops, each asking from a random live peer for a random other peer's file (one download in four), until stopped. */
function startLoad(s: Scenario, c: Cluster, reqs: Req[], workers: number, think: number): Load {
  let stopped = false;
  /** `by:name` of every copy a download made (a second download of it would be refused: exists). */
  const copies = new Set<string>();
  const load: Load = { phase: 'before', side: undefined, stop: async () => {} };
  const loop = async (w: number) => {
    const r = s.rng.fork(`load:${w}`);
    while (!stopped) {
      const alive = c.alive();
      if (alive.length >= 2) {
        const by = r.pick(alive);
        const owner = r.pick([...c.peers.keys()].filter((id) => id !== by));
        const name = fileOf(owner);
        const phase = load.phase;
        const sameSide = load.side ? load.side(by) === load.side(owner) : null;
        const at = s.now();
        if (r.next() < 0.25 && !copies.has(`${by}:${name}`)) {
          const t: TransferRow = await c.download(by, name, { label: phase, mayFail: true, timeoutMs: 60_000 });
          if (t.ok) copies.add(`${by}:${name}`);
          reqs.push(downloadReq({ phase, at, by, name, sameSide, alive: alive.length }, t));
        } else {
          const f: FloodRow = await c.search(by, name, { label: phase });
          reqs.push(searchReq({ phase, at, by, name, sameSide, alive: alive.length }, f));
        }
      }
      await s.sleep(think);
    }
  };
  const running = Promise.all(Array.from({ length: workers }, (_, w) => loop(w)));
  load.stop = async () => {
    stopped = true;
    await running;
  };
  return load;
}

/** One flaky link, one paused peer, one clock ahead, one full disk; a row each for the table. */
async function mixedPhase(s: Scenario, c: Cluster, reqs: Req[], length: number, bigHolder: string, rows: (string | number)[][]): Promise<void> {
  const r = s.rng.fork('mixed');
  const candidates = r.shuffle(c.alive().filter((id) => id !== bigHolder));
  const [flaky, paused, skewed, full] = candidates;
  const t0 = s.now();
  const until = t0 + length;
  const can = (k: FaultKind) => c.runner.faults.unsupported(k);
  const around = (id: string, from: number, to: number) => {
    const rs = reqs.filter((q) => q.at >= from && q.at <= to);
    const searches = rs.filter((q) => q.kind === 'search' && q.by === id);
    const downloads = rs.filter((q) => q.kind === 'download' && q.name === fileOf(id));
    const repairs = s.records.repairs.filter((x) => x.at >= from && x.at <= to && (x.peer === id || x.lost === id)).length;
    return [`${searches.filter((q) => q.answered).length} / ${searches.filter((q) => q.found).length} of ${searches.length}`, `${downloads.filter((q) => q.ok).length} / ${downloads.length}`, repairs] as const;
  };
  const tasks: Promise<void>[] = [];
  // While a fault is in force: one search by its target and one download of the target's file by another peer.
  const touch = async (id: string) => {
    // Another peer under no fault (a second download by the full-disk peer would share its temporaries with the first).
    const other = r.pick(c.alive().filter((x) => x !== bigHolder && ![flaky, paused, skewed, full].includes(x)));
    const at = s.now();
    const alive = c.alive().length;
    const f = await c.search(id, fileOf(other), { label: 'mixed' });
    reqs.push(searchReq({ phase: 'mixed', at, by: id, name: fileOf(other), sameSide: null, alive }, f));
    const at2 = s.now();
    const t = await c.download(other, fileOf(id), { label: 'mixed', mayFail: true, timeoutMs: 60_000 });
    reqs.push(downloadReq({ phase: 'mixed', at: at2, by: other, name: fileOf(id), sameSide: null, alive }, t));
  };

  // A flaky link: the link between `flaky` and its parent is reset every 5 s.
  if (flaky) {
    const why = can('reset');
    if (why) rows.push(['flaky link (reset every 5 s)', flaky, '—', '—', '—', '—', `not possible here: ${why}`]);
    else tasks.push((async () => {
      let resets = 0;
      while (s.now() + 5000 <= until) {
        await s.sleep(5000);
        const parent = c.peers.get(flaky)?.alive ? (await c.peer(flaky).status({ timeoutMs: 10_000 }).catch(() => null))?.parent?.id : undefined;
        if (!parent) continue;
        await c.reset(flaky, parent);
        if (resets++ === 0) await touch(flaky);
      }
      rows.push(['flaky link (reset every 5 s)', `${flaky} ↔ parent`, `${ms(length)}`, ...around(flaky, t0, s.now()), `${resets} resets`]);
    })());
  }
  // A paused peer: for half the phase.
  if (paused) {
    const why = can('pause');
    if (why) rows.push(['paused peer', paused, '—', '—', '—', '—', `not possible here: ${why}`]);
    else tasks.push((async () => {
      await c.pause(paused);
      const from = s.now();
      // Asked while paused: answered late (after the resume) or given up on by its deadline.
      const asked = touch(paused);
      await s.sleep(length / 2);
      await c.resume(paused);
      await asked;
      rows.push(['paused peer', paused, ms(s.now() - from), ...around(paused, from, s.now()), 'resumed']);
    })());
  }
  // A clock 30 s ahead for the whole phase.
  if (skewed) {
    const why = can('skew');
    if (why) rows.push(['clock 30 s ahead', skewed, '—', '—', '—', '—', `not possible here: ${why}`]);
    else tasks.push((async () => {
      await c.skew(skewed, { offsetMs: 30_000 });
      const from = s.now();
      await touch(skewed);
      if (s.now() < from + length) await s.sleep(from + length - s.now());
      await c.skew(skewed, {});
      rows.push(['clock 30 s ahead', skewed, ms(s.now() - from), ...around(skewed, from, s.now()), 'clock put right']);
    })());
  }
  // A full disk: `full` downloads the 1 MiB file with ENOSPC after half of it, then again with a healthy disk.
  if (full) {
    const why = can('disk');
    if (why) rows.push(['disk full (ENOSPC) mid-download', full, '—', '—', '—', '—', `not possible here: ${why}`]);
    else tasks.push((async () => {
      await c.disk(full, { kind: 'enospc', afterBytes: BIG_BYTES / 2 });
      const from = s.now();
      const bad = await c.download(full, 'big.dat', { label: 'disk full', mayFail: true, timeoutMs: 60_000 });
      s.check(!bad.ok, `${full}'s download into a full disk fails`, bad.ok ? 'it succeeded' : undefined);
      await c.disk(full, null);
      const good = await c.download(full, 'big.dat', { label: 'disk healthy again', mayFail: true, timeoutMs: 60_000 });
      s.check(good.ok, `${full} downloads big.dat once its disk is healthy again`, good.errorCode ?? undefined);
      rows.push(['disk full (ENOSPC) mid-download', full, ms(s.now() - from), ...around(full, from, s.now()), `first: ${bad.ok ? 'verified (!)' : bad.errorCode}, then: ${good.ok ? 'verified' : good.errorCode}`]);
    })());
  }
  await Promise.all(tasks);
  if (s.now() < until) await s.sleep(until - s.now());
}

if (isMain(import.meta.url)) await main(partition);
