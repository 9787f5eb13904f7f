/**
 * Everything that decides a pruning run's result, as plain data. It is written into
 * crepe-report.json and hashed: a resumed run must have the same settings as the run it continues.
 */
import type { PruneTarget, Selection } from './target.ts';
import type { CrepeParams } from './scores/crepe.ts';
import type { LinearName } from '../model/spec.ts';

export type { CrepeParams, PruneTarget, Selection };
export { describeTarget } from './target.ts';

export interface PruneSettings {
  method: string;
  target: PruneTarget;
  /** Unstructured selection rule (ignored by N:M and by SparseGPT's per-block rule). */
  selection: Selection;
  riaA: number;
  crepe: CrepeParams | null;
  calibration: { file: string; sha256: string; nsamples: number; seqlen: number; seed: number };
  trueSequential: boolean;
  sparsegpt: { blockSize: number; percdamp: number };
  reconstruct: boolean;
  owl: { m: number; lambda: number } | null;
  dsnot: { maxCycles: number; updateThreshold: number; skip: 'mlp' | 'none'; sameSign?: boolean } | null;
  permute: { strategy: 'reallocation' | 'lsa'; blocks: number } | null;
  /** Linears left dense in every layer (e.g. a width an N:M pattern does not divide). */
  exclude?: LinearName[];
}

/** What a caller must decide; every other setting defaults to a plain one-pass run. */
export type PruneSettingsInput = Pick<PruneSettings, 'method' | 'target' | 'selection' | 'calibration'> & Partial<PruneSettings>;

/**
 * Settings with the defaults filled in: RIA a = 0.5, SparseGPT blocks of 128 with 1 % dampening,
 * no reconstruction, OWL, DSnoT or permutation, one statistics pass per block. The key order
 * is fixed (the settings are hashed as JSON), and `exclude` is present only when given.
 */
export function pruneSettings(input: PruneSettingsInput): PruneSettings {
  return {
    method: input.method,
    target: input.target,
    selection: input.selection,
    riaA: input.riaA ?? 0.5,
    crepe: input.crepe ?? null,
    calibration: input.calibration,
    trueSequential: input.trueSequential ?? false,
    sparsegpt: input.sparsegpt ?? { blockSize: 128, percdamp: 0.01 },
    reconstruct: input.reconstruct ?? false,
    owl: input.owl ?? null,
    dsnot: input.dsnot ?? null,
    permute: input.permute ?? null,
    ...(input.exclude !== undefined && { exclude: input.exclude }),
  };
}
