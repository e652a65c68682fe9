/**
 * A repair is told once: the orphan emits one `repaired` event (the menu
 * prints it as "parent S2 left; reattached under S1 ... in 9.06 ms", --json
 * forwards it) and no log line saying the same again.
 */
import test from 'ava';
import type { RepairRecord } from '../../core/index.ts';
import { demoCluster, nextEvent } from '../helpers.ts';

test('the orphan of a leaving parent tells its repair once (the event, no log line too)', async (t) => {
  const c = await demoCluster();
  t.teardown(() => c.close());
  const s2 = c.peer('S2');
  const orphans = c.peers.filter((p) => p.state().parent?.id === 'S2');
  t.true(orphans.length > 0, 'S2 has children in the demo tree');
  const said = new Map(orphans.map((o) => [o.id, { repaired: [] as RepairRecord[], logs: [] as string[] }]));
  for (const o of orphans) {
    o.on('repaired', (r) => said.get(o.id)!.repaired.push(r));
    o.on('log', (l) => said.get(o.id)!.logs.push(l.message));
  }
  const done = orphans.map((o) => nextEvent(o, 'repaired'));
  await s2.leave();
  await Promise.all(done);
  for (const [id, s] of said) {
    t.is(s.repaired.length, 1, `${id}: one repaired event`);
    t.deepEqual(s.logs.filter((m) => /reattached/.test(m)), [], `${id}: no log line repeating it`);
  }
});
