/**
 * The work directory of a pruning run, `<out>.crepe-partial/`: each finished layer's pruned
 * tensors, the activations that enter the next layer, and `state.json`, so an interrupted run
 * continues where it stopped (`--resume`) and ends byte-identical to an uninterrupted one.
 *
 * A layer is committed in three atomic steps: its tensors (`layer-L.safetensors`), then the
 * activations entering layer L+1 under their own name (`activations-(L+1).f32`), then
 * `state.json`, which names every committed file with its size. Only the state makes a commit:
 * a kill between any two steps leaves the previous state naming the previous files, all still
 * present, and whatever a newer step wrote is removed on resume. Nothing is ever read that the
 * state does not name, so a layer can never run twice on activations that already went through it.
 */
import { closeSync, existsSync, openSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { atomicWriteFile, atomicWriteJson, discardOnSignal, keepOnSignal } from '../io/atomic.ts';
import { readInputJson } from '../io/input-file.ts';
import { makeDirectory } from '../io/write-error.ts';
import { UserError, check } from '../util/errors.ts';
import { sha256Bytes } from '../util/hash.ts';

/** The state format; a work directory of another format is not resumed. */
export const WORK_STATE_FORMAT = 'crepe-work/2';
const STATE_FILE = 'state.json';

export interface CommittedFile {
  name: string;
  bytes: number;
}

/**
 * What a resumed run must share with the interrupted one: the settings, the weights (sha256 per
 * file), the architecture config.json describes (rms_norm_eps, rope_theta, … change every
 * activation) and the calibration windows (a digest).
 */
export interface RunIdentity {
  settings: unknown;
  inputSha256: unknown;
  spec: unknown;
  windows: string;
  /** Set when the run writes masks recorded by an earlier prune (--auto's choice) instead of pruning. */
  replayed?: boolean;
}

/** What differs between the identity a run was started with and a resumed run's, in a few words. */
function describeIdentityChange(started: RunIdentity, now: RunIdentity): string {
  const changes = changedLeaves(started.settings, now.settings, '');
  const spec = changedLeaves(started.spec, now.spec, '').map((change) => change.slice(0, change.indexOf(':')));
  if (spec.length > 0) changes.push(`config.json describes another architecture (${spec.join(', ')})`);
  if (JSON.stringify(started.inputSha256) !== JSON.stringify(now.inputSha256)) changes.push('other model weights');
  if (started.windows !== now.windows) changes.push('other calibration windows');
  if (Boolean(started.replayed) !== Boolean(now.replayed)) {
    changes.push(started.replayed ? 'it was writing the masks --auto chose: resume it with --auto' : 'it was pruning, not writing the masks --auto chose');
  }
  return changes.length <= 4 ? changes.join('; ') : `${changes.slice(0, 4).join('; ')}; and ${changes.length - 4} more`;
}

/** The settings that differ, as "path: was X, now Y". */
function changedLeaves(was: unknown, now: unknown, at: string): string[] {
  if (JSON.stringify(was) === JSON.stringify(now)) return [];
  const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
  if (isRecord(was) && isRecord(now)) {
    return [...new Set([...Object.keys(was), ...Object.keys(now)])].flatMap((key) => changedLeaves(was[key], now[key], at === '' ? key : `${at}.${key}`));
  }
  const shown = (value: unknown) => (value === undefined ? 'unset' : JSON.stringify(value));
  return [`${at}: was ${shown(was)}, now ${shown(now)}`];
}

export interface WorkState<LayerEntry> {
  format: typeof WORK_STATE_FORMAT;
  settingsHash: string;
  /** The identity `settingsHash` hashes, to say what changed (states of older versions lack it). */
  startedWith?: RunIdentity;
  layersDone: number;
  layers: LayerEntry[];
  /** Per-layer sparsities (OWL), fixed before the first layer. */
  layerTargets: unknown;
  /** What this state commits: the finished layers' files (layer order) and the activations entering layer `layersDone`. */
  files: { layers: CommittedFile[]; activations: CommittedFile };
}

const pad = (n: number): string => String(n).padStart(5, '0');
export const layerFileName = (layer: number): string => `layer-${pad(layer)}.safetensors`;
export const activationsFileName = (layer: number): string => `activations-${pad(layer)}.f32`;

export class WorkDir<LayerEntry> {
  readonly dir: string;
  private current: WorkState<LayerEntry> | null;

  private constructor(dir: string, state: WorkState<LayerEntry> | null, private readonly identity: RunIdentity) {
    this.dir = dir;
    this.current = state;
    this.markForSignals();
  }

  /**
   * Without a committed state the directory holds nothing --resume can use (before the first
   * commit, or once the finished model is assembled and the state removed): a Ctrl-C removes it
   * (removePendingTemporaries) rather than leave something that stands in the next run's way.
   * With a state it stays for --resume.
   */
  private markForSignals(): void {
    if (this.current === null) discardOnSignal(this.dir);
    else keepOnSignal(this.dir);
  }

  static pathFor(outDir: string): string {
    return `${path.resolve(outDir)}.crepe-partial`;
  }

  /** True when the work directory of `outDir` holds a committed state that --resume continues. */
  static resumable(outDir: string): boolean {
    return existsSync(path.join(WorkDir.pathFor(outDir), STATE_FILE));
  }

  /**
   * Opens the work directory for `outDir`. A leftover directory is continued with `resume` (its
   * uncommitted files removed first), discarded with `overwrite`, and refused otherwise, so no run
   * silently mixes two runs' layers.
   */
  static open<E>(outDir: string, opts: { resume: boolean; overwrite: boolean; identity: RunIdentity }): { work: WorkDir<E>; state: WorkState<E> | null } {
    const dir = WorkDir.pathFor(outDir);
    if (existsSync(dir)) {
      if (opts.resume && existsSync(path.join(dir, STATE_FILE))) {
        const state = readState<E>(dir);
        check(state.settingsHash === hashIdentity(opts.identity), () => {
          const change = state.startedWith ? describeIdentityChange(state.startedWith, opts.identity) : '';
          return `${dir} was started with other settings, model or calibration data${change ? ` (${change})` : ''}; pass the same options to resume, or overwrite to start again`;
        });
        const work = new WorkDir<E>(dir, state, opts.identity);
        work.removeUncommitted();
        return { work, state };
      }
      // A run killed before its first commit left nothing to continue: --resume starts afresh.
      if (!opts.overwrite && !opts.resume) {
        throw new UserError(`${dir} holds an interrupted run: pass resume to continue it or overwrite to start again`);
      }
      rmSync(dir, { recursive: true, force: true });
    }
    makeDirectory(dir);
    return { work: new WorkDir<E>(dir, null, opts.identity), state: null };
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  layerFile(layer: number): string {
    return this.path(layerFileName(layer));
  }

  /** The last committed state (null before the first commit). */
  get state(): WorkState<LayerEntry> | null {
    return this.current;
  }

  /** Commits the start of a run: the activations entering layer 0 and the per-layer targets. */
  async commitStart(layerTargets: unknown, hidden: Float32Array[]): Promise<void> {
    const activations = await this.writeActivations(0, hidden);
    const { identity } = this;
    await this.commit({
      format: WORK_STATE_FORMAT, settingsHash: hashIdentity(identity), startedWith: identity, layersDone: 0, layers: [], layerTargets, files: { layers: [], activations },
    });
  }

  /**
   * Commits finished layer `layer`: `writeLayer` writes its tensors (atomically) to the path it is
   * given; then the activations entering the next layer; then the state naming both.
   */
  async commitLayer(layer: number, entry: LayerEntry, hidden: Float32Array[], writeLayer: (file: string) => Promise<void>): Promise<void> {
    const previous = this.current;
    if (!previous || previous.layersDone !== layer) throw new Error(`internal: commit of layer ${layer} after ${previous?.layersDone ?? 'no'} committed layers`);
    const layerName = layerFileName(layer);
    await writeLayer(this.path(layerName));
    const layerFile: CommittedFile = { name: layerName, bytes: statSync(this.path(layerName)).size };
    const activations = await this.writeActivations(layer + 1, hidden);
    await this.commit({
      ...previous,
      layersDone: layer + 1,
      layers: [...previous.layers, entry],
      files: { layers: [...previous.files.layers, layerFile], activations },
    });
    rmSync(this.path(previous.files.activations.name), { force: true });
  }

  private async commit(state: WorkState<LayerEntry>): Promise<void> {
    await atomicWriteJson(this.path(STATE_FILE), state);
    this.current = state;
    this.markForSignals();
  }

  /** Saves the calibration activations entering `layer` (N sequences, concatenated in the file, not in memory). */
  private async writeActivations(layer: number, hidden: Float32Array[]): Promise<CommittedFile> {
    const parts = hidden.map((h) => new Uint8Array(h.buffer, h.byteOffset, h.byteLength));
    const name = activationsFileName(layer);
    await atomicWriteFile(this.path(name), parts);
    return { name, bytes: parts.reduce((n, part) => n + part.byteLength, 0) };
  }

  /** The committed activations entering layer `layersDone`: `count` sequences of `perSequence` floats. */
  readActivations(count: number, perSequence: number): Float32Array[] {
    const state = this.current;
    if (!state) throw new Error('internal: no committed state to read activations from');
    const file = this.path(state.files.activations.name);
    check(state.files.activations.bytes === count * perSequence * 4, `${file} does not hold ${count} windows of ${perSequence} values; pass overwrite to start again`);
    const fd = openSync(file, 'r');
    try {
      const hidden: Float32Array[] = [];
      for (let n = 0; n < count; n++) {
        const h = new Float32Array(perSequence);
        readSync(fd, new Uint8Array(h.buffer), 0, perSequence * 4, n * perSequence * 4);
        hidden.push(h);
      }
      return hidden;
    } finally {
      closeSync(fd);
    }
  }

  /** Files the state commits, plus the state itself. */
  private committedNames(): Set<string> {
    const names = new Set<string>([STATE_FILE]);
    const state = this.current;
    if (state) {
      for (const file of state.files.layers) names.add(file.name);
      names.add(state.files.activations.name);
    }
    return names;
  }

  /**
   * Removes everything the state does not commit: temporary files of a killed write, a layer or
   * activations file written after the last commit, a partly assembled model.
   */
  removeUncommitted(): void {
    const keep = this.committedNames();
    for (const name of readdirSync(this.dir)) if (!keep.has(name)) rmSync(this.path(name), { recursive: true, force: true });
  }

  /** Removes the whole work directory (a run that stopped on bad input keeps nothing). */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
    keepOnSignal(this.dir);
  }

  /** Once the final model is assembled: keeps only the files named in `keep`, removing every intermediate and temporary file. */
  keepOnly(keep: readonly string[]): void {
    const wanted = new Set(keep);
    for (const name of readdirSync(this.dir)) if (!wanted.has(name)) rmSync(this.path(name), { recursive: true, force: true });
    this.current = null;
    this.markForSignals();
  }
}

/** The hash a work state records of its run's identity. */
const hashIdentity = (identity: RunIdentity): string => sha256Bytes(JSON.stringify(identity));

/** Reads and checks `<dir>/state.json`: the right format, and every file it names present with its size. */
function readState<E>(dir: string): WorkState<E> {
  const file = path.join(dir, STATE_FILE);
  const corrupt = (problem: string) => new UserError(`${file}: ${problem}; remove ${dir} or pass overwrite to start again`);
  let state: WorkState<E>;
  try {
    state = readInputJson(file, 'workState') as WorkState<E>;
  } catch (error) {
    if (error instanceof UserError) throw corrupt(error.message.replace(`${file}: `, ''));
    throw error;
  }
  if (state === null || typeof state !== 'object') throw corrupt('not a work state');
  if (state.format !== WORK_STATE_FORMAT) {
    throw corrupt(`format ${JSON.stringify(state.format ?? null)} is not ${WORK_STATE_FORMAT} (written by another version of crepe)`);
  }
  const { files, layersDone } = state;
  if (!Number.isSafeInteger(layersDone) || layersDone < 0 || !Array.isArray(state.layers) || state.layers.length !== layersDone) throw corrupt('inconsistent layer count');
  if (!files || !Array.isArray(files.layers) || files.layers.length !== layersDone || !files.activations) throw corrupt('does not name its files');
  const expected = [...files.layers.map((f, layer) => [f, layerFileName(layer)] as const), [files.activations, activationsFileName(layersDone)] as const];
  for (const [entry, name] of expected) {
    if (!entry || entry.name !== name) throw corrupt(`names ${JSON.stringify(entry?.name)} where ${name} belongs`);
    const actual = existsSync(path.join(dir, name)) ? statSync(path.join(dir, name)).size : -1;
    if (actual !== entry.bytes) throw corrupt(`${name} is ${actual < 0 ? 'missing' : `${actual} bytes, not ${entry.bytes}`}`);
  }
  return state;
}
