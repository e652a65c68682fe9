/**
 * The peer's JSON-lines control mode (docs/CONTROL.md): commands
 * on stdin, one JSON event per line on stdout and nothing else there.
 *
 * First line: `ready`. Each command's result carries the command's `id`.
 * Unprompted events: hit, progress (at most one per PROGRESS_EVERY_MS per
 * download, and always the last), child-joined, child-left, parent-lost,
 * repaired, uploaded, log. `leave`, SIGINT/SIGTERM and the end of stdin all
 * leave gracefully, emit `left` and exit 0.
 */
import { errorCode, MetaserverUnreachableError, searchAnswer, TreeshareError, UnreachableError } from '../errors.ts';
import { addrKey } from '../protocol/messages.ts';
import type { Peer } from '../peer/peer.ts';
import { renderTree } from '../peer/render.ts';
import type { JoinTimeline, SearchResult } from '../peer/types.ts';
import { errorEvent, serveCommands } from './commands.ts';
import type { PeerConfig } from './peer-args.ts';
import { die, emit as emitAny, onSignals, within } from './process.ts';
import { exitAfterOutput } from '../stdout.ts';
import { PeerCommand, type CommandId, type EventOf, type PeerEvent } from './schema.ts';

/** Every line the peer prints is one of these (core/control/schema.ts). */
const emit = (e: PeerEvent) => emitAny(e);

/** Least time between two `progress` events of one download, ms. */
export const PROGRESS_EVERY_MS = 100;
/** A graceful leave that takes longer than this is cut short, ms. */
export const LEAVE_TIMEOUT_MS = 5000;

/** A failed join as one line that says which step failed (the metaserver, or the overlay); decided by error class, never by message text. */
export function joinFailure(peer: Peer, err: unknown): TreeshareError {
  const meta = addrKey(peer.opts.meta);
  let line: string;
  if (err instanceof MetaserverUnreachableError) {
    line = `the metaserver at ${meta} is unreachable: ${err.cause instanceof UnreachableError ? err.cause.reason : err.detail}`;
  } else if (err instanceof UnreachableError && err.where === meta) {
    line = `the metaserver at ${meta} is unreachable: ${err.reason}`;
  } else {
    line = `cannot join the overlay: ${err instanceof Error ? err.message : String(err)}`;
  }
  return new TreeshareError(errorCode(err), line, { cause: err });
}

export function joinedEvent(t: JoinTimeline): EventOf<PeerEvent, 'joined'> {
  return { event: 'joined', timeline: t, parent: t.parent, depth: t.depth };
}

/** Runs the control mode on a started peer until it leaves. */
/** The `searched` event: the result with `complete` (no subtree missing) and the answer in words (both added fields). */
export function searchedEvent(r: SearchResult): EventOf<PeerEvent, 'searched'> {
  return { event: 'searched', result: { ...r, complete: r.missing.length === 0 }, answer: searchAnswer(r) };
}

export async function runPeerControl(peer: Peer, cfg: PeerConfig): Promise<void> {

  let leaving: Promise<never> | undefined;
  const leaveAndExit = (id?: CommandId): Promise<never> =>
    (leaving ??= (async () => {
      try {
        await within(peer.leave(), LEAVE_TIMEOUT_MS, 'leaving');
      } catch (err) {
        emit(errorEvent(err, { cmd: 'leave' }));
        await peer.stop().catch(() => undefined);
      }
      emit({ event: 'left', ...(id !== undefined ? { id } : {}) });
      return exitAfterOutput(0);
    })());

  // Before `ready`: a driver that signals as soon as it reads `ready` gets a graceful leave, not the default kill.
  onSignals(() => void leaveAndExit());
  const a = peer.address;
  emit({ event: 'ready', peer: peer.id, host: a.host, port: a.port, share: peer.opts.share, meta: addrKey(peer.opts.meta), pid: process.pid });
  forwardEvents(peer);

  const run = async (c: PeerCommand): Promise<PeerEvent> => {
    switch (c.cmd) {
      case 'join':
        return joinedEvent(await peer.join());
      case 'search':
        return searchedEvent(await peer.search(c.name));
      case 'download':
        return { event: 'downloaded', result: await peer.download(c.name) };
      case 'topo': {
        const result = await peer.topo();
        return { event: 'topo', result, text: renderTree(result.nodes) };
      }
      case 'status':
        return { event: 'status', state: peer.state(), frames: peer.wireFrames().sent };
      case 'files':
        return { event: 'files', files: await peer.files() };
      case 'leave':
        return leaveAndExit(c.id);
    }
  };
  // --auto-join completes before the first command is read (stdin waits in its pipe meanwhile).
  if (cfg.autoJoin) {
    try {
      emit(joinedEvent(await peer.join()));
    } catch (err) {
      await peer.stop().catch(() => undefined);
      die(joinFailure(peer, err));
    }
  }
  serveCommands({ input: process.stdin, schema: PeerCommand, run, onEnd: () => void leaveAndExit() });
}

function forwardEvents(peer: Peer): void {
  const lastProgress = new Map<string, number>();
  peer.on('hit', (h) => emit({ event: 'hit', qid: h.qid, name: h.name, holder: h.holder }));
  peer.on('progress', (p) => {
    const now = performance.now();
    const last = lastProgress.get(p.qid);
    const done = p.bytes >= p.size;
    if (!done && last !== undefined && now - last < PROGRESS_EVERY_MS) return;
    if (done) lastProgress.delete(p.qid);
    else {
      if (lastProgress.size > 1000) lastProgress.clear();
      lastProgress.set(p.qid, now);
    }
    emit({ event: 'progress', qid: p.qid, name: p.name, bytes: p.bytes, size: p.size });
  });
  peer.on('resume', (r) => emit({ event: 'resuming', ...r }));
  peer.on('child-joined', (c) => emit({ event: 'child-joined', child: c }));
  peer.on('child-left', (c) => emit({ event: 'child-left', child: c.id, reason: c.reason }));
  peer.on('parent-lost', (c) => emit({ event: 'parent-lost', parent: c.id, reason: c.reason }));
  peer.on('repaired', (record) => emit({ event: 'repaired', record }));
  peer.on('uploaded', (u) => emit({ event: 'uploaded', ...u }));
  peer.on('log', (l) => emit({ event: 'log', level: l.level, message: l.message }));
}
