/**
 * Framing and validation at the socket edge (sans-IO).
 *
 * FrameDecoder takes bytes as they arrive and yields validated messages. It
 * keeps at most `maxFrameBytes` of an unfinished line; anything longer, any
 * line that is not JSON, not an object with a known `t`, or has a missing or
 * mistyped field becomes a RemoteProtocolError naming what was wrong. After
 * the first error the decoder is dead: the caller answers and closes.
 *
 * `takeRest()` switches the connection to raw bytes (after a transfer ack)
 * and returns whatever arrived after the last frame.
 */
import { RemoteProtocolError } from '../errors.ts';
import { HOST_RE, ID_RE, Message, MESSAGE_TYPES, OPENERS, PROTOCOL_VERSION, QID_RE, type Msg } from './messages.ts';
import { canonicalQuery, canonicalQueryReply } from './canonical.ts';

export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
const NL = 0x0a;

export function encode(msg: Message): Buffer {
  // The flood frames (every search reaches every peer with a query and a reply) are written by hand
  // when every field is plain (canonical.ts); the bytes are then exactly what JSON.stringify writes.
  const plain = msg.t === 'query' ? canonicalQuery(msg) : msg.t === 'query-reply' ? canonicalQueryReply(msg) : undefined;
  if (plain !== undefined) {
    const b = Buffer.allocUnsafe(plain.length + 1);
    b.write(plain, 0, 'latin1');
    b[plain.length] = NL;
    return b;
  }
  // Written into the buffer in two steps: `json + '\n'` would build (and flatten) a second string per frame.
  const json = JSON.stringify(msg);
  const n = Buffer.byteLength(json, 'utf8');
  const b = Buffer.allocUnsafe(n + 1);
  b.write(json, 0, n, 'utf8');
  b[n] = NL;
  return b;
}

/**
 * One message encoded once, to be sent on several connections
 * (Connection.sendFrame): a flood forwarded to every child, a heartbeat to
 * every neighbour. The bytes are shared and must not be modified.
 */
export interface Frame {
  readonly t: Message['t'];
  readonly bytes: Buffer;
}

export function frameOf(msg: Message): Frame {
  return { t: msg.t, bytes: encode(msg) };
}

/** The last bare heartbeat frame built per type: every peer whose tick falls in the same millisecond shares it. */
const lastBeat: { ping: Frame | undefined; pong: Frame | undefined } = { ping: undefined, pong: undefined };
const beatN = { ping: -1, pong: -1 };

/** The frame of a bare `{t, n}` ping or pong (n an integer in [0, 1e9]), shared while n stays the same. */
export function heartbeatFrame(t: 'ping' | 'pong', n: number): Frame {
  if (beatN[t] === n) return lastBeat[t]!;
  beatN[t] = n;
  return (lastBeat[t] = frameOf({ t, n }));
}

/** Validates one parsed value as a Message; throws RemoteProtocolError. */
export function validate(value: unknown): Message {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RemoteProtocolError('bad-message', 'frame is not a JSON object');
  }
  const t = (value as { t?: unknown }).t;
  if (typeof t !== 'string') throw new RemoteProtocolError('bad-message', 'missing field "t" (message type)');
  // Heartbeats are most of the frames of a long run: a bare {t, n} ping or pong is checked by
  // hand (the same rules as its schema: n an integer in [0, 1e9], no other field); anything
  // else (nonce, id, proof, a bad n, extra fields) goes through the schema as usual.
  if (t === 'ping' || t === 'pong') {
    const n = (value as { n?: unknown }).n;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 1e9) {
      let keys = 0;
      for (const _ in value) keys++;
      if (keys === 2) return { t, n };
    }
  }
  // So are the other frequent frames (FAST: floods, where every search reaches every peer with a
  // query and a reply; topology answers; the periodic announce and its ok; subtree sizes): a value
  // the hand check accepts is returned as is; anything else meets the schema, which explains.
  const check = FAST.get(t);
  if (check && check(value)) return value as Message;
  return validateSlow(value, t);
}

/** validate() without the hand-checked fast paths: the schema alone (tests compare the two). */
export function validateSlow(value: unknown, t: string): Message {
  if (!(MESSAGE_TYPES as readonly string[]).includes(t)) {
    throw new RemoteProtocolError('unknown-type', `unknown message type ${JSON.stringify(t.slice(0, 40))}`);
  }
  const r = Message.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const path = issue.path.length ? issue.path.join('.') : '(message)';
    let what = issue.message;
    if (issue.code === 'invalid_type' && (issue as { input?: unknown }).input === undefined && /undefined/.test(what)) what = 'missing';
    if (issue.code === 'unrecognized_keys') return fail(`${t}: unknown field ${(issue as { keys: string[] }).keys.map((k) => JSON.stringify(k)).join(', ')}`);
    return fail(`${t}: field ${path}: ${what}`);
  }
  return r.data;
  function fail(m: string): never {
    throw new RemoteProtocolError('bad-message', m);
  }
}

// ---- hand checks of the hottest frames: exactly the schema's rules (messages.ts), true only when all hold ----

function isCount(x: unknown): boolean {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 1e9;
}
function isSize(x: unknown): boolean {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}
function isId(x: unknown): boolean {
  return typeof x === 'string' && ID_RE.test(x);
}
function isQid(x: unknown): boolean {
  return typeof x === 'string' && x.length >= 1 && x.length <= 64 && QID_RE.test(x);
}
function isHost(x: unknown): boolean {
  return typeof x === 'string' && x.length <= 253 && HOST_RE.test(x);
}
function isPort(x: unknown): boolean {
  return typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= 65535;
}
/** A plain object (not an array) with exactly `n` enumerable keys. */
function isRecord(x: unknown, n: number): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  let k = 0;
  for (const _ in x) k++;
  return k === n;
}
function isPeerRef(x: unknown): boolean {
  return isRecord(x, 3) && isId(x.id) && isHost(x.host) && isPort(x.port);
}
function isHit(x: unknown): boolean {
  return isRecord(x, 5) && isId(x.id) && isHost(x.host) && isPort(x.port) && isSize(x.size) && isCount(x.hops);
}
function isQuery(v: object): v is Msg<'query'> {
  const q = v as Record<string, unknown>;
  return isRecord(q, 8) && isQid(q.qid) && typeof q.name === 'string' && q.name.length >= 1 && q.name.length <= 1024 && isPeerRef(q.origin)
    && isCount(q.ttl) && isCount(q.hops) && isCount(q.budget) && (q.want === 'search' || q.want === 'download');
}
function isTopo(v: object): v is Msg<'topo'> {
  const q = v as Record<string, unknown>;
  return isRecord(q, 6) && isQid(q.qid) && isPeerRef(q.origin) && isCount(q.hops) && isCount(q.ttl) && isCount(q.budget);
}
const TOKEN_RE = /^[0-9a-f]{32}(?:[0-9a-f]{32})?$/;
function isAnnounce(v: object): v is Msg<'announce'> {
  const a = v as Record<string, unknown>;
  const mc = a.maxChildren;
  return isRecord(a, 10) && typeof a.v === 'number' && Number.isInteger(a.v) && a.v >= 0 && a.v <= 1e6 && isId(a.id) && isHost(a.host) && isPort(a.port)
    && (a.parent === null || isId(a.parent)) && isCount(a.depth) && isCount(a.children)
    && typeof mc === 'number' && Number.isInteger(mc) && mc >= 1 && mc <= 1024 && typeof a.token === 'string' && TOKEN_RE.test(a.token);
}
function isTopoNode(x: unknown): boolean {
  if (!isRecord(x, 7) || !isId(x.id) || !isHost(x.host) || !isPort(x.port) || !(x.parent === null || isId(x.parent)) || !isCount(x.depth) || !isCount(x.files)) return false;
  const c = x.children;
  if (!Array.isArray(c) || c.length > 1024) return false;
  for (const id of c) if (!isId(id)) return false;
  return true;
}
function isTopoReply(v: object): v is Msg<'topo-reply'> {
  const r = v as Record<string, unknown>;
  if (!isRecord(r, 9) || !isQid(r.qid) || typeof r.final !== 'boolean' || !isCount(r.reached) || !isCount(r.messages) || !isCount(r.duplicates) || !isCount(r.maxHops)) return false;
  const { nodes, missing } = r;
  if (!Array.isArray(nodes) || nodes.length > 5000 || !Array.isArray(missing) || missing.length > 5000) return false;
  for (const n of nodes) if (!isTopoNode(n)) return false;
  for (const m of missing) if (!isId(m)) return false;
  return true;
}
function isSizeMsg(v: object): boolean {
  const s = (v as { subtree?: unknown }).subtree;
  return isRecord(v, 2) && typeof s === 'number' && Number.isInteger(s) && s >= 1 && s <= 1e9;
}
function isQueryReply(v: object): v is Msg<'query-reply'> {
  const r = v as Record<string, unknown>;
  if (!isRecord(r, 8) || !isQid(r.qid) || !isCount(r.reached) || !isCount(r.messages) || !isCount(r.duplicates) || !isCount(r.maxHops)) return false;
  const { hits, missing } = r;
  if (!Array.isArray(hits) || hits.length > 1000 || !Array.isArray(missing) || missing.length > 5000) return false;
  for (const h of hits) if (!isHit(h)) return false;
  for (const m of missing) if (!isId(m)) return false;
  return true;
}

export function checkVersion(msg: Message): void {
  if (!OPENERS.has(msg.t)) {
    throw new RemoteProtocolError('unexpected-message', `a connection must open with a versioned request, not "${msg.t}"`);
  }
  const v = (msg as { v?: number }).v;
  if (v === undefined) throw new RemoteProtocolError('bad-message', `${msg.t}: field v: missing (protocol version)`);
  if (v !== PROTOCOL_VERSION) {
    throw new RemoteProtocolError('version-mismatch', `protocol version ${v} is not supported (this side speaks version ${PROTOCOL_VERSION})`);
  }
}

export interface DecoderOptions {
  /** Longest accepted line in bytes, excluding the newline. Default 64 KiB. */
  maxFrameBytes?: number;
}

export class FrameDecoder {
  readonly maxFrameBytes: number;
  private chunks: Buffer[] = [];
  private pending = 0;
  private dead = false;

  constructor(opts: DecoderOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** Bytes held of an unfinished frame. */
  get buffered(): number {
    return this.pending;
  }

  /**
   * Feed bytes; returns the complete messages they finish (or, with `each`,
   * hands each to it as soon as it is decoded and stops at the first `false`,
   * leaving the rest of the chunk for takeRest()). Throws
   * RemoteProtocolError on the first bad frame (messages decoded before it in
   * the same chunk are attached as `err.decoded`).
   */
  push(data: Buffer, each?: (m: Message) => boolean): Message[] {
    if (this.dead) return [];
    const out: Message[] = [];
    let start = 0;
    try {
      for (;;) {
        const nl = data.indexOf(NL, start);
        if (nl === -1) break;
        const partLen = nl - start;
        if (this.pending + partLen > this.maxFrameBytes) throw this.tooLarge();
        let m: Message;
        if (this.pending > 0) {
          this.chunks.push(data.subarray(start, nl));
          const line = Buffer.concat(this.chunks, this.pending + partLen);
          this.chunks = [];
          this.pending = 0;
          m = this.parse(line, 0, line.length);
        } else {
          m = this.parse(data, start, nl);
        }
        start = nl + 1;
        if (!each) out.push(m);
        else if (!each(m)) {
          // The consumer stopped taking frames (switched to raw bytes, or closed):
          // keep the rest of the chunk unparsed for takeRest().
          if (start < data.length) {
            this.chunks.push(Buffer.from(data.subarray(start)));
            this.pending += data.length - start;
          }
          return out;
        }
      }
      const rest = data.length - start;
      if (rest > 0) {
        if (this.pending + rest > this.maxFrameBytes) throw this.tooLarge();
        this.chunks.push(Buffer.from(data.subarray(start)));
        this.pending += rest;
      }
    } catch (err) {
      this.dead = true;
      (err as { decoded?: Message[] }).decoded = out;
      throw err;
    }
    return out;
  }

  /** Call when the stream ends: throws if it ended inside a frame. */
  end(): void {
    if (!this.dead && this.pending > 0) {
      this.dead = true;
      throw new RemoteProtocolError('truncated-frame', `connection closed in the middle of a frame (${this.pending} bytes without a newline)`);
    }
  }

  /** Stop decoding frames; returns bytes received after the last frame. */
  takeRest(): Buffer {
    this.dead = true;
    const b = Buffer.concat(this.chunks, this.pending);
    this.chunks = [];
    this.pending = 0;
    return b;
  }

  private tooLarge(): RemoteProtocolError {
    return new RemoteProtocolError('frame-too-large', `frame exceeds ${this.maxFrameBytes} bytes`);
  }

  /** The frame in buf[start, end) (no newline). */
  private parse(buf: Buffer, start: number, end: number): Message {
    if (end === start) throw new RemoteProtocolError('bad-frame', 'empty frame');
    const beat = parseHeartbeat(buf, start, end);
    if (beat) return beat;
    // Reject invalid UTF-8 outright rather than letting replacement chars through.
    const text = buf.toString('utf8', start, end);
    if (text.includes('\uFFFD') && !Buffer.from(text, 'utf8').equals(buf.subarray(start, end))) {
      throw new RemoteProtocolError('bad-frame', 'frame is not valid UTF-8');
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new RemoteProtocolError('bad-json', `frame is not JSON: ${JSON.stringify(text.slice(0, 32))}${text.length > 32 ? '…' : ''}`);
    }
    return validate(value);
  }
}

const BEAT_PREFIX = Buffer.from('{"t":"ping","n":', 'latin1');
const BEAT_MIN = BEAT_PREFIX.length + 2;

/**
 * A heartbeat exactly as encode() writes it, `{"t":"ping","n":123}` (or pong),
 * read from the bytes without building a string or parsing JSON: n is a JSON
 * integer (no leading zero) in [0, 1e9]. Anything else (other spacing, other
 * fields, other numbers) returns undefined and takes the general path.
 */
function parseHeartbeat(line: Buffer, start: number, stop: number): Msg<'ping'> | Msg<'pong'> | undefined {
  const len = stop - start;
  if (len < BEAT_MIN || len > BEAT_MIN + 9 || line[stop - 1] !== 0x7d) return undefined;
  for (let i = 0; i < BEAT_PREFIX.length; i++) if (line[start + i] !== BEAT_PREFIX[i] && i !== 7) return undefined;
  const c = line[start + 7];
  if (c !== 0x69 && c !== 0x6f) return undefined; // 'i' (ping) or 'o' (pong)
  const end = stop - 1;
  let i = start + BEAT_PREFIX.length;
  if (line[i] === 0x30 && end - i > 1) return undefined; // a leading zero is not JSON
  let n = 0;
  for (; i < end; i++) {
    const d = line[i]! - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  if (n > 1e9) return undefined;
  return c === 0x69 ? { t: 'ping', n } : { t: 'pong', n };
}

/** Types with a hand check (each true only when every schema rule holds; otherwise the schema decides and explains). */
const FAST = new Map<string, (v: object) => boolean>([
  ['query', isQuery], ['query-reply', isQueryReply], ['topo', isTopo], ['topo-reply', isTopoReply],
  ['announce', isAnnounce], ['ok', (v) => isRecord(v, 1)], ['size', isSizeMsg],
]);
