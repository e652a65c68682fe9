/**
 * The process runner's peer with faults: exactly the production main
 * (core/bin/run-peer.ts, as core/bin/peer-main.ts runs it), its transport
 * wrapped by this process's fault plane and its clock and share store by a
 * node fault handle (testnet/fault-factories.ts), and the harness's fault
 * side channel served on fd 3 (testnet/fault-channel.ts). Started only by
 * scenarios/lib/runner-process.ts; nothing of it is in the peer.
 */
import { runPeer } from '../core/bin/run-peer.ts';
import { realClock } from '../core/clock.ts';
import { serveFaultChannel } from './fault-channel.ts';
import { makeNodeFaults, makePlane } from './fault-factories.ts';

const plane = makePlane(realClock);
const node = makeNodeFaults(realClock);
try {
  serveFaultChannel({ plane, node, hasStore: true });
} catch (err) {
  process.stderr.write(`faulty-peer-main: ${(err as Error).message}\n`);
  process.exit(2);
}
runPeer({ transport: (inner, id) => plane.transportFor(id, inner), clock: node.clock, store: (s) => node.wrapStore(s) });
