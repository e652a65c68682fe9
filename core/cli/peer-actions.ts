/**
 * What each peer menu choice does and prints: register (referral, each
 * redirect, the parent), download (hits, progress bar, final line or a
 * definite not-found), topology, my files, search. Failures print one line
 * and return false; the menu carries on.
 */
import { describeError, NotFoundError, notFoundLine, type TreeshareError } from '../errors.ts';
import { joinFailure } from '../control/peer-control.ts';
import { addrKey } from '../protocol/messages.ts';
import { checkFileName } from '../protocol/names.ts';
import type { Peer } from '../peer/peer.ts';
import { renderTree } from '../peer/render.ts';
import { formatBytes, formatMs, formatTransfer, plural, who, type Style } from './format.ts';
import { DownloadBar } from './progress.ts';
import type { Term } from './term.ts';

export interface MenuCtx {
  peer: Peer;
  term: Term;
  s: Style;
  /** Print `hit` events as they arrive (during a download). */
  liveHits: boolean;
  /** Set once the peer is leaving: late failures of aborted actions are not printed. */
  leaving: boolean;
  bar: DownloadBar;
}

/** Joins, printing the referral (via events), each redirect and the parent. Resolves null, or the failure (printed on a terminal). */
export async function register(c: MenuCtx): Promise<TreeshareError | null> {
  const { peer, term, s } = c;
  if (peer.joined) {
    const st = peer.state();
    term.say(st.parent ? `already joined: parent ${who(st.parent)}, depth ${st.depth}` : 'already joined: this peer is the root of the overlay');
    return null;
  }
  term.say(`registering ${peer.id} (${addrKey(peer.address)}) with the metaserver at ${addrKey(peer.opts.meta)} …`);
  try {
    const t = await peer.join();
    const redirects = t.redirects.length ? `, after ${plural(t.redirects.length, 'redirect')}` : '';
    if (t.parent) term.say(s.green(`joined the overlay: parent ${who(t.parent)}, depth ${t.depth}${redirects}, in ${formatMs(t.totalMs)}`));
    else term.say(s.green(`joined the overlay as its root (first peer), in ${formatMs(t.totalMs)}`));
    return null;
  } catch (err) {
    const e = joinFailure(peer, err);
    if (!c.leaving && term.tty) term.say(s.red(describeError(e)));
    return e;
  }
}

/** Asks for a file name until it is usable: uppercase letters are refused and asked again, as in the original. Null: cancelled or input ended. */
export async function askName(c: MenuCtx, what: string): Promise<string | null> {
  const { term, s } = c;
  for (;;) {
    const name = await term.ask(`file name to ${what}: `, { cancellable: true });
    if (name === null) return null;
    if (name === '') {
      term.say('cancelled: back to the menu');
      return null;
    }
    if (name !== name.toLowerCase()) {
      term.say(s.yellow(`file names are all lowercase: "${name}" has uppercase letters; type the name again`));
      continue;
    }
    const ok = checkFileName(name);
    if (!ok.ok) {
      term.say(s.yellow(`cannot use "${name}": ${ok.reason}; type the name again`));
      continue;
    }
    return name;
  }
}

export async function download(c: MenuCtx, name: string): Promise<boolean> {
  const { peer, term, s } = c;
  // Checked here, before any flood: the download itself refuses to overwrite, but only after a search the person would wait for.
  const mine = await peer.files().catch(() => []);
  const have = mine.find((f) => f.name === name);
  if (have) {
    term.say(s.yellow(`you already have ${name} (${peer.opts.share}/${name}, ${formatBytes(have.size)}): nothing to download; delete it first to fetch it again`));
    return false;
  }
  term.say(`searching the overlay for ${name} …`);
  c.liveHits = true;
  c.bar.begin();
  try {
    const r = await peer.download(name);
    c.bar.stop();
    const used = r.swarm?.sources.filter((x) => x.pieces > 0) ?? [];
    const fromWho = used.length > 1 ? `${used.length} holders (${used.map((x) => `${x.id}: ${x.pieces}`).join(', ')} pieces)` : who(r.holder);
    term.say(s.green(`downloaded ${name} from ${fromWho}: ${formatTransfer(r.bytes, r.durationMs)}, SHA-256 verified`));
    term.say(`saved as ${peer.opts.share}/${name} (search ${formatMs(r.search.completionMs)}, ${plural(r.search.reached, 'peer')} searched)`);
    return true;
  } catch (err) {
    c.bar.stop();
    if (c.leaving) return false;
    if (err instanceof NotFoundError) term.say(s.yellow(notFoundLine(name, err.searched, err.missing)));
    else term.say(s.red(`download failed: ${describeError(err)}`));
    return false;
  } finally {
    c.liveHits = false;
  }
}

export async function search(c: MenuCtx, name: string): Promise<boolean> {
  const { peer, term, s } = c;
  try {
    const r = await peer.search(name);
    const searched = `searched ${plural(r.reached, 'peer')} in ${formatMs(r.completionMs)}`;
    if (r.hits.length === 0) term.say(s.yellow(notFoundLine(name, r.reached, r.missing, { detail: ` in ${formatMs(r.completionMs)}` })));
    else {
      term.say(s.green(`${name} is at ${plural(r.hits.length, 'peer')} (${searched}):`));
      for (const h of r.hits) term.say(`  ${who(h)}  ${formatBytes(h.size)}  ${plural(h.hops, 'hop')} away${h.id === peer.id ? '  (this peer)' : ''}`);
      if (r.missing.length) term.say(s.yellow(`no answer from ${r.missing.join(', ')}: there may be more holders`));
    }
    return true;
  } catch (err) {
    if (!c.leaving) term.say(s.red(`search failed: ${describeError(err)}`));
    return false;
  }
}

export async function topology(c: MenuCtx): Promise<boolean> {
  const { peer, term, s } = c;
  try {
    const r = await peer.topo();
    const state = r.complete ? 'complete' : s.yellow(`incomplete: no answer from ${r.missing.join(', ')}`);
    term.say(`overlay topology: ${plural(r.nodes.length, 'peer')}, ${state} (${formatMs(r.completionMs)})`);
    const me = `${peer.id}  ${addrKey(peer.address)}  `;
    for (const line of renderTree(r.nodes).split('\n')) {
      const mine = line.replace(/^[\s│├└─]*/, '').startsWith(me);
      term.say(`  ${mine ? s.bold(line) + '   ← this peer' : line}`);
    }
    return true;
  } catch (err) {
    if (!c.leaving) term.say(s.red(`topology failed: ${describeError(err)}`));
    return false;
  }
}

export async function files(c: MenuCtx): Promise<boolean> {
  const { peer, term } = c;
  try {
    const list = await peer.files();
    term.say(`${peer.opts.share}: ${plural(list.length, 'file')} shared`);
    const w = Math.max(0, ...list.map((f) => f.name.length));
    for (const f of list) term.say(`  ${f.name.padEnd(w)}  ${formatBytes(f.size)}`);
    return true;
  } catch (err) {
    term.say(c.s.red(`cannot list files: ${describeError(err)}`));
    return false;
  }
}
