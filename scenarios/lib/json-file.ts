/** Reading a JSON file given on the command line: one clear line (through `fail`) when it cannot be read or is not JSON. */
import fs from 'node:fs';

export function readJsonFile(file: string, fail: (msg: string) => Error): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw fail(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw fail(`${file} is not JSON`);
  }
}
