/**
 * The masks of a pruning run, kept so that the same pruned model can be written again without
 * pruning it again: one file per layer holding, for each pruned block linear in the layer report's
 * order, a bitset of its weights that are +0 (weight i is bit i & 7 of byte i >> 3). Pruning sets
 * a weight to +0 (applyMask). Where it does nothing else (no reconstruction, no channel
 * permutation), the dense weights with these set to +0 are the pruned weights bit for bit: a kept
 * weight has its dense value (a kept +0 is set to +0 again, a kept −0 has no bit).
 *
 * `--auto` records each confirmed candidate's masks as its trial prunes, and writes the chosen
 * candidate's model from them instead of pruning a sixth time.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { BlockWeights } from '../model/spec.ts';
import { atomicWriteFile } from '../io/atomic.ts';
import type { LayerReport } from './layer-loop.ts';
import { updatesWeights, type PruneSettings } from './settings.ts';

/** Masks recorded by a run: the directory of their files, the run's settings and its layer reports. */
export interface RecordedMasks {
  dir: string;
  settings: PruneSettings;
  layers: LayerReport[];
}

/** Whether a run's pruned weights are its dense weights with zeros, in the input's order: what masks can reproduce. */
export function masksReproduce(settings: PruneSettings): boolean {
  return !updatesWeights(settings) && settings.permute === null;
}

/**
 * Whether `masks` give the model that a run with `settings` would prune (from the same model and
 * calibration windows, which the caller vouches for): the same settings, every layer recorded.
 */
export function masksFit(masks: RecordedMasks, settings: PruneSettings, numLayers: number): boolean {
  return masksReproduce(settings) && JSON.stringify(masks.settings) === JSON.stringify(settings) && masks.layers.length === numLayers;
}

const maskFile = (dir: string, layer: number) => path.join(dir, `layer-${String(layer).padStart(5, '0')}.zeros`);

/** The pruned linears of a layer report, with their weights' keys. */
const prunedKeys = (report: LayerReport) => report.linears.filter((linear) => !linear.excluded).map((linear) => `${linear.name}.weight`);

/** Writes the zero bitsets of layer `layer`'s pruned linears (`weights` as the pruning loop hands them over). */
export async function writeLayerMasks(dir: string, layer: number, weights: BlockWeights, report: LayerReport): Promise<void> {
  const parts = prunedKeys(report).map((key) => {
    const weight = bitPatterns(weights[key]);
    const bits = new Uint8Array(Math.ceil(weight.length / 8));
    for (let i = 0; i < weight.length; i++) if (weight[i] === 0) bits[i >> 3] |= 1 << (i & 7);
    return bits;
  });
  await atomicWriteFile(maskFile(dir, layer), parts);
}

const bitPatterns = (weight: Float32Array) => new Uint32Array(weight.buffer, weight.byteOffset, weight.length);

/** Sets to +0, in place, the weights of layer `layer`'s pruned linears that its recorded masks mark. */
export function applyLayerMasks(masks: RecordedMasks, layer: number, weights: BlockWeights): void {
  const file = maskFile(masks.dir, layer);
  const bytes = readFileSync(file);
  let offset = 0;
  for (const key of prunedKeys(masks.layers[layer])) {
    const weight = bitPatterns(weights[key]);
    const length = Math.ceil(weight.length / 8);
    if (offset + length > bytes.length) throw new Error(`internal: ${file} holds fewer masks than layer ${layer} has pruned linears`);
    for (let i = 0; i < weight.length; i++) if (bytes[offset + (i >> 3)] & (1 << (i & 7))) weight[i] = 0;
    offset += length;
  }
  if (offset !== bytes.length) throw new Error(`internal: ${file} holds more masks than layer ${layer} has pruned linears`);
}
