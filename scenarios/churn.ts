/**
 * churn: peers join, leave gracefully and crash (kill -9 under the process
 * runner) while a few workers keep searching and downloading from random
 * live peers. Afterwards:
 *
 * - every search was answered (a definite result, even when part of the
 *   tree was lost mid-flood: those subtrees are listed as missing);
 * - every download was verified, or failed cleanly (a coded error and no
 *   partial file left in the requester's share);
 * - the tree is whole: one tree of exactly the live peers, and the
 *   metaserver's registry lists exactly them.
 *
 * Pacing is by work, not by clock: after each churn event the workers must
 * finish a few more requests before the next one. All choices are seeded.
 *
 *   npx tsx scenarios/churn.ts [--peers 8] [--events 6] [--workers 3] [--runner process|inproc|memory]
 */
import { durationOption, int, intOption, isMain, main, ms, numberOption, pointChart, summarize, UsageError, type Cluster, type Scenario, type ScenarioDef } from './lib/index.ts';
import { respawnWithHeapRoom, wantsMemoryRunner } from './lib/heap.ts';

export const churn: ScenarioDef = {
  name: 'churn',
  summary: 'Peers join, leave and crash while searches and downloads run: every search answered, every download verified or failed cleanly, the tree whole at the end.',
  defaults: { runner: 'process', peers: 8, maxChildren: 2, policy: 'least-loaded' },
  options: {
    events: { type: 'string', placeholder: 'N', description: 'churn events: joins, leaves and crashes (default 6)' },
    workers: { type: 'string', placeholder: 'N', description: 'requests in flight at once (default 3)' },
    duration: { type: 'string', placeholder: 'TIME', description: 'run for this long instead of --events (simulated under the memory runner): 90s, 10m, 1h; events come at --rate, requests with --think pauses' },
    rate: { type: 'string', placeholder: 'N', description: 'with --duration: churn events (join, leave, crash) per minute (default 6)' },
    think: { type: 'string', placeholder: 'MS', description: 'with --duration: pause of each worker between two requests, ms (default 1000)' },
  },
  standard: { tree: 'auto' },
  validate(o) {
    intOption(o, 'events', 6, 1000);
    intOption(o, 'workers', 3, 100);
    durationOption(o, 'duration');
    numberOption(o, 'rate', 6, 6000);
    numberOption(o, 'think', 1000, 3_600_000);
    if (o.peers < 3) throw new UsageError('--peers must be at least 3');
  },
  async run(s) {
    const duration = durationOption(s.opts, 'duration');
    if (duration !== undefined) return timed(s, duration);
    const events = intOption(s.opts, 'events', 6, 1000);
    const workers = intOption(s.opts, 'workers', 3, 100);
    const c = await s.cluster();
    const catalog = new Map<string, Set<string>>(); // file → live holders
    const fileDef = (id: string) => ({ name: `${id.toLowerCase()}.dat`, bytes: s.rng.int(16, 256) * 1024 });
    const add = async (ids: string[]) => {
      const defs = ids.map((id) => ({ id, files: [fileDef(id)] }));
      await c.addPeers(defs);
      for (const d of defs) catalog.set(d.files[0]!.name, new Set([d.id]));
    };
    const gone = (id: string) => {
      for (const h of catalog.values()) h.delete(id);
    };
    await add(s.ids('K', s.opts.peers));
    s.snapshot(c.round, 'start', await c.waitWhole());
    let nextId = s.opts.peers + 1;

    // ---- load: workers searching and downloading from live peers ----
    const busy = new Set<string>();
    const departing = new Set<string>();
    let stop = false;
    let done = 0;
    const waiters: { at: number; resolve: () => void }[] = [];
    const finished = () => {
      done++;
      for (const w of [...waiters]) if (done >= w.at) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
    };
    const worker = async (w: number) => {
      const r = s.rng.fork(`worker:${w}`);
      while (!stop) {
        const free = c.alive().filter((id) => !busy.has(id) && !departing.has(id));
        const by = free.length ? r.pick(free) : null;
        // Mostly files some live peer still holds; now and then any file (a lost one must end in a definite not-found).
        const anyFile = r.next() < 0.15;
        const names = by ? [...catalog.entries()].filter(([, h]) => !h.has(by) && (anyFile || h.size > 0)).map(([n]) => n) : [];
        if (!by || names.length === 0) {
          // Nothing to ask right now (every live peer busy or holding everything): let the others move.
          await s.sleep(20);
          continue;
        }
        const name = r.pick(names);
        busy.add(by);
        try {
          await ask(c, r, catalog, by, name);
        } finally {
          busy.delete(by);
          finished();
        }
      }
    };
    s.logSteps = false; // hundreds of requests: log failures only, and one line per churn event
    const load = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
    const more = (n: number) => new Promise<void>((resolve) => waiters.push({ at: done + n, resolve }));

    // ---- churn ----
    const rows: (string | number | null)[][] = [];
    const evs: { event: number; kind: string; peer: string; ms: number }[] = [];
    const er = s.rng.fork('events');
    try {
      for (let i = 1; i <= events; i++) {
        await more(workers * 2);
        const alive = c.alive().filter((id) => !departing.has(id));
        const victims = alive.filter((id) => !busy.has(id));
        const kinds = alive.length <= 3 || victims.length === 0 ? ['join'] : ['join', 'leave', 'crash'];
        const kind = er.pick(kinds);
        const t0 = s.now();
        if (kind === 'join') {
          const id = `K${nextId++}`;
          await add([id]);
          rows.push([i, 'join', id, '—', ms(s.now() - t0), done]);
          evs.push({ event: i, kind: 'join', peer: id, ms: s.now() - t0 });
          s.log(`  event ${i}: ${id} joined; ${done} requests done`);
          s.snapshot(c.round, `event ${i}: after ${id} joined`, await c.waitWhole());
          continue;
        }
        const victim = er.pick(victims);
        departing.add(victim);
        const out = kind === 'leave' ? await c.leave(victim) : await c.crash(victim);
        gone(victim);
        rows.push([i, kind, victim, out.orphans.join(' ') || '(none)', ms(out.ms), done]);
        evs.push({ event: i, kind, peer: victim, ms: out.ms });
        s.log(`  event ${i}: ${victim} ${kind === 'leave' ? 'left' : 'crashed'}; ${out.orphans.length} orphan(s) reattached in ${ms(out.ms)} ms; ${done} requests done`);
        s.snapshot(c.round, `event ${i}: after ${victim} ${kind === 'leave' ? 'left' : 'crashed'} and the tree repaired`, await c.waitWhole());
      }
    } finally {
      stop = true;
      await load;
      s.logSteps = true;
    }
    s.table('Churn events', ['#', 'event', 'peer', 'orphans reattached', 'ms until repaired', 'requests done before'], rows,
      'ms until repaired: harness clock, from the event to the last orphan\'s repaired event (joins: start + join).');
    s.chart(pointChart('Repair time per churn event', {
      data: evs,
      x: 'event', y: 'ms', xTitle: 'churn event #', yTitle: 'ms until repaired (joins: until joined)', color: 'kind', colorTitle: 'event', tooltip: ['event', 'kind', 'peer', 'ms'], xOrdinal: true,
    }));

    const tree = await c.waitWhole();
    s.setTree(c.round, tree);
    await checkRegistryLive(s, c);

    const searches = s.records.floods.filter((f) => f.kind === 'search' && f.label === 'under churn');
    const dls = s.records.transfers.filter((t) => t.label === 'under churn');
    const answered = searches.filter((f) => f.answered).length;
    s.check(answered === searches.length, 'every search under churn was answered', `${searches.length - answered} unanswered`);
    const codes = new Map<string, number>();
    for (const t of dls) if (!t.ok) codes.set(t.errorCode ?? 'unknown', (codes.get(t.errorCode ?? 'unknown') ?? 0) + 1);
    const unclean = s.records.checks.filter((x) => !x.ok && x.what.endsWith('failed cleanly')).length;
    s.table('Load under churn', ['requests', 'answered / verified', 'with missing subtrees', 'failed cleanly', 'failed uncleanly'], [
      [`${searches.length} searches`, answered, searches.filter((f) => f.missing.length > 0).length, '—', searches.length - answered],
      [`${dls.length} downloads`, dls.filter((t) => t.ok).length, '—', [...codes.entries()].map(([k, v]) => `${v} ${k}`).join(', ') || '0', unclean],
    ]);
    s.summary.load = { searches: searches.length, answered, downloads: dls.length, verified: dls.filter((t) => t.ok).length, failed: Object.fromEntries(codes) };
  },
};

/**
 * Checks that the metaserver lists exactly the live peers. It learns of crashed peers from their
 * neighbours' reports, so it gets until the tree is whole plus a few re-checks (scenario time).
 */
async function checkRegistryLive(s: Scenario, c: Cluster): Promise<void> {
  const alive = new Set(c.alive());
  let registry: string[] = [];
  for (let tries = 0; tries < 40; tries++) {
    registry = (await c.meta.status()).map((e) => e.id);
    if (registry.length === alive.size && registry.every((id) => alive.has(id))) break;
    await s.sleep(250);
  }
  const detail = alive.size <= 100 ? `registry: ${registry.sort().join(' ')}; live: ${[...alive].sort().join(' ')}` : `registry ${registry.length}, live ${alive.size}`;
  s.check(registry.length === alive.size && registry.every((id) => alive.has(id)), 'the metaserver lists exactly the live peers', detail);
}

/** One request of the load under churn: a search or (as often) a download of `name` by `by`; a verified download makes `by` a holder. */
async function ask(c: Cluster, r: { next(): number }, catalog: Map<string, Set<string>>, by: string, name: string): Promise<void> {
  if (r.next() < 0.5) await c.search(by, name, { label: 'under churn' });
  else {
    const t = await c.download(by, name, { label: 'under churn', mayFail: true });
    if (t.ok) catalog.get(name)?.add(by);
  }
}

function fileDef(s: Scenario, id: string) {
  return { name: `${id.toLowerCase()}.dat`, bytes: s.rng.int(16, 256) * 1024 };
}

/**
 * --duration: churn events at a steady rate (one every 60/rate s, kind and
 * victim seeded) while workers search and download with a pause between
 * requests, for a fixed time on the scenario clock (simulated under the
 * memory runner, so heartbeats, announces and the metaserver's sweep all
 * run for real in simulated time). Events do not wait for each other: a
 * crash's or leave's repair runs while the next events come. A table per
 * minute: peers alive, events, repairs and their durations, searches
 * answered and complete, downloads verified.
 */
async function timed(s: Scenario, duration: number): Promise<void> {
  const workers = intOption(s.opts, 'workers', 3, 100);
  const rate = numberOption(s.opts, 'rate', 6, 6000);
  const think = numberOption(s.opts, 'think', 1000, 3_600_000);
  const c: Cluster = await s.cluster();
  const catalog = new Map<string, Set<string>>(); // file → live holders
  const add = async (ids: string[], o: { joinConcurrency?: number } = {}) => {
    const defs = ids.map((id) => ({ id, files: [fileDef(s, id)] }));
    await c.addPeers(defs, o);
    for (const d of defs) catalog.set(d.files[0]!.name, new Set([d.id]));
  };
  const gone = (id: string) => {
    for (const h of catalog.values()) h.delete(id);
  };
  const big = s.opts.peers > 200;
  s.logSteps = !big;
  await add(s.ids('K', s.opts.peers), { joinConcurrency: big ? 32 : 1 });
  await c.waitWhole({ timeoutMs: 120_000 });
  s.logSteps = false; // thousands of requests: log failures only
  const t0 = s.now();
  const end = t0 + duration;
  const minutes = Math.ceil(duration / 60_000);
  const minuteOf = (at: number) => Math.min(minutes - 1, Math.max(0, Math.floor((at - t0) / 60_000)));
  let nextId = s.opts.peers + 1;
  const busy = new Set<string>();
  const departing = new Set<string>();
  const events: { at: number; kind: string; peer: string; ok: boolean }[] = [];
  const aliveAt: number[] = [];
  s.log(`  churn for ${duration / 1000} s ${s.simulated ? 'simulated' : 'wall'}: ${rate} event(s)/min, ${workers} worker(s), ${think} ms between requests`);

  // Heartbeats sent so far by every peer of the run, departed ones included, from the peers' own
  // frame counters (in-process runners; null under the process runner).
  const pingsSent = (): number | null => {
    let n = 0;
    for (const h of c.peers.values()) {
      const p = (h as unknown as { peer?: { wireFrames(): { sent: Record<string, number> } } }).peer;
      if (!p) return null;
      n += p.wireFrames().sent.ping ?? 0;
    }
    return n;
  };
  const pingsAt: (number | null)[] = [pingsSent()];
  // Alive peers (and pings sent) at the end of each minute.
  const sampler = (async () => {
    for (let m = 1; m <= minutes; m++) {
      const at = Math.min(end, t0 + m * 60_000);
      if (at > s.now()) await s.sleep(at - s.now());
      aliveAt.push(c.alive().length);
      pingsAt.push(pingsSent());
      if (big) s.log(`  minute ${m}: ${aliveAt[m - 1]} peers alive, ${events.length} events, ${s.records.floods.length} floods, ${s.records.repairs.length} repairs so far (${(s.wallNow() / 1000).toFixed(1)} s wall)`);
    }
  })();

  const worker = async (w: number) => {
    const r = s.rng.fork(`worker:${w}`);
    while (s.now() < end) {
      const alive = c.alive();
      const free = alive.filter((id) => !busy.has(id) && !departing.has(id));
      const by = free.length ? r.pick(free) : null;
      const anyFile = r.next() < 0.15;
      let name: string | null = null;
      if (by) {
        // A random file `by` lacks (mostly one a live peer holds): a few seeded tries, not a scan of the catalog.
        const files = [...catalog.keys()];
        for (let k = 0; k < 8 && name === null; k++) {
          const n = r.pick(files);
          const h = catalog.get(n)!;
          if (!h.has(by) && (anyFile || h.size > 0)) name = n;
        }
      }
      if (!by || name === null) {
        await s.sleep(think);
        continue;
      }
      busy.add(by);
      try {
        await ask(c, r, catalog, by, name);
      } finally {
        busy.delete(by);
      }
      await s.sleep(think);
    }
  };
  const load = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));

  const er = s.rng.fork('events');
  const running: Promise<void>[] = [];
  const every = 60_000 / rate;
  for (let i = 1; t0 + i * every < end; i++) {
    const at = t0 + i * every;
    if (at > s.now()) await s.sleep(at - s.now());
    const alive = c.alive().filter((id) => !departing.has(id));
    const victims = alive.filter((id) => !busy.has(id));
    const kind = er.pick(alive.length <= 3 || victims.length === 0 ? ['join'] : ['join', 'leave', 'crash']);
    const ev = { at: s.now(), kind, peer: '', ok: false };
    events.push(ev);
    if (kind === 'join') {
      ev.peer = `K${nextId++}`;
      running.push(add([ev.peer]).then(() => void (ev.ok = true), () => undefined));
      continue;
    }
    const victim = er.pick(victims);
    ev.peer = victim;
    departing.add(victim);
    gone(victim);
    running.push((kind === 'leave' ? c.leave(victim) : c.crash(victim)).then(() => void (ev.ok = true), () => undefined));
  }
  await s.sleep(Math.max(0, end - s.now()));
  await Promise.all([load, sampler, ...running]);
  const tree = await c.waitWhole({ timeoutMs: 120_000 });
  if (!big) s.setTree(c.round, tree);
  await checkRegistryLive(s, c);
  s.check(events.every((e) => e.ok), 'every churn event completed (joins joined, orphans of leaves and crashes reattached)', `${events.filter((e) => !e.ok).map((e) => `${e.kind} ${e.peer}`).join(', ')}`);

  const searches = s.records.floods.filter((f) => f.kind === 'search' && f.label === 'under churn');
  const dls = s.records.transfers.filter((t) => t.label === 'under churn');
  const answered = searches.filter((f) => f.answered).length;
  s.check(answered === searches.length, 'every search under churn was answered', `${searches.length - answered} unanswered`);
  const rows: (string | number | null)[][] = [];
  for (let m = 0; m < minutes; m++) {
    const inM = <T extends { at: number }>(xs: T[]) => xs.filter((x) => x.at >= t0 && minuteOf(x.at) === m);
    const ev = inM(events);
    const rep = inM(s.records.repairs);
    const rs = summarize(rep.map((r) => r.ms));
    const se = inM(searches);
    const dl = inM(dls);
    rows.push([
      m + 1, aliveAt[m] ?? null, `${ev.filter((e) => e.kind === 'join').length} / ${ev.filter((e) => e.kind === 'leave').length} / ${ev.filter((e) => e.kind === 'crash').length}`,
      rep.length, rs ? ms(rs.median) : '—', rs ? ms(rs.max) : '—',
      `${se.filter((f) => f.answered).length} / ${se.length}`, se.filter((f) => f.answered && f.missing.length === 0).length,
      `${dl.filter((t) => t.ok).length} / ${dl.length}`,
      pingsAt[m + 1] != null && pingsAt[m] != null ? int(pingsAt[m + 1]! - pingsAt[m]!) : '—',
    ]);
  }
  s.table('Per minute', ['minute', 'peers alive (end)', 'joins / leaves / crashes', 'repairs', 'repair median ms', 'repair max ms', 'searches answered / asked', 'searches complete', 'downloads verified / tried', 'pings sent'], rows,
    `${s.simulated ? 'simulated' : 'wall-clock'} minutes; repairs: orphans reattached (ms: detection → reattached, as the peer measured it); complete: every live peer reached (no missing subtree); pings: heartbeats sent by all peers (a ping goes only on a link that carried nothing else from its sender since the last tick).`);
  const pings = (pingsAt[pingsAt.length - 1] ?? 0) - (pingsAt[0] ?? 0);
  const codes = new Map<string, number>();
  for (const t of dls) if (!t.ok) codes.set(t.errorCode ?? 'unknown', (codes.get(t.errorCode ?? 'unknown') ?? 0) + 1);
  s.summary.load = { durationMs: duration, rate, events: events.length, searches: searches.length, answered, complete: searches.filter((f) => f.missing.length === 0).length, downloads: dls.length, verified: dls.filter((t) => t.ok).length, failed: Object.fromEntries(codes), repairs: s.records.repairs.filter((r) => r.at >= t0).length, pingsSent: pingsAt[0] === null ? null : pings };
  s.log(`  ${int(events.length)} events, ${int(searches.length)} searches (${int(answered)} answered), ${int(dls.length)} downloads (${int(dls.filter((t) => t.ok).length)} verified), ${pingsAt[0] === null ? 'pings not counted (process runner)' : `${int(pings)} pings sent during the churn (a ping goes only on a link idle since the last tick)`}`);
}

if (isMain(import.meta.url)) {
  // A long simulated run at 10,000 peers: a larger young generation keeps each flood's state out of the old space.
  const code = wantsMemoryRunner() ? await respawnWithHeapRoom({ oldMiB: 6144, semiMiB: 256 }) : null;
  if (code === null) await main(churn);
  else process.exitCode = code;
}
