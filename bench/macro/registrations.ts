/**
 * Macro (5): metaserver registrations per second, load from a separate
 * process (bench/fixtures/regload.ts: 32 raw-socket clients, one connection
 * per registration, fresh ids). Baseline, alternating in the same run: an
 * echo server in this process answering each connection's line and closing
 * (connection handling only: what any one-request-per-connection server
 * costs here). Each metaserver run starts with an empty registry.
 */
import { Metaserver } from '../../core/index.ts';
import { Child } from '../lib/child.ts';
import { registerCloser } from '../../testnet/cleanup.ts';
import { nodeArgs, type Ctx } from '../lib/context.ts';
import { echoServer } from '../lib/echo.ts';

export async function registrationsBench(ctx: Ctx): Promise<void> {
  const runs = ctx.quick ? 2 : 3;
  const durationMs = ctx.quick ? 700 : 1500;
  const concurrency = 32;
  const load = await Child.start('registration load generator', 'regload.ts', {}, { nodeArgs: nodeArgs(ctx, 'regload') });
  const echo = await echoServer(JSON.stringify({ t: 'registered', id: 'R0', referral: { id: 'root', host: '127.0.0.1', port: 40000 }, peers: 2 }), true);
  const close = registerCloser(async () => {
    await load.close();
    await echo.close();
  });
  type R = { count: number; errors: number; elapsedMs: number; firstError?: string };
  try {
    const rate = { meta: [] as number[], echo: [] as number[] };
    let errors = 0;
    let firstError: string | undefined;
    for (let r = 0; r < runs; r++) {
      for (const kind of r % 2 ? (['meta', 'echo'] as const) : (['echo', 'meta'] as const)) {
        let meta: Metaserver | undefined;
        let port = echo.port;
        if (kind === 'meta') {
          meta = new Metaserver({ host: '127.0.0.1', port: 0, peerTimeoutMs: 0 });
          port = (await meta.start()).port;
        }
        try {
          const res = await load.call<R>({ kind: kind === 'meta' ? 'register' : 'echo', port, concurrency, durationMs, warmupMs: 150, prefix: `${kind}${r}x` }, 60_000);
          rate[kind].push(res.count / (res.elapsedMs / 1000));
          if (kind === 'meta') {
            errors += res.errors;
            firstError ??= res.firstError;
          }
        } finally {
          await meta?.stop();
        }
      }
      ctx.log(`registrations: round ${r + 1}/${runs}: metaserver ${rate.meta.at(-1)!.toFixed(0)}/s, echo ${rate.echo.at(-1)!.toFixed(0)}/s`);
    }
    const g = `metaserver registrations (load from a separate process, ${concurrency} clients)`;
    ctx.report.add({ id: 'registrations.echo', group: g, label: 'echo server (connect, one line each way, close)', short: 'echo server', unit: '/s', better: 'higher', samples: rate.echo });
    ctx.report.add({ id: 'registrations.meta', group: g, label: `metaserver registrations${errors ? ` (${errors} failed: ${firstError})` : ''}`, unit: '/s', better: 'higher', samples: rate.meta, baselines: ['registrations.echo'] });
    ctx.report.target({ id: 'registrations>=1000', text: 'metaserver ≥ 1,000 registrations/s', measured: ctx.report.get('registrations.meta')!.summary.median, required: 1000, op: '>=', unit: '/s' });
  } finally {
    await close();
  }
}
