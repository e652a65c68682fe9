/**
 * The demo's share folders (shares/S1..S5) as the repository holds them, for
 * tests, scenarios and benches, whatever a person did in shares/ since (the
 * manual demo downloads into them: a pwd1.txt in shares/S1 made S1's first
 * download fail with `exists`). The files come from git's index (what a fresh
 * clone has, and what `git checkout -- shares/` restores); without git (an
 * unpacked archive) from the folders as they are.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO } from './driver.ts';

export interface DemoFile {
  name: string;
  data: Buffer;
}

/** The folder holding S1..S5. */
export const DEMO_SHARES = path.join(REPO, 'shares');

let tracked: Map<string, DemoFile[]> | null | undefined;

/** Every share under `dir` from git's index (id → files), or null when `dir` is not in a git work tree. */
function fromGit(dir: string): Map<string, DemoFile[]> | null {
  let list: Buffer;
  try {
    // Paths relative to `dir`; one line per file: "<mode> <blob> <stage>\t<path>".
    list = execFileSync('git', ['-C', dir, 'ls-files', '-s', '-z', '--', '.'], { stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
  const entries = list.toString('utf8').split('\0').filter(Boolean).map((l) => {
    const [meta, rel] = l.split('\t') as [string, string];
    return { blob: meta.split(' ')[1]!, rel };
  }).filter((e) => e.rel.split('/').length === 2 && !path.basename(e.rel).startsWith('.'));
  const out = new Map<string, DemoFile[]>();
  if (entries.length === 0) return out;
  const blobs = execFileSync('git', ['-C', dir, 'cat-file', '--batch'], { input: entries.map((e) => e.blob).join('\n') + '\n', maxBuffer: 64 * 1024 * 1024 });
  // "<blob> blob <size>\n<size bytes>\n" per entry, in order.
  let at = 0;
  for (const e of entries) {
    const nl = blobs.indexOf(0x0a, at);
    const size = Number(blobs.subarray(at, nl).toString('latin1').split(' ')[2]);
    const data = Buffer.from(blobs.subarray(nl + 1, nl + 1 + size));
    at = nl + 1 + size + 1;
    const [id, name] = e.rel.split('/') as [string, string];
    if (!out.has(id)) out.set(id, []);
    out.get(id)!.push({ name, data });
  }
  return out;
}

/** The files of demo share `id` (e.g. `S3`), as the repository holds them. */
export function demoShare(id: string): DemoFile[] {
  if (tracked === undefined) tracked = fromGit(DEMO_SHARES);
  if (tracked?.has(id)) return tracked.get(id)!;
  const folder = path.join(DEMO_SHARES, id);
  if (!fs.existsSync(folder)) throw new Error(`no share folder shares/${id} in the repository`);
  return fs.readdirSync(folder, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => ({ name: e.name, data: fs.readFileSync(path.join(folder, e.name)) }));
}

/** One file of demo share `id`, as the repository holds it. */
export function demoFile(id: string, name: string): Buffer {
  const f = demoShare(id).find((x) => x.name === name);
  if (!f) throw new Error(`no ${name} in the demo share ${id}`);
  return f.data;
}

/** Writes the files of demo share `id` into `dest` (created if needed). */
export function copyDemoShare(id: string, dest: string): void {
  const files = demoShare(id);
  fs.mkdirSync(dest, { recursive: true });
  for (const f of files) fs.writeFileSync(path.join(dest, f.name), f.data);
}
