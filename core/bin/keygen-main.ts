/**
 * Entry point: `npm run -s keygen [-- --out FILE]`. Prints a fresh network
 * key (32 random bytes from the OS CSPRNG, 64 hex digits) on stdout, or
 * writes it to FILE (mode 0600, never overwriting). Give the same key to the
 * metaserver and every peer with --key-file FILE or $TREESHARE_KEY.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { generateKey } from '../transport/auth.ts';
import { UsageError } from '../control/args.ts';
import { runMain } from '../control/process.ts';

export const KEYGEN_HELP = `usage: npm run -s keygen [-- --out FILE]

Prints a new random network key (32 bytes, 64 hex digits).
  -o, --out FILE   write it to FILE (created with mode 0600; an existing FILE is kept)
  -h, --help       this text
`;

runMain('keygen', async () => {
  let v;
  try {
    v = parseArgs({ args: process.argv.slice(2), options: { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (v.help) {
    process.stdout.write(KEYGEN_HELP);
    return;
  }
  const key = generateKey() + '\n';
  if (v.out === undefined) {
    process.stdout.write(key);
    return;
  }
  try {
    fs.writeFileSync(v.out, key, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'EEXIST' ? `--out ${JSON.stringify(v.out)} already exists; not overwriting a key` : `cannot write --out ${JSON.stringify(v.out)}: ${code ?? String(err)}`);
  }
  process.stderr.write(`keygen: wrote a new network key to ${v.out}\n`);
});
