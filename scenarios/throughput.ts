/**
 * throughput: files of 1 MiB up to 1 GiB (generated in the temporary
 * workspace from the seed; the holder shares them), downloaded one at a
 * time and by several peers at once. Per-download figures come from the
 * requester (accept → first byte, accept → verified and renamed, MB/s with
 * 1 MB = 10^6 bytes); the aggregate of a concurrent batch is total bytes over
 * the batch's wall time on the harness clock. Every file is re-hashed on disk.
 *
 * Default sizes 1, 16 and 64 MiB (about a minute at most); --large adds 256
 * MiB and 1 GiB. --bandwidth caps every link (user-space shaping), so the
 * MB/s column shows the cap at work.
 *
 *   npx tsx scenarios/throughput.ts [--sizes 1,16,64] [--large] [--concurrency 1,4] [--runner process|inproc|memory]
 */
import { isMain, main, mbpsCell, mib, ms, numberList, ratesOf, summarize, transferMBps, UsageError, type CommonOptions, type ScenarioDef, type TransferRow } from './lib/index.ts';

const MiB = 1024 * 1024;

function plan(o: CommonOptions): { sizes: number[]; conc: number[] } {
  let sizes = numberList('sizes', o.extra.sizes, [1, 16, 64]);
  if (o.extra.large === true) sizes = [...new Set([...sizes, 256, 1024])];
  if (sizes.some((x) => x <= 0 || x > 4096)) throw new UsageError('--sizes are MiB from 1 to 4096');
  const conc = numberList('concurrency', o.extra.concurrency, [1, 4]).map((x) => Math.round(x));
  if (conc.some((c) => c < 1 || c > 64)) throw new UsageError('--concurrency values must be from 1 to 64');
  return { sizes: sizes.sort((a, b) => a - b), conc: [...new Set(conc)].sort((a, b) => a - b) };
}

export const throughput: ScenarioDef = {
  name: 'throughput',
  summary: 'File transfer throughput: 1 MiB to 1 GiB files (1, 16, 64 MiB by default; --large adds 256 MiB and 1 GiB), one download at a time and several at once.',
  defaults: { runner: 'process', peers: 5, maxChildren: 2, policy: 'least-loaded' },
  options: {
    sizes: { type: 'string', placeholder: 'LIST', description: 'file sizes in MiB, comma-separated (default 1,16,64)' },
    large: { type: 'boolean', description: 'also 256 MiB and 1 GiB' },
    concurrency: { type: 'string', placeholder: 'LIST', description: 'downloads at once, comma-separated (default 1,4; capped at --peers − 1)' },
  },
  standard: { floods: 'summary' },
  validate(o) {
    plan(o);
    if (o.peers < 2) throw new UsageError('--peers must be at least 2 (a holder and a downloader)');
  },
  async run(s) {
    const { sizes, conc: wanted } = plan(s.opts);
    const conc = [...new Set(wanted.map((c) => Math.min(c, s.opts.peers - 1)))];
    const ids = ['H', ...s.ids('D', s.opts.peers - 1)];
    const c = await s.cluster();
    // The holder gets one generated file per size and batch: in its folder, copies of one file per size
    // (clones where the file system can); under the memory runner, seeded files in its memory store.
    const memory = c.kind === 'memory';
    const files = sizes.flatMap((mb) => conc.map((k) => ({ name: name(mb, k), bytes: mb * MiB })));
    const [holder] = await c.addPeers([{ id: 'H', ...(memory ? { files } : {}) }]);
    for (const mb of memory ? [] : sizes) {
      const base = await c.ws.generate(holder!.share, name(mb, conc[0]!), mb * MiB, s.rng.fork(`blob:${mb}`).next);
      for (const k of conc.slice(1)) await c.ws.duplicate(base, holder!.share, name(mb, k));
    }
    await c.addPeers(ids.slice(1));
    s.setTree(c.round, (await c.topo('H', { expectWhole: true })).nodes);

    const rows: (string | number | null)[][] = [];
    for (const mb of sizes) {
      for (const k of conc) {
        const file = name(mb, k);
        const who = ids.slice(1, 1 + k);
        const t0 = s.now();
        const got: TransferRow[] = await Promise.all(who.map((id) => c.download(id, file, { expectFrom: 'H', label: `${k} at once`, timeoutMs: Math.max(60_000, mb * 1000) })));
        // Batch wall time: commands sent → last result reported (the harness's re-hashing is after).
        const wall = Math.max(...got.map((t) => t.doneAt)) - t0;
        const okRows = got.filter((t) => t.ok);
        const per = summarize(ratesOf(okRows));
        const bytes = okRows.reduce((a, t) => a + t.bytes, 0);
        const aggregate = mbpsCell(transferMBps(bytes, wall));
        rows.push([
          mib(mb * MiB), k, `${okRows.length}/${got.length}`, mbpsCell(per?.median), mbpsCell(per?.min),
          aggregate, ms(summarize(okRows.map((t) => t.ttfbMs))?.median), ms(summarize(okRows.map((t) => t.durationMs))?.max), ms(wall),
        ]);
        s.log(`  ${mib(mb * MiB)} × ${k}: ${aggregate} MB/s aggregate`);
      }
    }
    s.table('Throughput', ['file', 'at once', 'verified', 'MB/s each (median)', 'MB/s each (min)', 'MB/s aggregate', 'first byte ms (median)', 'duration ms (max)', 'batch wall ms'], rows,
      `1 MB = 10^6 bytes; "—": too small or too short for a rate (core/cli/format.ts); runner ${c.kind}${s.opts.bandwidth ? `, links capped at ${s.opts.bandwidth.toLocaleString('en-US')} B/s` : ''}${s.opts.latency ? `, ${s.opts.latency} ms added latency` : ''}; aggregate = bytes ÷ batch wall time (commands sent → last result, harness clock; includes each download's search).`);
  },
};

function name(mb: number, k: number): string {
  return `blob-${mb}MiB-x${k}.bin`;
}

if (isMain(import.meta.url)) await main(throughput);
