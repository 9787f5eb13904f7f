/**
 * What a pruning run removes: the target (a fraction of every linear's weights, or n of every m
 * consecutive inputs per row) and, for unstructured targets, the rule that selects the mask.
 * `parseTarget` is the one reader of user text ("0.5", "2:4") into a target, `parsePattern` of text
 * that may only be "n:m".
 */
import { parseDecimal } from '../util/decimal.ts';
import { FieldError, checkField } from '../util/errors.ts';
import { checkKnownFields, describeValue } from '../util/fields.ts';

export type PruneTarget =
  | { kind: 'unstructured'; sparsity: number }
  | { kind: 'nm'; n: number; m: number };

/**
 * Unstructured selection rule (ALGORITHMS.md §1.5): exactly floor(dIn·s) per output row, or one
 * threshold for the whole matrix. N:M targets ignore it.
 */
export type Selection = 'per-row' | 'per-matrix';
export const SELECTIONS: readonly Selection[] = ['per-row', 'per-matrix'];

/**
 * A target from a sparsity (a number, or its text "0.5") or an "n:m" text, validated; errors are
 * FieldErrors naming `field`.
 */
export function parseTarget(value: number | string, field = 'target'): PruneTarget {
  if (typeof value === 'number') return validateTarget({ kind: 'unstructured', sparsity: value }, field);
  checkField(typeof value === 'string', field, () => `must be a sparsity like 0.5 or an n:m pattern like 2:4, got ${describeValue(value)}`);
  const trimmed = value.trim();
  if (NM_TEXT.test(trimmed)) return parsePattern(trimmed, field);
  const sparsity = parseDecimal(trimmed);
  if (sparsity === null) throw new FieldError(field, `must be a sparsity like 0.5 or an n:m pattern like 2:4, got ${describeValue(value)}`);
  return validateTarget({ kind: 'unstructured', sparsity }, field);
}

const NM_TEXT = /^(\d+)\s*:\s*(\d+)$/;

/**
 * An N:M target from its text "n:m"; anything else — a sparsity such as "0.5" included, which
 * would prune unstructured where semi-structured was asked for — is a FieldError naming `field`.
 */
export function parsePattern(value: string, field = 'pattern'): PruneTarget & { kind: 'nm' } {
  const nm = typeof value === 'string' ? NM_TEXT.exec(value.trim()) : null;
  checkField(nm, field, () => `must be n:m with whole numbers, e.g. 2:4 (n of every m consecutive weights pruned), got ${describeValue(value)}`);
  return validateTarget({ kind: 'nm', n: Number(nm[1]), m: Number(nm[2]) }, field) as PruneTarget & { kind: 'nm' };
}

/** Returns `target` when it is well formed: 0 < sparsity < 1, or integers 0 < n < m. */
export function validateTarget(target: PruneTarget, field = 'target'): PruneTarget {
  checkField(
    typeof target === 'object' && target !== null && !Array.isArray(target),
    field,
    () => `must be { kind: 'unstructured', sparsity } or { kind: 'nm', n, m } (parseTarget reads "0.5" and "2:4"), got ${describeValue(target)}`,
  );
  if (target.kind === 'unstructured') {
    checkKnownFields(target, field, ['kind', 'sparsity']);
    const { sparsity } = target;
    checkField(
      typeof sparsity === 'number' && Number.isFinite(sparsity) && sparsity > 0 && sparsity < 1,
      field,
      () => `must be a number strictly between 0 and 1 (a fraction of weights to prune), got ${describeValue(sparsity)}`,
    );
    return target;
  }
  checkField(target.kind === 'nm', field, () => `has unknown kind ${JSON.stringify((target as { kind: unknown }).kind)}; expected "unstructured" or "nm"`);
  checkKnownFields(target, field, ['kind', 'n', 'm']);
  const { n, m } = target;
  checkField(Number.isSafeInteger(n) && Number.isSafeInteger(m) && n > 0 && m > 0, field, () => `n:m needs positive integers, got ${describeValue(n)}:${describeValue(m)}`);
  checkField(n < m, field, `${n}:${m} prunes n of every m weights, so n must be smaller than m`);
  return target;
}

/** The fraction of a linear's weights the target prunes: the sparsity, or n/m. */
export function targetSparsity(target: PruneTarget): number {
  return target.kind === 'unstructured' ? target.sparsity : target.n / target.m;
}

/** A target as a report shows it: "2:4" or "50.0% unstructured"; refuses (naming `target`) what validateTarget refuses. */
export function describeTarget(target: PruneTarget): string {
  validateTarget(target);
  return target.kind === 'nm' ? `${target.n}:${target.m}` : `${(target.sparsity * 100).toFixed(1)}% unstructured`;
}
