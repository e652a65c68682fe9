/**
 * The one "is this one tree" check of tests, scenarios and benchmarks, for
 * anything with an id and a parent id (a topology answer's TopoNodes, the
 * metaserver's registry, peers' own parent links): one root, every parent
 * known, no cycle, no duplicate, and (if given) exactly the expected peers;
 * also how deep and how wide, and a canonical form (id → parent id) to
 * compare two runs.
 */
import type { TopoNode } from '../core/index.ts';

export interface TreeCheck {
  ok: boolean;
  why?: string;
  nodes: number;
  roots: string[];
  depth: number;
  /** Peers per depth, index = depth. */
  perDepth: number[];
  maxChildren: number;
}

/** One root, every parent known, no cycle, no duplicate; and (if given) exactly `expected`. */
export function checkTree(nodes: readonly Pick<TopoNode, 'id' | 'parent'>[], expected?: Iterable<string>): TreeCheck {
  const ids = new Set(nodes.map((n) => n.id));
  const parent = new Map(nodes.map((n) => [n.id, n.parent]));
  const roots = nodes.filter((n) => n.parent === null || !ids.has(n.parent)).map((n) => n.id);
  const kids = new Map<string, number>();
  for (const n of nodes) if (n.parent) kids.set(n.parent, (kids.get(n.parent) ?? 0) + 1);
  const depthOf = new Map<string, number>();
  let why: string | undefined;
  if (ids.size !== nodes.length) why = 'duplicate ids';
  else if (roots.length !== 1) why = `${roots.length} roots (${roots.slice(0, 5).join(', ')})`;
  const depth = (id: string): number => {
    const known = depthOf.get(id);
    if (known !== undefined) return known;
    const chain: string[] = [];
    const onChain = new Set<string>();
    let cur: string | null | undefined = id;
    let base = 0;
    while (cur != null && ids.has(cur)) {
      const d = depthOf.get(cur);
      if (d !== undefined) {
        base = d + 1;
        break;
      }
      if (onChain.has(cur)) {
        why ??= `cycle through ${cur}`;
        break;
      }
      onChain.add(cur);
      chain.push(cur);
      cur = parent.get(cur);
    }
    for (let i = chain.length - 1; i >= 0; i--) depthOf.set(chain[i]!, base + (chain.length - 1 - i));
    return depthOf.get(id) ?? 0;
  };
  const perDepth: number[] = [];
  for (const id of ids) {
    const d = depth(id);
    perDepth[d] = (perDepth[d] ?? 0) + 1;
  }
  for (let i = 0; i < perDepth.length; i++) perDepth[i] ??= 0;
  if (expected && !why) {
    const exp = new Set(expected);
    const missing = [...exp].filter((x) => !ids.has(x));
    const extra = [...ids].filter((x) => !exp.has(x));
    if (missing.length) why = `missing ${missing.length} peer(s): ${missing.slice(0, 5).join(', ')}`;
    else if (extra.length) why = `unexpected ${extra.length} peer(s): ${extra.slice(0, 5).join(', ')}`;
  }
  return { ok: !why, why, nodes: nodes.length, roots, depth: Math.max(0, perDepth.length - 1), perDepth, maxChildren: Math.max(0, ...kids.values()) };
}

/** "id>parent" pairs sorted: equal strings mean the same tree. */
export function canonicalTree(nodes: readonly Pick<TopoNode, 'id' | 'parent'>[]): string {
  return nodes.map((n) => `${n.id}>${n.parent ?? '-'}`).sort().join(' ');
}
