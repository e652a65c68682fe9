/**
 * Peer identity towards the metaserver (issue 11 item 2), pure.
 *
 * - token: a secret the metaserver issues at register; only its holder may
 *   announce or leave as that id.
 * - proof: a probed peer answers HMAC-SHA256(token, nonce + "|" + id), so the
 *   metaserver can tell the registered holder of an id from anything else
 *   answering at its address, without the token crossing the wire again.
 * - keyed token: with a token key (which outlives the metaserver process) a
 *   token carries its own proof of issue, checked when a restarted
 *   metaserver hears an id it does not hold.
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

/**
 * A token a metaserver holding `key` can check for `id` after a restart (issue
 * 22 defect 8): 8 hex digits of fresh randomness, then 24 of
 * HMAC-SHA256(key, id + "|" + those 8). No one without the key can make one
 * for an id they were not issued.
 */
export function keyedToken(key: Buffer, id: string): string {
  const salt = newToken().slice(0, 8);
  return salt + keyedMac(key, id, salt);
}

/** `token` was made by keyedToken(key, id). */
export function keyedTokenValid(key: Buffer, id: string, token: string): boolean {
  return /^[0-9a-f]{32}$/.test(token) && sameSecret(token.slice(8), keyedMac(key, id, token.slice(0, 8)));
}

function keyedMac(key: Buffer, id: string, salt: string): string {
  return createHmac('sha256', key).update(`${id}|${salt}`).digest('hex').slice(0, 24);
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
