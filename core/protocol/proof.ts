/**
 * Peer identity towards the metaserver (issue 11 item 2), pure.
 *
 * - token: a secret the metaserver issues at register; only its holder may
 *   announce or leave as that id.
 * - proof: a probed peer answers HMAC-SHA256(token, nonce + "|" + id), so the
 *   metaserver can tell the registered holder of an id from anything else
 *   answering at its address, without the token crossing the wire again.
 * - keyed token: with a token key (which outlives the metaserver process) a
 *   token carries its issue time and its own proof of issue, checked when a
 *   restarted metaserver hears an id it does not hold, or hears an id's
 *   holder from before the restart while someone registered since holds it.
 * - path tag: the short name of an id in a root path (see messages.ts).
 */
import { createHash, createHmac, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';

/** Random bytes drawn 4 KiB at a time (one CSPRNG call per 256 tokens, not one per register). */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

export function newToken(): string {
  if (poolAt + 16 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const t = pool.toString('hex', poolAt, poolAt + 16);
  poolAt += 16;
  return t;
}

/** Length of a keyedToken, hex digits: 12 of issue time, 8 of salt, 44 of HMAC. */
export const KEYED_TOKEN_HEX = 64;
const KEYED_RE = /^[0-9a-f]{64}$/;

/**
 * A token a metaserver holding `key` can check for `id` after a restart (issue
 * 22 defect 8): 12 hex digits of its issue time (ms since the epoch), 8 of
 * fresh randomness, then 44 of HMAC-SHA256(key, id + "|" + time + "|" + salt).
 * No one without the key can make one for an id they were not issued, nor
 * change the time it carries.
 */
export function keyedToken(key: Buffer, id: string, issuedAt: number): string {
  const head = Math.max(0, Math.min(Math.floor(issuedAt), 0xffffffffffff)).toString(16).padStart(12, '0') + newToken().slice(0, 8);
  return head + keyedMac(key, id, head);
}

/** When `token` was issued, ms since the epoch, if keyedToken(key, id, …) made it; else undefined. */
export function keyedTokenIssuedAt(key: Buffer, id: string, token: string): number | undefined {
  if (!KEYED_RE.test(token) || !sameSecret(token.slice(20), keyedMac(key, id, token.slice(0, 20)))) return undefined;
  return parseInt(token.slice(0, 12), 16);
}

function keyedMac(key: Buffer, id: string, head: string): string {
  return createHmac('sha256', key).update(`${id}|${head.slice(0, 12)}|${head.slice(12)}`).digest('hex').slice(0, KEYED_TOKEN_HEX - 20);
}

export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

export function proofOf(token: string, nonce: string, id: string): string {
  return createHmac('sha256', token).update(`${nonce}|${id}`).digest('hex');
}

/** Constant-time equality of two hex strings. */
export function sameSecret(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

const tags = new Map<string, string>();
/** First 12 hex digits of SHA-256(id), memoised (bounded). */
export function tagOf(id: string): string {
  let t = tags.get(id);
  if (t === undefined) {
    t = createHash('sha256').update(id).digest('hex').slice(0, 12);
    if (tags.size >= 100_000) tags.clear();
    tags.set(id, t);
  }
  return t;
}
