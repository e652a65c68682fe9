/**
 * README.md and docs/*.md: every relative link points at a file that exists,
 * and every #anchor at a heading of that file (GitHub's heading ids), so the
 * front page and the reference pages cannot drift apart silently.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { REPO } from '../helpers.ts';

/** GitHub's id for a heading: lowercase, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

function anchors(file: string): Set<string> {
  const text = fs.readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
}

const pages = ['README.md', ...fs.readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

test('slug follows GitHub heading ids', (t) => {
  t.is(slug('Flows A/B: register and referral'), 'flows-ab-register-and-referral');
  t.is(slug('The `s` object'), 'the-s-object');
  t.is(slug('Control protocol (`--json`)'), 'control-protocol---json');
});

test('the reference pages exist and README links to each', (t) => {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  for (const p of ['docs/PROTOCOL.md', 'docs/SCENARIOS.md', 'docs/CONTROL.md', 'docs/BENCH.md', 'docs/SECURITY.md']) {
    t.true(fs.existsSync(path.join(REPO, p)), p);
    t.true(readme.includes(`](${p})`), `README links to ${p}`);
  }
});

test('every relative link in README.md and docs/ resolves, anchors included', (t) => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    const abs = path.join(REPO, page);
    const text = fs.readFileSync(abs, 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target)) continue;
      checked++;
      const [file, anchor] = target.split('#') as [string, string | undefined];
      const dest = file ? path.resolve(path.dirname(abs), file) : abs;
      if (!fs.existsSync(dest)) broken.push(`${page}: ${target} (no such file)`);
      else if (anchor && dest.endsWith('.md') && !anchors(dest).has(anchor)) broken.push(`${page}: ${target} (no such heading)`);
    }
  }
  t.true(checked > 20, `links checked: ${checked}`);
  t.deepEqual(broken, []);
});
