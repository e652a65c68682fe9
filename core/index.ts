/** treeshare core: the public surface scenarios, the CLI and tests build on. */
export * from './errors.ts';
export { Peer } from './peer/peer.ts';
export type * from './peer/types.ts';
export { Metaserver, type MetaserverOptions, type MetaserverEvents } from './metaserver/metaserver.ts';
export { metaStatus, probe, request } from './metaserver/client.ts';
export { tcpTransport, type TcpOptions } from './transport/tcp.ts';
export { MemoryNetwork, memoryPair, DEFAULT_WINDOW_BYTES, type LinkShape, type MemoryNetworkOptions } from './transport/memory.ts';
export { realClock, SimClock, deadline, type Clock, type TimerHandle, type SimRunOptions } from './clock.ts';
export type { Transport, HostPort, Listener } from './transport/transport.ts';
export { Connection, type ConnectionOptions, type FrameCounts } from './transport/connection.ts';
export { PROTOCOL_VERSION, addrKey, type Message, type PeerRef, type TopoNode, type RegistryEntry, type Hit } from './protocol/messages.ts';
export { POLICIES, isPolicy, type Policy } from './protocol/referral.ts';
export { checkFileName } from './protocol/names.ts';
export { mulberry32 } from './protocol/rng.ts';
export { renderTree, treeFromNodes, type TreeView } from './peer/render.ts';
export { keyedTransport, parseKey, generateKey, AuthError, MIN_KEY_BYTES } from './transport/auth.ts';
export { FsStore, MemoryShares, MemoryStore, MemoryContent, type ShareStore, type StoreFile, type TempFile } from './transfer/store.ts';
