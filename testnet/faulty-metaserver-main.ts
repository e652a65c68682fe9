/**
 * The process runner's metaserver with faults: exactly the production main
 * (core/bin/run-metaserver.ts, as core/bin/metaserver-main.ts runs it), its
 * transport wrapped by this process's fault plane (as node META) and its
 * clock by a node fault handle (testnet/fault-factories.ts), and the
 * harness's fault side channel served on fd 3 (testnet/fault-channel.ts).
 * Started only by scenarios/lib/runner-process.ts.
 */
import { runMetaserver } from '../core/bin/run-metaserver.ts';
import { realClock } from '../core/clock.ts';
import { META } from '../scenarios/lib/faults.ts';
import { serveFaultChannel } from './fault-channel.ts';
import { makeNodeFaults, makePlane } from './fault-factories.ts';

const plane = makePlane(realClock);
const node = makeNodeFaults(realClock);
try {
  serveFaultChannel({ plane, node, hasStore: false });
} catch (err) {
  process.stderr.write(`faulty-metaserver-main: ${(err as Error).message}\n`);
  process.exit(2);
}
runMetaserver({ transport: (inner) => plane.transportFor(META, inner), clock: node.clock });
