/**
 * Bounded line reader for stdin (the peer's and metaserver's `--json`
 * control mode, and the menu when it reads a pipe). readline buffers a whole
 * line before anyone can check its length, so one line of hundreds of MB
 * without a newline grew the process until it died (issue 22 defect 11).
 * Here a line longer than `maxChars` is dropped while it arrives: what was
 * buffered is let go, the rest up to the next newline is skipped, and
 * `tooLong` is called once for it, so memory stays bounded by `maxChars` plus
 * one read chunk whatever comes in.
 */
import { StringDecoder } from 'node:string_decoder';

export interface LineHandlers {
  line(line: string): void;
  /** One over-long line was skipped; `chars` is how many characters it had (so far, if input ended inside it). */
  tooLong(chars: number): void;
  end(): void;
}

/** Reads `input` line by line (`\n`, a trailing `\r` removed). Returns a function that stops reading. */
export function readLines(input: NodeJS.ReadableStream, maxChars: number, h: LineHandlers): () => void {
  const decoder = new StringDecoder('utf8');
  const chomp = (l: string) => (l.endsWith('\r') ? l.slice(0, -1) : l);
  let buf = '';
  /** Characters of an over-long line skipped so far; -1 while not skipping. */
  let skipped = -1;
  let done = false;
  const take = (text: string): void => {
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      const piece = text.slice(from, nl < 0 ? text.length : nl);
      if (skipped >= 0) skipped += piece.length;
      else if (buf.length + piece.length > maxChars) {
        skipped = buf.length + piece.length;
        buf = '';
      } else buf += piece;
      if (nl < 0) return;
      from = nl + 1;
      if (skipped >= 0) {
        const n = skipped;
        skipped = -1;
        h.tooLong(n);
      } else {
        const l = chomp(buf);
        buf = '';
        h.line(l);
      }
      if (done) return;
    }
  };
  const onData = (chunk: Buffer | string): void => take(typeof chunk === 'string' ? chunk : decoder.write(chunk));
  const onEnd = (): void => {
    if (done) return;
    take(decoder.end());
    if (skipped >= 0) h.tooLong(skipped);
    else if (buf !== '') h.line(chomp(buf));
    buf = '';
    stop();
    h.end();
  };
  const stop = (): void => {
    done = true;
    input.off('data', onData);
    input.off('end', onEnd);
    input.off('close', onEnd);
  };
  input.on('data', onData);
  input.on('end', onEnd);
  input.on('close', onEnd);
  return () => {
    if (done) return;
    stop();
    input.pause?.();
  };
}
