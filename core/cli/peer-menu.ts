/**
 * The interactive peer a person runs (the original's menu): 1 register,
 * 2 download, 3 topology, 4 leave and exit, plus 5 my files, 6 search,
 * h help. Choices are read one line at a time, so a pipe works as well as a
 * keyboard (no prompts or colours then). Unprompted happenings (children
 * joining, repairs, uploads, log lines) print one line each.
 *
 * The peer leaves gracefully (neighbours and metaserver told) on 4, on
 * Ctrl-C / SIGTERM, and when the input ends. Without a terminal, a failed
 * register exits 1 with its reason on stderr, since the scripted steps after
 * it cannot work; with --auto-join a failed join exits 1 likewise.
 */
import { describeError } from '../errors.ts';
import { addrKey } from '../protocol/messages.ts';
import { probe } from '../metaserver/client.ts';
import type { Peer } from '../peer/peer.ts';
import type { PeerConfig } from '../control/peer-args.ts';
import { die, onSignals, within } from '../control/process.ts';
import { LEAVE_TIMEOUT_MS } from '../control/peer-control.ts';
import { formatMs, formatTransfer, keyNote, metaserverCommand, plural, who } from './format.ts';
import { askName, download, files, register, search, topology, type MenuCtx } from './peer-actions.ts';
import { DownloadBar } from './progress.ts';
import { Term } from './term.ts';
import { exitAfterOutput } from '../stdout.ts';

const MENU = [
  '  1  register and join the overlay',
  '  2  download a file',
  '  3  show the overlay topology',
  '  4  leave gracefully and exit',
  '  5  list my files',
  '  6  search without downloading',
  '  h  help',
].join('\n');

const HELP = `${MENU}

Words work too: register (r, join), download (d, get), topology (t, topo),
leave (q, quit, exit: on a terminal these ask first), files (f, ls),
search (s, find), help (?).
File names are all lowercase and typed in full (pwd1.txt, not pwd1).
A download searches every peer; the file arrives in the share folder only
after its size and SHA-256 match. Ctrl-C at a file-name prompt cancels it;
at the menu it leaves gracefully, like 4.`;

/** Short words that leave: easy to type by mistake, so on a terminal they ask first. */
const ASK_BEFORE_LEAVING = new Set(['q', 'quit', 'exit']);

/** Whether `line` (a leave choice) really leaves: on a terminal, q / quit / exit ask "leave the overlay? [y/N]" first. */
export async function confirmLeave(term: Term, line: string): Promise<boolean> {
  if (!term.tty || !ASK_BEFORE_LEAVING.has(line.toLowerCase())) return true;
  const answer = await term.ask('leave the overlay? [y/N] ', { cancellable: true });
  return answer === null || /^y(es)?$/i.test(answer);
}

const CHOICES: Record<string, string> = {
  '1': 'register', register: 'register', join: 'register', r: 'register',
  '2': 'download', download: 'download', get: 'download', d: 'download',
  '3': 'topology', topology: 'topology', topo: 'topology', t: 'topology',
  '4': 'leave', leave: 'leave', quit: 'leave', exit: 'leave', q: 'leave',
  '5': 'files', files: 'files', ls: 'files', f: 'files',
  '6': 'search', search: 'search', find: 'search', s: 'search',
  h: 'help', help: 'help', '?': 'help', '0': 'help',
};

export async function runPeerMenu(peer: Peer, cfg: PeerConfig): Promise<void> {
  const term = new Term();
  const s = term.style;
  const c: MenuCtx = { peer, term, s, liveHits: false, leaving: false, bar: new DownloadBar(term) };
  let leaving: Promise<never> | undefined;
  const leave = (why: string): Promise<never> =>
    (leaving ??= (async () => {
      c.leaving = true;
      c.bar.stop();
      term.endPrompt();
      const joined = peer.joined;
      term.say(joined ? `leaving (${why}): telling neighbours and the metaserver …` : `stopping (${why})`);
      try {
        await within(peer.leave(), LEAVE_TIMEOUT_MS, 'leaving');
      } catch (err) {
        term.say(s.yellow(`could not leave cleanly: ${describeError(err)}`));
        await peer.stop().catch(() => undefined);
      }
      term.say(joined ? `${peer.id} left the overlay. Bye.` : `${peer.id} stopped (it had not joined the overlay). Bye.`);
      term.close();
      return exitAfterOutput(0);
    })());
  // Before anything is printed: a Ctrl-C the moment the menu shows (or a harness that waits for
  // the menu and then signals) is a graceful stop, not the default kill.
  onSignals((sig) => void leave(sig));
  term.onInterrupt(() => void leave('Ctrl-C'));
  const nFiles = await peer.files().then((f) => f.length, () => 0);
  term.say(s.bold(`treeshare peer ${peer.id} on ${addrKey(peer.address)}, sharing ${peer.opts.share} (${plural(nFiles, 'file')}), metaserver ${addrKey(peer.opts.meta)}${keyNote(!!cfg.options.networkKey)}`));
  term.say(MENU);
  printEvents(c);

  if (cfg.autoJoin) {
    const failed = await register(c);
    if (failed) {
      await peer.stop().catch(() => undefined);
      die(failed);
    }
  }
  if (!cfg.autoJoin && term.tty) {
    void probe(peer.transport, peer.opts.meta).then((ok) => {
      if (!ok && !peer.joined) term.say(s.yellow(`note: no metaserver answers at ${addrKey(peer.opts.meta)} yet (start one with: ${metaserverCommand(peer.opts.meta)})`));
    }, () => undefined);
  }

  for (;;) {
    const line = await term.ask(`${peer.id} [1-6, h]> `);
    if (line === null) return void (await leave('end of input'));
    if (line === '') continue;
    const choice = CHOICES[line.toLowerCase()];
    if (!choice) {
      term.say(`unknown choice "${line}": type 1-6, or h for help`);
      continue;
    }
    if ((choice === 'download' || choice === 'search' || choice === 'topology') && !peer.joined) {
      term.say(s.yellow('not registered yet: choose 1 to register and join the overlay first'));
      continue;
    }
    switch (choice) {
      case 'register': {
        const failed = await register(c);
        if (failed && !term.tty) {
          await peer.stop().catch(() => undefined);
          die(failed);
        }
        break;
      }
      case 'download': {
        const name = await askName(c, 'download');
        if (name) await download(c, name);
        break;
      }
      case 'search': {
        const name = await askName(c, 'search for');
        if (name) await search(c, name);
        break;
      }
      case 'topology':
        await topology(c);
        break;
      case 'files':
        await files(c);
        break;
      case 'help':
        term.say(HELP);
        break;
      case 'leave':
        if (!(await confirmLeave(term, line))) break;
        return void (await leave('menu 4'));
    }
  }
}

/** One line per log entry and per event a person should know about. */
function printEvents(c: MenuCtx): void {
  const { peer, term, s } = c;
  const info = (m: string) => term.say(s.dim(`[info] ${m}`));
  peer.on('log', (l) => (l.level === 'warn' ? term.say(s.yellow(`[warn] ${l.message}`)) : info(l.message)));
  peer.on('referral', (r) => term.say(r ? `metaserver referral: ${who(r)}` : `metaserver referral: none, the overlay is empty (${peer.id} becomes the root)`));
  peer.on('redirect', ({ from, to }) => term.say(`redirected: ${who(from)} has no free child slot, trying its child ${who(to)}`));
  peer.on('child-joined', (ch) => info(`child ${who(ch)} joined`));
  // One line per repair, when it is done (a graceful parent leave is announced only here).
  peer.on('repaired', (r) => {
    const why = r.cause === 'parent-left' ? `parent ${r.lost} left` : r.cause === 'parent-crashed' ? `parent ${r.lost} was lost` : `${r.cause} (${r.lost})`;
    info(r.newParent ? `${why}; reattached under ${who(r.newParent)}${r.ms !== null ? ` in ${formatMs(r.ms)}` : ''}` : `${why}; this peer is the new root`);
  });
  peer.on('hit', (h) => c.liveHits && term.say(`found at ${who(h.holder)}, ${plural(h.holder.hops, 'hop')} away`));
  peer.on('progress', (p) => c.bar.update(p.name, p.bytes, p.size));
  peer.on('resume', (r) => term.say(`resuming ${r.name} at ${r.percent}% (${r.pieces} of ${r.of} pieces verified on disk)`));
  peer.on('uploaded', (u) => info(`sent ${u.name} to ${u.to}: ${formatTransfer(u.bytes, u.durationMs)}`));
}
