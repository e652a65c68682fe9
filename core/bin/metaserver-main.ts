/**
 * Entry point: `npm run metaserver -- [options]` (see --help). Without
 * --json a person sees its address and one line per register/leave/drop;
 * with --json it speaks the control protocol of docs/CONTROL.md. Without a
 * token key (`--token-key-file none`) it warns on stderr, in both modes.
 * The main itself is core/bin/run-metaserver.ts.
 */
import { runMetaserver } from './run-metaserver.ts';

runMetaserver();
