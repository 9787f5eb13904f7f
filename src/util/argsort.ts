/**
 * Ascending order of non-negative float32 values in O(n): for x ≥ 0 the IEEE bit pattern read as
 * an unsigned integer is monotone in x, so two stable 16-bit LSD radix passes over the bits sort
 * the positions (ties keep index order). A comparator sort of a 45 M-entry matrix takes tens of
 * seconds; this takes a few hundred milliseconds.
 */
export function argsortNonNegative(values: Float32Array): Uint32Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const n = values.length;
  let order = new Uint32Array(n);
  let scratch = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const counts = new Uint32Array(1 << 16);
  for (const shift of [0, 16]) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(bits[i] >>> shift) & 0xffff]++;
    let total = 0;
    for (let d = 0; d < counts.length; d++) {
      const c = counts[d];
      counts[d] = total;
      total += c;
    }
    for (let p = 0; p < n; p++) {
      const i = order[p];
      scratch[counts[(bits[i] >>> shift) & 0xffff]++] = i;
    }
    [order, scratch] = [scratch, order];
  }
  return order;
}
