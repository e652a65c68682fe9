/** The peer command's flags, help text and their translation into PeerOptions. */
import path from 'node:path';
import type { PeerOptions } from '../peer/types.ts';
import { PEER_MAX_CONNECTIONS } from '../peer/peer.ts';
import { LIMIT_FLAGS, limitHelp, limitOptions, parseSize, parseFlags, parseHost, parseHostPort, parseId, parseIntIn, parsePort, SHAPE_FLAGS, SHAPE_HELP, shapeTransport, str, UsageError } from './args.ts';

export const PEER_HELP = `Usage: npm run peer -- -i ID [options]
       npx tsx core/bin/peer-main.ts -i ID [options]

Runs one treeshare peer: it listens, registers with the metaserver, joins the
overlay tree and shares one folder. Without --json it shows a menu:
1 register, 2 download, 3 topology, 4 leave and exit, 5 my files, 6 search, h help.

Options:
  -i, --id ID               peer id, e.g. S1 (required; letters, digits, _ . -)
  -p, --port PORT           port to listen on; 0 picks a free one (default 9001)
      --host HOST           address to bind (default 127.0.0.1)
      --advertise-host HOST address other peers use to reach this one
                            (default: --host, or 127.0.0.1 when binding 0.0.0.0)
      --meta HOST:PORT      metaserver address (default 127.0.0.1:9000)
      --share DIR           folder to share and download into (default shares/<id>)
      --max-children N      most children this peer accepts, 1-1024 (default 2)
      --auto-join           register and join at start (menu option 1)
      --key-file FILE       network key (at least 32 bytes; npm run keygen) in FILE;
                            default $TREESHARE_KEY; every peer and the metaserver need it
${limitHelp(PEER_MAX_CONNECTIONS)}
      --max-uploads N       most uploads at once (default 16)
      --max-sources N       most holders one download uses at once (default 8)
      --upload-rate RATE    cap this peer's swarm uploads at RATE bytes/s in total, over
                            all its connections (its uplink); units as for --bandwidth
      --partial-max-age MS  resumable partial downloads not advanced for MS ms are
                            removed at start (default 604800000 = 7 days)
      --swarm MODE          auto (default): swarm when the search finds 2+ holders or a
                            resumable partial of the file is here, else the one holder's
                            offer; always: swarm even from one holder; never: = --no-swarm
      --no-swarm            download from the first holder's offer only (protocol-1 style)
      --min-rate RATE       a download from a holder delivering less than RATE bytes/s
                            over 30 s is dropped as too slow; units as for --bandwidth
                            (default 1KiB = 1024; 0: no floor, for links slower than that)
      --max-file-bytes SIZE largest file accepted for download, bytes; units as for
                            --bandwidth (default 64GiB = 68719476736)
      --query-rate N        floods accepted per second from one neighbour; over it they are
                            answered "not searched" (default 1000, burst 2x)
${SHAPE_HELP}
      --json                control mode: JSON-line commands on stdin, events on stdout
  -h, --help                show this help

Examples:
  npm run peer -- -p5001 -i S1
  printf '1\\n2\\npwd1.txt\\n3\\n4\\n' | npm run peer -- -p5001 -i S1
  npx tsx core/bin/peer-main.ts --json --port 0 -i S2 --auto-join
`;

const FLAGS = {
  id: { type: 'string', short: 'i' },
  port: { type: 'string', short: 'p' },
  host: { type: 'string' },
  'advertise-host': { type: 'string' },
  meta: { type: 'string' },
  share: { type: 'string' },
  'max-children': { type: 'string' },
  'auto-join': { type: 'boolean' },
  ...SHAPE_FLAGS,
  'min-rate': { type: 'string' },
  ...LIMIT_FLAGS,
  'max-uploads': { type: 'string' },
  'max-sources': { type: 'string' },
  'upload-rate': { type: 'string' },
  'partial-max-age': { type: 'string' },
  swarm: { type: 'string' },
  'no-swarm': { type: 'boolean' },
  'max-file-bytes': { type: 'string' },
  'query-rate': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface PeerConfig {
  help: boolean;
  json: boolean;
  autoJoin: boolean;
  options: PeerOptions & { share: string; meta: { host: string; port: number } };
}

export function parsePeerArgs(argv: string[]): PeerConfig {
  const v = parseFlags(argv, FLAGS);
  if (v.help) return { help: true, json: false, autoJoin: false, options: { id: '', share: '', meta: { host: '', port: 0 } } };
  const idArg = str(v.id);
  if (idArg === undefined) throw new UsageError('missing --id: every peer needs an id, e.g. -i S1');
  const id = parseId('--id', idArg);
  const host = v.host !== undefined ? parseHost('--host', str(v.host)!) : '127.0.0.1';
  const options: PeerConfig['options'] = {
    id,
    host,
    port: v.port !== undefined ? parsePort('--port', str(v.port)!) : 9001,
    meta: v.meta !== undefined ? parseHostPort('--meta', str(v.meta)!) : { host: '127.0.0.1', port: 9000 },
    share: str(v.share) ?? path.join('shares', id),
    maxChildren: v['max-children'] !== undefined ? parseIntIn('--max-children', str(v['max-children'])!, 1, 1024) : 2,
  };
  if (options.share === '') throw new UsageError('--share needs a folder name');
  Object.assign(options, limitOptions(v));
  if (v['max-uploads'] !== undefined) options.maxUploads = parseIntIn('--max-uploads', str(v['max-uploads'])!, 1, 10_000);
  if (v['max-sources'] !== undefined) options.maxSources = parseIntIn('--max-sources', str(v['max-sources'])!, 1, 64);
  if (v['upload-rate'] !== undefined) {
    options.uploadRate = parseSize('--upload-rate', str(v['upload-rate'])!, 1e12, 'bytes per second');
    if (options.uploadRate <= 0) throw new UsageError('--upload-rate must be more than 0 bytes per second (leave it out for no cap)');
  }
  if (v['partial-max-age'] !== undefined) options.partialMaxAgeMs = parseIntIn('--partial-max-age', str(v['partial-max-age'])!, 0, 2 ** 31 * 1000);
  if (v.swarm !== undefined) {
    const mode = str(v.swarm)!;
    if (mode !== 'auto' && mode !== 'always' && mode !== 'never') throw new UsageError(`--swarm must be auto, always or never, not "${mode}"`);
    if (v['no-swarm'] && mode !== 'never') throw new UsageError(`--no-swarm contradicts --swarm ${mode}`);
    options.swarm = mode === 'auto' ? true : mode === 'always' ? 'always' : false;
  }
  if (v['no-swarm']) options.swarm = false;
  if (v['min-rate'] !== undefined) options.minRateBytesPerSec = parseSize('--min-rate', str(v['min-rate'])!, 1e12, 'bytes per second');
  if (v['max-file-bytes'] !== undefined) options.maxFileBytes = parseSize('--max-file-bytes', str(v['max-file-bytes'])!, 2 ** 53 - 1, 'bytes');
  if (v['query-rate'] !== undefined) {
    options.queryRatePerSec = parseIntIn('--query-rate', str(v['query-rate'])!, 1, 1_000_000);
    options.queryBurst = options.queryRatePerSec * 2;
  }
  if (v['advertise-host'] !== undefined) options.advertiseHost = parseHost('--advertise-host', str(v['advertise-host'])!);
  const shaped = shapeTransport(v);
  if (shaped) options.transport = shaped;
  return { help: false, json: !!v.json, autoJoin: !!v['auto-join'], options };
}
