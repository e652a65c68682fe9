/**
 * Peer identity towards the metaserver (issue 11 item 2), pure.
 *
 * - token: a secret the metaserver issues at register; only its holder may
 *   announce or leave as that id.
 * - proof: a probed peer answers HMAC-SHA256(token, nonce + "|" + id), so the
 *   metaserver can tell the registered holder of an id from anything else
 *   answering at its address, without the token crossing the wire again.
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
