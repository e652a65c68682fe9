/**
 * Shared pieces of the leave-and-repair tests (repair.test.ts,
 * repair-process.test.ts): a 15-peer tree, the "one tree of exactly these
 * peers" check (topology from a peer AND the metaserver registry, max
 * children, a search reaching all), and repair-time bookkeeping.
 */
import type { ExecutionContext } from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import type { Metaserver, Peer, RegistryEntry, RepairRecord, TopoNode } from '../../core/index.ts';
import { cluster, type Cluster, type ClusterOptions } from '../helpers.ts';
import { checkTree } from '../../testnet/tree.ts';

export const MAX_CHILDREN = 2;
export const IDS = Array.from({ length: 15 }, (_, i) => `P${String(i + 1).padStart(2, '0')}`);

/** A cluster torn down with the test. */
export async function makeCluster(t: ExecutionContext, o: ClusterOptions = {}): Promise<Cluster> {
  const c = await cluster({ ...o, peer: { maxChildren: MAX_CHILDREN, ...o.peer } });
  t.teardown(() => c.close());
  return c;
}

/** Joins `ids` one by one (a complete binary tree for 15 peers under least-loaded); each shares `<id>.txt`. */
export async function addPeers(c: Cluster, ids: readonly string[]): Promise<Peer[]> {
  const out: Peer[] = [];
  for (const id of ids) {
    const p = await c.add(id);
    fs.writeFileSync(path.join(c.dir, id, `${id}.txt`), `file of ${id}\n`);
    out.push(p);
  }
  return out;
}

/** Writes `<id>.txt` into a share folder of the cluster (for peers not added through addPeers). */
export function shareDir(c: Cluster, id: string): string {
  const d = path.join(c.dir, id);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, `${id}.txt`), `file of ${id}\n`);
  return d;
}

/** Polls `get` until `ok(value)` or the timeout; returns the last value either way (the caller asserts on it). */
export async function settle<T>(get: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 15_000, pollMs = 25): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v) || performance.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

function topoOk(nodes: readonly TopoNode[], expected: readonly string[]): boolean {
  return checkTree(nodes, expected).ok;
}

function registryOk(entries: readonly RegistryEntry[], expected: readonly string[]): boolean {
  return (
    entries.every((e) => e.state === 'joined') && checkTree(entries, expected).ok
  );
}

/**
 * Asserts that `expected` (ids) form exactly one tree: seen by a topology
 * request from `from` (complete, one root, no cycle, max children respected,
 * parent/children views agree), by the metaserver's registry (same ids, all
 * joined, same parents as the topology), and by a search from `from` for a
 * file only `probeHolder` has, which must reach every peer.
 */
export async function assertOneTree(t: ExecutionContext, from: Peer, expected: readonly string[], meta: Metaserver, probeHolder?: string, o: { maxChildren?: number } = {}): Promise<TopoNode[]> {
  const maxChildren = o.maxChildren ?? MAX_CHILDREN;
  const topo = await settle(() => from.topo(), (r) => r.complete && topoOk(r.nodes, expected));
  t.true(topo.complete, `topology from ${from.id} incomplete; missing ${topo.missing.join(',')}`);
  t.deepEqual(sorted(topo.nodes.map((n) => n.id)), sorted(expected), `topology from ${from.id} holds exactly the expected peers`);
  const tree = checkTree(topo.nodes, expected);
  t.true(tree.ok, `topology is one tree: ${tree.why ?? ''}`);
  const byId = new Map(topo.nodes.map((n) => [n.id, n]));
  for (const n of topo.nodes) {
    t.true(n.children.length <= maxChildren, `${n.id} has ${n.children.length} children (max ${maxChildren})`);
    for (const ch of n.children) t.is(byId.get(ch)?.parent, n.id, `${ch} is listed as a child of ${n.id} and names it as parent`);
    if (n.parent) t.true(byId.get(n.parent)?.children.includes(n.id), `${n.parent} lists its child ${n.id}`);
  }
  const reg = await settle(
    () => meta.registryList(),
    (es) => registryOk(es, expected) && es.every((e) => e.parent === byId.get(e.id)?.parent),
  );
  t.deepEqual(sorted(reg.map((e) => e.id)), sorted(expected), 'registry holds exactly the expected peers');
  t.true(reg.every((e) => e.state === 'joined'), 'every registry entry is joined');
  const regTree = checkTree(reg, expected);
  t.true(regTree.ok, `registry is one tree: ${regTree.why ?? ''}`);
  for (const e of reg) t.is(e.parent, byId.has(e.id) ? byId.get(e.id)!.parent : 'absent', `registry parent of ${e.id} matches the overlay`);
  const holder = probeHolder ?? expected.find((id) => id !== from.id)!;
  const s = await from.search(`${holder}.txt`);
  t.is(s.reached, expected.length, `search from ${from.id} reached ${s.reached} of ${expected.length}`);
  t.deepEqual(s.missing, []);
  t.deepEqual(s.hits.map((h) => h.id), [holder]);
  return topo.nodes;
}

/** The ids of `root`'s subtree in a topology. */
export function subtreeOf(nodes: readonly TopoNode[], root: string): string[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const out: string[] = [];
  const walk = (id: string) => {
    out.push(id);
    for (const c of byId.get(id)?.children ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** Waits for one `repaired` event from each of `peers`; resolves with the records. */
export function repairedAll(peers: readonly Peer[], timeoutMs = 20_000): Promise<RepairRecord[]> {
  return Promise.all(
    peers.map(
      (p) =>
        new Promise<RepairRecord>((resolve, reject) => {
          const timer = setTimeout(() => {
            p.off('repaired', on);
            reject(new Error(`${p.id}: no repaired event within ${timeoutMs} ms`));
          }, timeoutMs);
          const on = (r: RepairRecord) => {
            clearTimeout(timer);
            p.off('repaired', on);
            resolve(r);
          };
          p.on('repaired', on);
        }),
    ),
  );
}

/** One event's repair time: first detection to last orphan reattached (all records from one process clock). */
export function eventMs(recs: readonly RepairRecord[]): number {
  const start = Math.min(...recs.map((r) => r.detectedAt));
  const end = Math.max(...recs.map((r) => r.reattachedAt ?? Number.NaN));
  return end - start;
}

export function stats(xs: readonly number[]): { n: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length === 0 ? Number.NaN : s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { n: s.length, median, max: s[s.length - 1] ?? Number.NaN };
}

export const fmt = (x: number) => `${x.toFixed(1)} ms`;
