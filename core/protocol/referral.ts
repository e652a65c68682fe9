/**
 * Referral policy (docs/PROTOCOL.md, flows A/B), pure: which live peer a newcomer is sent to.
 *
 * - root: always the root (the first peer; after it leaves, the shallowest).
 * - random: any joined peer, uniformly.
 * - least-loaded (default): a peer with a free child slot, shallowest first,
 *   then oldest, so the newcomer is accepted without a redirect. Referrals
 *   handed out but not yet confirmed count against the slot ("pending").
 *   When every peer is full, the least-loaded shallowest one (it redirects).
 */
export const POLICIES = ['root', 'random', 'least-loaded'] as const;
export type Policy = (typeof POLICIES)[number];

export interface Candidate {
  id: string;
  host: string;
  port: number;
  joinedAt: number;
  depth: number | null;
  children: number;
  pending: number;
  maxChildren: number;
}

export function isPolicy(s: string): s is Policy {
  return (POLICIES as readonly string[]).includes(s);
}

/** rng: returns a float in [0,1). */
export function chooseReferral(policy: Policy, candidates: readonly Candidate[], rng: () => number = Math.random): Candidate | null {
  if (candidates.length === 0) return null;
  switch (policy) {
    case 'root':
      return pickRoot(candidates);
    case 'random':
      return candidates[Math.floor(rng() * candidates.length)] ?? candidates[0]!;
    case 'least-loaded': {
      let best: Candidate | null = null;
      for (const c of candidates) {
        const free = c.children + c.pending < c.maxChildren;
        if (!free) continue;
        if (!best || better(c, best)) best = c;
      }
      if (best) return best;
      for (const c of candidates) {
        if (!best || load(c) < load(best) || (load(c) === load(best) && better(c, best))) best = c;
      }
      return best;
    }
  }
}

function load(c: Candidate): number {
  return (c.children + c.pending) / c.maxChildren;
}

function depthOf(c: Candidate): number {
  return c.depth ?? Number.MAX_SAFE_INTEGER;
}

function better(a: Candidate, b: Candidate): boolean {
  if (depthOf(a) !== depthOf(b)) return depthOf(a) < depthOf(b);
  return a.joinedAt < b.joinedAt;
}

function pickRoot(cs: readonly Candidate[]): Candidate {
  let best = cs[0]!;
  for (const c of cs) if (better(c, best)) best = c;
  return best;
}
