/**
 * Short request/response exchanges: one connection, one opener, one answer,
 * close. Used by peers to talk to the metaserver (register, announce, leave),
 * by anyone for `status`, and by the metaserver to probe a peer's liveness.
 */
import { TreeshareError } from '../errors.ts';
import { PROTOCOL_VERSION, type HostPortLike, type Message, type MessageType, type Msg, type RegistryEntry } from '../protocol/messages.ts';
import { nextMessage, withTimeout } from '../transport/connection.ts';
import type { Transport } from '../transport/transport.ts';

export interface RequestOptions {
  signal?: AbortSignal;
  /** Default 5,000 ms. */
  timeoutMs?: number;
  localHost?: string;
  maxFrameBytes?: number;
}

export async function request<T extends MessageType>(transport: Transport, to: HostPortLike, msg: Message, expect: readonly T[], opts: RequestOptions = {}): Promise<Msg<T>> {
  const signal = withTimeout(opts.signal, opts.timeoutMs ?? 5000);
  const conn = await transport.connect(to, { signal, localHost: opts.localHost, connection: { maxFrameBytes: opts.maxFrameBytes } });
  try {
    const reply = nextMessage(conn, expect, { signal });
    conn.send(msg);
    return await reply;
  } finally {
    conn.end();
  }
}


/** The metaserver's registry. */
export async function metaStatus(transport: Transport, meta: HostPortLike, opts: RequestOptions = {}): Promise<RegistryEntry[]> {
  const r = await request(transport, meta, { t: 'status', v: PROTOCOL_VERSION }, ['registry'], { maxFrameBytes: 256 * 1024 * 1024, ...opts });
  return r.peers;
}

/** Tells the metaserver that peer `id` is gone (itself leaving, or a neighbour found dead). */
export async function metaLeave(transport: Transport, meta: HostPortLike, id: string, opts: RequestOptions = {}): Promise<void> {
  await request(transport, meta, { t: 'leave', v: PROTOCOL_VERSION, id }, ['ok'], { timeoutMs: 2000, ...opts });
}

/** True when something answers `pong` at `addr` within the timeout. */
export async function probe(transport: Transport, addr: HostPortLike, opts: RequestOptions = {}): Promise<boolean> {
  try {
    await request(transport, addr, { t: 'ping', v: PROTOCOL_VERSION, n: 0 }, ['pong'], { timeoutMs: 1500, ...opts });
    return true;
  } catch (err) {
    if (err instanceof TreeshareError && err.code === 'aborted') throw err;
    return false;
  }
}
