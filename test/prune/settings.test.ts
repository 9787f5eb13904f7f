import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pruneSettings } from '../../src/prune/settings.ts';
import { FieldError } from '../../src/util/errors.ts';

const calibration = { file: 'c.txt', sha256: '', nsamples: 4, seqlen: 32, seed: 0 };

// The settings are hashed as JSON to decide whether a run may resume, so the key order is part of
// the contract, and a default `exclude` must not appear.
test('pruneSettings fills the defaults in the fixed key order and leaves exclude out unless given', () => {
  const settings = pruneSettings({ method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, selection: 'per-row', calibration });
  assert.equal(
    JSON.stringify(settings),
    JSON.stringify({
      method: 'wanda',
      target: { kind: 'unstructured', sparsity: 0.5 },
      selection: 'per-row',
      riaA: 0.5,
      crepe: null,
      calibration,
      trueSequential: false,
      sparsegpt: { blockSize: 128, percdamp: 0.01 },
      reconstruct: false,
      owl: null,
      dsnot: null,
      permute: null,
    }),
  );
});

test('pruneSettings keeps what is given, exclude included', () => {
  const settings = pruneSettings({
    method: 'sparsegpt', target: { kind: 'nm', n: 2, m: 4 }, selection: 'per-matrix', calibration,
    sparsegpt: { blockSize: 64, percdamp: 0.1 }, trueSequential: true, exclude: ['mlp.down_proj'],
  });
  assert.equal(pruneSettings({ method: 'ria', target: { kind: 'nm', n: 2, m: 4 }, calibration, riaA: 0.3 }).riaA, 0.3);
  assert.deepEqual(settings.sparsegpt, { blockSize: 64, percdamp: 0.1 });
  assert.equal(settings.trueSequential, true);
  assert.deepEqual(Object.keys(settings).slice(-1), ['exclude']);
  assert.deepEqual(settings.exclude, ['mlp.down_proj']);
});

test('pruneSettings fills the defaults of the optional passes and the method selection, in the hashed key order', () => {
  const settings = pruneSettings({
    method: 'ria', target: { m: 4, n: 2, kind: 'nm' } as never, calibration: { seed: 0, seqlen: 32, nsamples: 4, sha256: '', file: 'c.txt' },
    owl: {}, dsnot: { sameSign: false }, permute: { strategy: 'lsa' },
  });
  assert.equal(
    JSON.stringify(settings),
    JSON.stringify({
      method: 'ria',
      target: { kind: 'nm', n: 2, m: 4 },
      selection: 'per-matrix',
      riaA: 0.5,
      crepe: null,
      calibration,
      trueSequential: false,
      sparsegpt: { blockSize: 128, percdamp: 0.01 },
      reconstruct: false,
      owl: { m: 5, lambda: 0.08 },
      dsnot: { maxCycles: 50, updateThreshold: 0.1, skip: 'mlp' },
      permute: { strategy: 'lsa', blocks: 1 },
    }),
  );
  const sameSign = pruneSettings({ method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, calibration, dsnot: { sameSign: true } });
  assert.equal(sameSign.selection, 'per-row');
  assert.deepEqual(Object.keys(sameSign.dsnot ?? {}), ['maxCycles', 'updateThreshold', 'skip', 'sameSign']);
  const crepe = pruneSettings({ method: 'crepe', target: { kind: 'unstructured', sparsity: 0.5 }, calibration, crepe: { gamma: 0.5, k: 5 } });
  assert.equal(JSON.stringify(crepe.crepe), JSON.stringify({ k: 5, alpha: 1, beta: 1, gamma: 0.5, a: 0.5, variant: 'normalized', border: 'zero' }));
});

test('pruneSettings refuses every bad field with a FieldError naming it', () => {
  const base = { method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, calibration } as const;
  const refuses = (input: Record<string, unknown>, field: string, problem: RegExp) =>
    assert.throws(() => pruneSettings({ ...base, ...input } as never), (e: unknown) => e instanceof FieldError && e.field === field && problem.test(e.problem), `${JSON.stringify(input)} → ${field}`);
  refuses({ method: 'obs' }, 'method', /^"obs" is unknown; expected one of magnitude, wanda, sparsegpt, ria, crepe$/);
  refuses({ method: 'toString' }, 'method', /unknown/);
  refuses({ target: { kind: 'unstructured', sparsity: 1 } }, 'target', /between 0 and 1 .*got 1$/);
  refuses({ target: { kind: 'nm', n: 4, m: 4 } }, 'target', /n must be smaller than m/);
  refuses({ selection: 'per-column' }, 'selection', /per-row, per-matrix/);
  for (const riaA of [-0.5, 4.01, Number.NaN, Number.POSITIVE_INFINITY]) refuses({ riaA }, 'riaA', /activation exponent a\) must be a number in \[0, 4\]/);
  refuses({ crepe: { k: 3 } }, 'crepe', /method crepe only/);
  // Parameters of another method would be ignored.
  refuses({ riaA: 0.3 }, 'riaA', /^applies to method ria only$/);
  refuses({ method: 'crepe', riaA: 0.3 }, 'riaA', /^applies to method ria only \(CRePE's exponent is crepe\.a\)$/);
  refuses({ sparsegpt: { blockSize: 64 } }, 'sparsegpt.blockSize', /^applies to method sparsegpt and to reconstruct only$/);
  refuses({ sparsegpt: { percdamp: 0.1 } }, 'sparsegpt.percdamp', /^applies to method sparsegpt and to reconstruct only$/);
  assert.equal(pruneSettings({ ...base, reconstruct: true, sparsegpt: { percdamp: 0.1 } } as never).sparsegpt.percdamp, 0.1);
  refuses({ calibration: { ...calibration, nsamples: 0 } }, 'calibration.nsamples', /positive integer, got 0/);
  refuses({ calibration: { ...calibration, seqlen: 1.5 } }, 'calibration.seqlen', /positive integer/);
  refuses({ calibration: { ...calibration, seed: -1 } }, 'calibration.seed', /≥ 0/);
  refuses({ calibration: { ...calibration, file: '' } }, 'calibration.file', /calibration text/);
  refuses({ trueSequential: 'yes' }, 'trueSequential', /true or false/);
  for (const percdamp of [0, -0.01, 1.5, 1e308, Number.NaN, Number.POSITIVE_INFINITY]) refuses({ sparsegpt: { percdamp } }, 'sparsegpt.percdamp', /must be a number in \(0, 1\], got/);
  for (const blockSize of [0, 1.5, -128]) refuses({ sparsegpt: { blockSize } }, 'sparsegpt.blockSize', /positive integer/);
  refuses({ method: 'sparsegpt', target: { kind: 'nm', n: 2, m: 8 }, sparsegpt: { blockSize: 100 } }, 'sparsegpt.blockSize', /100 must be a multiple of m = 8/);
  refuses({ method: 'sparsegpt', reconstruct: true }, 'reconstruct', /built into method sparsegpt/);
  refuses({ owl: { lambda: 0.6 } }, 'owl.lambda', /^must be in \(0, 0\.5\) for sparsity 0\.5, got 0\.6$/);
  refuses({ owl: { m: 0 } }, 'owl.m', /positive/);
  refuses({ method: 'sparsegpt', dsnot: {} }, 'dsnot', /does not apply to method sparsegpt/);
  refuses({ dsnot: { maxCycles: 0 } }, 'dsnot.maxCycles', /positive integer/);
  refuses({ dsnot: { updateThreshold: -1 } }, 'dsnot.updateThreshold', /≥ 0/);
  refuses({ dsnot: { skip: 'attn' } }, 'dsnot.skip', /mlp, none/);
  refuses({ permute: { strategy: 'lsa' } }, 'permute', /needs an N:M target/);
  refuses({ target: { kind: 'nm', n: 2, m: 4 }, permute: { strategy: 'greedy' } }, 'permute.strategy', /reallocation, lsa/);
  refuses({ target: { kind: 'nm', n: 2, m: 4 }, permute: { strategy: 'lsa', blocks: 0 } }, 'permute.blocks', /positive integer/);
  refuses({ method: 'sparsegpt', target: { kind: 'nm', n: 2, m: 4 }, permute: { strategy: 'lsa' } }, 'permute', /does not apply to method sparsegpt/);
  refuses({ exclude: ['lm_head'] }, 'exclude', /"lm_head" is not a linear/);
  const everyLinear = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
  refuses({ exclude: everyLinear }, 'exclude', /^names every linear of a decoder block \(self_attn\.q_proj, .*\), so nothing would be pruned$/);
  assert.deepEqual(pruneSettings({ ...base, exclude: everyLinear.slice(1) } as never).exclude, everyLinear.slice(1));
});

// A JavaScript caller's object may carry a misspelt field (which would leave the real one at its
// default), a value of the wrong type, or null where an object is expected.
test('pruneSettings refuses unknown fields, wrong types and non-objects, naming the field and quoting strings', () => {
  const base = { method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, calibration } as const;
  const refuses = (input: unknown, field: string, problem: RegExp) =>
    assert.throws(() => pruneSettings(input as never), (e: unknown) => e instanceof FieldError && e.field === field && problem.test(e.problem), `${JSON.stringify(input)} → ${field}`);
  refuses({ ...base, riaa: 1 }, 'riaa', /^is not a field of the request; did you mean riaA\?$/);
  refuses({ ...base, owl: { lamda: 0.1 } }, 'owl.lamda', /^is not a field of owl; did you mean owl\.lambda\?$/);
  refuses({ ...base, owl: true }, 'owl', /^must be an object with some of the fields m, lambda, got true$/);
  refuses({ ...base, dsnot: { maxcycles: 3 } }, 'dsnot.maxcycles', /did you mean dsnot\.maxCycles\?$/);
  refuses({ ...base, sparsegpt: 'x' }, 'sparsegpt', /must be an object .*got "x"$/);
  refuses({ ...base, target: { kind: 'nm', n: 2, m: 4 }, permute: { strategy: 'lsa', block: 2 } }, 'permute.block', /did you mean permute\.blocks\?$/);
  refuses({ ...base, method: 'crepe', crepe: { gama: 1 } }, 'crepe.gama', /did you mean crepe\.gamma\?$/);
  refuses({ ...base, calibration: { ...calibration, nsample: 4 } }, 'calibration.nsample', /did you mean calibration\.nsamples\?$/);
  refuses({ ...base, target: { kind: 'unstructured', sparsity: 0.5, n: 2 } }, 'target.n', /^is not a field of target; expected some of kind, sparsity$/);
  refuses({ ...base, target: null }, 'target', /must be given or left out, not null$/);
  refuses({ ...base, target: '0.5' }, 'target', /parseTarget reads "0\.5" and "2:4"\), got "0\.5"$/);
  refuses({ ...base, exclude: 'down_proj' }, 'exclude', /^must be a list of linear names, got "down_proj"$/);
  refuses({ ...base, owl: { m: '5' } }, 'owl.m', /got "5"$/);
  refuses({ ...base, sparsegpt: { percdamp: '0.1' } }, 'sparsegpt.percdamp', /got "0\.1"$/);
  refuses({ ...base, reconstruct: 'false' }, 'reconstruct', /^must be true or false, got "false"$/);
  assert.throws(() => pruneSettings(null as never), { name: 'UserError', message: 'a request must be an object, got null' });
  // Fields left undefined (an object spread from options) are not refused, and null switches a pass off.
  assert.equal(pruneSettings({ ...base, owl: null, dsnot: undefined, riaa: undefined } as never).owl, null);
});
