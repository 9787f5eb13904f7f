/**
 * Exact linear sum assignment on a dense square matrix: choose one column per row, all columns
 * distinct, minimising (or maximising) the total. Shortest augmenting paths with row/column
 * potentials (the O(n³) Hungarian method in its Jonker–Volgenant form), all in float64.
 *
 * Rows are inserted one at a time; each insertion runs a Dijkstra-like search over the reduced
 * costs `cost[i][j] − u[i] − v[j]` (kept ≥ 0 by the potentials) until it reaches a free column,
 * then flips the alternating path. After row i is in, the assignment of rows 0..i is optimal.
 */
import assert from 'node:assert/strict';

export interface AssignmentOptions {
  /** Maximise the total instead of minimising it (as SciPy's `maximize=True`). */
  maximize?: boolean;
}

/**
 * `cost` is row-major [n, n]. Returns `columnOfRow` (row r → its column). Entries must be finite.
 */
export function linearSumAssignment(
  cost: Float64Array,
  n: number,
  options: AssignmentOptions = {},
): Int32Array {
  assert.ok(Number.isInteger(n) && n >= 0, `assignment size must be a non-negative integer, got ${n}`);
  assert.equal(cost.length, n * n, 'assignment cost matrix must be n×n');
  // Maximising c is minimising −c; negate once so the hot loop has no branch.
  const work = new Float64Array(n * n);
  const sign = options.maximize ? -1 : 1;
  for (let k = 0; k < n * n; k++) {
    const c = cost[k];
    assert.ok(Number.isFinite(c), `assignment cost at (${Math.floor(k / n)}, ${k % n}) is not finite`);
    work[k] = sign * c;
  }

  // Column index n is a virtual column that holds the row being inserted.
  const rowPotential = new Float64Array(n);
  const colPotential = new Float64Array(n + 1);
  const rowOfCol = new Int32Array(n + 1).fill(-1);
  const previousCol = new Int32Array(n + 1); // predecessor of a column on the shortest path tree
  const minReduced = new Float64Array(n + 1); // shortest tentative distance to each column
  const visited = new Uint8Array(n + 1);
  // Unvisited real columns, kept packed so each scan touches only those (swap-remove on visit).
  const unvisited = new Int32Array(n);

  for (let row = 0; row < n; row++) {
    rowOfCol[n] = row;
    let col0 = n;
    minReduced.fill(Infinity);
    visited.fill(0);
    for (let j = 0; j < n; j++) unvisited[j] = j;
    let unvisitedCount = n;
    visited[n] = 1;

    for (;;) {
      const i0 = rowOfCol[col0];
      const rowOffset = i0 * n;
      const u0 = rowPotential[i0];
      let delta = Infinity;
      let bestSlot = -1;
      for (let s = 0; s < unvisitedCount; s++) {
        const j = unvisited[s];
        const reduced = work[rowOffset + j] - u0 - colPotential[j];
        if (reduced < minReduced[j]) {
          minReduced[j] = reduced;
          previousCol[j] = col0;
        }
        if (minReduced[j] < delta) {
          delta = minReduced[j];
          bestSlot = s;
        }
      }
      assert.ok(bestSlot >= 0, 'assignment search found no column (non-finite costs?)');
      const col1 = unvisited[bestSlot];
      // Shift potentials so reduced costs stay ≥ 0 and tentative distances stay relative.
      for (let j = 0; j <= n; j++) {
        if (visited[j]) {
          rowPotential[rowOfCol[j]] += delta;
          colPotential[j] -= delta;
        } else {
          minReduced[j] -= delta;
        }
      }
      visited[col1] = 1;
      unvisited[bestSlot] = unvisited[--unvisitedCount];
      col0 = col1;
      if (rowOfCol[col0] === -1) break; // reached a free column: augment
    }

    // Flip the alternating path back to the virtual column.
    while (col0 !== n) {
      const prev = previousCol[col0];
      rowOfCol[col0] = rowOfCol[prev];
      col0 = prev;
    }
  }

  const columnOfRow = new Int32Array(n);
  for (let j = 0; j < n; j++) columnOfRow[rowOfCol[j]] = j;
  return columnOfRow;
}

/** Total of the chosen entries (float64), for logs and tests. */
export function assignmentTotal(cost: Float64Array, n: number, columnOfRow: Int32Array): number {
  let total = 0;
  for (let r = 0; r < n; r++) total += cost[r * n + columnOfRow[r]];
  return total;
}
