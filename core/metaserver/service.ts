/**
 * The metaserver's rules for register, announce and leave (issue 11 items 2
 * and 5), with the network reduced to one injected `probe`, so the same code
 * runs in the Metaserver and in the model test (test/unit/registry-model.test.ts).
 *
 * Identity: `register` issues a secret token; only its holder may announce
 * or leave as that id. An announce for an id the registry does not hold (the
 * metaserver restarted, or the entry was dropped while the peer lived) is
 * taken only when the peer at the announced address proves it holds the
 * announced token (probe with a nonce, answered with an HMAC) and, with a
 * token key, when that token was issued under the key for that id. With a
 * token key an id's holder from before a restart also takes it back from
 * whoever registered it since (see `supersedes`). A report
 * (leave without the token) drops a peer only if the metaserver's own probe
 * finds it dead, leaving or replaced. A register for a held id or address
 * evicts the holder only if the holder no longer proves itself there.
 */
import { TreeshareError } from '../errors.ts';
import { addrKey, type Msg, type PeerRef } from '../protocol/messages.ts';
import { keyedToken, keyedTokenIssuedAt, newToken, sameSecret } from '../protocol/proof.ts';
import type { Policy } from '../protocol/referral.ts';
import type { ProbeResult } from './client.ts';
import { Registry, type Entry } from './registry.ts';

export type Prober = (addr: { host: string; port: number }, expect: { id: string; token?: string }) => Promise<ProbeResult>;

export interface ServiceEvents {
  register(e: { id: string; host: string; port: number; referral: PeerRef | null }): void;
  announce(e: { id: string; parent: string | null; depth: number; isNew: boolean }): void;
  leave(e: { id: string }): void;
  drop(e: { id: string; reason: string }): void;
  secondRoot(e: { id: string; rival: string }): void;
}

export interface ServiceOptions {
  policy: Policy;
  rng: () => number;
  probe: Prober;
  /** Monotonic ms (the metaserver's clock.now()). */
  now: () => number;
  /** Wall-clock ms for joinedAt. */
  wallNow: () => number;
  events?: Partial<ServiceEvents>;
  /** Issues register tokens. Default: crypto randomness (newToken), or keyedToken with `tokenKey`; a seeded source only in simulation. */
  newToken?: () => string;
  /**
   * The token key (kept across restarts): register tokens are keyedToken(key, id), and an
   * announce for an id the registry does not hold is taken only with a token made under
   * this key for that id. Without it a restarted metaserver cannot tell an id's holder
   * from anyone announcing it (docs/PROTOCOL.md, "Who may take an id back after a restart").
   */
  tokenKey?: Buffer;
  /** Wall-clock ms this metaserver started at: keyed tokens issued before it come from an earlier run. Default: wallNow() when the service is made. */
  startedAt?: number;
}

export class MetaService {
  private readonly startedAt: number;

  constructor(readonly registry: Registry, private readonly o: ServiceOptions) {
    this.startedAt = o.startedAt ?? o.wallNow();
  }

  drop(id: string, reason: string): void {
    if (this.registry.remove(id)) this.o.events?.drop?.({ id, reason });
  }

  async register(m: Msg<'register'>): Promise<Msg<'registered'>> {
    const reg = this.registry;
    let existing = reg.get(m.id);
    const mine = existing !== undefined && sameSecret(m.token, existing.token);
    if (existing && !mine && m.token !== undefined && this.supersedes(m.id, m.token, existing.token)) {
      // Its holder from before the restart, proving itself at its address, takes the id back.
      await this.takeBack(m, m.token, existing);
    } else if (existing && !mine) {
      // Another process claims this id: only if the holder no longer proves itself at its address.
      const was = existing;
      const r = await this.o.probe(was, { id: was.id, token: was.token });
      if (r === 'alive' || r === 'leaving') {
        throw new TreeshareError('duplicate-id', `peer id ${m.id} is already registered by a live peer at ${addrKey(was)}`);
      }
      if (reg.get(m.id) === was) this.drop(m.id, addrKey(was) === addrKey(m) ? 're-registered from the same address' : 'not answering; id taken over');
    }
    const holder = reg.byAddress(m.host, m.port);
    if (holder && holder.id !== m.id) {
      const r = await this.o.probe(holder, { id: holder.id, token: holder.token });
      if (r === 'alive' || r === 'leaving') {
        throw new TreeshareError('address-in-use', `${addrKey(m)} is registered by the live peer ${holder.id}`);
      }
      if (reg.get(holder.id) === holder) this.drop(holder.id, `its address ${addrKey(holder)} was re-registered by ${m.id}`);
    }
    // The probes above may have let other requests in: the entry is whatever is there now.
    existing = reg.get(m.id);
    const key = this.o.tokenKey;
    const token = existing && sameSecret(m.token, existing.token) ? existing.token : this.o.newToken ? this.o.newToken() : key ? keyedToken(key, m.id, Math.max(this.o.wallNow(), this.startedAt)) : newToken();
    const { referral } = reg.register({ id: m.id, host: m.host, port: m.port, maxChildren: m.maxChildren, token }, this.o.policy, this.o.now(), this.o.wallNow(), this.o.rng);
    const ref = referral ? { id: referral.id, host: referral.host, port: referral.port } : null;
    this.o.events?.register?.({ id: m.id, host: m.host, port: m.port, referral: ref });
    return { t: 'registered', id: m.id, referral: ref, peers: reg.size, token };
  }

  /** Resolves when accepted; throws `second-root` when the announcer must rejoin a larger tree. */
  async announce(m: Msg<'announce'>): Promise<void> {
    const reg = this.registry;
    let known = reg.get(m.id);
    if (known && !sameSecret(m.token, known.token) && this.supersedes(m.id, m.token, known.token)) {
      await this.takeBack(m, m.token, known);
      known = reg.get(m.id);
    } else if (!known) {
      // Unknown id (a restarted metaserver rebuilding, or dropped while alive): with a token key, only
      // with a token issued under it for this id (anyone can prove a token of their own at their own
      // address); then only if the peer at that address proves it is this id holding this token.
      if (this.o.tokenKey && keyedTokenIssuedAt(this.o.tokenKey, m.id, m.token) === undefined) {
        throw new TreeshareError('unverified', `announced peer ${m.id} at ${addrKey(m)} holds no token this metaserver issued for ${m.id}`);
      }
      await this.proveAt(m, m.token);
      known = reg.get(m.id);
    }
    if (!known) {
      const holder = reg.byAddress(m.host, m.port);
      if (holder && holder.id !== m.id) this.drop(holder.id, `its address ${addrKey(holder)} now answers as ${m.id}`);
    }
    if (known) {
      if (!sameSecret(m.token, known.token)) throw new TreeshareError('bad-token', `announce for ${m.id} with a token it was not issued`);
      if (known.host !== m.host || known.port !== m.port) {
        throw new TreeshareError('id-mismatch', `peer id ${m.id} is registered at ${addrKey(known)}, not ${addrKey(m)}`);
      }
    }
    const { isNew } = reg.announce(m, this.o.now(), this.o.wallNow());
    this.o.events?.announce?.({ id: m.id, parent: m.parent, depth: m.depth, isNew });
    // Two trees (a frozen root woke up; an orphan became root while the registry was rebuilt):
    // the smaller root is told to rejoin, if the larger one is really there.
    const rival = reg.rivalRoot(m.id);
    if (!rival) return;
    const r = await this.o.probe(rival, { id: rival.id, token: rival.token });
    // Re-checked after the probe, so of two roots announcing at once only one is told.
    if (r === 'alive' && reg.rivalRoot(m.id) && this.holds(m)) {
      reg.markRejoining(m.id);
      this.o.events?.secondRoot?.({ id: m.id, rival: rival.id });
      throw new TreeshareError('second-root', `${m.id} roots a second tree; ${rival.id} at ${addrKey(rival)} roots the larger one: rejoin through the metaserver`);
    }
    if (r === 'dead' || r === 'other') {
      if (reg.get(rival.id) === rival) this.drop(rival.id, `probe found it ${r === 'dead' ? 'not answering' : 'replaced'}`);
    }
  }

  /** With the id's token: it leaves. Without: a report, acted on only after our own probe. */
  async leave(m: Msg<'leave'>): Promise<void> {
    const known = this.registry.get(m.id);
    if (!known) return;
    if (m.token !== undefined) {
      if (!sameSecret(m.token, known.token)) throw new TreeshareError('bad-token', `leave for ${m.id} with a token it was not issued`);
      if (this.registry.remove(m.id)) this.o.events?.leave?.({ id: m.id });
      return;
    }
    const r = await this.o.probe(known, { id: known.id, token: known.token });
    if (r === 'alive') return;
    if (this.registry.get(m.id) === known) this.drop(m.id, r === 'leaving' ? 'reported; it is leaving' : r === 'dead' ? 'reported; not answering' : 'reported; its address answers as another peer');
  }

  /**
   * `claim`, a token shown for `id`, was issued under the token key before this metaserver
   * started, and beats `held`, the token the registry holds for `id`: one issued since the
   * start (a register while the id looked free, before its holder's first announce), or an
   * older one from before the start (the id was issued again after that holder left).
   */
  private supersedes(id: string, claim: string, held: string): boolean {
    const key = this.o.tokenKey;
    if (!key) return false;
    const c = keyedTokenIssuedAt(key, id, claim);
    if (c === undefined || c >= this.startedAt) return false;
    const h = keyedTokenIssuedAt(key, id, held);
    return h !== undefined && (h >= this.startedAt || h < c);
  }

  /** Throws `unverified` unless the peer at `m`'s address proves it is `m.id` holding `token`. */
  private async proveAt(m: { id: string; host: string; port: number }, token: string): Promise<void> {
    const r = await this.o.probe(m, { id: m.id, token });
    if (r !== 'alive') throw new TreeshareError('unverified', `announced peer ${m.id} at ${addrKey(m)} did not prove its identity (${r})`);
  }

  /** `m`, holding the superseding `token`, proves itself at its address; then `was` (if still there) is dropped. */
  private async takeBack(m: { id: string; host: string; port: number }, token: string, was: Entry): Promise<void> {
    await this.proveAt(m, token);
    if (this.registry.get(m.id) === was) this.drop(m.id, `taken back by ${addrKey(m)}, which holds a token issued for ${m.id} before the metaserver restarted`);
  }

  private holds(m: { id: string; token: string }): boolean {
    const e: Entry | undefined = this.registry.get(m.id);
    return e !== undefined && sameSecret(e.token, m.token);
  }
}
