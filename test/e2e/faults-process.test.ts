/**
 * Faults on the process runner (issue 23 §1-2), with real node processes:
 * pause/resume are SIGSTOP/SIGCONT of the node's pid; link, clock and disk
 * faults go to every process over the fault side channel on fd 3
 * (testnet/fault-channel.ts), served by the faulty entry points around the
 * production mains. The fault classes in the processes are the recording
 * stand-ins (TREESHARE_FAULT_STANDIN=1), so what reached each process can be
 * read back; they change nothing, so only pause changes the overlay here.
 */
import test from 'ava';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { addrKey } from '../../core/index.ts';
import { run, waitEvent, type ScenarioDef } from '../../scenarios/lib/index.ts';
import { FaultUnsupportedError, META } from '../../scenarios/lib/faults.ts';
import { procState, type ProcessRunner } from '../../scenarios/lib/runner-process.ts';
import type { PeerHandle } from '../../scenarios/lib/runner.ts';
import { killChild, pidExists, trackProcess } from '../../testnet/cleanup.ts';
import { FAULTY_PEER_MAIN } from '../../testnet/control.ts';
import { runScript } from '../../testnet/driver.ts';
import type { FaultReply } from '../../testnet/fault-channel.ts';
import { STANDIN_ENV } from '../../testnet/fault-factories.ts';

// The node processes inherit it: the recording stand-ins, whatever the factories return by default.
process.env[STANDIN_ENV] = '1';

const ARGV = ['--runner', 'process', '--seed', '1', '--quiet', '--no-html'];
const IDS = ['S1', 'S2', 'S3', 'S4'];

test('pause (SIGSTOP) of a peer: alive but silent, requests to it time out, its parent drops it and its child reattaches; resume: it rejoins; every process gets the fault commands; cleanup kills a stopped process', async (t) => {
  const pids: Record<string, number> = {};
  const def: ScenarioDef = {
    name: 'faults-process',
    summary: 'pause/resume and side-channel faults on four peer processes',
    // One child each: a chain S1 ← S2 ← S3 ← S4, so S2 has a parent and a child.
    defaults: { runner: 'process', peers: 4, maxChildren: 1, policy: 'least-loaded' },
    async run(s) {
      const c = await s.cluster();
      await c.addPeers(IDS, { settle: true });
      const first = await c.topo('S1', { expectWhole: true });
      t.deepEqual(['S2', 'S3', 'S4'].map((id) => first.nodes.find((n) => n.id === id)?.parent), ['S1', 'S2', 'S3']);
      for (const id of IDS) pids[id] = c.peer(id).pid!;
      const faults = (c.runner as ProcessRunner).faults;
      const s2: PeerHandle = c.peer('S2');
      let exited = false;
      s2.once('exit', () => (exited = true));

      const dropped = waitEvent(c.peer('S1'), 'child-left', (e) => e.id === 'S2', 30_000, 'S1 drops its silent child S2');
      const reattached = waitEvent(c.peer('S3'), 'repaired', (r) => r.lost === 'S2' && r.newParent !== null, 30_000, 'S3 reattaches');
      const t0 = performance.now();
      await c.pause('S2');
      t.is(procState(pids.S2!), 'T', 'the process is stopped once pause resolved');
      const err = await t.throwsAsync<Error & { code?: string }>(s2.status({ timeoutMs: 1000 }));
      t.is(err?.code, 'timeout', 'a request to a paused node fails by its timeout');
      // A link fault while S2 is stopped resolves (S2 answers it after resume) instead of hanging.
      await c.shape('S1', 'S4', { latencyMs: 5 });
      await Promise.all([dropped, reattached]);
      const noticedMs = performance.now() - t0;
      // Silence, not a closed socket: not before deadAfterMs (4 s) less a heartbeat, less the 1 s status wait above.
      t.true(noticedMs > 2000, `noticed after ${noticedMs.toFixed(0)} ms`);
      t.true(s2.alive && !exited && pidExists(pids.S2!), 'a stopped process is not taken for a dead one');

      const rejoined = waitEvent(s2, 'repaired', () => true, 30_000, 'S2 rejoins after resume');
      await c.resume('S2');
      t.not(procState(pids.S2!), 'T');
      await rejoined;
      const tree = await c.waitWhole({ by: 'S1' });
      t.deepEqual(tree.map((n) => n.id).sort(), IDS);

      // Every process (the metaserver too) learnt every node's address and got the link faults; skew only S3.
      await c.partition([['S1', 'S2'], ['S3', 'S4', META]]);
      await c.heal();
      await c.skew('S3', { offsetMs: 30_000 });
      const addrs = Object.fromEntries([[META, addrKey(c.meta.address)], ...IDS.map((id) => [id, addrKey(c.peer(id).address)])]);
      for (const id of [META, ...IDS]) {
        const r = await faults.channel(id)!.request({ cmd: 'recorded' });
        const calls = r.calls!;
        const known = Object.fromEntries(calls.filter((x) => x.method === 'knowAddress').map((x) => [x.args[1] as string, x.args[0] as string]));
        t.deepEqual(known, addrs, `${id} knows every address`);
        t.deepEqual(calls.find((x) => x.method === 'transportFor')?.args, [id], `${id}'s transport goes through its plane`);
        t.deepEqual(calls.find((x) => x.method === 'shape')?.args, ['S1', 'S4', { latencyMs: 5 }], `${id} got the shape`);
        t.deepEqual(calls.find((x) => x.method === 'partition')?.args, [[['S1', 'S2'], ['S3', 'S4', META]], {}], `${id} got the partition`);
        t.true(calls.some((x) => x.method === 'heal'), `${id} got the heal`);
        t.is(calls.some((x) => x.method === 'setSkew'), id === 'S3', `skew reached ${id === 'S3' ? '' : 'no process but '}S3`);
      }

      // The side channel refuses a bad line with an error, applies nothing, and the node keeps serving.
      const ch = faults.channel('S3')!;
      const before = (await ch.request({ cmd: 'recorded' })).calls!.length;
      const answers: FaultReply[] = [];
      ch.on('unmatched', (r) => answers.push(r));
      ch.sendRaw('not json');
      ch.sendRaw('{"cmd":"partition","groups":"S1","id":77}');
      ch.sendRaw('{"cmd":"shape","a":"S1","b":"S2","spec":{"latencyMs":-5},"id":78}');
      ch.sendRaw('{"cmd":"format-disk","id":79}');
      await t.throwsAsync(ch.request({ cmd: 'disk', spec: { kind: 'melt' } } as never), { message: /refused disk: bad "disk" command: spec\.kind/ });
      t.is(answers.length, 4);
      t.true(answers.every((a) => !a.ok));
      t.regex((answers[0] as { error: string }).error, /^not JSON/);
      t.deepEqual(answers.slice(1).map((a) => a.id), [77, 78, 79]);
      t.regex((answers[3] as { error: string }).error, /unknown command "format-disk"/);
      t.is((await ch.request({ cmd: 'recorded' })).calls!.length, before, 'nothing was applied');
      t.is((await c.peer('S3').status()).id, 'S3', 'S3 still answers');
      await t.throwsAsync(c.disk(META, { kind: 'enospc' }), { message: /metaserver has no share store/ });

      // Left stopped: the scenario's cleanup must still end it.
      await c.pause('S4');
      t.is(procState(pids.S4!), 'T');
    },
  };
  const res = await run(def, ARGV, { write: false });
  t.true(res.ok, res.failures.join('\n'));
  for (const id of IDS) t.false(pidExists(pids[id]!), `${id} (pid ${pids[id]}) is gone after cleanup`);
  const rows = res.records.faults.map((f) => `${f.kind} ${f.targets.join(' ')}`);
  t.deepEqual(rows, ['pause S2', 'shape S1 S4', 'resume S2', 'partition S1,S2 S3,S4,meta', 'heal ', 'skew S3', 'pause S4'], 'a refused fault (disk on the metaserver) is not recorded');
  const pause = res.records.faults.find((f) => f.kind === 'pause' && f.targets[0] === 'S2')!;
  t.true(pause.until !== null && pause.until > pause.at, 'the pause row ends at the resume');
});

test('the production entry points (faults: false): a link fault is a FaultUnsupportedError from the Cluster, pause is not', async (t) => {
  const def: ScenarioDef = {
    name: 'faults-process-off',
    summary: 'no side channel',
    defaults: { runner: 'process', peers: 1, maxChildren: 2, policy: 'least-loaded' },
    async run(s) {
      const c = await s.cluster({ faults: false });
      const faults = (c.runner as ProcessRunner).faults;
      t.is(faults.channel(META), null, 'the metaserver has no side channel');
      const err = await t.throwsAsync(c.partition([['S1'], [META]]), { instanceOf: FaultUnsupportedError });
      t.regex(err!.message, /^the process runner cannot partition: .*without the fault side channel/);
      await t.throwsAsync(c.skew(META, { offsetMs: 1 }), { instanceOf: FaultUnsupportedError });
      t.is(faults.unsupported('pause'), null);
      t.is(s.records.faults.length, 0, 'a refused fault is not recorded');
      // pause/resume by signal work on a production process.
      await c.pause(META);
      t.is(procState(c.meta.pid!), 'T');
      await c.resume(META);
      t.is((await c.meta.status()).length, 0);
    },
  };
  const res = await run(def, ARGV, { write: false });
  t.true(res.ok, res.failures.join('\n'));
});

test('a faulty entry point started without the side channel on fd 3 says so and exits 2', async (t) => {
  const r = await runScript(FAULTY_PEER_MAIN, ['--json', '--id', 'S1', '--port', '0']);
  t.is(r.code, 2);
  t.regex(r.stderr, /^faulty-peer-main: fd 3 is not the harness's fault side channel/);
  t.is(r.stdout, '');
});

test('killChild ends a stopped process with SIGTERM too (continued after the signal), not after its timeout', async (t) => {
  const cp = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  trackProcess(cp);
  t.teardown(() => killChild(cp));
  await once(cp, 'spawn');
  cp.kill('SIGSTOP');
  while (procState(cp.pid!) !== 'T') await new Promise((r) => setTimeout(r, 1));
  const t0 = performance.now();
  await killChild(cp, 'SIGTERM', 3000);
  t.false(pidExists(cp.pid!), 'the stopped process is gone');
  t.is(cp.signalCode, 'SIGTERM');
  t.true(performance.now() - t0 < 2500);
});
