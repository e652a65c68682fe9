/**
 * The process runner's metaserver with faults: exactly the production main
 * (core/bin/run-metaserver.ts, as core/bin/metaserver-main.ts runs it), its
 * transport wrapped by this process's fault plane (as node META) and its
 * clock by a node fault handle (testnet/fault-factories.ts), and the
 * harness's fault side channel served on fd 3 (testnet/fault-channel.ts).
 * Started only by scenarios/lib/runner-process.ts.
 */
import { runMetaserver } from '../core/bin/run-metaserver.ts';
import { META } from '../scenarios/lib/faults.ts';
import { startFaultyNode } from './fault-channel.ts';

const { plane, node } = startFaultyNode('faulty-metaserver-main', false);
runMetaserver({ transport: (inner) => plane.transportFor(META, inner), clock: node.clock });
