/**
 * Answers that say what they know (issue 23, 2b): a search whose flood could
 * not reach a subtree (a neighbour that never answers) is never printed as an
 * unqualified not-found, in any place an answer is printed: the menu's
 * search and download, the control protocol's `searched` and `error` events,
 * and the scenario tables. A complete not-found still reads as before.
 */
import { PassThrough } from 'node:stream';
import test from 'ava';
import { NotFoundError, PROTOCOL_VERSION, type SearchResult } from '../../core/index.ts';
import { download, search, type MenuCtx } from '../../core/cli/peer-actions.ts';
import { DownloadBar } from '../../core/cli/progress.ts';
import { Term } from '../../core/cli/term.ts';
import { errorEvent } from '../../core/control/commands.ts';
import { searchedEvent } from '../../core/control/peer-control.ts';
import { PeerEvent } from '../../core/control/schema.ts';
import { floodRow } from '../../scenarios/lib/metrics.ts';
import { standardTables } from '../../scenarios/lib/output.ts';
import type { Records } from '../../scenarios/lib/records.ts';
import { cluster } from '../helpers.ts';
import { RawClient } from './wire.ts';

const QUALIFIED = /x\.dat not found among 1 reachable peer.*; unreachable: the subtree of MUTE/;
const UNQUALIFIED = /no peer has|not found:|not found \(searched/;

/** The menu's printing, captured: a Term on a pipe whose output is kept. */
function menu(peer: MenuCtx['peer']): { c: MenuCtx; out: () => string } {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (b: Buffer) => (text += b.toString()));
  const term = new Term(input as unknown as NodeJS.ReadStream, output as unknown as NodeJS.WriteStream);
  return { c: { peer, term, s: term.style, liveHits: false, leaving: false, bar: new DownloadBar(term) }, out: () => text };
}

test('a search with an unreachable subtree is never printed as an unqualified not-found (menu, --json, tables)', async (t) => {
  const c = await cluster({ peer: { heartbeatMs: 0, announceMs: 0, floodTimeoutMs: 300 } });
  t.teardown(() => c.close());
  const a = await c.add('A');
  // A child that joins and then never answers a flood: its subtree is missing from every answer.
  const mute = await RawClient.open(t, a.address.port);
  mute.send({ t: 'join', v: PROTOCOL_VERSION, id: 'MUTE', host: '127.0.0.1', port: 4000, subtree: 1 });
  t.is((await mute.next()).t, 'accept');

  const r: SearchResult = await a.search('x.dat');
  t.deepEqual(r.missing, ['MUTE']);
  t.deepEqual(r.hits, []);

  // The menu: search and download.
  const m = menu(a);
  await search(m.c, 'x.dat');
  await download(m.c, 'x.dat');
  const lines = m.out().split('\n').filter((l) => l.includes('x.dat') && !l.startsWith('searching'));
  t.is(lines.length, 2, m.out());
  for (const l of lines) {
    t.regex(l, QUALIFIED);
    t.notRegex(l, UNQUALIFIED);
  }

  // --json: the searched event (validated by the protocol's schema) and the not-found error of a download.
  const ev = PeerEvent.parse(searchedEvent(r));
  t.is(ev.event, 'searched');
  if (ev.event === 'searched') {
    t.false(ev.result.complete);
    t.deepEqual(ev.result.missing, ['MUTE']);
    t.regex(ev.answer!, QUALIFIED);
    t.notRegex(ev.answer!, UNQUALIFIED);
  }
  const err = await a.download('x.dat').then(() => null, (e: unknown) => e);
  t.true(err instanceof NotFoundError);
  const ee = PeerEvent.parse(errorEvent(err, { cmd: 'download', id: 1 }));
  t.is(ee.event, 'error');
  if (ee.event === 'error') {
    t.is(ee.code, 'not-found');
    t.deepEqual(ee.missing, ['MUTE']);
    t.regex(ee.message, /"x\.dat" not found among 1 reachable peer; unreachable: the subtree of MUTE/);
    t.notRegex(ee.message, UNQUALIFIED);
  }

  // Scenario tables: the per-request row names the unreachable subtree and how many peers it cut off
  // (the scenario knows the tree size: here 2, one reached); the summary counts it as incomplete.
  const records = { joins: [], floods: [floodRow('', 'search', 'A', 'search', 0, 2, r)], transfers: [], repairs: [], steps: [], checks: [], memory: [], phases: [], faults: [] } as Records;
  const [rows] = standardTables({ standard: { floods: 'rows' } }, records, null);
  const answer = String(rows!.rows[0]![rows!.head.indexOf('answer')]);
  t.regex(answer, QUALIFIED);
  t.regex(answer, /\(1 peer\)$/);
  t.notRegex(answer, UNQUALIFIED);
  const [sum] = standardTables({ standard: { floods: 'summary' } }, records, null);
  t.is(String(sum!.rows[0]![sum!.head.indexOf('of them incomplete')]), '1');

  // A complete not-found (the mute child gone) still reads as one.
  mute.sock.destroy();
  await new Promise<void>((res) => {
    const check = () => (a.links.children.has('MUTE') ? setTimeout(check, 10) : res());
    check();
  });
  const whole = await a.search('x.dat');
  t.deepEqual(whole.missing, []);
  const m2 = menu(a);
  await search(m2.c, 'x.dat');
  t.regex(m2.out(), /not found: no peer has x\.dat \(searched 1 peer in [\d.]+ ms\)/);
  const ev2 = PeerEvent.parse(searchedEvent(whole));
  if (ev2.event === 'searched') {
    t.true(ev2.result.complete);
    t.is(ev2.answer, 'not found: no peer has x.dat (searched 1 peer)');
  }
});
