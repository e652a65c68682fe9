/**
 * The terminal a person types into, or the pipe a script feeds: input lines
 * one at a time (type-ahead is queued), prompts and colours only when both
 * stdin and stdout are a TTY, and `say()` for output that may arrive while a
 * prompt is shown (the prompt is redrawn underneath) or while a progress bar
 * runs (the line goes above the bar).
 */
import readline from 'node:readline';
import { MAX_COMMAND_CHARS } from '../control/commands.ts';
import { readLines } from '../control/lines.ts';
import { style, type Style } from './format.ts';

export class Term {
  /** Both ends are a terminal: prompts, colours, progress bar. */
  readonly tty: boolean;
  readonly style: Style;
  /** Line editing on a terminal; a pipe is read by readLines (bounded line length). */
  private readonly rl: readline.Interface | undefined;
  private readonly stopReading: (() => void) | undefined;
  private readonly out: NodeJS.WriteStream;
  private readonly lines: string[] = [];
  private readonly waiters: ((line: string | null) => void)[] = [];
  private ended = false;
  private prompting = false;
  /** The prompt shown is one Ctrl-C cancels (answered with ''), rather than interrupting the program. */
  private cancellable = false;
  private readonly interrupts: (() => void)[] = [];
  /** Set while a progress bar owns the current line. */
  barActive = false;

  constructor(input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stdout) {
    this.out = output;
    this.tty = !!(input.isTTY && output.isTTY);
    this.style = style(this.tty && !process.env.NO_COLOR && (output.hasColors?.() ?? false));
    const line = (l: string) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    };
    const end = () => this.endInput();
    if (this.tty) {
      this.rl = readline.createInterface({ input, output, terminal: true, crlfDelay: Infinity });
      this.rl.on('line', line);
      this.rl.on('close', end);
      // Ctrl-C on a terminal (readline takes it before the process sees SIGINT).
      this.rl.on('SIGINT', () => {
        if (this.prompting && this.cancellable && this.waiters.length) {
          // What was typed stays on its line; the next prompt starts empty.
          const rl = this.rl as unknown as { line: string; cursor: number };
          rl.line = '';
          rl.cursor = 0;
          this.out.write('\n');
          this.prompting = false;
          this.waiters.shift()!('');
          return;
        }
        for (const f of this.interrupts) f();
      });
    } else {
      // A pipe may carry a line of any length: over-long ones are skipped while they arrive (issue 22 defect 11).
      this.stopReading = readLines(input, MAX_COMMAND_CHARS, {
        line,
        tooLong: (chars) => this.say(`input line of ${chars} characters ignored (at most ${MAX_COMMAND_CHARS})`),
        end,
      });
    }
  }

  /**
   * The next input line, trimmed; null at the end of input. On a TTY `prompt` is shown first; with
   * `cancellable`, Ctrl-C answers '' (back to the menu) instead of interrupting (onInterrupt).
   */
  ask(prompt: string, o: { cancellable?: boolean } = {}): Promise<string | null> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued.trim());
    if (this.ended) return Promise.resolve(null);
    this.cancellable = o.cancellable ?? false;
    if (this.rl) {
      this.rl.setPrompt(prompt);
      this.rl.prompt();
      this.prompting = true;
    }
    return new Promise((resolve) =>
      this.waiters.push((l) => {
        this.prompting = false;
        resolve(l === null ? null : l.trim());
      }),
    );
  }

  /** Prints one or more lines for the person. */
  say(text: string): void {
    if (this.tty && (this.prompting || this.barActive)) {
      this.out.write(`\r\x1b[K${text}\n`);
      if (this.prompting) this.rl?.prompt(true);
      return;
    }
    this.out.write(text + '\n');
  }

  /** Ends a prompt being shown (nothing more will be asked): the prompt and what was typed stay, output goes on below. */
  endPrompt(): void {
    if (this.tty && this.prompting) this.out.write('\n');
    this.prompting = false;
  }

  /** Ctrl-C on a terminal, except at a cancellable prompt (readline takes it before the process sees SIGINT). */
  onInterrupt(f: () => void): void {
    this.interrupts.push(f);
  }

  close(): void {
    this.prompting = false;
    if (this.rl) this.rl.close();
    else if (!this.ended) {
      this.stopReading?.();
      this.endInput();
    }
  }

  private endInput(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w(null);
  }
}
