/** The metaserver command's flags and help text. */
import type { MetaserverOptions } from '../metaserver/metaserver.ts';
import fs from 'node:fs';
import path from 'node:path';
import { isPolicy, POLICIES } from '../protocol/referral.ts';
import { generateKey, MIN_KEY_BYTES, shortKeyMessage } from '../transport/auth.ts';
import { mulberry32 } from '../protocol/rng.ts';
import { DEFAULT_MAX_CONNECTIONS } from '../transport/tcp.ts';
import { LIMIT_FLAGS, limitHelp, limitOptions, parseFlags, parseHost, parseIntIn, parsePort, SHAPE_FLAGS, SHAPE_HELP, shapeTransport, str, UsageError } from './args.ts';

/** `--token-key-file` value that runs without a token key. */
export const NO_TOKEN_KEY = 'none';
/** The default token key file, under the user's state folder. */
export const TOKEN_KEY_NAME = path.join('treeshare', 'metaserver-token.key');
/** Longest token key file read, bytes (a key is 64 hex digits). */
const MAX_TOKEN_KEY_BYTES = 4096;

/** $XDG_STATE_HOME (or ~/.local/state)/treeshare/metaserver-token.key; undefined when neither is set. */
export function defaultTokenKeyFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const xdg = env.XDG_STATE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, TOKEN_KEY_NAME);
  return env.HOME && path.isAbsolute(env.HOME) ? path.join(env.HOME, '.local', 'state', TOKEN_KEY_NAME) : undefined;
}

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
                        token key in FILE, created (32 random bytes, mode 0600;
                        folder 0700) if missing: after a restart with the same
                        FILE a peer's id goes back only to the peer issued it
                        (default ${defaultTokenKeyFile() ?? '$XDG_STATE_HOME or ~/.local/state, then ' + TOKEN_KEY_NAME});
                        'none': no key, so after a restart anyone proving a
                        token of its own may take an id (warned at start)
${limitHelp(DEFAULT_MAX_CONNECTIONS)}
${SHAPE_HELP}
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
  ...SHAPE_FLAGS,
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface MetaserverConfig {
  help: boolean;
  json: boolean;
  options: MetaserverOptions & { host: string; port: number };
  /** The token key's file; null with `--token-key-file none`. */
  tokenKeyFile: string | null;
}

/** The warning printed when the metaserver runs without a token key. */
export const NO_TOKEN_KEY_WARNING = `warning: --token-key-file ${NO_TOKEN_KEY}: after a restart this metaserver cannot tell a peer's id from anyone claiming it with a token of its own (docs/PROTOCOL.md)`;

export function parseMetaserverArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): MetaserverConfig {
  const v = parseFlags(argv, FLAGS);
  const options: MetaserverConfig['options'] = { host: '0.0.0.0', port: 9000 };
  if (v.help) return { help: true, json: false, options, tokenKeyFile: null };
  if (v.host !== undefined) options.host = parseHost('--host', str(v.host)!);
  if (v.port !== undefined) options.port = parsePort('--port', str(v.port)!);
  const policy = str(v.policy);
  if (policy !== undefined) {
    if (!isPolicy(policy)) throw new UsageError(`--policy must be one of ${POLICIES.join(', ')}, not ${JSON.stringify(policy)}`);
    options.policy = policy;
  }
  Object.assign(options, limitOptions(v));
  const shaped = shapeTransport(v);
  if (shaped) options.transport = shaped;
  let tokenKeyFile: string | null = str(v['token-key-file']) ?? defaultTokenKeyFile(env) ?? null;
  if (tokenKeyFile === null) throw new UsageError(`no folder for the token key: set $XDG_STATE_HOME or $HOME, or give --token-key-file FILE (or ${NO_TOKEN_KEY})`);
  if (tokenKeyFile === NO_TOKEN_KEY) tokenKeyFile = null;
  else options.tokenKey = tokenKeyIn(tokenKeyFile);
  if (v.seed !== undefined) options.rng = mulberry32(parseIntIn('--seed', str(v.seed)!, 0, 2 ** 32 - 1));
  return { help: false, json: !!v.json, options, tokenKeyFile };
}

/**
 * The token key in `file` (trimmed), written there first (32 random bytes as 64 hex digits,
 * mode 0600, missing folders made 0700) when there is no such file. Refused (a usage
 * error): a file that is not a regular file, that its group or others may read or write,
 * that is larger than 4 KiB, or whose key is shorter than 32 bytes.
 */
export function tokenKeyIn(file: string): string {
  const flag = `--token-key-file ${JSON.stringify(file)}`;
  const fail = (what: string): never => {
    throw new UsageError(`${flag}: ${what}`);
  };
  const code = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  } catch {
    // The write below names what is wrong.
  }
  try {
    fs.writeFileSync(file, generateKey() + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if (code(err) !== 'EEXIST') fail(`cannot create it: ${code(err)}`);
  }
  let fd: number;
  try {
    // Non-blocking, so a FIFO planted under the name cannot hang the start.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    return fail(`cannot read it: ${code(err)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) fail('not a regular file');
    if (st.mode & 0o077) fail(`readable or writable by others (mode 0${(st.mode & 0o777).toString(8)}): chmod 600 it`);
    if (st.size > MAX_TOKEN_KEY_BYTES) fail(`larger than ${MAX_TOKEN_KEY_BYTES} bytes: not a key file`);
    const key = fs.readFileSync(fd, 'utf8').trim();
    const len = Buffer.byteLength(key, 'utf8');
    if (len < MIN_KEY_BYTES) throw new UsageError(shortKeyMessage(len, `the token key in --token-key-file ${file}`));
    return key;
  } finally {
    fs.closeSync(fd);
  }
}
