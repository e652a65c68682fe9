/**
 * The metaserver a person runs: prints its address, then one line per
 * register, leave and drop (and per misbehaving connection, and per peer it
 * learns about only from an announcement, e.g. after a restart). Ctrl-C or
 * SIGTERM stops it.
 */
import type { Metaserver } from '../metaserver/metaserver.ts';
import { addrKey } from '../protocol/messages.ts';
import { onSignals } from '../control/process.ts';
import { keyNote, who } from './format.ts';
import { exitAfterOutput } from '../stdout.ts';

/** `keyed`: the network key is on; `tokenKeyFile`: where its token key is kept (shown at start), null when it runs without one. */
export function runMetaserverCli(meta: Metaserver, o: { keyed: boolean; tokenKeyFile: string | null }): void {
  const out = (line: string) => process.stdout.write(line + '\n');
  // Before the banner: Ctrl-C the moment it shows stops cleanly, not by the default kill.
  onSignals(() => {
    void meta.stop().finally(() => {
      out('metaserver stopped');
      void exitAfterOutput(0);
    });
  });
  const a = meta.address;
  out(`treeshare metaserver listening on ${addrKey(a)} (referral policy ${meta.policy})${keyNote(o.keyed)}`);
  out(o.tokenKeyFile === null ? 'token key: none (peers\' ids are not protected across a restart)' : `token key: ${o.tokenKeyFile} (keep it: peers take their ids back after a restart)`);
  if (a.host === '0.0.0.0' || a.host === '::') out(`peers on this machine use --meta 127.0.0.1:${a.port}`);
  meta.on('register', (r) => out(`register  ${r.id}  ${addrKey(r)}  referral: ${r.referral ? who(r.referral) : `none (first peer: ${r.id} is the root)`}`));
  meta.on('leave', (r) => out(`leave     ${r.id}`));
  meta.on('drop', (r) => out(`drop      ${r.id}: ${r.reason}`));
  meta.on('announce', (r) => r.isNew && out(`announce  ${r.id}  known again (parent ${r.parent ?? 'none'}, depth ${r.depth})`));
  meta.on('protocol-error', (e) => out(`refused   ${e.remote}: ${e.message} [${e.code}]`));
}
