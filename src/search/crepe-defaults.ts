/**
 * The shipped per-target CRePE configurations (configs/crepe-<name>.json), one per common target,
 * each chosen by scripts/select-defaults.ts on held-out text against the RIA point, paired per
 * calibration seed: a candidate ships only when it beats RIA robustly (most seeds, a margin larger
 * than its spread) or, where none does, when a one-sided paired t-test on 24 fresh seeds says it beats
 * RIA and it loses no held-out text; otherwise the RIA point itself ships. Each file records its
 * provenance.
 *
 * Lookup: a target takes its own default (the same sparsity, or the same N:M pattern); else an
 * unstructured target the unstructured default of the nearest sparsity (ties to the lower one), an
 * N:M pattern the N:M default of the nearest sparsity N/M.
 */
import path from 'node:path';
import type { CrepeParams } from '../prune/scores/crepe.ts';
import { parseTarget, targetSparsity, validateTarget, type PruneTarget } from '../prune/target.ts';
import { PACKAGE_ROOT, loadCrepeConfig } from './crepe-config.ts';

/** The RIA point of CRePE's space: α = β = 1, γ = 0 (no neighbourhood term), a = 0.5. */
export const RIA_POINT: CrepeParams = { k: 1, alpha: 1, beta: 1, gamma: 0, a: 0.5, variant: 'normalized', border: 'zero' };

/** Whether `p` scores as RIA does: no neighbourhood term, β/α = 1, a = 0.5. */
export function isRiaPoint(p: Pick<CrepeParams, 'alpha' | 'beta' | 'gamma' | 'a'>): boolean {
  return p.gamma === 0 && p.alpha > 0 && p.beta === p.alpha && p.a === RIA_POINT.a;
}

/** The targets with a shipped default; `exclude` is what the selection on stories260K needed. */
export const DEFAULT_TARGETS = {
  '50': { target: '0.5', exclude: undefined },
  '60': { target: '0.6', exclude: undefined },
  '70': { target: '0.7', exclude: undefined },
  '2of4': { target: '2:4', exclude: undefined },
  // stories260K's MLP width (172) is not a multiple of 8: its 4:8 selection left mlp.down_proj dense.
  '4of8': { target: '4:8', exclude: ['mlp.down_proj'] },
} as const satisfies Record<string, { target: string; exclude: readonly string[] | undefined }>;

export type DefaultTargetName = keyof typeof DEFAULT_TARGETS;

/** The file of a shipped default, relative to the package root. */
export function defaultConfigFile(name: DefaultTargetName): string {
  return `configs/crepe-${name}.json`;
}

const targetOf = (name: DefaultTargetName): PruneTarget => parseTarget(DEFAULT_TARGETS[name].target);

/** The shipped default for `target`: its name, its absolute path, and why it was picked. */
export function defaultCrepeConfigFor(target: PruneTarget): { name: DefaultTargetName; file: string; reason: string } {
  validateTarget(target, 'target');
  const names = Object.keys(DEFAULT_TARGETS) as DefaultTargetName[];
  const sameKind = names.filter((name) => targetOf(name).kind === target.kind);
  // A target that has a default of its own: the same pattern, or the same sparsity.
  const own = sameKind.find((name) => {
    const t = targetOf(name);
    return t.kind === 'nm' && target.kind === 'nm' ? t.n === target.n && t.m === target.m : targetSparsity(t) === targetSparsity(target);
  });
  let name: DefaultTargetName;
  let reason: string;
  if (own) {
    name = own;
    reason = `the ${DEFAULT_TARGETS[own].target} default`;
  } else {
    const wanted = targetSparsity(target);
    name = sameKind.reduce((best, candidate) => {
      const d = Math.abs(targetSparsity(targetOf(candidate)) - wanted);
      const dBest = Math.abs(targetSparsity(targetOf(best)) - wanted);
      return d < dBest - 1e-12 ? candidate : best;
    });
    const kind = target.kind === 'nm' ? 'N:M default' : 'default';
    reason = `the ${kind} of the nearest sparsity (${DEFAULT_TARGETS[name].target})`;
  }
  const file = path.join(PACKAGE_ROOT, defaultConfigFile(name));
  return { name, file, reason: withRiaPointNote(reason, loadCrepeConfig(file)) };
}

/** `reason`, followed by why the RIA point ships when the default `config` is that point. */
export function withRiaPointNote(reason: string, config: Pick<CrepeParams, 'alpha' | 'beta' | 'gamma' | 'a'>): string {
  return isRiaPoint(config) ? `${reason}: the RIA point, since no searched configuration beat RIA robustly there (--auto searches this model)` : reason;
}
