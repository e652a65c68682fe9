/**
 * JSON-lines control mode, input side: one command per line on stdin,
 * `{"cmd": "...", "id"?: string|number, ...}`. A line that is not a valid
 * command becomes a `bad-command` error (echoing its `id` when one could be
 * read); the process keeps going. When stdin ends, `onEnd` runs once every
 * command given has finished.
 */
import type { z } from 'zod';
import { describeError, errorCode, NotFoundError } from '../errors.ts';
import { readLines } from './lines.ts';
import { emit } from './process.ts';
import { commandNames, CommandId, type CommandSchema, type ControlEvent, type ErrorEvent } from './schema.ts';

export type { CommandId, CommandSchema };

/** Longest command line accepted, characters. */
export const MAX_COMMAND_CHARS = 64 * 1024;

export type Parsed<C> = { ok: true; cmd: C } | { ok: false; id?: CommandId; message: string };

/**
 * Reads one command line against `schema`. The schema decides what is valid;
 * the checks before it only make the answer to a common mistake say what to
 * do (not JSON, no `cmd`, unknown command, missing `name`).
 */
export function parseCommand<S extends CommandSchema>(line: string, schema: S): Parsed<z.infer<S>> {
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
    const r = CommandId.safeParse(o.id);
    if (!r.success) return { ok: false, message: '"id" must be a string (at most 256 characters) or a number' };
    id = r.data;
  }
  const fail = (message: string): Parsed<z.infer<S>> => ({ ok: false, message, ...(id !== undefined ? { id } : {}) });
  const names = commandNames(schema);
  const known = names.join(', ');
  if (typeof o.cmd !== 'string') return fail(`missing "cmd" (one of ${known})`);
  if (!names.includes(o.cmd)) return fail(`unknown command ${JSON.stringify(o.cmd.slice(0, 40))} (one of ${known})`);
  const r = schema.safeParse(o);
  if (r.success) return { ok: true, cmd: r.data as z.infer<S> };
  const issue = r.error.issues[0];
  if (issue?.path[0] === 'name') return fail(`"${o.cmd}" needs "name", a file name string`);
  return fail(`bad "${o.cmd}" command: ${issue ? `${issue.path.join('.') || 'command'}: ${issue.message}` : 'invalid'}`);
}

/** The `error` event for a failed or malformed command. */
export function errorEvent(err: unknown, c?: { id?: CommandId; cmd?: string }): ErrorEvent {
  const extra = err instanceof NotFoundError ? { searched: err.searched, missing: err.missing } : {};
  return { event: 'error', code: errorCode(err), message: describeError(err), ...extra, ...(c?.cmd ? { cmd: c.cmd } : {}), ...(c?.id !== undefined ? { id: c.id } : {}) };
}

/**
 * Reads commands from `input` and runs them one at a time, in the order they
 * arrive (so a piped script behaves like a person typing): each result or
 * error event, carrying the command's `id`, is out before the next command
 * starts. `onEnd` runs when stdin has ended and the last command finished.
 */
export function serveCommands<S extends CommandSchema, E extends ControlEvent>(o: {
  input: NodeJS.ReadableStream;
  schema: S;
  run: (c: z.infer<S>) => Promise<E | null>;
  onEnd: () => void;
}): void {
  let tail: Promise<void> = Promise.resolve();
  const runOne = async (line: string): Promise<void> => {
    const p = parseCommand(line, o.schema);
    if (!p.ok) {
      emit<ErrorEvent>({ event: 'error', code: 'bad-command', message: p.message, ...(p.id !== undefined ? { id: p.id } : {}) });
      return;
    }
    const c = p.cmd;
    try {
      const r = await o.run(c);
      if (r) emit<E>({ ...r, ...(c.id !== undefined ? { id: c.id } : {}) });
    } catch (err) {
      emit(errorEvent(err, c));
    }
  };
  // Bounded while buffering: an over-long line is skipped as it arrives and answered with one error.
  readLines(o.input, MAX_COMMAND_CHARS, {
    line: (raw) => {
      const line = raw.trim();
      if (line !== '') tail = tail.then(() => runOne(line));
    },
    tooLong: (chars) => {
      const message = `command line longer than ${MAX_COMMAND_CHARS} characters (${chars} skipped)`;
      tail = tail.then(() => emit<ErrorEvent>({ event: 'error', code: 'bad-command', message }));
    },
    end: () => void tail.then(() => o.onEnd()),
  });
}
