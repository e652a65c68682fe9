/**
 * Entry point: `npm run peer -- -i S1 [options]` (see --help). Without
 * --json it runs the interactive menu (core/cli/peer-menu.ts); with --json
 * the control protocol of docs/CONTROL.md (core/control/peer-control.ts).
 */
import { runPeerMenu } from '../cli/peer-menu.ts';
import { Peer } from '../peer/peer.ts';
import { parsePeerArgs, PEER_HELP } from '../control/peer-args.ts';
import { runPeerControl } from '../control/peer-control.ts';
import { runMain, setJsonMode } from '../control/process.ts';

runMain('peer', async () => {
  const argv = process.argv.slice(2);
  setJsonMode(argv.includes('--json'));
  const cfg = parsePeerArgs(argv);
  if (cfg.help) {
    process.stdout.write(PEER_HELP);
    return;
  }
  const peer = new Peer(cfg.options);
  await peer.start();
  if (cfg.json) await runPeerControl(peer, cfg);
  else await runPeerMenu(peer, cfg);
});
