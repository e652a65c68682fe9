/**
 * The process runner's peer with faults: exactly the production main
 * (core/bin/run-peer.ts, as core/bin/peer-main.ts runs it), its transport
 * wrapped by this process's fault plane and its clock and share store by a
 * node fault handle (testnet/fault-factories.ts), and the harness's fault
 * side channel served on fd 3 (testnet/fault-channel.ts). Started only by
 * scenarios/lib/runner-process.ts; nothing of it is in the peer.
 */
import { runPeer } from '../core/bin/run-peer.ts';
import { startFaultyNode } from './fault-channel.ts';

const { plane, node } = startFaultyNode('faulty-peer-main', true);
runPeer({ transport: (inner, id) => plane.transportFor(id, inner), clock: node.clock, store: (s) => node.wrapStore(s) });
