/**
 * The HTML reports of five-peers, scale and churn (small runs), rendered in
 * headless Chromium: the DOM Chromium parsed holds the charts drawn by Vega
 * (each with axes and marks, the trees with their nodes), and a screenshot
 * of the page is not blank (it has the charts' coloured marks).
 *
 * Needs a Chromium binary (CHROMIUM=path, else chromium / chromium-browser /
 * google-chrome on PATH; .ci/run installs Debian's chromium when missing).
 * Without one the tests are skipped with a message saying so.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import test from 'ava';
import { churn } from '../scenarios/churn.ts';
import { fivePeers } from '../scenarios/five-peers.ts';
import { scale } from '../scenarios/scale.ts';
import { run, type ScenarioDef } from '../scenarios/lib/index.ts';

function findChromium(): string | null {
  const cands = [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome'].filter((x): x is string => !!x);
  for (const c of cands) {
    try {
      return execFileSync('sh', ['-c', 'command -v "$1"', 'sh', c], { encoding: 'utf8' }).trim() || null;
    } catch {
      /* not there */
    }
  }
  return null;
}

const CHROMIUM = findChromium();
if (!CHROMIUM) process.stderr.write('report-render.test.ts: SKIPPED — no Chromium found (set CHROMIUM=/path, or `apt-get install chromium`); the HTML reports were not checked in a browser.\n');
const browserTest = CHROMIUM ? test.serial : test.skip;

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'treeshare-report-test-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function chromium(dir: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM!, ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--user-data-dir=${path.join(dir, 'profile')}`, ...args],
      { timeout: 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => (err ? reject(new Error(`chromium failed: ${err.message}\n${stderr.slice(-1000)}`)) : resolve(stdout)));
  });
}

/** Decodes an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into pixels. */
function decodePng(buf: Buffer): { width: number; height: number; channels: number; px: Buffer } {
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let off = 8;
  let width = 0, height = 0, channels = 0;
  const idat: Buffer[] = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('ascii', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error('unsupported PNG (bit depth / interlace)');
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      if (!channels) throw new Error(`unsupported PNG colour type ${data[9]}`);
    } else if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels]! : 0;
      const b = y > 0 ? px[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels]! : 0;
      let v = line[x]!;
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + x] = v & 0xff;
    }
  }
  return { width, height, channels, px };
}

interface Figure {
  cls: string;
  caption: string;
  svg: string;
}

function figures(dom: string): Figure[] {
  return [...dom.matchAll(/<figure class="(\w+)"><figcaption>([^<]*)<\/figcaption>([\s\S]*?)<\/figure>/g)].map((m) => ({ cls: m[1]!, caption: m[2]!, svg: m[3]! }));
}

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

async function checkReport(t: import('ava').ExecutionContext, def: ScenarioDef, args: string[], expect: { trees: number; charts: string[] }): Promise<void> {
  const dir = tmp(t);
  const res = await run(def, [...args, '--quiet', '--out', dir]);
  t.true(res.ok, res.failures.join('\n'));
  const html = res.files.html!;
  t.truthy(html && fs.existsSync(html));

  const dom = await chromium(dir, ['--dump-dom', `file://${html}`]);
  const figs = figures(dom);
  const trees = figs.filter((f) => f.cls === 'tree');
  t.true(trees.length >= expect.trees, `${def.name}: ${trees.length} tree figures, expected ≥ ${expect.trees}`);
  for (const f of trees) {
    t.regex(f.svg, /^<svg /, `${f.caption}: not an SVG`);
    t.true(count(f.svg, /<path /g) >= 2 || f.caption.includes('per depth'), `${f.caption}: no links drawn`);
    t.true(count(f.svg, /role-mark/g) >= 2, `${f.caption}: no marks`);
  }
  const charts = figs.filter((f) => f.cls === 'chart');
  for (const title of expect.charts) t.true(charts.some((f) => f.caption.startsWith(title)), `${def.name}: no chart "${title}" (have: ${charts.map((f) => f.caption).join(' | ')})`);
  for (const f of charts) {
    t.regex(f.svg, /^<svg /, `${f.caption}: not an SVG`);
    t.true(count(f.svg, /role-axis"/g) >= 2, `${f.caption}: fewer than two axes`);
    t.regex(f.svg, /role-axis-label/, `${f.caption}: axes without labels`);
    t.regex(f.svg, /role-mark[^"]*"[^>]*>\s*<(path|g)/, `${f.caption}: no marks`);
    t.notRegex(f.svg, /could not be drawn/, f.caption);
  }

  const png = path.join(dir, 'shot.png');
  await chromium(dir, [`--screenshot=${png}`, '--window-size=1200,1600', `file://${html}`]);
  const img = decodePng(fs.readFileSync(png));
  t.is(img.width, 1200);
  let nonWhite = 0;
  let blue = 0;
  const colours = new Set<number>();
  for (let i = 0; i < img.px.length; i += img.channels) {
    const r = img.px[i]!, g = img.px[i + 1]!, b = img.px[i + 2]!;
    if (r < 240 || g < 240 || b < 240) nonWhite++;
    if (b > 150 && b - r > 50) blue++; // the marks' blues (#3b7dd8 tree nodes, #4c78a8 Vega's first series)
    colours.add((r << 16) | (g << 8) | b);
  }
  const n = img.width * img.height;
  t.true(nonWhite / n > 0.02, `${def.name}: screenshot nearly blank (${((100 * nonWhite) / n).toFixed(2)}% non-white)`);
  t.true(blue > 200, `${def.name}: no chart marks visible in the screenshot (${blue} blue pixels)`);
  t.true(colours.size > 50, `${def.name}: only ${colours.size} colours in the screenshot`);
}

browserTest('five-peers report: tree before and after the repair, join CDF, flood completion against depth, in Chromium', async (t) => {
  await checkReport(t, fivePeers, ['--runner', 'inproc', '--seed', '5'], { trees: 2, charts: ['Join latency (CDF', 'Flood completion against depth'] });
});

browserTest('scale report: figures against N on log axes, in Chromium', async (t) => {
  await checkReport(t, scale, ['--sizes', '10,30', '--seed', '5'], { trees: 1, charts: ['Time against N', 'Per-join latency against N', 'Messages per flood against N', 'Memory per peer against N', 'Join latency (CDF'] });
});

browserTest('churn report: a tree after every event, repair times, in Chromium', async (t) => {
  await checkReport(t, churn, ['--runner', 'inproc', '--peers', '6', '--events', '3', '--workers', '2', '--seed', '11'], { trees: 4, charts: ['Repair time per churn event', 'Join latency (CDF', 'Flood completion against depth'] });
});
