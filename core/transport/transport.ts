/**
 * The transport seam: how the peer and metaserver get Connections. tcp.ts is
 * the only module that touches node:net; memory.ts gives in-process pairs
 * with the same behaviour for tests and very large simulations.
 */
import type { HostPortLike } from '../protocol/messages.ts';
import type { ByteLink, Connection, ConnectionOptions } from './connection.ts';

/** host:port; the protocol's own address type. */
export type HostPort = HostPortLike;

export interface ListenOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  onConnection: (conn: Connection) => void;
  connection?: ConnectionOptions;
  /** Most simultaneous accepted connections; later ones are refused. Default 10,000. */
  maxConnections?: number;
}

export interface Listener {
  readonly address: HostPort;
  /** Stops accepting; existing connections are left to their owners. */
  close(): Promise<void>;
}

export interface ConnectOptions {
  signal?: AbortSignal;
  connection?: ConnectionOptions;
  /** Local address to bind the outgoing socket to (so traffic leaves from the peer's own host). */
  localHost?: string;
  /**
   * Builds the Connection over `wrapLink(link)` instead of the transport's own
   * link, once it is connected (after the TLS handshake when keyed): a harness
   * can put a link of its own between the peer and the wire (the fault plane
   * of scenarios/lib/fault-plane.ts). Absent: nothing is wrapped, nothing costs.
   */
  wrapLink?(link: ByteLink): ByteLink;
}

export interface Transport {
  readonly kind: 'tcp' | 'memory';
  listen(opts: ListenOptions): Promise<Listener>;
  connect(to: HostPort, opts?: ConnectOptions): Promise<Connection>;
  /** The same transport with every connection inside TLS-PSK (see auth.ts); absent where TLS cannot run. */
  withPsk?(psk: Buffer): Transport;
}
