/**
 * Progress for long work, on stderr: a redrawn bar on a terminal, a line every few seconds
 * otherwise (logs, CI). Silent when `quiet` (e.g. --json runs that want clean stderr are still
 * free to show progress; quiet is for tests).
 */
export interface Progress {
  /** Advance to `done` of `total` units; `detail` is a short note (e.g. the current layer). */
  update(done: number, detail?: string): void;
  /** Print a line without breaking the bar. */
  log(line: string): void;
  done(summary?: string): void;
}

export function createProgress(label: string, total: number, opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const quiet = opts.quiet ?? process.env.CREPE_QUIET === '1';
  const tty = Boolean(stream.isTTY);
  const start = Date.now();
  let lastLine = 0;
  let barShown = false;

  const eta = (done: number): string => {
    if (done <= 0) return '';
    const elapsed = (Date.now() - start) / 1000;
    const remaining = (elapsed / done) * (total - done);
    return ` ${elapsed.toFixed(1)}s elapsed, ~${remaining.toFixed(0)}s left`;
  };

  return {
    update(done, detail) {
      if (quiet) return;
      const pct = total > 0 ? Math.min(100, (100 * done) / total) : 100;
      const text = `${label} ${done}/${total} (${pct.toFixed(0)}%)${detail ? ` ${detail}` : ''}${eta(done)}`;
      if (tty) {
        const width = 24;
        const filled = Math.round((pct / 100) * width);
        stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
        barShown = true;
      } else if (Date.now() - lastLine > 5000 || done === total) {
        stream.write(`${text}\n`);
        lastLine = Date.now();
      }
    },
    log(line) {
      if (quiet) return;
      if (barShown) stream.write('\r\x1b[K');
      stream.write(`${line}\n`);
    },
    done(summary) {
      if (quiet) return;
      if (barShown) stream.write('\r\x1b[K');
      const seconds = ((Date.now() - start) / 1000).toFixed(1);
      stream.write(`${label}: ${summary ?? 'done'} (${seconds}s)\n`);
    },
  };
}
