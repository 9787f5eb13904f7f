/**
 * The layer count a config claims, checked against the tensors actually present before anything
 * is built per layer: a config.json or GGUF header that says 10⁹ layers is refused at once instead
 * of allocating per-layer lists for them.
 */
import { UserError } from '../util/errors.ts';

/** Number of distinct layer indices among `names`, where `pattern`'s first group is the index. */
export function layersPresent(names: Iterable<string>, pattern: RegExp): number {
  const seen = new Set<string>();
  for (const name of names) {
    const match = pattern.exec(name);
    if (match) seen.add(match[1]);
  }
  return seen.size;
}

/**
 * Refuses `claimed` layers (`field` of `source`) when the tensors name fewer distinct layers; the
 * per-layer tensor checks that follow then work on a bounded count.
 */
export function checkLayerCount(claimed: number, names: Iterable<string>, pattern: RegExp, source: string, field: string): void {
  const present = layersPresent(names, pattern);
  if (claimed > present) {
    throw new UserError(
      `${source}: ${field} is ${claimed}, but the weights hold tensors of ${present} layer${present === 1 ? '' : 's'}; the configuration does not match the checkpoint`,
    );
  }
}
