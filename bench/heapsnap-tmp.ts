import v8 from 'node:v8';
import { LocalRunner } from '../scenarios/lib/runner-local.ts';
const N = Number(process.argv[2] ?? 3000);
const r = new LocalRunner('memory', { metaSeed: 1, simSeed: 1 });
const meta = await r.startMetaserver({ policy: 'least-loaded' });
const hs = [];
for (let i = 0; i < N; i++) {
  const h = await r.startPeer({ id: `P${i}`, share: `memory:P${i}`, maxChildren: 2 }, meta.address);
  hs.push(h);
}
for (let i = 0; i < N; i += 32) await Promise.all(hs.slice(i, i + 32).map((h) => h.join()));
console.log('joined', N);
const f = v8.writeHeapSnapshot('/tmp/scale2-prof/peers.heapsnapshot');
console.log(f);
await r.close();
process.exit(0);
