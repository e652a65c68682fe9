/**
 * No import circle in core/, scenarios/, testnet/, bench/ or scripts/: every relative
 * import, re-export and dynamic import, type-only ones included (a type
 * circle still ties modules together), read with TypeScript's own import
 * scanner (ts.preProcessFile). The test lists every elementary cycle it finds
 * and fails on any that is not in ALLOWED below.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import ts from 'typescript';
import { REPO } from '../helpers.ts';

const ROOTS = ['core', 'scenarios', 'testnet', 'bench', 'scripts'];

/**
 * Known cycles, each written as its files in order (the first file repeated at
 * the end is implied). Every entry must still exist: when a cycle goes, delete
 * its entry, so the list only ever shrinks. Empty since the peer-context
 * refactor (issue 12.1): no import circle is allowed.
 */
const ALLOWED: readonly (readonly string[])[] = [];

type Graph = Map<string, string[]>;

function listTs(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listTs(p, out);
    else if (/\.(ts|mts)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Resolves a relative specifier to a repository-relative .ts path, or undefined. */
function resolveSpec(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts')]) {
    if (c.endsWith('.ts') && fs.existsSync(c) && fs.statSync(c).isFile()) return path.relative(REPO, c).split(path.sep).join('/');
  }
  return undefined;
}

function importGraph(roots: readonly string[]): Graph {
  const g: Graph = new Map();
  for (const root of roots) {
    for (const abs of listTs(path.join(REPO, root))) {
      const info = ts.preProcessFile(fs.readFileSync(abs, 'utf8'), true, true);
      const deps = info.importedFiles.map((f) => resolveSpec(abs, f.fileName)).filter((d): d is string => d !== undefined);
      g.set(path.relative(REPO, abs).split(path.sep).join('/'), [...new Set(deps)].sort());
    }
  }
  return g;
}

/** Every elementary cycle, each rotated to start at its smallest file (at most `cap`). */
export function cycles(g: Graph, cap = 500): string[][] {
  const nodes = [...g.keys()].sort();
  const out: string[][] = [];
  // For each start s, find cycles through s that use only nodes > s (each cycle found once).
  for (const s of nodes) {
    const stack: string[] = [s];
    const onPath = new Set([s]);
    const walk = (v: string): void => {
      for (const w of g.get(v) ?? []) {
        if (out.length >= cap) return;
        if (w === s) out.push([...stack]);
        else if (w > s && g.has(w) && !onPath.has(w)) {
          stack.push(w);
          onPath.add(w);
          walk(w);
          stack.pop();
          onPath.delete(w);
        }
      }
    };
    walk(s);
  }
  return out;
}

const key = (c: readonly string[]): string => c.join(' -> ');

test('the cycle finder finds a two-file, a three-file and a self cycle, and none in a chain', (t) => {
  const g: Graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['a.ts', 'c.ts']],
    ['c.ts', ['d.ts']],
    ['d.ts', ['b.ts', 'd.ts']],
  ]);
  t.deepEqual(cycles(g).map(key).sort(), ['a.ts -> b.ts', 'b.ts -> c.ts -> d.ts', 'd.ts'].sort());
  t.deepEqual(cycles(new Map([['x.ts', ['y.ts']], ['y.ts', ['z.ts']], ['z.ts', []]])), []);
});

test('the import graph sees type-only imports and re-exports', (t) => {
  const g = importGraph(['scenarios/lib']);
  // records.ts is imported only with `import type` / `export type … from`.
  t.true(g.get('scenarios/lib/cluster.ts')?.includes('scenarios/lib/records.ts'));
  t.true(g.get('scenarios/lib/index.ts')?.includes('scenarios/lib/records.ts'));
  t.true(g.size > 10);
});

test('no import circle in core/, scenarios/, testnet/ or bench/ (beyond the named allowance)', (t) => {
  const found = cycles(importGraph(ROOTS));
  const allowed = new Set(ALLOWED.map(key));
  const unexpected = found.filter((c) => !allowed.has(key(c)));
  const stale = ALLOWED.filter((c) => !found.some((f) => key(f) === key(c)));
  t.deepEqual(unexpected.map(key), [], `import circles:\n${unexpected.map((c) => `  ${key(c)} -> ${c[0]}`).join('\n')}`);
  t.deepEqual(stale.map(key), [], 'these allowed cycles are gone: delete them from ALLOWED in test/unit/import-cycles.test.ts');
});
