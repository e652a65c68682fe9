import test from 'ava';
import { demoCluster } from '../helpers.ts';
import { checkTree } from '../../testnet/tree.ts';

test('five demo peers form one tree and S1 downloads pwd1.txt from S3', async (t) => {
  const c = await demoCluster();
  t.teardown(() => c.close());
  const topo = await c.peer('S1').topo();
  t.true(checkTree(topo.nodes).ok);
  t.is(topo.nodes.length, 5);
  const d = await c.peer('S1').download('pwd1.txt');
  t.is(d.holder.id, 'S3');
  t.true(d.verified);
});
