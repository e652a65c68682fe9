/**
 * The one way tests and benchmarks build an overlay in this process (as
 * hyperdht exports `createTestnet`): a metaserver on 127.0.0.1:0 and peers
 * added one call at a time, each with its own share folder in one temporary
 * directory (tracked by testnet/cleanup.ts, so it goes even if close() is
 * never reached). Overlays of separate processes go through the scenario
 * runners, which drive testnet/control.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Metaserver, Peer, type MetaserverOptions, type PeerOptions, type Transport } from '../core/index.ts';
import { removeDir, tempDir } from './cleanup.ts';
import { checkTree, type TreeCheck } from './tree.ts';
import { copyDemoShare } from './demo-shares.ts';

export interface TestnetOptions {
  meta?: MetaserverOptions;
  /** Defaults for every peer (each add() may override). */
  peer?: Partial<PeerOptions>;
  transport?: Transport;
  /** Prefix of the temporary directory. */
  prefix?: string;
}

export interface AddOptions extends Partial<PeerOptions> {
  /** Copy the repository's shares/<from> into the new share folder (else it starts empty). */
  from?: string;
  /** Join after starting. Default true. */
  join?: boolean;
}

export interface Testnet {
  meta: Metaserver;
  peers: Peer[];
  /** Holds one share folder per peer, `<dir>/<id>`. */
  dir: string;
  transport?: Transport;
  /** Starts (and joins, unless join: false) one more peer. */
  add(id: string, o?: AddOptions): Promise<Peer>;
  peer(id: string): Peer;
  /** The one tree check on the peers' own parent links (and, when given, exactly `expected`). */
  tree(expected?: Iterable<string>): TreeCheck;
  /** Stops every peer and the metaserver, removes the directory. */
  close(): Promise<void>;
}

export async function createTestnet(o: TestnetOptions = {}): Promise<Testnet> {
  const dir = tempDir(o.prefix ?? 'treeshare-testnet-');
  const meta = new Metaserver({ host: '127.0.0.1', port: 0, transport: o.transport, ...o.meta });
  let ma;
  try {
    ma = await meta.start();
  } catch (err) {
    removeDir(dir);
    throw err;
  }
  const peers: Peer[] = [];
  return {
    meta,
    peers,
    dir,
    transport: o.transport,
    async add(id, po = {}) {
      const share = path.join(dir, id);
      fs.mkdirSync(share, { recursive: true });
      const { from, join, ...rest } = po;
      if (from) copyDemoShare(from, share);
      const p = new Peer({ id, host: '127.0.0.1', port: 0, share, meta: { host: '127.0.0.1', port: ma.port }, transport: o.transport, ...o.peer, ...rest });
      peers.push(p);
      await p.start();
      if (join !== false) await p.join();
      return p;
    },
    peer(id) {
      const p = peers.find((x) => x.id === id);
      if (!p) throw new Error(`no peer ${id}`);
      return p;
    },
    tree(expected) {
      return checkTree(
        peers.map((p) => ({ id: p.id, parent: p.state().parent?.id ?? null })),
        expected,
      );
    },
    async close() {
      await Promise.allSettled(peers.map((p) => p.stop()));
      await meta.stop();
      removeDir(dir);
    },
  };
}
