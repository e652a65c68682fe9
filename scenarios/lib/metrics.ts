/**
 * The records a scenario keeps (docs/SCENARIOS.md, "What the figures mean"), flattened from core's result
 * types so they print as table rows and serialise as JSON. Every figure is
 * taken from what the core measured (performance.now() on the requesting
 * side); the harness adds only its own wall-clock offsets (`at`, ms since
 * the scenario started) and cross-checks it can make from outside (the
 * SHA-256 of the file on disk).
 */
import { notFoundText, type DownloadResult, type JoinTimeline, type RepairRecord, type SearchResult, type TopoResult } from '../../core/index.ts';

export interface JoinRow {
  round: string;
  peer: string;
  /** Harness clock when the join command was sent, ms since scenario start. */
  at: number;
  metaRttMs: number;
  redirects: number;
  finalConnectMs: number;
  totalMs: number;
  depth: number;
  parent: string | null;
  referral: string | null;
  /** Peers tried in order: the referral, then each redirect's target. */
  path: string[];
}

export interface FloodRow {
  round: string;
  kind: 'search' | 'download' | 'topo';
  by: string;
  /** File searched (search, download); '' for topo. */
  name: string;
  label: string;
  at: number;
  /** Peers in the overlay when the flood started, as the scenario knows it (null if unknown). */
  treeSize: number | null;
  hits: string[];
  /** Hop count of each hit (same order as hits). */
  hitHops: number[];
  reached: number;
  messages: number;
  duplicates: number;
  maxHops: number;
  missing: string[];
  firstHitMs: number | null;
  completionMs: number;
  /** Definite answer received (always true unless the request itself failed). */
  answered: boolean;
  error?: string;
}

/**
 * A search row that found nothing, in words: a complete not-found, or not found among the peers reached
 * with the unreachable subtrees named (and how many peers they held, from the tree size when known).
 */
export function floodNotFound(f: Pick<FloodRow, 'name' | 'reached' | 'missing' | 'treeSize'>): string {
  return notFoundText(f.name, f.reached, f.missing, { unreachablePeers: f.treeSize === null ? null : f.treeSize - f.reached });
}

export interface TransferRow {
  round: string;
  file: string;
  /** Holder id (who sent it); '' when the download failed before an offer. */
  from: string;
  to: string;
  label: string;
  at: number;
  /** Harness clock when the requester reported the result (before the harness re-hashes), ms since start. */
  doneAt: number;
  bytes: number;
  ttfbMs: number | null;
  durationMs: number | null;
  mbps: number | null;
  sha256: string | null;
  /** Core verified size and SHA-256 before renaming into place. */
  verified: boolean;
  /** Harness re-hashed the file on disk and it matched the holder's copy. */
  diskSha256Ok: boolean | null;
  ok: boolean;
  errorCode?: string;
  error?: string;
  /** Progress of a large download: [ms since the download was requested (harness clock), bytes received]. */
  samples?: [number, number][];
}

export interface RepairRow {
  round: string;
  peer: string;
  cause: string;
  lost: string;
  ms: number | null;
  newParent: string | null;
  at: number;
}

export interface StepRow {
  name: string;
  ok: boolean;
  at: number;
  ms: number;
  /** Wall-clock ms of the step when the scenario clock is simulated (left out of simDigest). */
  wallMs?: number;
  error?: string;
}

export function joinRow(round: string, peer: string, at: number, t: JoinTimeline): JoinRow {
  return {
    round, peer, at,
    metaRttMs: t.metaRttMs,
    redirects: t.redirects.length,
    finalConnectMs: t.finalConnectMs,
    totalMs: t.totalMs,
    depth: t.depth,
    parent: t.parent?.id ?? null,
    referral: t.referral?.id ?? null,
    path: t.referral ? [t.referral.id, ...t.redirects.map((r) => r.to.id)] : [],
  };
}

export function floodRow(round: string, kind: FloodRow['kind'], by: string, label: string, at: number, treeSize: number | null, r: SearchResult | TopoResult): FloodRow {
  const hits = 'hits' in r ? r.hits.map((h) => h.id) : [];
  const hitHops = 'hits' in r ? r.hits.map((h) => h.hops) : [];
  return {
    round, kind, by, label, at, treeSize,
    name: 'name' in r ? r.name : '',
    hits,
    hitHops,
    reached: r.reached,
    messages: r.messages,
    duplicates: r.duplicates,
    maxHops: r.maxHops,
    missing: [...r.missing],
    firstHitMs: r.firstHitMs,
    completionMs: r.completionMs,
    answered: true,
  };
}

export function transferRow(round: string, to: string, label: string, at: number, doneAt: number, d: DownloadResult, diskOk: boolean | null): TransferRow {
  return {
    round, to, label, at, doneAt,
    file: d.name,
    from: d.holder.id,
    bytes: d.bytes,
    ttfbMs: d.ttfbMs,
    durationMs: d.durationMs,
    mbps: d.mbps,
    sha256: d.sha256,
    verified: d.verified,
    diskSha256Ok: diskOk,
    ok: d.verified && diskOk !== false,
  };
}

export function repairRow(round: string, peer: string, at: number, r: RepairRecord): RepairRow {
  return { round, peer, at, cause: r.cause, lost: r.lost, ms: r.ms, newParent: r.newParent?.id ?? null };
}

export interface Summary {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of measured values (nulls ignored). */
export function summarize(values: readonly (number | null | undefined)[]): Summary | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const q = (p: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))]!;
  return { n: v.length, min: v[0]!, median: q(0.5), p95: q(0.95), max: v[v.length - 1]!, mean: v.reduce((a, b) => a + b, 0) / v.length };
}

/** `xs` grouped by `key`, groups and their members in first-seen order. */
export function groupBy<T, K>(xs: Iterable<T>, key: (x: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const x of xs) {
    const k = key(x);
    const g = m.get(k);
    if (g) g.push(x);
    else m.set(k, [x]);
  }
  return m;
}
