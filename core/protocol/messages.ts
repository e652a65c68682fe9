/**
 * Every message treeshare sends, as one discriminated union on `t`.
 *
 * Wire format: one JSON object per line (UTF-8, terminated by "\n"), at most
 * `maxFrameBytes` (default 64 KiB) per line. The first message on every
 * connection is an *opener* (register, announce, leave, status, join, offer,
 * ping) and carries `v`, the protocol version; a receiver speaking another
 * version answers `error` with code `version-mismatch` and closes.
 *
 * After an `offer` has been acked, the connection stops carrying frames and
 * carries exactly `size` raw bytes of the file (see core/transfer).
 */
import { z } from 'zod';

/** 2: swarm downloads (swarm-open / manifest / want, see docs/SWARM.md). */
export const PROTOCOL_VERSION = 2;

/** Peer ids: 1–64 chars, letters, digits, `_`, `-`, `.`; must start with a letter or digit. */
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Hosts: IPv4 dotted quad, `[v6]`-less IPv6 literal, or a DNS name. */
export const HOST_RE = /^(?:[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*|[0-9A-Fa-f:.]{2,45})$/;

export const Id = z.string().regex(ID_RE, 'peer id must be 1-64 of [A-Za-z0-9_.-], starting with a letter or digit');
export const Host = z.string().max(253).regex(HOST_RE, 'not a host name or IP address');
export const Port = z.number().int().min(1).max(65535);
const Count = z.number().int().min(0).max(1e9);
/** Query ids: 1-64 of [A-Za-z0-9_.:-]. */
export const QID_RE = /^[A-Za-z0-9_.:-]+$/;
const Qid = z.string().min(1).max(64).regex(QID_RE, 'query id must be [A-Za-z0-9_.:-]');
/** File names are checked again by the share jail; this is only the wire bound. */
const FileName = z.string().min(1).max(1024);
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits');
const Text = z.string().max(4096);

export const PeerRef = z.strictObject({ id: Id, host: Host, port: Port });
export type PeerRef = z.infer<typeof PeerRef>;

const V = z.number().int().min(0).max(1e6);
/**
 * A peer's secret with the metaserver: issued in `registered`, required on
 * every later announce and on its own leave. 32 or 64 lowercase hex digits
 * (64: a keyed token, carrying its issue time; see proof.ts keyedToken).
 */
export const Token = z.string().regex(/^[0-9a-f]{32}(?:[0-9a-f]{32})?$/, 'token must be 32 or 64 lowercase hex digits');
/** Probe challenge (ping) and its answer (pong): nonce 32 hex, proof = HMAC-SHA256(token, nonce|id), 64 hex. */
const Nonce32 = z.string().regex(/^[0-9a-f]{32}$/, 'nonce must be 32 lowercase hex digits');
const Proof = z.string().regex(/^[0-9a-f]{64}$/, 'proof must be 64 lowercase hex digits');
/**
 * Root path: short tags (first 12 hex digits of SHA-256 of the id) of every
 * peer from the root down to the sender, so a peer refuses a JOIN from any of
 * its ancestors. Bounded (a tree deeper than this carries its top part).
 */
export const PATH_MAX = 4000;
export const PathTag = z.string().regex(/^[0-9a-f]{12}$/, 'path tag must be 12 lowercase hex digits');
const RootPath = z.array(PathTag).max(PATH_MAX);

// ---- metaserver connections (short-lived: opener, answer, close) ----

/**
 * register: peer → metaserver. {t, v, id, host, port, maxChildren, token?}
 * `token`: the one this peer was issued before (re-registering to rejoin with its subtree).
 */
const Register = z.strictObject({ t: z.literal('register'), v: V, id: Id, host: Host, port: Port, maxChildren: z.number().int().min(1).max(1024), token: Token.optional() });
/** registered: metaserver → peer. referral is null for the first peer (the root). `token`: this peer's secret from now on. */
const Registered = z.strictObject({ t: z.literal('registered'), id: Id, referral: PeerRef.nullable(), peers: Count, token: Token });
/** announce: peer → metaserver, on joining, on any change of parent/children, and periodically. Carries the peer's token. */
const Announce = z.strictObject({
  t: z.literal('announce'), v: V, id: Id, host: Host, port: Port,
  parent: Id.nullable(), depth: Count, children: Count, maxChildren: z.number().int().min(1).max(1024), token: Token,
});
/**
 * leave: with the peer's own token, a graceful leave; without, a report that
 * peer `id` is dead, leaving or unresponsive (a neighbour lost, a referral
 * that failed), which the metaserver checks with its own probe before acting.
 */
const Leave = z.strictObject({ t: z.literal('leave'), v: V, id: Id, token: Token.optional() });
/** status: anyone → metaserver; answered with `registry`. */
const Status = z.strictObject({ t: z.literal('status'), v: V });
export const RegistryEntry = z.strictObject({
  id: Id, host: Host, port: Port, joinedAt: z.number(), state: z.enum(['joining', 'joined']),
  parent: Id.nullable(), depth: Count.nullable(), children: Count, maxChildren: z.number().int().min(1).max(1024),
});
export type RegistryEntry = z.infer<typeof RegistryEntry>;
const Registry = z.strictObject({ t: z.literal('registry'), peers: z.array(RegistryEntry).max(1e6) });
const Ok = z.strictObject({ t: z.literal('ok') });
/** error: any side, then the sender closes the connection. */
const ErrorMsg = z.strictObject({ t: z.literal('error'), code: z.string().min(1).max(64), message: Text });

// ---- overlay links (long-lived: join, then both ends serve requests) ----

/** join: newcomer → referred peer. subtree = size of the joining subtree (1 for a new peer). */
const Join = z.strictObject({ t: z.literal('join'), v: V, id: Id, host: Host, port: Port, subtree: z.number().int().min(1).max(1e9) });
/** accept: the new parent's identity, depth and root path (its own tag last); the link stays open. */
const Accept = z.strictObject({ t: z.literal('accept'), id: Id, host: Host, port: Port, depth: Count, path: RootPath.optional() });
/** redirect: the referred peer is full; try `to`, one of its children. Then it closes. */
const Redirect = z.strictObject({ t: z.literal('redirect'), to: PeerRef });
/** size: child → parent, the child's subtree size changed. */
const Size = z.strictObject({ t: z.literal('size'), subtree: z.number().int().min(1).max(1e9) });
/** depth: parent → child, the parent's depth or root path changed (after repair). */
const Depth = z.strictObject({ t: z.literal('depth'), depth: Count, path: RootPath.optional() });
/**
 * ping / pong: heartbeats on a link; ping is also an opener to probe liveness.
 * A probing ping may carry a `nonce`: a peer answers with its `id` and, once
 * registered, `proof` = HMAC-SHA256(token, nonce + "|" + id), so the
 * metaserver knows which registered peer answers at an address.
 */
const Ping = z.strictObject({ t: z.literal('ping'), v: V.optional(), n: Count, nonce: Nonce32.optional() });
const Pong = z.strictObject({ t: z.literal('pong'), n: Count, id: Id.optional(), proof: Proof.optional() });
/** leaving: a neighbour leaves gracefully; `parent` is where its children should reattach. */
const Leaving = z.strictObject({ t: z.literal('leaving'), parent: PeerRef.nullable(), successor: PeerRef.nullable() });

export const TopoNode = z.strictObject({
  id: Id, host: Host, port: Port, parent: Id.nullable(), children: z.array(Id).max(1024), depth: Count, files: Count,
});
export type TopoNode = z.infer<typeof TopoNode>;

/** topo: flood of a topology request. budget = ms this hop may wait for its subtree. */
const Topo = z.strictObject({ t: z.literal('topo'), qid: Qid, origin: PeerRef, hops: Count, ttl: Count, budget: Count });
/**
 * topo-reply: convergecast answer, possibly in several frames (final=false for
 * all but the last) so large trees stay under the frame limit.
 */
const TopoReply = z.strictObject({
  t: z.literal('topo-reply'), qid: Qid, nodes: z.array(TopoNode).max(5000), missing: z.array(Id).max(5000),
  final: z.boolean(), reached: Count, messages: Count, duplicates: Count, maxHops: Count,
});

export const Hit = z.strictObject({ id: Id, host: Host, port: Port, size: z.number().int().min(0).max(2 ** 53 - 1), hops: Count });
export type Hit = z.infer<typeof Hit>;
/** query: file search flood. origin is the requester's own listening address, never changed by forwarders. */
const Query = z.strictObject({
  t: z.literal('query'), qid: Qid, name: FileName, origin: PeerRef, ttl: Count, hops: Count, budget: Count,
  want: z.enum(['search', 'download']),
});
/** query-reply: convergecast answer of a subtree: holders found, peers searched, fan-out counters. */
const QueryReply = z.strictObject({
  t: z.literal('query-reply'), qid: Qid, hits: z.array(Hit).max(1000), missing: z.array(Id).max(5000),
  reached: Count, messages: Count, duplicates: Count, maxHops: Count,
});

// ---- transfer connections (holder → requester's listening address) ----

/** offer: holder → requester. The requester answers ack or decline; after ack, `size` raw bytes follow. */
const Offer = z.strictObject({
  t: z.literal('offer'), v: V, qid: Qid, from: PeerRef, name: FileName, size: z.number().int().min(0).max(2 ** 53 - 1), sha256: Sha256,
});
/**
 * preparing: holder → requester, while the holder still hashes a file for its
 * first offer (a large file can take minutes). It opens the transfer
 * connection and repeats every second or so with `hashed` bytes done; the
 * requester keeps waiting as long as `hashed` grows, and may answer `decline`
 * (then the holder stops). The `offer` follows on the same connection.
 */
const Preparing = z.strictObject({
  t: z.literal('preparing'), v: V, qid: Qid, from: PeerRef, name: FileName,
  size: z.number().int().min(0).max(2 ** 53 - 1), hashed: z.number().int().min(0).max(2 ** 53 - 1),
});
const Ack = z.strictObject({ t: z.literal('ack') });

// ---- swarm connections (requester → holder's listening address; see docs/SWARM.md) ----

/** Most pieces in a manifest (the piece size grows with the file to stay under it). */
export const MAX_PIECES = 512;
/** Smallest piece size on the wire. */
export const MIN_PIECE_BYTES = 1024;
/**
 * Largest piece size on the wire (1 GiB): a requester holds a piece buffer of this size per link,
 * so files over MAX_PIECES × this (512 GiB) do not swarm. checkManifest (transfer/manifest.ts)
 * bounds the piece size by the file's size too.
 */
export const MAX_PIECE_BYTES = 2 ** 30;
/**
 * swarm-open: requester → holder. `sha256` is the whole-file hash the requester
 * already knows (from an earlier holder or its resume state), or null.
 * Answered with `manifest`, `hashing` (then `manifest`), or `error`.
 */
const SwarmOpen = z.strictObject({ t: z.literal('swarm-open'), v: V, from: PeerRef, name: FileName, sha256: Sha256.nullable() });
/** hashing: holder → requester while it computes the manifest of a file it has not hashed yet. */
const Hashing = z.strictObject({ t: z.literal('hashing'), hashed: z.number().int().min(0).max(2 ** 53 - 1), size: z.number().int().min(0).max(2 ** 53 - 1) });
/** manifest: size, whole-file SHA-256, piece size and the SHA-256 of each piece, in order. */
const Manifest = z.strictObject({
  t: z.literal('manifest'), name: FileName, size: z.number().int().min(0).max(2 ** 53 - 1), sha256: Sha256,
  pieceSize: z.number().int().min(MIN_PIECE_BYTES).max(MAX_PIECE_BYTES), pieces: z.array(Sha256).max(MAX_PIECES),
});
/**
 * want: requester → holder, piece indexes. The holder sends each wanted piece's
 * bytes raw, back to back, in the order asked (lengths follow from the manifest).
 */
const Want = z.strictObject({ t: z.literal('want'), pieces: z.array(z.number().int().min(0).max(MAX_PIECES - 1)).min(1).max(64) });
const Decline = z.strictObject({ t: z.literal('decline'), reason: Text });

export const Message = z.discriminatedUnion('t', [
  Register, Registered, Announce, Leave, Status, Registry, Ok, ErrorMsg,
  Join, Accept, Redirect, Size, Depth, Ping, Pong, Leaving,
  Topo, TopoReply, Query, QueryReply,
  Offer, Ack, Decline, Preparing,
  SwarmOpen, Hashing, Manifest, Want,
]);
export type Message = z.infer<typeof Message>;
export type MessageType = Message['t'];
export type Msg<T extends MessageType> = Extract<Message, { t: T }>;

export const MESSAGE_TYPES: readonly MessageType[] = Message.options.map((o) => o.shape.t.value);

/** Messages that may open a connection (and so must carry `v`). */
export const OPENERS: ReadonlySet<MessageType> = new Set<MessageType>(['register', 'announce', 'leave', 'status', 'join', 'offer', 'ping', 'preparing', 'swarm-open']);

export interface HostPortLike {
  host: string;
  port: number;
}

export function addrKey(a: { host: string; port: number }): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
