/**
 * A `crepe prune` of stories260K slow enough to stop mid-run: SparseGPT makes a real statistics
 * pass (X·Xᵀ) per layer, and 64 windows of 512 tokens make each of the 5 layers take a while.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { C4_SAMPLE } from './shared.ts';
import { builtCrepeBin } from './stories.ts';

export const SLOW_PRUNE_LAYERS = 5;

/** `node` arguments of the prune of `model` into `out`, through the compiled CLI. */
export function slowPruneArgs(model: string, out: string): string[] {
  return [
    builtCrepeBin(), 'prune', model, '--method', 'sparsegpt', '--sparsity', '0.5',
    '--calib', C4_SAMPLE, '--nsamples', '64', '--seqlen', '512', '--seed', '0', '--out', out,
  ];
}

/** layersDone of the work directory's committed state, or -1 while there is none. */
export function layersDone(out: string): number {
  try {
    return (JSON.parse(readFileSync(path.join(`${out}.crepe-partial`, 'state.json'), 'utf8')) as { layersDone: number }).layersDone;
  } catch {
    return -1;
  }
}
