/**
 * The peer command's main (core/bin/peer-main.ts calls it as is). `seams`
 * lets a caller hand the peer its transport, clock and share store through
 * PeerOptions, the same seams an in-process caller of `new Peer` has; the
 * command itself passes none.
 */
import { runPeerMenu } from '../cli/peer-menu.ts';
import { Peer } from '../peer/peer.ts';
import { parsePeerArgs, PEER_HELP } from '../control/peer-args.ts';
import { runPeerControl } from '../control/peer-control.ts';
import { runMain, setJsonMode } from '../control/process.ts';
import type { Clock } from '../clock.ts';
import { FsStore, type ShareStore } from '../transfer/store.ts';
import { tcpTransport } from '../transport/tcp.ts';
import type { Transport } from '../transport/transport.ts';

export interface PeerSeams {
  /** Wraps the transport the peer would use (TCP, shaped by --latency/--bandwidth); `id` is the peer's. */
  transport?(inner: Transport, id: string): Transport;
  clock?: Clock;
  /** Wraps the store of the peer's share folder. */
  store?(inner: ShareStore): ShareStore;
}

export function runPeer(seams: PeerSeams = {}): void {
  runMain('peer', async () => {
    const argv = process.argv.slice(2);
    setJsonMode(argv.includes('--json'));
    const cfg = parsePeerArgs(argv);
    if (cfg.help) {
      process.stdout.write(PEER_HELP);
      return;
    }
    const o = cfg.options;
    if (seams.transport) o.transport = seams.transport(o.transport ?? tcpTransport(), o.id);
    if (seams.clock) o.clock = seams.clock;
    if (seams.store) o.store = seams.store(new FsStore(o.share));
    const peer = new Peer(o);
    await peer.start();
    if (cfg.json) await runPeerControl(peer, cfg);
    else await runPeerMenu(peer, cfg);
  });
}
