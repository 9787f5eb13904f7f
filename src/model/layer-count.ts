/**
 * The layer count a config claims, checked against the tensors actually present before anything
 * is built per layer: a config.json or GGUF header that says 10⁹ layers is refused at once instead
 * of allocating per-layer lists for them, and one that says fewer layers than the weights hold is
 * refused too (the model would silently run without its last layers).
 */
import { UserError } from '../util/errors.ts';

/** The distinct layer indices among `names`, where `pattern`'s first group is the index. */
function layerIndices(names: Iterable<string>, pattern: RegExp): Set<number> {
  const seen = new Set<number>();
  for (const name of names) {
    const match = pattern.exec(name);
    if (match) seen.add(Number(match[1]));
  }
  return seen;
}

/** Number of distinct layer indices among `names`, where `pattern`'s first group is the index. */
export function layersPresent(names: Iterable<string>, pattern: RegExp): number {
  return layerIndices(names, pattern).size;
}

/**
 * Refuses `claimed` layers (`field` of `source`) when the tensors name fewer distinct layers, or
 * name a layer index at or past `claimed`; the per-layer tensor checks that follow then work on a
 * bounded count.
 */
export function checkLayerCount(claimed: number, names: Iterable<string>, pattern: RegExp, source: string, field: string): void {
  const indices = layerIndices(names, pattern);
  const present = indices.size;
  let last = -1;
  for (const index of indices) last = Math.max(last, index);
  if (claimed > present || last >= claimed) {
    const beyond = last >= claimed ? ` (up to index ${last})` : '';
    throw new UserError(
      `${source}: ${field} is ${claimed}, but the weights hold tensors of ${present} layer${present === 1 ? '' : 's'}${beyond}; the configuration does not match the checkpoint`,
    );
  }
}
