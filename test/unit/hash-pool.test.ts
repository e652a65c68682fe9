/** core/transfer/hash-pool.ts: piece verification + write and the whole-file hash on worker threads. */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { HashPool } from '../../core/transfer/hash-pool.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function tmpFile(t: import('ava').ExecutionContext): { fd: number; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hash-pool-'));
  const file = path.join(dir, 'f.part');
  const fd = fs.openSync(file, 'w+');
  t.teardown(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { fd, file };
}

test('verifyWrite writes a piece only when its SHA-256 matches; needs shared memory', async (t) => {
  const pool = new HashPool(2);
  const { fd, file } = tmpFile(t);
  const piece = Buffer.from(new SharedArrayBuffer(4096));
  randomBytes(4096).copy(piece);
  t.false(await pool.verifyWrite(piece, sha(Buffer.from('other')), fd, 0));
  t.is(fs.statSync(file).size, 0, 'a bad piece is not written');
  t.true(await pool.verifyWrite(piece.subarray(0, 1000), sha(piece.subarray(0, 1000)), fd, 5000));
  const got = fs.readFileSync(file);
  t.is(got.length, 6000);
  t.deepEqual(got.subarray(5000), piece.subarray(0, 1000));
  await t.throwsAsync(pool.verifyWrite(Buffer.alloc(10), sha(Buffer.alloc(10)), fd, 0), { instanceOf: TypeError });
  // A write error (closed fd) rejects.
  const bad = fs.openSync(file, 'r');
  await t.throwsAsync(pool.verifyWrite(piece, sha(piece), bad, 0));
  fs.closeSync(bad);
});

test('the whole-file hash reads ranges back in the order fed; a short read fails the digest; hashes are independent', async (t) => {
  const pool = new HashPool(1);
  const { fd } = tmpFile(t);
  const body = randomBytes(3 * 1024 * 1024 + 17);
  fs.writeSync(fd, body, 0, body.length, 0);
  const a = pool.whole();
  const b = pool.whole();
  a.feed(fd, 0, 1024 * 1024);
  b.feed(fd, 0, 10);
  a.feed(fd, 1024 * 1024, body.length - 1024 * 1024);
  t.is(await a.digest(), sha(body));
  t.is(await b.digest(), sha(body.subarray(0, 10)));
  const c = pool.whole();
  c.feed(fd, body.length - 5, 10); // past the end: short
  await t.throwsAsync(c.digest(), { message: /short read/ });
  t.is(await pool.whole().digest(), sha(Buffer.alloc(0)), 'nothing fed: the empty hash');
  const d = pool.whole();
  d.feed(fd, 0, 5);
  await d.close(); // answers once its read is done
});

test('a whole-file hash whose worker stopped fails its digest (never the hash of what a new worker saw)', async (t) => {
  const pool = new HashPool(1);
  const { fd } = tmpFile(t);
  fs.writeSync(fd, randomBytes(4096), 0, 4096, 0);
  const a = pool.whole();
  a.feed(fd, 0, 4096);
  t.true(pool.wholeRunning);
  await pool.stop();
  t.false(pool.wholeRunning);
  await t.throwsAsync(a.digest(), { message: /exited/ });
  // The pool works again with a fresh worker.
  const b = pool.whole();
  b.feed(fd, 0, 10);
  t.is((await b.digest()).length, 64);
  await pool.stop();
});
