/**
 * The flood frames in their canonical form, written and read without
 * JSON.stringify or JSON.parse.
 *
 * Every search reaches every peer with one `query` and comes back as one
 * `query-reply` per peer, so these two frames are most of a large overlay's
 * traffic. The wire format does not change: the canonical form is the exact
 * text JSON.stringify writes for the fields in their schema order, when every
 * string is plain (printable ASCII without `"` or `\`, so nothing is escaped),
 * every number a non-negative safe integer, and a reply carries no hits and
 * no missing ids. codec.ts writes a frame this way when it qualifies and
 * reads bytes this way when they are exactly that text; anything else (other
 * spacing or order, escapes, UTF-8, hits) goes through JSON as before, and a
 * value read here still passes the same hand check as a parsed one.
 * test/unit/codec-fastpath.test.ts holds both directions to JSON.
 */
import type { Msg } from './messages.ts';

/** Printable ASCII with nothing JSON would escape. */
function plain(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

function whole(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && !Object.is(n, -0);
}

/** The canonical text of a query, or undefined when it does not qualify. */
export function canonicalQuery(q: Msg<'query'>): string | undefined {
  const o = q.origin;
  if (!plain(q.qid) || !plain(q.name) || !plain(q.want) || typeof o !== 'object' || o === null || !plain(o.id) || !plain(o.host)) return undefined;
  if (!whole(o.port) || !whole(q.ttl) || !whole(q.hops) || !whole(q.budget)) return undefined;
  return `{"t":"query","qid":"${q.qid}","name":"${q.name}","origin":{"id":"${o.id}","host":"${o.host}","port":${o.port}},"ttl":${q.ttl},"hops":${q.hops},"budget":${q.budget},"want":"${q.want}"}`;
}

/** The canonical text of a query-reply without hits or missing ids, or undefined. */
export function canonicalQueryReply(r: Msg<'query-reply'>): string | undefined {
  if (!Array.isArray(r.hits) || r.hits.length !== 0 || !Array.isArray(r.missing) || r.missing.length !== 0 || !plain(r.qid)) return undefined;
  if (!whole(r.reached) || !whole(r.messages) || !whole(r.duplicates) || !whole(r.maxHops)) return undefined;
  return `{"t":"query-reply","qid":"${r.qid}","hits":[],"missing":[],"reached":${r.reached},"messages":${r.messages},"duplicates":${r.duplicates},"maxHops":${r.maxHops}}`;
}

// ---- reading: a cursor over one frame's bytes (module state: no object per frame) ----

let buf: Buffer = Buffer.alloc(0);
let at = 0;
let stop = 0;

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const Q_HEAD = bytes('{"t":"query');
const Q_QID = bytes('","qid":"');
const Q_NAME = bytes(',"name":"');
const Q_ID = bytes(',"origin":{"id":"');
const Q_HOST = bytes(',"host":"');
const Q_PORT = bytes(',"port":');
const Q_TTL = bytes('},"ttl":');
const Q_HOPS = bytes(',"hops":');
const Q_BUDGET = bytes(',"budget":');
const Q_WANT = bytes(',"want":"');
const R_HEAD = bytes('-reply","qid":"');
const R_REACHED = bytes(',"hits":[],"missing":[],"reached":');
const R_MESSAGES = bytes(',"messages":');
const R_DUPLICATES = bytes(',"duplicates":');
const R_MAXHOPS = bytes(',"maxHops":');

/** Consumes `lit` if the bytes at the cursor are exactly it. */
function lit(l: Buffer): boolean {
  const n = l.length;
  if (at + n > stop) return false;
  for (let i = 0; i < n; i++) if (buf[at + i] !== l[i]) return false;
  at += n;
  return true;
}

/** A plain string's characters up to its closing quote (consumed), or undefined. */
function str(): string | undefined {
  const from = at;
  for (; at < stop; at++) {
    const c = buf[at]!;
    if (c === 0x22) {
      const s = buf.toString('latin1', from, at);
      at++;
      return s;
    }
    if (c < 0x20 || c > 0x7e || c === 0x5c) return undefined;
  }
  return undefined;
}

/** A JSON non-negative integer (no sign, fraction, exponent or leading zero) of at most 15 digits, or -1. */
function int(): number {
  const from = at;
  let n = 0;
  for (; at < stop; at++) {
    const d = buf[at]! - 0x30;
    if (d < 0 || d > 9) break;
    n = n * 10 + d;
  }
  const len = at - from;
  if (len === 0 || len > 15 || (len > 1 && buf[from] === 0x30)) return -1;
  return n;
}

/**
 * The query or query-reply in line[start, end) if it is exactly canonical
 * text, as the plain object JSON.parse would make of it (not yet checked
 * against the schema's rules); otherwise undefined.
 */
export function readCanonical(line: Buffer, start: number, end: number): Msg<'query'> | Msg<'query-reply'> | undefined {
  buf = line;
  at = start;
  stop = end;
  try {
    if (!lit(Q_HEAD)) return undefined;
    if (lit(Q_QID)) return readQuery();
    if (lit(R_HEAD)) return readReply();
    return undefined;
  } finally {
    buf = EMPTY;
  }
}

const EMPTY = Buffer.alloc(0);

function readQuery(): Msg<'query'> | undefined {
  const qid = str();
  if (qid === undefined || !lit(Q_NAME)) return undefined;
  const name = str();
  if (name === undefined || !lit(Q_ID)) return undefined;
  const id = str();
  if (id === undefined || !lit(Q_HOST)) return undefined;
  const host = str();
  if (host === undefined || !lit(Q_PORT)) return undefined;
  const port = int();
  if (port < 0 || !lit(Q_TTL)) return undefined;
  const ttl = int();
  if (ttl < 0 || !lit(Q_HOPS)) return undefined;
  const hops = int();
  if (hops < 0 || !lit(Q_BUDGET)) return undefined;
  const budget = int();
  if (budget < 0 || !lit(Q_WANT)) return undefined;
  const want = str();
  if (want === undefined || at !== stop - 1 || buf[at] !== 0x7d) return undefined;
  return { t: 'query', qid, name, origin: { id, host, port }, ttl, hops, budget, want: want as Msg<'query'>['want'] };
}

function readReply(): Msg<'query-reply'> | undefined {
  const qid = str();
  if (qid === undefined || !lit(R_REACHED)) return undefined;
  const reached = int();
  if (reached < 0 || !lit(R_MESSAGES)) return undefined;
  const messages = int();
  if (messages < 0 || !lit(R_DUPLICATES)) return undefined;
  const duplicates = int();
  if (duplicates < 0 || !lit(R_MAXHOPS)) return undefined;
  const maxHops = int();
  if (maxHops < 0 || at !== stop - 1 || buf[at] !== 0x7d) return undefined;
  return { t: 'query-reply', qid, hits: [], missing: [], reached, messages, duplicates, maxHops };
}
