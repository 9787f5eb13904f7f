/**
 * Everything that decides a pruning run's result, as plain data. It is written into
 * crepe-report.json and hashed: a resumed run must have the same settings as the run it continues.
 */
import type { SparsityPattern } from './mask.ts';
import type { CrepeParams } from './scores/crepe.ts';
import type { LinearName } from '../model/spec.ts';

export type { CrepeParams };

export type PruneTarget = SparsityPattern;
export type Selection = 'per-row' | 'per-matrix';


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
  dsnot: { maxCycles: number; updateThreshold: number; skip: 'mlp' | 'none' } | null;
  permute: { strategy: 'reallocation' | 'lsa'; blocks: number } | null;
  /** Linears left dense in every layer (e.g. a width an N:M pattern does not divide). */
  exclude?: LinearName[];
}

export function describeTarget(target: PruneTarget): string {
  return target.kind === 'nm' ? `${target.n}:${target.m}` : `${(target.sparsity * 100).toFixed(1)}% unstructured`;
}
