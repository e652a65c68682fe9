/**
 * The flood frames in their canonical form, written without JSON.stringify.
 *
 * Every search reaches every peer with one `query` and comes back as one
 * `query-reply` per peer, so these two frames are most of a large overlay's
 * traffic. The wire format does not change: the canonical form is the exact
 * text JSON.stringify writes for the fields in their schema order, when every
 * string is plain (printable ASCII without `"` or `\`, so nothing is escaped),
 * every number a non-negative safe integer, and a reply carries no hits and
 * no missing ids. codec.ts writes a frame this way when it qualifies (about
 * twice as fast as JSON.stringify and a UTF-8 write); anything else goes
 * through JSON.stringify as before. Frames are read with JSON.parse either
 * way: a hand-written reader of this text measured no faster here.
 * test/unit/codec-fastpath.test.ts holds the bytes to JSON.stringify's.
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
