/**
 * The `--json` control protocol, once, as zod schemas (docs/CONTROL.md):
 * every command each process reads on stdin and every event it writes on
 * stdout. Both ends use these: the processes build their
 * events through the inferred types (and tests validate every line they
 * print), and the drivers (testnet/driver.ts, the scenario process runner)
 * parse each line they read with `PeerEvent` / `MetaserverEvent`.
 *
 * Objects are strict: an event with a field the schema does not list fails,
 * so the schema cannot drift from what is emitted without a test noticing.
 */
import { z } from 'zod';
import { ERROR_CODES } from '../errors.ts';
import { Hit, Id, PeerRef, RegistryEntry, TopoNode } from '../protocol/messages.ts';

// ---- commands (stdin) ----

/** Echoed in the result event. */
export const CommandId = z.union([z.string().max(256), z.number().finite()]);
export type CommandId = z.infer<typeof CommandId>;

const cmd = <C extends string, S extends z.ZodRawShape>(name: C, shape: S) =>
  z.object({ cmd: z.literal(name), id: CommandId.optional(), ...shape });
const FileName = z.string().min(1, 'a file name string').max(1024);

export const PeerCommand = z.discriminatedUnion('cmd', [
  cmd('join', {}),
  cmd('search', { name: FileName }),
  cmd('download', { name: FileName }),
  cmd('topo', {}),
  cmd('status', {}),
  cmd('files', {}),
  cmd('leave', {}),
]);
export type PeerCommand = z.infer<typeof PeerCommand>;

export const MetaserverCommand = z.discriminatedUnion('cmd', [cmd('status', {}), cmd('stop', {})]);
export type MetaserverCommand = z.infer<typeof MetaserverCommand>;

/** The command names a schema accepts, in order. */
/** A command schema: objects `{cmd, id?, ...}` told apart by their `cmd` literal (PeerCommand, MetaserverCommand, or a harness's own). */
export interface CommandSchema extends z.ZodType<{ cmd: string; id?: CommandId }> {
  readonly options: readonly { readonly shape: { readonly cmd: { readonly value: string } } }[];
}

export function commandNames(schema: CommandSchema): string[] {
  return schema.options.map((o) => o.shape.cmd.value);
}

// ---- pieces of results ----

const Ms = z.number();
const Count = z.number().int().min(0);
/** Hosts as the process reports its own address (a bind address like 0.0.0.0 included). */
const AnyHost = z.string().min(1).max(253);
const HostPort = z.strictObject({ host: AnyHost, port: z.number().int().min(0).max(65535) });

const FloodResult = {
  qid: z.string(),
  reached: Count,
  messages: Count,
  duplicates: Count,
  maxHops: Count,
  missing: z.array(Id),
  firstHitMs: Ms.nullable(),
  completionMs: Ms,
};

/** `complete` (added; absent from older peers): every subtree answered, so no hits is a definite not-found. */
export const SearchResult = z.strictObject({ ...FloodResult, name: FileName, hits: z.array(Hit), complete: z.boolean().optional() });
export const TopoResult = z.strictObject({ ...FloodResult, nodes: z.array(TopoNode), complete: z.boolean() });

export const DownloadResult = z.strictObject({
  name: FileName,
  from: z.string(),
  bytes: Count,
  ttfbMs: Ms,
  durationMs: Ms,
  mbps: z.number(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  verified: z.boolean(),
  /** How the body was read: `fast` (reused buffer, plain TCP) or `stream`. */
  readPath: z.enum(['fast', 'stream']),
  /** Time spent making the file durable (fsync file, then folder), ms. */
  fsyncMs: Ms,
  holder: PeerRef,
  search: SearchResult,
  /** Swarm downloads (docs/SWARM.md): holders used, pieces, resume, bytes thrown away. */
  swarm: z.strictObject({
    sources: z.array(z.strictObject({ id: Id, pieces: Count, bytes: Count, dropped: z.string().optional(), parked: z.boolean().optional() })),
    pieceSize: Count,
    pieces: Count,
    resumedPieces: Count,
    resumedBytes: Count,
    bytesReceived: Count,
    bytesWasted: Count,
    badPieces: Count,
    bytesOutstandingLost: Count,
    bytesDuplicate: Count,
    fanout: z.strictObject({ parks: Count, unparks: Count, failedTrials: Count, windows: Count, utilisation: z.number().min(0).max(1) }),
  }).optional(),
});

export const JoinTimeline = z.strictObject({
  registerSentAt: Ms,
  referralAt: Ms,
  referral: PeerRef.nullable(),
  redirects: z.array(z.strictObject({ from: PeerRef, to: PeerRef, at: Ms })),
  acceptedAt: Ms,
  parent: PeerRef.nullable(),
  depth: Count,
  metaRttMs: Ms,
  finalConnectMs: Ms,
  totalMs: Ms,
});

export const RepairRecord = z.strictObject({
  cause: z.string(),
  lost: z.string(),
  detectedAt: Ms,
  reattachedAt: Ms.nullable(),
  ms: Ms.nullable(),
  newParent: PeerRef.nullable(),
});

export const PeerState = z.strictObject({
  id: Id,
  address: HostPort,
  joined: z.boolean(),
  parent: PeerRef.nullable(),
  children: z.array(z.strictObject({ ...PeerRef.shape, subtree: z.number().int().min(1) })),
  depth: Count,
  subtree: z.number().int().min(1),
  timeline: JoinTimeline.nullable(),
  repairs: z.array(RepairRecord),
});

export const FileEntry = z.strictObject({ name: FileName, size: Count });

export const ErrorCode = z.enum(ERROR_CODES);

// ---- events (stdout) ----

/** Result events echo the command's id; unprompted events have none. */
const Echo = { id: CommandId.optional() };
const ev = <E extends string, S extends z.ZodRawShape>(name: E, shape: S) => z.strictObject({ event: z.literal(name), ...shape, ...Echo });
const LeftReason = z.string();

/** `error`: a failed or malformed command (`id`, `cmd`), or a fatal failure before exit 1 (`fatal`). */
export const ErrorEvent = ev('error', {
  code: ErrorCode,
  message: z.string(),
  cmd: z.string().optional(),
  searched: Count.optional(),
  /** With `not-found`: neighbours whose subtrees did not answer (empty: a complete not-found). */
  missing: z.array(Id).optional(),
  fatal: z.literal(true).optional(),
});
export type ErrorEvent = z.infer<typeof ErrorEvent>;

export const PeerReady = ev('ready', { peer: Id, host: AnyHost, port: z.number().int().min(1).max(65535), share: z.string(), meta: z.string(), pid: z.number().int() });

export const PeerEvent = z.discriminatedUnion('event', [
  PeerReady,
  ev('joined', { timeline: JoinTimeline, parent: PeerRef.nullable(), depth: Count }),
  // `answer` (added): the result in words, as the menu prints it (names the unreachable subtrees when there are any).
  ev('searched', { result: SearchResult, answer: z.string().optional() }),
  ev('downloaded', { result: DownloadResult }),
  ev('topo', { result: TopoResult, text: z.string() }),
  // frames: what this peer's overlay connections wrote, by message type, counted at the transport (Peer.wireFrames).
  ev('status', { state: PeerState, frames: z.record(z.string(), Count).optional() }),
  ev('files', { files: z.array(FileEntry) }),
  ev('left', {}),
  ev('hit', { qid: z.string(), name: FileName, holder: Hit }),
  ev('progress', { qid: z.string(), name: FileName, bytes: Count, size: Count }),
  /** A swarm download picks up a partial kept from an earlier attempt (docs/SWARM.md): pieces re-verified on disk. */
  ev('resuming', { name: FileName, pieces: Count, of: Count, bytes: Count, percent: z.number().int().min(0).max(100) }),
  ev('child-joined', { child: PeerRef }),
  ev('child-left', { child: Id, reason: LeftReason }),
  ev('parent-lost', { parent: Id, reason: LeftReason }),
  ev('repaired', { record: RepairRecord }),
  ev('uploaded', { name: FileName, to: z.string(), bytes: Count, durationMs: Ms, mbps: z.number() }),
  ev('log', { level: z.enum(['info', 'warn']), message: z.string() }),
  ErrorEvent,
]);
export type PeerEvent = z.infer<typeof PeerEvent>;

export const MetaserverReady = ev('ready', { host: AnyHost, port: z.number().int().min(1).max(65535), policy: z.string(), pid: z.number().int() });

export const MetaserverEvent = z.discriminatedUnion('event', [
  MetaserverReady,
  ev('status', { peers: z.array(RegistryEntry) }),
  ev('stopped', {}),
  ev('register', { peer: Id, host: AnyHost, port: z.number().int(), referral: PeerRef.nullable() }),
  ev('announce', { peer: Id, parent: Id.nullable(), depth: Count, isNew: z.boolean() }),
  ev('leave', { peer: Id }),
  ev('drop', { peer: Id, reason: z.string() }),
  ev('protocol-error', { remote: z.string(), code: ErrorCode, message: z.string() }),
  ErrorEvent,
]);
export type MetaserverEvent = z.infer<typeof MetaserverEvent>;

/** Any line either process prints (the two unions share `ready`, `status` and `error` names, so this is not discriminated). */
export type ControlEvent = PeerEvent | MetaserverEvent;
export type EventName<E extends { event: string }> = E['event'];
/** The event named `N` in union `E`. */
export type EventOf<E extends { event: string }, N extends E['event']> = Extract<E, { event: N }>;

/** Which result event answers each command. */
export const PEER_RESULT = {
  join: 'joined',
  search: 'searched',
  download: 'downloaded',
  topo: 'topo',
  status: 'status',
  files: 'files',
  leave: 'left',
} as const satisfies Record<PeerCommand['cmd'], PeerEvent['event']>;
export const METASERVER_RESULT = { status: 'status', stop: 'stopped' } as const satisfies Record<MetaserverCommand['cmd'], MetaserverEvent['event']>;
