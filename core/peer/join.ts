/**
 * Joining the overlay (docs/PROTOCOL.md, flows A–D), newcomer side: register with the
 * metaserver, then JOIN the referred peer, following REDIRECTs (bounded, no
 * loops) until one accepts. The accepted connection is returned open: it is
 * the link to the parent. A target that fails us is reported and we register
 * again (bounded, with backoff). Every step is timestamped for the join timeline.
 */
import { MetaserverUnreachableError, RemoteRefusedError, TreeshareError } from '../errors.ts';
import { addrKey, PROTOCOL_VERSION, type PeerRef } from '../protocol/messages.ts';
import { RedirectTracker } from '../protocol/placement.ts';
import { metaLeave, request } from '../metaserver/client.ts';
import { nextMessage, type Connection } from '../transport/connection.ts';
import { backoffDelays, retry } from '../backoff.ts';
import { realClock, type Clock, OpDeadline } from '../clock.ts';
import type { HostPort, Transport } from '../transport/transport.ts';

export interface JoinTimeline {
  /** clock.now() (the peer's clock) when the (first) register request left. */
  registerSentAt: number;
  referralAt: number;
  referral: PeerRef | null;
  redirects: { from: PeerRef; to: PeerRef; at: number }[];
  acceptedAt: number;
  parent: PeerRef | null;
  depth: number;
  /** Register round trip to the metaserver (the successful attempt), ms. */
  metaRttMs: number;
  /** Last JOIN sent → accept received (connect included), ms. */
  finalConnectMs: number;
  /** Register sent → accepted, ms. */
  totalMs: number;
}

export interface JoinParams {
  transport: Transport;
  meta: HostPort;
  self: PeerRef;
  maxChildren: number;
  /** Size of the subtree this peer brings (1 unless rejoining with children). */
  subtree: () => number;
  localHost?: string;
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Per-step timeout, ms. Default 5,000. */
  stepTimeoutMs?: number;
  onRedirect?: (from: PeerRef, to: PeerRef) => void;
  onReferral?: (ref: PeerRef | null) => void;
  /** Skip the metaserver and JOIN here directly (repair). */
  via?: PeerRef;
  /** The token this peer was issued before (re-registering keeps its identity). */
  token?: () => string | undefined;
  /** Registrations tried when referrals fail (target dead, frozen, leaving, refusing). Default 5. */
  maxAttempts?: number;
  /** Time source for timestamps, step timeouts and backoff. Default realClock. */
  clock?: Clock;
}

export interface JoinOutcome {
  timeline: JoinTimeline;
  /** Open link to the parent (null for the root). */
  conn: Connection | null;
  /** The token the metaserver issued (absent when joining `via` a peer without registering). */
  token?: string;
  /** The parent's root path, its own tag last (see messages.ts). */
  path?: string[];
}

/** The referred (or redirected-to) peer failed us: unreachable, frozen (no answer in time), leaving, or refusing. */
class BadTarget extends TreeshareError {
  constructor(readonly target: PeerRef, cause: TreeshareError) {
    super(cause.code, cause.message, { cause });
  }
}

/**
 * Joins; when the peer we were referred (or redirected) to fails us, reports
 * it to the metaserver (which probes it and, if it is dead, frozen or
 * leaving, stops referring to it) and registers again, with backoff (50 ms,
 * 100 ms, ... at most 1 s), up to `maxAttempts` registrations.
 */
export async function joinOverlay(p: JoinParams): Promise<JoinOutcome> {
  const clock = p.clock ?? realClock;
  const startedAt = clock.now();
  const max = p.maxAttempts ?? 5;
  return retry(() => joinOnce(p, startedAt), {
    delays: backoffDelays({ first: 50, max: 1000, count: max - 1 }),
    retryIf: (err) => err instanceof BadTarget && !p.via,
    onRetry: async (err) => {
      // The metaserver probes the reported peer (up to 1.5 s) before answering.
      await metaLeave(p.transport, p.meta, (err as BadTarget).target.id, { signal: p.signal, timeoutMs: Math.max(4000, p.stepTimeoutMs ?? 5000), localHost: p.localHost, clock }).catch(() => undefined);
    },
    signal: p.signal,
    clock,
  });
}

async function joinOnce(p: JoinParams, registerSentAt: number): Promise<JoinOutcome> {
  const step = p.stepTimeoutMs ?? 5000;
  const clock = p.clock ?? realClock;
  let referral: PeerRef | null;
  let referralAt: number;
  let token: string | undefined;
  const metaSentAt = clock.now();
  if (p.via) {
    referral = p.via;
    referralAt = registerSentAt;
  } else {
    const old = p.token?.();
    const msg = { t: 'register', v: PROTOCOL_VERSION, id: p.self.id, host: p.self.host, port: p.self.port, maxChildren: p.maxChildren, ...(old ? { token: old } : {}) } as const;
    const asked = request(p.transport, p.meta, msg, ['registered'], { signal: p.signal, timeoutMs: step, localHost: p.localHost, clock });
    const reg = await asked.catch((err: unknown) => {
      throw metaUnreachable(err);
    });
    referralAt = clock.now();
    referral = reg.referral;
    token = reg.token;
  }
  p.onReferral?.(referral);
  const timeline: JoinTimeline = {
    registerSentAt, referralAt, referral, redirects: [], acceptedAt: referralAt, parent: null, depth: 0,
    metaRttMs: referralAt - metaSentAt, finalConnectMs: 0, totalMs: referralAt - registerSentAt,
  };
  if (!referral) return { timeline, conn: null, token };

  const tracker = new RedirectTracker(p.maxRedirects);
  let target: PeerRef = referral;
  for (;;) {
    const v = tracker.visit(addrKey(target));
    if (!v.ok) throw new TreeshareError('redirect-loop', `join failed: ${v.reason}`);
    const sentAt = clock.now();
    const d = new OpDeadline(clock, step, p.signal);
    const signal = d.signal;
    // Any failure at the target, but our own abort, is the target's: reported, and we ask again.
    const bad = (err: unknown) => (err instanceof TreeshareError && !p.signal?.aborted ? new BadTarget(target, err) : err);
    let conn: Connection;
    let reply;
    try {
      try {
        conn = await p.transport.connect(target, { signal, localHost: p.localHost });
      } catch (err) {
        throw bad(err);
      }
      try {
        const wait = nextMessage(conn, ['accept', 'redirect'], { signal, what: `an answer to JOIN from ${target.id}` });
        conn.send({ t: 'join', v: PROTOCOL_VERSION, id: p.self.id, host: p.self.host, port: p.self.port, subtree: p.subtree() });
        reply = await wait;
      } catch (err) {
        conn.destroy();
        throw bad(err);
      }
    } finally {
      d.done();
    }
    if (reply.t === 'accept') {
      const now = clock.now();
      timeline.acceptedAt = now;
      timeline.parent = { id: reply.id, host: reply.host, port: reply.port };
      timeline.depth = reply.depth + 1;
      timeline.finalConnectMs = now - sentAt;
      timeline.totalMs = now - registerSentAt;
      return { timeline, conn, token, path: reply.path };
    }
    conn.end();
    timeline.redirects.push({ from: target, to: reply.to, at: clock.now() });
    p.onRedirect?.(target, reply.to);
    const r = tracker.redirect();
    if (!r.ok) throw new TreeshareError('too-many-redirects', `join failed: ${r.reason}`);
    target = reply.to;
  }
}

/** Says "metaserver" in a failure to reach it (a bare "cannot connect to host:port" does not say what that is). */
function metaUnreachable(err: unknown): unknown {
  if (err instanceof TreeshareError && !(err instanceof RemoteRefusedError) && ['unreachable', 'timeout', 'connection-closed'].includes(err.code)) {
    return new MetaserverUnreachableError(err.code, err.message, { cause: err });
  }
  return err;
}
