/**
 * Progress during long phases: a cli-progress bar on stderr when stderr is
 * a TTY (and neither --json nor --quiet), otherwise nothing. The phase's
 * final count and time are logged by the caller, not by the bar.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  tick(n?: number): void;
  done(): void;
}

const NONE: Progress = { tick() {}, done() {} };

export function progress(enabled: boolean, label: string, total: number): Progress {
  if (!enabled || !process.stderr.isTTY || total < 2) return NONE;
  const bar = new cliProgress.SingleBar(
    {
      format: `  ${label} [{bar}] {value}/{total}  {duration_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  let stopped = false;
  return {
    tick(n = 1) {
      if (!stopped) bar.increment(n);
    },
    done() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
