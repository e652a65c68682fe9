/**
 * Entry point: `npm run peer -- -i S1 [options]` (see --help). Without
 * --json it runs the interactive menu (core/cli/peer-menu.ts); with --json
 * the control protocol of docs/CONTROL.md (core/control/peer-control.ts).
 * The main itself is core/bin/run-peer.ts.
 */
import { runPeer } from './run-peer.ts';

runPeer();
