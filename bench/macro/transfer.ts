/**
 * Macro: file transfer peer to peer against three baselines moving the same
 * file into a file on the same machine, and concurrent downloads.
 *
 * Layout (the same for every method): the sending side runs in this process,
 * the receiving side in a child process (bench/fixtures/receiver.ts), which
 * times each transfer on its own clock and reports its peak RSS.
 *
 * - peer: a real Peer.download() — search flood, offer, ack, stream, SHA-256,
 *   temp file, link into place. Two windows: end to end (download() call →
 *   verified file; like-for-like with the baselines' connect → closed, so the
 *   targets use it) and body only (core's durationMs: ack → renamed).
 * - (a) naive TCP: fs.createReadStream → socket → fs.createWriteStream, defaults.
 * - (b) tuned TCP: the same with 1 MiB stream chunks on both sides, no hashing.
 * - (c) HTTP: node:http server streaming the file to a node:http client.
 * - keyed: the same Peer.download() with a network key on the metaserver and
 *   both peers (every byte inside TLS-PSK, ChaCha20-Poly1305), reported as a
 *   ratio to the unkeyed peer row of the same run.
 * Baselines are timed from connect to the written file closed.
 *
 * Methods alternate within each round (rotating order), so load on the
 * machine hits them alike.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { generateKey, Metaserver, Peer } from '../../core/index.ts';
import { openShared, sha256Of } from '../../core/transfer/jail.ts';
import { Child } from '../lib/child.ts';
import { registerCloser, removeDir, tempDir } from '../../testnet/cleanup.ts';
import { makeFile, nodeArgs, type Ctx } from '../lib/context.ts';
import { GiB, mbps, MiB, sizeLabel } from '../lib/stats.ts';

type Mode = 'naive' | 'tuned' | 'http' | 'peer' | 'keyed';
const MODES: readonly Mode[] = ['naive', 'tuned', 'http', 'peer', 'keyed'];
const LABEL: Record<Mode, string> = {
  naive: '(a) naive TCP pipe (default streams)',
  tuned: '(b) tuned TCP pipe (1 MiB chunks, no hashing)',
  http: '(c) node:http server → node:http client',
  peer: 'treeshare peer',
  keyed: 'treeshare peer with the network key (TLS-PSK)',
};
const SHORT: Record<Mode, string> = { naive: '(a) naive TCP', tuned: '(b) tuned TCP', http: '(c) HTTP', peer: 'peer', keyed: 'peer + key' };
const isPeer = (m: Mode): m is 'peer' | 'keyed' => m === 'peer' || m === 'keyed';

interface One {
  name: string;
  bytes: number;
  durationMs: number;
  ttfbMs?: number;
  wallMs?: number;
  fsyncMs?: number;
}
interface Batch {
  results: One[];
  spanMs: number;
  /** Receiving process CPU time for the batch, ms. */
  cpuMs: number;
  /** This (sending) process's CPU time for the batch, ms. */
  senderCpuMs: number;
}

interface Senders {
  naive: number;
  tuned: number;
  http: number;
  close(): Promise<void>;
}

/** The baselines' sending ends, serving files of `root` by name. */
async function startSenders(root: string): Promise<Senders> {
  const tcp = (tuned: boolean) =>
    net.createServer((sock) => {
      sock.on('error', () => undefined);
      let head = '';
      const onHead = (b: Buffer) => {
        head += b.toString('latin1');
        const nl = head.indexOf('\n');
        if (nl < 0) return void (head.length > 1024 && sock.destroy());
        sock.off('data', onHead);
        sock.on('data', () => undefined); // nothing more is expected; keep reading so 'end' arrives
        const file = path.join(root, path.basename(head.slice(0, nl)));
        const src = tuned ? fs.createReadStream(file, { highWaterMark: MiB }) : fs.createReadStream(file);
        pipeline(src, sock).catch(() => sock.destroy());
      };
      sock.on('data', onHead);
    });
  const naive = tcp(false);
  const tuned = tcp(true);
  const web = http.createServer((req, res) => {
    const file = path.join(root, path.basename(decodeURIComponent((req.url ?? '/').slice(1))));
    fsp.stat(file).then(
      (st) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size });
        pipeline(fs.createReadStream(file), res).catch(() => res.destroy());
      },
      () => res.writeHead(404).end(),
    );
  });
  const listen = (s: net.Server) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port)));
  const ports = { naive: await listen(naive), tuned: await listen(tuned), http: await listen(web) };
  return {
    ...ports,
    async close() {
      web.closeAllConnections();
      await Promise.all([naive, tuned, web].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}

interface Setup {
  dir: string;
  holderShare: string;
  meta: Metaserver;
  /** A second overlay over the same share with a network key (keyed metaserver and holder). */
  keyed?: { meta: Metaserver; key: string };
  senders: Senders;
  close(): Promise<void>;
}

async function setup(o: { keyed?: boolean } = {}): Promise<Setup> {
  const dir = tempDir('treeshare-bench-');
  const holderShare = path.join(dir, 'holder');
  fs.mkdirSync(holderShare);
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, peerTimeoutMs: 0 });
  await meta.start();
  const holder = new Peer({ id: 'holder', host: '127.0.0.1', port: 0, share: holderShare, meta: meta.address, announceMs: 0 });
  const key = o.keyed ? generateKey() : undefined;
  const kmeta = key ? new Metaserver({ host: '127.0.0.1', port: 0, peerTimeoutMs: 0, networkKey: key }) : undefined;
  let kholder: Peer | undefined;
  const senders = await startSenders(holderShare);
  const close = registerCloser(async () => {
    await senders.close();
    await holder.stop();
    await kholder?.stop();
    await meta.stop();
    await kmeta?.stop();
    removeDir(dir);
  });
  await holder.start();
  await holder.join();
  if (kmeta) {
    await kmeta.start();
    kholder = new Peer({ id: 'holder', host: '127.0.0.1', port: 0, share: holderShare, meta: kmeta.address, announceMs: 0, networkKey: key });
    await kholder.start();
    await kholder.join();
  }
  return { dir, holderShare, meta, senders, close, ...(kmeta && key ? { keyed: { meta: kmeta, key } } : {}) };
}

let receivers = 0;

interface Receivers {
  peer: Child;
  plain: Child;
  /** Present when the setup has a keyed overlay. */
  keyed?: Child;
  close(): Promise<void>;
}

async function receiverPair(ctx: Ctx, s: Setup, what: string): Promise<Receivers> {
  const n = ++receivers;
  const peerDir = path.join(s.dir, `peer-recv-${n}`);
  const plainDir = path.join(s.dir, `plain-recv-${n}`);
  const keyedDir = path.join(s.dir, `keyed-recv-${n}`);
  fs.mkdirSync(peerDir);
  fs.mkdirSync(plainDir);
  if (s.keyed) fs.mkdirSync(keyedDir);
  const [peer, plain, keyed] = await Promise.all([
    Child.start(`receiving peer (${what})`, 'receiver.ts', { mode: 'peer', dir: peerDir, peer: { id: `R${n}`, meta: s.meta.address } }, { nodeArgs: nodeArgs(ctx, `receiver-peer-${what}`) }),
    Child.start(`baseline receiver (${what})`, 'receiver.ts', { mode: 'plain', dir: plainDir }, { nodeArgs: nodeArgs(ctx, `receiver-plain-${what}`) }),
    s.keyed
      ? Child.start(`receiving keyed peer (${what})`, 'receiver.ts', { mode: 'peer', dir: keyedDir, peer: { id: `K${n}`, meta: s.keyed.meta.address, networkKey: s.keyed.key } }, { nodeArgs: nodeArgs(ctx, `receiver-keyed-${what}`) })
      : undefined,
  ]);
  return {
    peer,
    plain,
    ...(keyed ? { keyed } : {}),
    close: async () => {
      await Promise.all([peer.close(), plain.close(), keyed?.close()]);
    },
  };
}

async function runOnce(mode: Mode, r: Receivers, s: Setup, names: string[], size: number): Promise<Batch> {
  const c0 = process.cpuUsage();
  const who = mode === 'peer' ? r.peer : mode === 'keyed' ? r.keyed : r.plain;
  if (!who) throw new Error(`${LABEL[mode]}: no receiver (setup without a key)`);
  const b = isPeer(mode)
    ? await who.call<Batch>({ cmd: 'download', names }, 300_000)
    : await who.call<Batch>({ cmd: 'fetch', kind: mode === 'http' ? 'http' : `tcp-${mode}`, port: s.senders[mode], names }, 300_000);
  const c = process.cpuUsage(c0);
  b.senderCpuMs = (c.user + c.system) / 1000;
  for (const one of b.results) if (one.bytes !== size) throw new Error(`${LABEL[mode]}: ${one.name} arrived with ${one.bytes} of ${size} bytes`);
  await who.call({ cmd: 'rm', names });
  return b;
}

async function maxRssMB(c: Child): Promise<number> {
  const m = await c.call<{ maxRssBytes: number }>({ cmd: 'memory' });
  return m.maxRssBytes / 1e6;
}

/** (1) One file, peer vs (a) (b) (c). */
export async function transferBench(ctx: Ctx): Promise<void> {
  const plan = ctx.quick ? [{ size: 64 * MiB, runs: 3 }] : [{ size: 64 * MiB, runs: 5 }, { size: GiB, runs: 3 }];
  const s = await setup({ keyed: true });
  try {
    for (const { size, runs } of plan) {
      const label = sizeLabel(size);
      const key = label.replace(' ', '');
      const name = `xfer-${key}.bin`;
      ctx.log(`transfer ${label}: generating the file, starting receivers`);
      makeFile(path.join(s.holderShare, name), size);
      // Untimed: the holder hashes the file once, as a running holder (or a restarted one, from
      // its persisted hash cache) has; otherwise the first end-to-end round would include it.
      const f = await openShared(s.holderShare, name);
      try {
        await sha256Of(f);
      } finally {
        await f.handle.close();
      }
      const r = await receiverPair(ctx, s, key);
      try {
        const idleRss = await maxRssMB(r.peer);
        const rate: Record<Mode, number[]> = { naive: [], tuned: [], http: [], peer: [], keyed: [] };
        const recvCpu: Record<Mode, number[]> = { naive: [], tuned: [], http: [], peer: [], keyed: [] };
        const sendCpu: Record<Mode, number[]> = { naive: [], tuned: [], http: [], peer: [], keyed: [] };
        const wall: number[] = [];
        const ttfb: number[] = [];
        const errors: Partial<Record<'peer' | 'keyed', string>> = {};
        const fsyncMs: number[] = [];
        const fsyncShare: number[] = [];
        for (let run = 0; run < runs; run++) {
          for (let j = 0; j < MODES.length; j++) {
            const mode = MODES[(j + run) % MODES.length]!;
            if (isPeer(mode) && errors[mode]) continue;
            let b: Batch;
            try {
              b = await runOnce(mode, r, s, [name], size);
            } catch (err) {
              // A failing download is a finding, not a reason to drop the baselines.
              if (!isPeer(mode)) throw err;
              errors[mode] = (err as Error).message;
              ctx.log(`transfer ${label}: ${SHORT[mode]} download FAILED: ${errors[mode]}`);
              continue;
            }
            const one = b.results[0]!;
            rate[mode].push(mbps(one.bytes, one.durationMs));
            recvCpu[mode].push(b.cpuMs / 1000 / (size / 1e9));
            sendCpu[mode].push(b.senderCpuMs / 1000 / (size / 1e9));
            if (mode === 'peer') {
              wall.push(mbps(one.bytes, one.wallMs!));
              ttfb.push(one.ttfbMs!);
              fsyncMs.push(one.fsyncMs!);
              fsyncShare.push((100 * one.fsyncMs!) / one.durationMs);
            }
          }
          ctx.log(`transfer ${label}: round ${run + 1}/${runs}: ${MODES.map((m) => `${m} ${rate[m].at(-1)?.toFixed(0) ?? '–'}`).join(', ')} MB/s`);
        }
        const peerError = errors.peer;
        const peerRss = await maxRssMB(r.peer);
        const plainRss = await maxRssMB(r.plain);
        const g = `transfer ${label}`;
        const id = (m: string) => `transfer.${key}.${m}`;
        for (const m of ['naive', 'tuned', 'http'] as const) ctx.report.add({ id: id(m), group: g, label: LABEL[m], short: SHORT[m], unit: 'MB/s', better: 'higher', samples: rate[m] });
        // Two windows for the peer. The baselines are timed connect → file closed, which
        // includes their connection setup and request; the like-for-like peer window is
        // end to end (download() call → verified file: search, offer, transfer, SHA-256,
        // link), so the targets use that one. The body window (ack → renamed) is shown too.
        ctx.report.add({
          id: id('peer.e2e'), group: g, label: `${LABEL.peer} end to end: download() call → verified file (search + offer + body + SHA-256 + link)${peerError ? ' — FAILED (see note)' : ''}`, short: 'peer end to end', unit: 'MB/s', better: 'higher', samples: wall,
          baselines: [id('naive'), id('http'), id('tuned')],
        });
        ctx.report.add({
          id: id('peer'), group: g, label: `${LABEL.peer} body only: ack → verified file renamed into place`, unit: 'MB/s', better: 'higher', samples: rate.peer,
          baselines: [id('naive'), id('http'), id('tuned')],
        });
        if (peerError) ctx.report.note(`transfer ${label}: the peer download failed: ${peerError}`);
        // The network key's cost: the same download, every byte inside TLS-PSK, as a ratio to the keyless peer.
        ctx.report.add({
          id: id('keyed'), group: g, label: `${LABEL.keyed}: same download, encrypted + authenticated${errors.keyed ? ' — FAILED (see note)' : ''}`, short: SHORT.keyed, unit: 'MB/s', better: 'higher', samples: rate.keyed,
          baselines: [id('peer')],
        });
        if (errors.keyed) ctx.report.note(`transfer ${label}: the keyed peer download failed: ${errors.keyed}`);
        ctx.log(`transfer ${label}: with the network key ${(ctx.report.ratio(id('keyed'), id('peer')) * 100).toFixed(0)}% of the keyless peer's rate (medians)`);
        const failed = peerError ? `download failed: ${peerError}` : undefined;
        // The peer makes each file durable before it is visible (fsync file, link, fsync folder); the baselines do not.
        ctx.report.add({ id: id('peer.fsync'), group: g, label: 'peer fsync per download (file, then folder; included in the peer rate)', unit: 'ms', better: 'lower', samples: fsyncMs });
        ctx.report.add({ id: id('peer.fsync.share'), group: g, label: 'peer fsync share of the transfer time (the baselines do no fsync)', unit: '%', better: 'lower', samples: fsyncShare });
        ctx.report.add({ id: id('peer.ttfb'), group: g, label: 'peer time to first byte (ack → first byte)', unit: 'ms', better: 'lower', samples: ttfb });
        // CPU seconds per GB moved: less sensitive to other load on the machine than MB/s.
        const cg = `${g}: CPU per GB moved (user + system; lower is better)`;
        for (const m of MODES) {
          ctx.report.add({ id: id(`${m}.cpu.recv`), group: cg, label: `${SHORT[m]}: receiving process`, unit: 's/GB', better: 'lower', samples: recvCpu[m], ...(m === 'peer' ? { baselines: [id('tuned.cpu.recv')] } : m === 'keyed' ? { baselines: [id('peer.cpu.recv')] } : {}) });
        }
        for (const m of MODES) {
          ctx.report.add({ id: id(`${m}.cpu.send`), group: cg, label: `${SHORT[m]}: sending process${m === 'peer' ? ' (holder peer)' : ''}`, unit: 's/GB', better: 'lower', samples: sendCpu[m], ...(m === 'peer' ? { baselines: [id('tuned.cpu.send')] } : m === 'keyed' ? { baselines: [id('peer.cpu.send')] } : {}) });
        }
        ctx.report.add({ id: id('peer.rss'), group: g, label: `receiving peer peak RSS (idle before: ${idleRss.toFixed(0)} MB)`, unit: 'MB', better: 'lower', samples: [peerRss] });
        ctx.report.add({ id: id('plain.rss'), group: g, label: 'baseline receiver process peak RSS (all three)', unit: 'MB', better: 'lower', samples: [plainRss] });
        // Targets on the end-to-end window (see above).
        const e2e = id('peer.e2e');
        ctx.report.target({ id: `${e2e}>=2xnaive`, text: `${label}: peer end to end ≥ 2× (a) naive TCP`, measured: ctx.report.ratio(e2e, id('naive')), required: 2, op: '>=', unit: '×', detail: failed });
        ctx.report.target({ id: `${e2e}>=1xtuned`, text: `${label}: peer end to end ≥ 1× (b) tuned TCP (1 MiB chunks, no hashing)`, measured: ctx.report.ratio(e2e, id('tuned')), required: 1, op: '>=', unit: '×', detail: failed });
        ctx.report.target({ id: `${e2e}>=2xhttp`, text: `${label}: peer end to end ≥ 2× (c) HTTP`, measured: ctx.report.ratio(e2e, id('http')), required: 2, op: '>=', unit: '×', detail: failed });
        if (size >= GiB) ctx.report.target({ id: `${id('peer.rss')}<=80`, text: `${label}: receiving peer peak RSS ≤ 80 MB`, measured: peerRss, required: 80, op: '<=', unit: 'MB', detail: failed });
      } finally {
        await r.close();
        fs.rmSync(path.join(s.holderShare, name), { force: true });
      }
    }
    if (ctx.quick) ctx.report.note('transfer: --quick runs 64 MiB only; the 1 GiB transfer and its RSS target are in the full run.');
  } finally {
    await s.close();
  }
}

/** (4) k downloads at once from one holder into one receiving peer; baseline: k tuned TCP pipes at once. */
export async function concurrentBench(ctx: Ctx): Promise<void> {
  const per = ctx.quick ? 8 * MiB : 32 * MiB;
  const runs = ctx.quick ? 2 : 3;
  const ks = [1, 4, 16];
  const s = await setup();
  try {
    ctx.log(`concurrent downloads: generating ${ks.at(-1)} files of ${sizeLabel(per)}`);
    const names = Array.from({ length: ks.at(-1)! }, (_, i) => `conc-${String(i).padStart(2, '0')}.bin`);
    for (const n of names) makeFile(path.join(s.holderShare, n), per);
    const r = await receiverPair(ctx, s, 'concurrent');
    try {
      // Untimed: the holder hashes each file on its first offer and caches the hash.
      await runOnce('peer', r, s, names, per);
      for (const k of ks) {
        const agg: Record<'peer' | 'tuned', number[]> = { peer: [], tuned: [] };
        for (let run = 0; run < runs; run++) {
          for (const mode of run % 2 === 0 ? (['peer', 'tuned'] as const) : (['tuned', 'peer'] as const)) {
            const b = await runOnce(mode, r, s, names.slice(0, k), per);
            agg[mode].push(mbps(k * per, b.spanMs));
          }
        }
        ctx.log(`concurrent ${k}: peer ${agg.peer.map((x) => x.toFixed(0)).join('/')} MB/s, tuned TCP ${agg.tuned.map((x) => x.toFixed(0)).join('/')} MB/s`);
        const g = `concurrent downloads (${sizeLabel(per)} each, aggregate)`;
        ctx.report.add({ id: `concurrent.${k}.tuned`, group: g, label: `${k} × (b) tuned TCP pipe at once`, short: `${k} × tuned TCP`, unit: 'MB/s', better: 'higher', samples: agg.tuned });
        const base = ctx.report.get('concurrent.1.peer');
        ctx.report.add({
          id: `concurrent.${k}.peer`, group: g, label: `${k} × peer download at once`, short: `${k} × peer`, unit: 'MB/s', better: 'higher', samples: agg.peer,
          baselines: [`concurrent.${k}.tuned`, ...(k > 1 && base ? ['concurrent.1.peer'] : [])],
        });
      }
      ctx.report.target({ id: 'concurrent.4.peer>=0.9x1', text: `4 downloads at once from one holder: aggregate ≥ 0.9× one download (${sizeLabel(per)} each)`, measured: ctx.report.ratio('concurrent.4.peer', 'concurrent.1.peer'), required: 0.9, op: '>=', unit: '×' });
      const rss = await maxRssMB(r.peer);
      ctx.report.add({ id: 'concurrent.peer.rss', group: `concurrent downloads (${sizeLabel(per)} each, aggregate)`, label: 'receiving peer peak RSS', unit: 'MB', better: 'lower', samples: [rss] });
      ctx.report.note('concurrent: one untimed round first lets the holder hash and cache each file (as it would after its first upload).');
    } finally {
      await r.close();
    }
  } finally {
    await s.close();
  }
}
