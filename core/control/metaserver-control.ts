/**
 * The metaserver's JSON-lines control mode: `ready` first, then one event
 * per register, announce, leave, drop and protocol error; commands `status`
 * and `stop`. The registered peer's id is `peer` in these events (`id` is
 * reserved for the echoed command id). `stop`, SIGINT/SIGTERM and the end
 * of stdin stop the metaserver, emit `stopped` and exit 0.
 */
import { isErrorCode } from '../errors.ts';
import type { Metaserver } from '../metaserver/metaserver.ts';
import { serveCommands } from './commands.ts';
import { emit as emitAny, onSignals } from './process.ts';
import { exitAfterOutput } from '../stdout.ts';
import { MetaserverCommand, type CommandId, type MetaserverEvent } from './schema.ts';

const emit = (e: MetaserverEvent) => emitAny(e);

export function runMetaserverControl(meta: Metaserver): void {
  meta.on('register', (r) => emit({ event: 'register', peer: r.id, host: r.host, port: r.port, referral: r.referral }));
  meta.on('announce', (r) => emit({ event: 'announce', peer: r.id, parent: r.parent, depth: r.depth, isNew: r.isNew }));
  meta.on('leave', (r) => emit({ event: 'leave', peer: r.id }));
  meta.on('drop', (r) => emit({ event: 'drop', peer: r.id, reason: r.reason }));
  meta.on('protocol-error', (e) => emit({ event: 'protocol-error', remote: e.remote, code: isErrorCode(e.code) ? e.code : 'internal', message: e.message }));

  let stopping: Promise<never> | undefined;
  const stop = (id?: CommandId): Promise<never> =>
    (stopping ??= (async () => {
      await meta.stop().catch(() => undefined);
      emit({ event: 'stopped', ...(id !== undefined ? { id } : {}) });
      return exitAfterOutput(0);
    })());
  // Before `ready`: a driver that signals as soon as it reads `ready` gets a clean stop, not the default kill.
  onSignals(() => void stop());
  const a = meta.address;
  emit({ event: 'ready', host: a.host, port: a.port, policy: meta.policy, pid: process.pid });

  const run = async (c: MetaserverCommand): Promise<MetaserverEvent> => {
    switch (c.cmd) {
      case 'status':
        return { event: 'status', peers: meta.registryList() };
      case 'stop':
        return stop(c.id);
    }
  };
  serveCommands({ input: process.stdin, schema: MetaserverCommand, run, onEnd: () => void stop() });
}
