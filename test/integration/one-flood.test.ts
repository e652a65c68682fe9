/**
 * Issue 29 item 4: a download floods the tree once. Counted at the transport
 * (frames every Connection wrote), not from what the peers report: a
 * one-holder download in the 5-peer demo tree puts exactly 2(N-1) flood
 * frames on the wire and emits one `hit`; a two-holder download also floods
 * once, declines the offers and swarms from both holders.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { demoCluster, REPO, until } from '../helpers.ts';
import { countingTransport } from './wire.ts';

const N = 5;

test('a one-holder download in a 5-peer tree: 2(N-1) flood frames on the wire, one hit event, the offer path', async (t) => {
  const wire = countingTransport();
  const c = await demoCluster({ transport: wire.transport, peer: { heartbeatMs: 0, announceMs: 0 } });
  t.teardown(() => c.close());
  const s1 = c.peer('S1');
  const hits: string[] = [];
  s1.on('hit', (h) => hits.push(`${h.qid}:${h.holder.id}`));
  wire.reset();
  const d = await s1.download('pwd1.txt');
  t.is(d.holder.id, 'S3');
  t.is(d.swarm, undefined);
  t.deepEqual(fs.readFileSync(path.join(s1.opts.share, 'pwd1.txt')), fs.readFileSync(path.join(REPO, 'shares', 'S3', 'pwd1.txt')));
  t.is(wire.count('query'), N - 1);
  t.is(wire.count('query-reply'), N - 1);
  t.is(hits.length, 1, hits.join(', '));
  t.is(d.search.messages, 2 * (N - 1), 'what the search reports is what went on the wire');
});

test('a two-holder download floods once, declines both offers and swarms from both holders', async (t) => {
  const wire = countingTransport();
  const c = await demoCluster({ transport: wire.transport, peer: { heartbeatMs: 0, announceMs: 0 } });
  t.teardown(() => c.close());
  const s1 = c.peer('S1');
  wire.reset();
  const d = await s1.download('common.txt');
  t.truthy(d.swarm);
  t.deepEqual(d.swarm!.sources.map((s) => s.id).sort(), ['S2', 'S4']);
  t.is(wire.count('query'), N - 1);
  t.is(wire.count('query-reply'), N - 1);
  await until(() => wire.count('decline') === 2, { what: 'both offers declined' });
  t.is(wire.count('ack'), 0);
});
