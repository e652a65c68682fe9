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
import { intOption, isMain, main, ms, pointChart, UsageError, type ScenarioDef } from './lib/index.ts';

export const churn: ScenarioDef = {
  name: 'churn',
  summary: 'Peers join, leave and crash while searches and downloads run: every search answered, every download verified or failed cleanly, the tree whole at the end.',
  defaults: { runner: 'process', peers: 8, maxChildren: 2, policy: 'least-loaded' },
  options: {
    events: { type: 'string', placeholder: 'N', description: 'churn events: joins, leaves and crashes (default 6)' },
    workers: { type: 'string', placeholder: 'N', description: 'requests in flight at once (default 3)' },
  },
  standard: { tree: 'auto' },
  validate(o) {
    intOption(o, 'events', 6, 1000);
    intOption(o, 'workers', 3, 100);
    if (o.peers < 3) throw new UsageError('--peers must be at least 3');
  },
  async run(s) {
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
          if (r.next() < 0.5) await c.search(by, name, { label: 'under churn' });
          else {
            const t = await c.download(by, name, { label: 'under churn', mayFail: true });
            if (t.ok) catalog.get(name)?.add(by);
          }
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
    const alive = new Set(c.alive());
    // The metaserver learns of crashed peers from their neighbours' reports: give it until the tree is whole plus a few re-checks.
    let registry: string[] = [];
    for (let tries = 0; tries < 40; tries++) {
      registry = (await c.meta.status()).map((e) => e.id);
      if (registry.length === alive.size && registry.every((id) => alive.has(id))) break;
      await s.sleep(250);
    }
    s.check(registry.length === alive.size && registry.every((id) => alive.has(id)), 'the metaserver lists exactly the live peers', `registry: ${registry.sort().join(' ')}; live: ${[...alive].sort().join(' ')}`);

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

if (isMain(import.meta.url)) await main(churn);
