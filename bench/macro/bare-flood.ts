/**
 * Baseline for search: the same tree (same edges, one TCP connection per
 * edge, all in this process) running the bare minimum of a flood with
 * convergecast in JSON lines — forward to every neighbour but the sender,
 * answer the sender once every other neighbour answered — with no
 * validation, rate limiting, timers, disk lookups or events. Messages carry
 * the same fields as treeshare's query / query-reply, so bytes on the wire
 * match. It is the floor for a JSON-lines tree flood in one Node process.
 */
import net from 'node:net';

interface Pending {
  from: number | null;
  waiting: Set<number>;
  reached: number;
  messages: number;
  done?: (r: { reached: number; messages: number }) => void;
}

interface Node {
  nbrs: Map<number, net.Socket>;
  pending: Map<string, Pending>;
  seen: Set<string>;
}

export class BareTree {
  private nodes: Node[] = [];
  private server!: net.Server;
  private socks = new Set<net.Socket>();
  private seq = 0;

  private constructor() {}

  /** edges: [parent index, child index]; n nodes. */
  static async build(n: number, edges: readonly [number, number][]): Promise<BareTree> {
    const t = new BareTree();
    t.nodes = Array.from({ length: n }, () => ({ nbrs: new Map(), pending: new Map(), seen: new Set() }));
    let registered = 0;
    let allIn!: () => void;
    const ready = new Promise<void>((r) => (allIn = r));
    t.server = net.createServer({ noDelay: true }, (sock) => {
      t.socks.add(sock);
      sock.on('error', () => undefined);
      // First line: {"hello":[parent, child]}; this end belongs to the parent.
      t.lines(sock, (m) => {
        if ('hello' in m) {
          const [p, c] = m.hello as [number, number];
          t.nodes[p]!.nbrs.set(c, sock);
          t.bind(sock, p, c);
          if (++registered === edges.length) allIn();
          return true;
        }
        return false;
      });
    });
    t.server.maxConnections = 100_000;
    const port = await new Promise<number>((resolve) => t.server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve((t.server.address() as net.AddressInfo).port)));
    if (edges.length === 0) allIn();
    for (let i = 0; i < edges.length; i += 64) {
      await Promise.all(
        edges.slice(i, i + 64).map(
          ([p, c]) =>
            new Promise<void>((resolve, reject) => {
              const sock = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => {
                sock.write(JSON.stringify({ hello: [p, c] }) + '\n');
                resolve();
              });
              sock.once('error', reject);
              t.socks.add(sock);
              t.nodes[c]!.nbrs.set(p, sock);
              t.lines(sock, () => false);
              t.bind(sock, c, p);
            }),
        ),
      );
    }
    await ready;
    return t;
  }

  private handlers = new WeakMap<net.Socket, (m: Record<string, unknown>) => void>();

  /** Socket `sock` is node `me`'s link to neighbour `other`. */
  private bind(sock: net.Socket, me: number, other: number): void {
    this.handlers.set(sock, (m) => this.onMessage(me, other, m));
  }

  /** Splits lines; `pre` may consume a message (hello) before normal handling. */
  private lines(sock: net.Socket, pre: (m: Record<string, unknown>) => boolean): void {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = JSON.parse(line) as Record<string, unknown>;
        if (pre(m)) continue;
        this.handlers.get(sock)?.(m);
      }
    });
  }

  private send(from: number, to: number, m: object): void {
    this.nodes[from]!.nbrs.get(to)!.write(JSON.stringify(m) + '\n');
  }

  private onMessage(me: number, from: number, m: Record<string, unknown>): void {
    const node = this.nodes[me]!;
    const qid = m.qid as string;
    if (m.t === 'query') {
      if (node.seen.has(qid)) return this.send(me, from, reply(qid, 0, 1));
      this.start(me, from, m);
    } else {
      const p = node.pending.get(qid);
      if (!p || !p.waiting.delete(from)) return;
      p.reached += m.reached as number;
      p.messages += m.messages as number;
      this.check(me, qid, p);
    }
  }

  private start(me: number, from: number | null, q: Record<string, unknown>, done?: Pending['done']): void {
    const node = this.nodes[me]!;
    const qid = q.qid as string;
    node.seen.add(qid);
    const others = [...node.nbrs.keys()].filter((n) => n !== from);
    const p: Pending = { from, waiting: new Set(others), reached: 1, messages: others.length, done };
    node.pending.set(qid, p);
    const fwd = { ...q, hops: (q.hops as number) + 1 };
    for (const o of others) this.send(me, o, fwd);
    this.check(me, qid, p);
  }

  private check(me: number, qid: string, p: Pending): void {
    if (p.waiting.size > 0) return;
    this.nodes[me]!.pending.delete(qid);
    if (p.from === null) p.done?.({ reached: p.reached, messages: p.messages });
    else this.send(me, p.from, reply(qid, p.reached, p.messages + 1));
  }

  /** Floods from node `origin`; resolves when the answer is complete. */
  flood(origin: number, name: string): Promise<{ ms: number; reached: number; messages: number }> {
    const qid = `bare:${++this.seq}`;
    const t0 = performance.now();
    return new Promise((resolve) => {
      const q = { t: 'query', qid, name, origin: { id: `P${origin}`, host: '127.0.0.1', port: 40000 + origin }, ttl: 255, hops: 0, budget: 10000, want: 'search' };
      this.start(origin, null, q, (r) => resolve({ ms: performance.now() - t0, ...r }));
    });
  }

  async close(): Promise<void> {
    for (const s of this.socks) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function reply(qid: string, reached: number, messages: number): object {
  return { t: 'query-reply', qid, hits: [], missing: [], reached, messages, duplicates: 0, maxHops: 0 };
}
