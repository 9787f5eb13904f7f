/**
 * Progress of the library's long-running work on stderr: a redrawn bar on a terminal, a line every
 * few seconds otherwise (logs, CI), and one summary line per finished stage; units, a token rate
 * where one means something, and an ETA that waits for a measured rate. CREPE_QUIET=1 silences it.
 */
import type { ProgressEvent, ProgressUnits } from '../workflows/common.ts';
import type { CliIo } from './options.ts';

interface Bar {
  update(done: number, detail?: string): void;
  log(line: string): void;
  done(summary?: string): void;
}

/** An ETA is shown only once this many units are done and this many seconds have passed (the first unit carries the warm-up). */
const ETA_MIN_UNITS = 2;
const ETA_MIN_SECONDS = 3;
/** Weight of the newest per-unit time in the smoothed estimate. */
const ETA_SMOOTHING = 0.3;

const clock = (s: number): string => {
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
};

const rate = (perSecond: number): string =>
  perSecond >= 1e6 ? `${(perSecond / 1e6).toFixed(1)}M` : perSecond >= 1e3 ? `${(perSecond / 1e3).toFixed(1)}k` : perSecond.toFixed(perSecond >= 10 ? 0 : 1);

/**
 * "eval 3/8 windows (38%) 1.2k tokens/s 4s elapsed, ~7s left". The time per unit is measured
 * from the first finished unit on (the first one includes start-up) and smoothed exponentially.
 */
function createBar(label: string, total: number, units: ProgressUnits | undefined, stream: CliIo['stderr'], now: () => number): Bar {
  const tty = Boolean(stream.isTTY);
  const start = now();
  const per = units?.per ?? 1;
  let lastLine = 0;
  let barShown = false;
  let first: { t: number; done: number } | null = null;
  let last: { t: number; done: number } | null = null;
  let secondsPerUnit: number | null = null;

  const observe = (done: number): void => {
    const t = now();
    if (!first) first = { t, done };
    else if (last && done > last.done) {
      const recent = (t - last.t) / 1000 / (done - last.done);
      secondsPerUnit = secondsPerUnit === null ? ((t - first.t) / 1000) / (done - first.done) : ETA_SMOOTHING * recent + (1 - ETA_SMOOTHING) * secondsPerUnit;
    }
    last = { t, done };
  };
  const timing = (done: number): string => {
    const elapsed = (now() - start) / 1000;
    const parts: string[] = [];
    if (units?.tokens && done > 0 && elapsed > 0) parts.push(`${rate(((done / per) * units.tokens) / elapsed)} tokens/s`);
    parts.push(`${clock(elapsed)} elapsed`);
    if (secondsPerUnit !== null && done >= ETA_MIN_UNITS && elapsed >= ETA_MIN_SECONDS && done < total) parts.push(`~${clock(secondsPerUnit * (total - done))} left`);
    return ` ${parts.join(', ')}`;
  };
  const count = (done: number): string =>
    units ? `${Math.floor(done / per)}/${Math.round(total / per)} ${units.name}` : `${done}/${total}`;
  const clearBar = () => {
    if (barShown) stream.write('\r\x1b[K');
    barShown = false;
  };

  return {
    update(done, detail) {
      observe(done);
      const pct = total > 0 ? Math.min(100, (100 * done) / total) : 100;
      const text = `${label} ${count(done)} (${pct.toFixed(0)}%)${detail ? ` ${detail}` : ''}${timing(done)}`;
      if (tty) {
        const width = 24;
        const filled = Math.round((pct / 100) * width);
        stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
        barShown = true;
      } else if (now() - lastLine > 5000 || done === total) {
        stream.write(`${text}\n`);
        lastLine = now();
      }
    },
    log(line) {
      clearBar();
      stream.write(`${line}\n`);
    },
    done(summary) {
      clearBar();
      stream.write(`${label}: ${summary ?? 'done'} (${((now() - start) / 1000).toFixed(1)}s)\n`);
    },
  };
}

/** An `onProgress` callback that draws each stage's events on io.stderr. */
export function progressPrinter(io: CliIo, now: () => number = Date.now): (event: ProgressEvent) => void {
  const show = io.progress ?? process.env.CREPE_QUIET !== '1';
  const bars = new Map<string, Bar>();
  return (event) => {
    if (!show) return;
    let bar = bars.get(event.stage);
    if (!bar) {
      bar = createBar(event.stage, event.total, event.units, io.stderr, now);
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
