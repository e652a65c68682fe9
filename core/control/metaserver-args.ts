/** The metaserver command's flags and help text. */
import type { MetaserverOptions } from '../metaserver/metaserver.ts';
import fs from 'node:fs';
import { isPolicy, POLICIES } from '../protocol/referral.ts';
import { generateKey, MIN_KEY_BYTES, shortKeyMessage } from '../transport/auth.ts';
import { mulberry32 } from '../protocol/rng.ts';
import { DEFAULT_MAX_CONNECTIONS } from '../transport/tcp.ts';
import { LIMIT_FLAGS, limitHelp, limitOptions, parseFlags, readKeyFile, parseHost, parseIntIn, parsePort, str, UsageError } from './args.ts';

export const METASERVER_HELP = `Usage: npm run metaserver -- [options]
       npx tsx core/bin/metaserver-main.ts [options]

Runs the treeshare metaserver: peers register with it and are referred to a
peer already in the overlay. It prints its address, then one line per
register, leave and drop. Ctrl-C stops it.

Options:
      --host HOST       address to bind (default 0.0.0.0: every interface)
  -p, --port PORT       port to listen on; 0 picks a free one (default 9000)
      --policy POLICY   referral policy: root, random or least-loaded (default least-loaded)
      --key-file FILE   network key (at least 32 bytes; npm run keygen) in FILE;
                        default $TREESHARE_KEY; peers must use the same key
      --token-key-file FILE
                        token key in FILE, created (32 random bytes, mode 0600)
                        if missing: after a restart with the same FILE a peer's
                        id goes back only to the peer issued it (default: none;
                        then anyone proving a token of its own may claim an id
                        the restarted metaserver has not heard yet)
${limitHelp(DEFAULT_MAX_CONNECTIONS)}
      --seed N          seed for the random policy (repeatable runs; default: unseeded)
      --json            control mode: JSON-line commands on stdin, events on stdout
  -h, --help            show this help

Examples:
  npm run metaserver
  npx tsx core/bin/metaserver-main.ts --host 127.0.0.1 --port 0 --json
`;

const FLAGS = {
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  policy: { type: 'string' },
  seed: { type: 'string' },
  'token-key-file': { type: 'string' },
  ...LIMIT_FLAGS,
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface MetaserverConfig {
  help: boolean;
  json: boolean;
  options: MetaserverOptions & { host: string; port: number };
}

export function parseMetaserverArgs(argv: string[]): MetaserverConfig {
  const v = parseFlags(argv, FLAGS);
  const options: MetaserverConfig['options'] = { host: '0.0.0.0', port: 9000 };
  if (v.help) return { help: true, json: false, options };
  if (v.host !== undefined) options.host = parseHost('--host', str(v.host)!);
  if (v.port !== undefined) options.port = parsePort('--port', str(v.port)!);
  const policy = str(v.policy);
  if (policy !== undefined) {
    if (!isPolicy(policy)) throw new UsageError(`--policy must be one of ${POLICIES.join(', ')}, not ${JSON.stringify(policy)}`);
    options.policy = policy;
  }
  Object.assign(options, limitOptions(v));
  const tokenKeyFile = str(v['token-key-file']);
  if (tokenKeyFile !== undefined) options.tokenKey = tokenKeyIn(tokenKeyFile);
  if (v.seed !== undefined) options.rng = mulberry32(parseIntIn('--seed', str(v.seed)!, 0, 2 ** 32 - 1));
  return { help: false, json: !!v.json, options };
}

/** The token key in `file` (trimmed), written there first (a fresh random key, mode 0600) when there is no such file. */
export function tokenKeyIn(file: string): string {
  try {
    fs.writeFileSync(file, generateKey() + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new UsageError(`cannot create --token-key-file ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const key = readKeyFile('--token-key-file', file);
  if (Buffer.byteLength(key, 'utf8') < MIN_KEY_BYTES) throw new UsageError(shortKeyMessage(Buffer.byteLength(key, 'utf8'), `the token key in --token-key-file ${file}`));
  return key;
}
