/**
 * The metaserver's JSON-lines control mode: `ready` first, then one event
 * per register, announce, leave, drop and protocol error; commands `status`
 * and `stop`. The registered peer's id is `peer` in these events (`id` is
 * reserved for the echoed command id). `stop`, SIGINT/SIGTERM and the end
 * of stdin stop the metaserver, emit `stopped` and exit 0.
 */
import type { Metaserver } from '../metaserver/metaserver.ts';
import { serveCommands, type Command, type CommandId, type CommandSpec } from './commands.ts';
import { emit, onSignals } from './process.ts';

export const METASERVER_COMMANDS: CommandSpec = { status: {}, stop: {} };

export function runMetaserverControl(meta: Metaserver): void {
  const a = meta.address;
  emit({ event: 'ready', host: a.host, port: a.port, policy: meta.policy, pid: process.pid });
  meta.on('register', (r) => emit({ event: 'register', peer: r.id, host: r.host, port: r.port, referral: r.referral }));
  meta.on('announce', (r) => emit({ event: 'announce', peer: r.id, parent: r.parent, depth: r.depth, isNew: r.isNew }));
  meta.on('leave', (r) => emit({ event: 'leave', peer: r.id }));
  meta.on('drop', (r) => emit({ event: 'drop', peer: r.id, reason: r.reason }));
  meta.on('protocol-error', (e) => emit({ event: 'protocol-error', remote: e.remote, code: e.code, message: e.message }));

  let stopping: Promise<never> | undefined;
  const stop = (id?: CommandId): Promise<never> =>
    (stopping ??= (async () => {
      await meta.stop().catch(() => undefined);
      emit({ event: 'stopped', ...(id !== undefined ? { id } : {}) });
      process.exit(0);
    })());
  onSignals(() => void stop());

  const run = async (c: Command): Promise<Record<string, unknown> | null> => {
    if (c.cmd === 'status') return { event: 'status', peers: meta.registryList() };
    return stop(c.id);
  };
  serveCommands({ input: process.stdin, spec: METASERVER_COMMANDS, run, onEnd: () => void stop() });
}
