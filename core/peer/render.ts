/** Rendering a topology result: an indented tree (id, address, depth) or JSON-ready nesting. */
import type { TopoNode } from '../protocol/messages.ts';

export interface TreeView {
  id: string;
  host: string;
  port: number;
  depth: number;
  files: number;
  children: TreeView[];
}

/** Builds the nested tree from flat nodes; nodes whose parent is unknown become extra roots. */
export function treeFromNodes(nodes: readonly TopoNode[]): TreeView[] {
  const byId = new Map<string, TreeView>();
  for (const n of nodes) byId.set(n.id, { id: n.id, host: n.host, port: n.port, depth: 0, files: n.files, children: [] });
  const roots: TreeView[] = [];
  for (const n of nodes) {
    const v = byId.get(n.id)!;
    const parent = n.parent ? byId.get(n.parent) : undefined;
    if (parent && parent !== v) parent.children.push(v);
    else roots.push(v);
  }
  const fix = (v: TreeView, d: number, seen: Set<string>) => {
    if (seen.has(v.id)) return;
    seen.add(v.id);
    v.depth = d;
    v.children.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const c of v.children) fix(c, d + 1, seen);
  };
  const seen = new Set<string>();
  for (const r of roots) fix(r, 0, seen);
  return roots;
}

/** Indented text, one peer per line: "S1  127.0.0.1:5001  depth 0  3 files". */
export function renderTree(nodes: readonly TopoNode[]): string {
  const lines: string[] = [];
  const walk = (v: TreeView, prefix: string, last: boolean, top: boolean) => {
    const branch = top ? '' : last ? '└─ ' : '├─ ';
    lines.push(`${prefix}${branch}${v.id}  ${v.host}:${v.port}  depth ${v.depth}  ${v.files} file${v.files === 1 ? '' : 's'}`);
    const next = top ? '' : prefix + (last ? '   ' : '│  ');
    v.children.forEach((c, i) => walk(c, next, i === v.children.length - 1, false));
  };
  for (const r of treeFromNodes(nodes)) walk(r, '', true, true);
  return lines.join('\n');
}
