/**
 * Progress of the library's long-running work on stderr: a redrawn bar on a terminal, a line every
 * few seconds otherwise (logs, CI), and one summary line per finished stage. CREPE_QUIET=1
 * silences it.
 */
import type { ProgressEvent } from '../workflows/common.ts';
import type { CliIo } from './options.ts';

interface Bar {
  update(done: number, detail?: string): void;
  log(line: string): void;
  done(summary?: string): void;
}

function createBar(label: string, total: number, stream: CliIo['stderr']): Bar {
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
  const clearBar = () => {
    if (barShown) stream.write('\r\x1b[K');
    barShown = false;
  };

  return {
    update(done, detail) {
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
      clearBar();
      stream.write(`${line}\n`);
    },
    done(summary) {
      clearBar();
      stream.write(`${label}: ${summary ?? 'done'} (${((Date.now() - start) / 1000).toFixed(1)}s)\n`);
    },
  };
}

/** An `onProgress` callback that draws each stage's events on io.stderr. */
export function progressPrinter(io: CliIo): (event: ProgressEvent) => void {
  const show = io.progress ?? process.env.CREPE_QUIET !== '1';
  const bars = new Map<string, Bar>();
  return (event) => {
    if (!show) return;
    let bar = bars.get(event.stage);
    if (!bar) {
      bar = createBar(event.stage, event.total, io.stderr);
      bars.set(event.stage, bar);
    }
    if (event.kind === 'update') bar.update(event.done, event.detail);
    else if (event.kind === 'note') bar.log(event.detail ?? '');
    else if (event.kind === 'done') {
      bar.done(event.detail);
      bars.delete(event.stage);
    }
  };
}
