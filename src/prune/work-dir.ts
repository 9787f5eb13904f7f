/**
 * The work directory of a pruning run, `<out>.crepe-partial/`: it holds each finished layer's
 * pruned tensors, the activations that enter the next layer and a state file, so an interrupted run
 * continues where it stopped (`--resume`) and ends byte-identical to an uninterrupted one. Every file
 * in it is written atomically; `state.json` is written last and is the commit point of a layer.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import path from 'node:path';
import { atomicWriteFile, atomicWriteJson } from '../io/atomic.ts';
import { UserError, check } from '../util/errors.ts';

export interface WorkState<LayerEntry> {
  settingsHash: string;
  layersDone: number;
  layers: LayerEntry[];
  /** Per-layer sparsities (OWL), fixed before the first layer. */
  layerTargets: unknown;
}

export class WorkDir<LayerEntry> {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static pathFor(outDir: string): string {
    return `${path.resolve(outDir)}.crepe-partial`;
  }

  /**
   * Opens the work directory for `outDir`. A leftover directory is continued with `resume`,
   * discarded with `overwrite`, and refused otherwise, so no run silently mixes two runs' layers.
   */
  static open<E>(outDir: string, opts: { resume: boolean; overwrite: boolean; settingsHash: string }): { work: WorkDir<E>; state: WorkState<E> | null } {
    const dir = WorkDir.pathFor(outDir);
    const work = new WorkDir<E>(dir);
    if (existsSync(dir)) {
      if (opts.resume) {
        const state = work.readState();
        check(state !== null, `${dir} holds no state.json; remove it or pass --overwrite`);
        check(
          state.settingsHash === opts.settingsHash,
          `${dir} was started with other settings, model or calibration data; pass the same options to --resume, or --overwrite to start again`,
        );
        return { work, state };
      }
      if (!opts.overwrite) {
        throw new UserError(`${dir} holds an interrupted run: pass --resume to continue it or --overwrite to start again`);
      }
      rmSync(dir, { recursive: true, force: true });
    }
    mkdirSync(dir, { recursive: true });
    return { work, state: null };
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  layerFile(layer: number): string {
    return this.path(`layer-${String(layer).padStart(5, '0')}.safetensors`);
  }

  private readState(): WorkState<LayerEntry> | null {
    const file = this.path('state.json');
    if (!existsSync(file)) return null;
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as WorkState<LayerEntry>;
    } catch {
      throw new UserError(`${file} is corrupt; remove ${this.dir} or pass --overwrite`);
    }
  }

  async writeState(state: WorkState<LayerEntry>): Promise<void> {
    await atomicWriteJson(this.path('state.json'), state);
  }

  /** Saves the calibration activations entering the next layer (N sequences, concatenated). */
  async writeActivations(hidden: Float32Array[]): Promise<void> {
    const length = hidden.reduce((n, h) => n + h.length, 0);
    const all = new Float32Array(length);
    let offset = 0;
    for (const h of hidden) {
      all.set(h, offset);
      offset += h.length;
    }
    await atomicWriteFile(this.path('activations.f32'), new Uint8Array(all.buffer));
  }

  readActivations(count: number, perSequence: number): Float32Array[] {
    const file = this.path('activations.f32');
    check(existsSync(file) && statSync(file).size === count * perSequence * 4, `${file} is missing or has the wrong size; pass --overwrite to start again`);
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

  /** Removes the whole work directory (a run that stopped on bad input keeps nothing). */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Removes the intermediate files once the final model is assembled. */
  clearIntermediates(layers: number): void {
    rmSync(this.path('activations.f32'), { force: true });
    rmSync(this.path('state.json'), { force: true });
    for (let l = 0; l < layers; l++) rmSync(this.layerFile(l), { force: true });
  }
}
