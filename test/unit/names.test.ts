/**
 * The share jail: file-name rules (core/protocol/names.ts) and the file-system
 * side (core/transfer/jail.ts): only regular files directly inside the share
 * folder are served; traversal names, absolute paths, control characters and
 * symlinks that escape are refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { checkFileName, MAX_NAME_BYTES } from '../../core/protocol/names.ts';
import { assertName, hasShared, JailError, listShared, openShared, sha256Of, shareRoot } from '../../core/transfer/jail.ts';
import { createHash } from 'node:crypto';
import { tmpDir } from '../helpers.ts';

const ok = (n: unknown) => checkFileName(n).ok;

test('ordinary names are accepted', (t) => {
  for (const n of ['pwd1.txt', 'pwd1', 'a', 'Report 2024.pdf', 'naïve-ünïcode.txt', '日本語.md', 'x'.repeat(255), 'a.b.c', 'file-name_with.many+chars(1)', "it's"]) {
    t.true(ok(n), n);
  }
});

test('traversal, separators and absolute paths are refused', (t) => {
  for (const n of ['../etc/passwd', '..', '.', 'a/b', '/etc/passwd', 'a\\b', '..\\..\\boot.ini', 'C:\\x', 'C:x', 'c:', 'x/..', 'a..b', '....']) {
    t.false(ok(n), n);
  }
});

test('NUL, control, invisible and bidi characters are refused', (t) => {
  for (const n of ['a\0b', 'a\nb', 'a\rb', 'tab\t', '\x7f', 'a\u0085', 'a\u200bb', 'evil\u202etxt.exe', '\ufeffbom']) t.false(ok(n), JSON.stringify(n));
});

test('empty, over-long, hidden, trailing dot/space and non-NFC names are refused', (t) => {
  t.false(ok(''));
  t.false(ok('x'.repeat(MAX_NAME_BYTES + 1)));
  t.false(ok('é'.repeat(128)), '256 UTF-8 bytes');
  t.true(ok('é'.repeat(127)));
  t.false(ok('.hidden'));
  t.false(ok('.treeshare-abc.part'), 'temporary download files are never served');
  t.false(ok('name.'));
  t.false(ok('name '));
  t.false(ok(' name'));
  t.false(ok('e\u0301.txt'), 'decomposed é');
  t.true(ok('\u00e9.txt'));
  t.false(ok(5));
  t.false(ok(null));
  t.false(ok(undefined));
});

test('names that are not well-formed Unicode (lone surrogates) are refused: they would alias one file on disk', (t) => {
  const a = 'x\ud800.txt';
  const b = 'x\udfff.txt';
  // Both become the same bytes on disk (U+FFFD), so accepting them would let two names share a file.
  t.deepEqual(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  for (const n of [a, b, '\ud83d', 'end\ud83d', '\ude00start', 'rev\ude00\ud83d.txt']) {
    const r = checkFileName(n);
    t.false(r.ok, JSON.stringify(n));
    t.regex(r.ok ? '' : r.reason, /well-formed/);
  }
  t.true(ok('emoji-\ud83d\ude00.txt'), 'a proper surrogate pair is fine');
  t.is(t.throws(() => assertName(a), { instanceOf: JailError }).code, 'bad-name');
});

test('a refusal says why', (t) => {
  const r = checkFileName('../x');
  t.false(r.ok);
  t.regex(r.ok ? '' : r.reason, /\//);
  const err = t.throws(() => assertName('a/b'), { instanceOf: JailError });
  t.is(err.code, 'bad-name');
  t.regex(err.message, /refused file name "a\/b"/);
});

test('every accepted name stays directly inside any folder (property)', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (n) => {
      if (!ok(n)) return true;
      const root = '/srv/share';
      const p = path.resolve(root, n);
      return path.dirname(p) === root && path.basename(p) === n && !n.includes('\0') && !path.isAbsolute(n);
    }),
    { numRuns: 2000 },
  );
  // And a grammar of hostile names is always refused.
  const seg = fc.constantFrom('..', '.', 'etc', 'passwd', '', 'x');
  fc.assert(
    fc.property(fc.array(seg, { minLength: 2, maxLength: 5 }), fc.constantFrom('/', '\\'), (parts, sep) => {
      const n = parts.join(sep);
      return !ok(n);
    }),
  );
  t.pass('both properties held');
});

// ---- the file-system side ----

function makeShare(t: import('ava').ExecutionContext): { dir: string; share: string; outside: string } {
  const dir = tmpDir('treeshare-jail-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const share = path.join(dir, 'share');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(share);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(share, 'a.txt'), 'alpha\n');
  fs.writeFileSync(path.join(share, 'b.txt'), 'bravo bravo\n');
  fs.writeFileSync(path.join(share, '.hidden'), 'secret');
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'top secret\n');
  fs.mkdirSync(path.join(share, 'sub'));
  fs.writeFileSync(path.join(share, 'sub', 'inner.txt'), 'inner');
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(share, 'escape.txt'));
  fs.symlinkSync('../outside/secret.txt', path.join(share, 'relescape.txt'));
  fs.symlinkSync('a.txt', path.join(share, 'alias.txt'));
  fs.symlinkSync(outside, path.join(share, 'outdir'));
  fs.symlinkSync(path.join(share, 'missing'), path.join(share, 'dangling.txt'));
  return { dir, share, outside };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? 'no-code';
  }
}

test('listShared lists regular files only, no escapes, no hidden, no folders', async (t) => {
  const { share } = makeShare(t);
  const names = (await listShared(share)).map((f) => f.name);
  t.deepEqual(names, ['a.txt', 'alias.txt', 'b.txt']);
  t.deepEqual((await listShared(share)).find((f) => f.name === 'b.txt')?.size, 12);
});

test('openShared refuses symlinks that escape, folders, hidden and traversal names', async (t) => {
  const { share } = makeShare(t);
  t.is(await code(openShared(share, 'escape.txt')), 'outside-share');
  t.is(await code(openShared(share, 'relescape.txt')), 'outside-share');
  t.is(await code(openShared(share, '../outside/secret.txt')), 'bad-name');
  t.is(await code(openShared(share, 'sub/inner.txt')), 'bad-name');
  t.is(await code(openShared(share, '.hidden')), 'bad-name');
  t.is(await code(openShared(share, 'sub')), 'not-regular');
  t.is(await code(openShared(share, 'outdir')), 'outside-share');
  t.is(await code(openShared(share, 'dangling.txt')), 'not-found');
  t.is(await code(openShared(share, 'nope.txt')), 'not-found');
  t.is(await code(openShared(share, path.join(share, 'a.txt'))), 'bad-name', 'absolute path');
  const f = await openShared(share, 'a.txt');
  t.teardown(() => f.handle.close());
  t.is(f.size, 6);
  t.is(await sha256Of(f), createHash('sha256').update('alpha\n').digest('hex'));
});

test('hasShared answers queries only for servable names', async (t) => {
  const { share } = makeShare(t);
  t.deepEqual(await hasShared(share, 'a.txt'), { size: 6 });
  t.deepEqual(await hasShared(share, 'alias.txt'), { size: 6 }, 'a symlink inside the share is fine');
  for (const n of ['escape.txt', 'relescape.txt', '../outside/secret.txt', 'sub', 'sub/inner.txt', '.hidden', 'outdir', 'dangling.txt', 'a', 'A.TXT', '']) {
    t.is(await hasShared(share, n), null, n);
  }
});

test('shareRoot: a missing or non-folder share is a clear error', async (t) => {
  const { dir, share } = makeShare(t);
  t.is(await code(shareRoot(path.join(dir, 'nope'))), 'no-share');
  t.is(await code(shareRoot(path.join(share, 'a.txt'))), 'no-share');
  t.is(await shareRoot(share), fs.realpathSync(share));
});

test('sha256Of notices a file that changed since it was hashed', async (t) => {
  const { share } = makeShare(t);
  const f1 = await openShared(share, 'b.txt');
  const h1 = await sha256Of(f1);
  await f1.handle.close();
  fs.writeFileSync(path.join(share, 'b.txt'), 'changed content, longer\n');
  const f2 = await openShared(share, 'b.txt');
  t.teardown(() => f2.handle.close());
  const h2 = await sha256Of(f2);
  t.not(h1, h2);
  t.is(h2, createHash('sha256').update('changed content, longer\n').digest('hex'));
});
