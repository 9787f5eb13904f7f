// compressed-tensors' sparsity_config from a run's sparsity metadata, and its refusal of metadata
// that vLLM or transformers could not read (unchecked, each would go into config.json as given).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SparsityTally, sparsityConfig, withSparsityConfig, type SparsityMetadata } from '../../src/prune/sparsity-config.ts';
import { FieldError, UserError } from '../../src/util/errors.ts';

const META: SparsityMetadata = { format: 'sparse-bitmask', globalSparsity: 0.25, structure: '2:4', ignore: ['lm_head'] };
const refusal = (field: string, problem: string | RegExp) => (e: unknown) =>
  e instanceof FieldError && e.field === field && (typeof problem === 'string' ? e.problem === problem : problem.test(e.problem));

test('sparsityConfig: the compressed-tensors object of well-formed metadata', () => {
  assert.deepEqual(sparsityConfig(META), {
    format: 'sparse-bitmask', global_sparsity: 0.25, ignore: ['lm_head'], registry_requires_subclass: false, sparsity_structure: '2:4', targets: ['Linear'],
  });
  assert.equal(sparsityConfig({ ...META, structure: 'unstructured', globalSparsity: 0 }).sparsity_structure, 'unstructured');
});

test('sparsityConfig refuses each metadata field it cannot write, naming it', () => {
  const structureProblem = (got: string) => `must be "unstructured" or "n:m" with 0 < n < m (n nonzeros of every m consecutive weights, as "2:4"), got ${got}`;
  const cases: Array<[Record<string, unknown>, string, string | RegExp]> = [
    [{ format: 'bitmask' }, 'meta.format', 'must be one of dense, sparse-bitmask, got "bitmask"'],
    [{ globalSparsity: 50 }, 'meta.globalSparsity', 'must be a number in [0, 1], got 50'],
    [{ globalSparsity: Number.NaN }, 'meta.globalSparsity', 'must be a number in [0, 1], got NaN'],
    [{ structure: '4:2' }, 'meta.structure', structureProblem('"4:2"')],
    [{ structure: '0:4' }, 'meta.structure', structureProblem('"0:4"')],
    [{ structure: 'Unstructured' }, 'meta.structure', structureProblem('"Unstructured"')],
    [{ ignore: 'lm_head' }, 'meta.ignore', 'must list module names (non-empty strings, such as "lm_head"), got "lm_head"'],
    [{ ignore: ['lm_head', 3] }, 'meta.ignore', 'must list module names (non-empty strings, such as "lm_head"), got an array ["lm_head", 3]'],
    [{ format: undefined }, 'meta.format', 'must be one of dense, sparse-bitmask, got undefined'],
    [{ globalsparsity: 0.5 }, 'meta.globalsparsity', 'is not a field of meta; did you mean meta.globalSparsity?'],
  ];
  for (const [change, field, problem] of cases) {
    assert.throws(() => sparsityConfig({ ...META, ...change } as never), refusal(field, problem), JSON.stringify(change));
  }
  assert.throws(() => sparsityConfig(null as never), refusal('meta', /^must be an object with some of the fields format, globalSparsity, structure, ignore, got null$/));
  // withSparsityConfig builds its config through the same check.
  assert.throws(() => withSparsityConfig({}, { ...META, globalSparsity: -0.1 }, 'config.json'), refusal('meta.globalSparsity', 'must be a number in [0, 1], got -0.1'));
  assert.throws(() => withSparsityConfig({ quantization_config: { quant_method: 'gptq' } }, META, 'config.json'), UserError);
});

test('SparsityTally refuses a target that is none (a 4:2 target would be checked against a pattern no weights follow)', () => {
  assert.throws(() => new SparsityTally({ kind: 'nm', n: 4, m: 2 }), refusal('target', '4:2 prunes n of every m weights, so n must be smaller than m'));
  assert.throws(() => new SparsityTally(null as never), refusal('target', /got null$/));
  // A 2×4 F32 block linear with half its weights zero, in 2:4 order: "2:4" (2 nonzeros of every 4).
  const tally = new SparsityTally({ kind: 'nm', n: 2, m: 4 });
  const weights = Float32Array.of(0, 1, 0, 2, 3, 0, 4, 0);
  tally.observe('model.layers.0.mlp.up_proj.weight', new Uint8Array(weights.buffer), 'F32', [2, 4]);
  assert.deepEqual(tally.metadata('dense'), { format: 'dense', globalSparsity: 0.5, structure: '2:4', ignore: ['lm_head'] });
});

test('SparsityTally: a tensor counted in pieces of whole rows gives the metadata of the whole tensor', () => {
  const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
  // up_proj 3×4: 2:4 in every row (2 zeros of every 4); gate_proj 2×4: row 1 has one zero only; o_proj dense.
  const up = [0, 1, 0, 2, 3, 0, 0, 4, 0, 0, 5, 6];
  const gate = [0, 0, 1, 1, 0, 1, 1, 1];
  const dense = [1, 2, 3, 4, 5, 6, 7, 8];
  const norm = [1, 0, 1, 1];
  const tallies = (target: { kind: 'nm'; n: number; m: number }, pieces: boolean, withGate: boolean) => {
    const tally = new SparsityTally(target);
    const feed = (name: string, values: number[], shape: number[]) => {
      if (!pieces) return tally.observe(name, f32(values), 'F32', shape);
      for (let row = 0; row < shape[0]; row++) tally.observe(name, f32(values.slice(row * shape[1], (row + 1) * shape[1])), 'F32', shape);
    };
    feed('model.layers.0.mlp.up_proj.weight', up, [3, 4]);
    if (withGate) feed('model.layers.0.mlp.gate_proj.weight', gate, [2, 4]);
    feed('model.layers.0.self_attn.o_proj.weight', dense, [2, 4]);
    tally.observe('model.norm.weight', f32(norm), 'F32', [4]);
    return tally.metadata('dense');
  };
  const twoFour = { kind: 'nm', n: 2, m: 4 } as const;
  // 6 zeros of 12 + 8 + 4 values: 7 / 24; with gate_proj 10 / 32.
  assert.deepEqual(tallies(twoFour, true, false), { format: 'dense', globalSparsity: 7 / 24, structure: '2:4', ignore: ['lm_head', 'model.layers.0.self_attn.o_proj'] });
  assert.deepEqual(tallies(twoFour, false, false), tallies(twoFour, true, false));
  assert.deepEqual(tallies(twoFour, true, true), { format: 'dense', globalSparsity: 10 / 32, structure: 'unstructured', ignore: ['lm_head', 'model.layers.0.self_attn.o_proj'] });
  assert.deepEqual(tallies(twoFour, false, true), tallies(twoFour, true, true));
  // 1:4 holds for gate_proj too; a width of no whole groups (m = 3) is no N:M, whole or in pieces.
  assert.equal(tallies({ kind: 'nm', n: 1, m: 4 }, true, true).structure, '3:4');
  assert.equal(tallies({ kind: 'nm', n: 1, m: 3 }, true, true).structure, 'unstructured');
  assert.equal(tallies({ kind: 'nm', n: 1, m: 3 }, false, true).structure, 'unstructured');
});
