/**
 * JSON-lines control mode, input side: one command per line on stdin,
 * `{"cmd": "...", "id"?: string|number, ...}`. A line that is not a valid
 * command becomes a `bad-command` error (echoing its `id` when one could be
 * read); the process keeps going. When stdin ends, `onEnd` runs once every
 * command given has finished.
 */
import readline from 'node:readline';
import { describeError, errorCode, NotFoundError } from '../errors.ts';
import { emit } from './process.ts';

export type CommandId = string | number;

export interface Command {
  cmd: string;
  id?: CommandId;
  name?: string;
}

/** Per command: whether it needs a `name` (a file name string). */
export type CommandSpec = Record<string, { name?: boolean }>;

/** Longest command line accepted, characters. */
export const MAX_COMMAND_CHARS = 64 * 1024;

export type Parsed = { ok: true; cmd: Command } | { ok: false; id?: CommandId; message: string };

export function parseCommand(line: string, spec: CommandSpec): Parsed {
  if (line.length > MAX_COMMAND_CHARS) return { ok: false, message: `command line longer than ${MAX_COMMAND_CHARS} characters` };
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { ok: false, message: `not JSON: ${JSON.stringify(line.length > 80 ? line.slice(0, 80) + '…' : line)}` };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { ok: false, message: 'a command must be a JSON object like {"cmd":"status"}' };
  const o = v as Record<string, unknown>;
  let id: CommandId | undefined;
  if (o.id !== undefined) {
    if ((typeof o.id === 'string' && o.id.length <= 256) || (typeof o.id === 'number' && Number.isFinite(o.id))) id = o.id;
    else return { ok: false, message: '"id" must be a string (at most 256 characters) or a number' };
  }
  const fail = (message: string): Parsed => ({ ok: false, message, ...(id !== undefined ? { id } : {}) });
  const known = Object.keys(spec).join(', ');
  if (typeof o.cmd !== 'string') return fail(`missing "cmd" (one of ${known})`);
  const s = Object.hasOwn(spec, o.cmd) ? spec[o.cmd] : undefined;
  if (!s) return fail(`unknown command ${JSON.stringify(o.cmd.slice(0, 40))} (one of ${known})`);
  const cmd: Command = { cmd: o.cmd, ...(id !== undefined ? { id } : {}) };
  if (s.name) {
    if (typeof o.name !== 'string' || o.name === '') return fail(`"${o.cmd}" needs "name", a file name string`);
    cmd.name = o.name;
  }
  return { ok: true, cmd };
}

/** The `error` event for a failed or malformed command. */
export function errorEvent(err: unknown, c?: { id?: CommandId; cmd?: string }): Record<string, unknown> {
  const extra = err instanceof NotFoundError ? { searched: err.searched } : {};
  return { event: 'error', code: errorCode(err), message: describeError(err), ...extra, ...(c?.cmd ? { cmd: c.cmd } : {}), ...(c?.id !== undefined ? { id: c.id } : {}) };
}

/**
 * Reads commands from `input` and runs them one at a time, in the order they
 * arrive (so a piped script behaves like a person typing): each result or
 * error event, carrying the command's `id`, is out before the next command
 * starts. `onEnd` runs when stdin has ended and the last command finished.
 */
export function serveCommands(o: {
  input: NodeJS.ReadableStream;
  spec: CommandSpec;
  run: (c: Command) => Promise<Record<string, unknown> | null>;
  onEnd: () => void;
}): void {
  const rl = readline.createInterface({ input: o.input, crlfDelay: Infinity });
  let tail: Promise<void> = Promise.resolve();
  const runOne = async (line: string): Promise<void> => {
    const p = parseCommand(line, o.spec);
    if (!p.ok) {
      emit({ event: 'error', code: 'bad-command', message: p.message, ...(p.id !== undefined ? { id: p.id } : {}) });
      return;
    }
    const c = p.cmd;
    try {
      const r = await o.run(c);
      if (r) emit({ ...r, ...(c.id !== undefined ? { id: c.id } : {}) });
    } catch (err) {
      emit(errorEvent(err, c));
    }
  };
  rl.on('line', (raw) => {
    const line = raw.trim();
    if (line !== '') tail = tail.then(() => runOne(line));
  });
  rl.on('close', () => void tail.then(() => o.onEnd()));
}
