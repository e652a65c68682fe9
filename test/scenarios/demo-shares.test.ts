/**
 * Tests and scenarios work from the demo's share folders as the repository
 * holds them, whatever a person did in shares/ (testnet/demo-shares.ts): the
 * manual demo downloads pwd1.txt into shares/S1, after which S1's first
 * download in five-peers and in the tests failed with `exists`.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fivePeers } from '../../scenarios/five-peers.ts';
import { run } from '../../scenarios/lib/index.ts';
import { DEMO_SHARES, demoFile, demoShare } from '../../testnet/demo-shares.ts';
import { demoCluster } from '../helpers.ts';

test.serial('a pwd1.txt left in shares/S1 by the manual demo changes nothing for scenarios and tests', async (t) => {
  const planted = path.join(DEMO_SHARES, 'S1', 'pwd1.txt');
  let mine = false;
  try {
    fs.copyFileSync(path.join(DEMO_SHARES, 'S3', 'pwd1.txt'), planted, fs.constants.COPYFILE_EXCL);
    mine = true; // a person's own copy (EEXIST) is theirs: left in place
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const unplant = () => {
    if (mine) fs.rmSync(planted, { force: true });
    mine = false;
  };
  t.teardown(unplant);
  try {
    t.deepEqual(demoShare('S1').map((f) => f.name).sort(), ['alpha.txt', 'readme.txt']);
    t.is(demoFile('S3', 'pwd1.txt').length, 87);
    // The scenario (memory runner: shares copied into memory stores) ...
    const res = await run(fivePeers, ['--runner', 'memory', '--seed', '7', '--quiet'], { write: false });
    t.true(res.ok, res.failures.join('\n'));
    // ... and the tests' overlay (share folders copied to a temporary folder).
    const c = await demoCluster();
    try {
      const d = await c.peer('S1').download('pwd1.txt');
      t.is(d.holder.id, 'S3');
      t.deepEqual(fs.readFileSync(path.join(c.peer('S1').opts.share, 'pwd1.txt')), demoFile('S3', 'pwd1.txt'));
    } finally {
      await c.close();
    }
  } finally {
    unplant();
  }
});
