/**
 * The metaserver command's main (core/bin/metaserver-main.ts calls it as
 * is). `seams` lets a caller hand the metaserver its transport and clock
 * through MetaserverOptions, as an in-process caller of `new Metaserver`
 * can; the command itself passes none.
 */
import { runMetaserverCli } from '../cli/metaserver-cli.ts';
import { Metaserver } from '../metaserver/metaserver.ts';
import { METASERVER_HELP, NO_TOKEN_KEY_WARNING, parseMetaserverArgs } from '../control/metaserver-args.ts';
import { runMetaserverControl } from '../control/metaserver-control.ts';
import { runMain, setJsonMode } from '../control/process.ts';
import type { Clock } from '../clock.ts';
import { tcpTransport } from '../transport/tcp.ts';
import type { Transport } from '../transport/transport.ts';

export interface MetaserverSeams {
  /** Wraps the transport the metaserver would use (TCP). */
  transport?(inner: Transport): Transport;
  clock?: Clock;
}

export function runMetaserver(seams: MetaserverSeams = {}): void {
  runMain('metaserver', async () => {
    const argv = process.argv.slice(2);
    setJsonMode(argv.includes('--json'));
    const cfg = parseMetaserverArgs(argv);
    if (cfg.help) {
      process.stdout.write(METASERVER_HELP);
      return;
    }
    if (cfg.tokenKeyFile === null) process.stderr.write(`metaserver: ${NO_TOKEN_KEY_WARNING}\n`);
    const o = cfg.options;
    if (seams.transport) o.transport = seams.transport(o.transport ?? tcpTransport());
    if (seams.clock) o.clock = seams.clock;
    const meta = new Metaserver(o);
    await meta.start();
    if (cfg.json) runMetaserverControl(meta);
    else runMetaserverCli(meta, { keyed: !!cfg.options.networkKey, tokenKeyFile: cfg.tokenKeyFile });
  });
}
