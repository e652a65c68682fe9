/**
 * Entry point: `npm run metaserver -- [options]` (see --help). Without
 * --json a person sees its address and one line per register/leave/drop;
 * with --json it speaks the control protocol of docs/CONTROL.md. Without a
 * token key (`--token-key-file none`) it warns on stderr, in both modes.
 */
import { runMetaserverCli } from '../cli/metaserver-cli.ts';
import { Metaserver } from '../metaserver/metaserver.ts';
import { METASERVER_HELP, NO_TOKEN_KEY_WARNING, parseMetaserverArgs } from '../control/metaserver-args.ts';
import { runMetaserverControl } from '../control/metaserver-control.ts';
import { runMain, setJsonMode } from '../control/process.ts';

runMain('metaserver', async () => {
  const argv = process.argv.slice(2);
  setJsonMode(argv.includes('--json'));
  const cfg = parseMetaserverArgs(argv);
  if (cfg.help) {
    process.stdout.write(METASERVER_HELP);
    return;
  }
  if (cfg.tokenKeyFile === null) process.stderr.write(`metaserver: ${NO_TOKEN_KEY_WARNING}\n`);
  const meta = new Metaserver(cfg.options);
  await meta.start();
  if (cfg.json) runMetaserverControl(meta);
  else runMetaserverCli(meta, { keyed: !!cfg.options.networkKey, tokenKeyFile: cfg.tokenKeyFile });
});
