/**
 * Everything that decides a pruning run's result, as plain data. It is written into
 * crepe-report.json and hashed: a resumed run must have the same settings as the run it continues.
 * `pruneSettings` is their only constructor: it validates every field and fixes the key order.
 */
import { FieldError, checkField } from '../util/errors.ts';
import {
  checkFields, checkFlag as flag, checkInteger, checkKnownFields, checkNumber, checkPositiveInteger, describeValue, type FieldSpec,
} from '../util/fields.ts';
import { LINEAR_NAMES, type LinearName } from '../model/spec.ts';
import { validateTarget, SELECTIONS, type PruneTarget, type Selection } from './target.ts';
import { pruningMethod, type MethodName } from './methods.ts';
import { validateOwl, type OwlSettings } from './owl.ts';
import { PERMUTE_DEFAULTS, type PermuteStrategy } from './permute.ts';
import { SPARSEGPT_DEFAULTS } from './sparsegpt.ts';
import { DSNOT_DEFAULTS } from './dsnot.ts';
import { crepeParamsOf, resolveCrepeParams, type CrepeParams } from './scores/crepe.ts';
import { RIA_DEFAULT_PARAMS, activationExponentProblem, isActivationExponent } from './scores/ria.ts';

export type { CrepeParams, PruneTarget, Selection };
export { describeTarget } from './target.ts';

export type DsnotSkip = 'mlp' | 'none';

export interface PruneSettings {
  method: MethodName;
  target: PruneTarget;
  /** Unstructured selection rule (ignored by N:M and by SparseGPT's per-block rule). */
  selection: Selection;
  riaA: number;
  crepe: CrepeParams | null;
  calibration: { file: string; sha256: string; nsamples: number; seqlen: number; seed: number };
  trueSequential: boolean;
  sparsegpt: { blockSize: number; percdamp: number };
  reconstruct: boolean;
  owl: OwlSettings | null;
  dsnot: { maxCycles: number; updateThreshold: number; skip: DsnotSkip; sameSign?: boolean } | null;
  permute: { strategy: PermuteStrategy; blocks: number } | null;
  /** Linears left dense in every layer (e.g. a width an N:M pattern does not divide). */
  exclude?: LinearName[];
}

/**
 * What a caller must decide (method, target, calibration); everything else has a default. `method`
 * is checked against the registry, so any string may come in.
 */
export interface PruneSettingsInput {
  method: string;
  target: PruneTarget;
  /** Default: the method's reference rule. */
  selection?: Selection;
  calibration: PruneSettings['calibration'];
  riaA?: number;
  /** CRePE's parameters (method crepe only); missing fields take CREPE_DEFAULT_PARAMS. */
  crepe?: Partial<CrepeParams> | null;
  trueSequential?: boolean;
  sparsegpt?: Partial<PruneSettings['sparsegpt']>;
  reconstruct?: boolean;
  owl?: Partial<OwlSettings> | null;
  dsnot?: Partial<NonNullable<PruneSettings['dsnot']>> | null;
  permute?: { strategy: PermuteStrategy; blocks?: number } | null;
  exclude?: readonly string[];
}

const PRUNE_DEFAULTS = {
  riaA: RIA_DEFAULT_PARAMS.a,
  sparsegpt: SPARSEGPT_DEFAULTS,
  owl: { m: 5, lambda: 0.08 },
  dsnot: { ...DSNOT_DEFAULTS, skip: 'mlp' as DsnotSkip },
  permute: PERMUTE_DEFAULTS,
} as const;

const INPUT_FIELDS: FieldSpec<PruneSettingsInput> = {
  method: 'checked', target: 'checked', selection: 'checked', calibration: 'checked', riaA: 'checked', crepe: 'nullable', trueSequential: 'flag',
  sparsegpt: 'checked', reconstruct: 'flag', owl: 'nullable', dsnot: 'nullable', permute: 'nullable', exclude: 'checked',
};

const DSNOT_SKIPS: readonly DsnotSkip[] = ['mlp', 'none'];
const PERMUTE_STRATEGIES: readonly PermuteStrategy[] = ['reallocation', 'lsa'];

/**
 * Validated settings with the defaults filled in: the method's reference selection, RIA a = 0.5,
 * SparseGPT blocks of 128 with 1 % dampening, no reconstruction, OWL (M 5, λ 0.08 when asked
 * for), DSnoT (50 cycles, τ 0.1, MLP skipped when asked for) or permutation (1 block), one
 * statistics pass per block. The key order is fixed (the settings are hashed as JSON), and
 * `exclude` is present only when given. Every refusal is a FieldError naming its field
 * (`sparsity` …, `owl.lambda`, `sparsegpt.percdamp`).
 */
export function pruneSettings(input: PruneSettingsInput): PruneSettings {
  checkFields<PruneSettingsInput>(input, INPUT_FIELDS);
  const method = input.method;
  const entry = pruningMethod(method, 'method');
  const name = method as MethodName;
  const target = copyTarget(validateTarget(input.target, 'target'));
  const isSparseGpt = name === 'sparsegpt';

  const selection = input.selection ?? entry.defaultSelection;
  checkField(SELECTIONS.includes(selection), 'selection', `must be one of ${SELECTIONS.join(', ')}, got ${JSON.stringify(selection)}`);

  const riaA = input.riaA ?? PRUNE_DEFAULTS.riaA;
  checkField(isActivationExponent(riaA), 'riaA', () => activationExponentProblem(riaA));

  const crepeInput = input.crepe ?? null;
  checkField(crepeInput === null || name === 'crepe', 'crepe', 'parameters apply to method crepe only');
  const crepe = crepeInput === null ? null : crepeParamsOf(resolveCrepeParams(crepeInput, { field: 'crepe' }));

  const calibration = validateCalibration(input.calibration);
  const trueSequential = flag('trueSequential', input.trueSequential);

  const sparsegpt = sparsegptSettings(input.sparsegpt, isSparseGpt, target);

  const reconstruct = flag('reconstruct', input.reconstruct);
  checkField(!(reconstruct && isSparseGpt), 'reconstruct', 'is built into method sparsegpt already');
  // Parameters another method would ignore.
  checkField(input.riaA === undefined || name === 'ria', 'riaA', `applies to method ria only${name === 'crepe' ? ' (CRePE\'s exponent is crepe.a)' : ''}`);
  for (const key of ['blockSize', 'percdamp'] as const) {
    checkField(input.sparsegpt?.[key] === undefined || isSparseGpt || reconstruct, `sparsegpt.${key}`, 'applies to method sparsegpt and to reconstruct only');
  }

  const owl = owlSettings(input.owl, target);
  const dsnot = dsnotSettings(input.dsnot, isSparseGpt);
  const permute = permuteSettings(input.permute, target, isSparseGpt);
  const exclude = input.exclude === undefined ? undefined : excludedLinears(input.exclude);

  return {
    method: name,
    target,
    selection,
    riaA,
    crepe,
    calibration,
    trueSequential,
    sparsegpt,
    reconstruct,
    owl,
    dsnot,
    permute,
    ...(exclude !== undefined && { exclude }),
  };
}

const SETTINGS_FIELDS: readonly (keyof PruneSettings)[] = [
  'method', 'target', 'selection', 'riaA', 'crepe', 'calibration', 'trueSequential', 'sparsegpt', 'reconstruct', 'owl', 'dsnot', 'permute', 'exclude',
];

/**
 * Refuses settings that pruneSettings would not have made, for a caller who builds them by hand
 * (the layer loop reads them as they are): unknown or missing fields, and every value
 * pruneSettings checks; each FieldError names `field.<name>` (`settings.owl.lambda`).
 */
export function checkPruneSettings(settings: unknown, field = 'settings'): asserts settings is PruneSettings {
  checkKnownFields(settings, field, SETTINGS_FIELDS);
  for (const key of SETTINGS_FIELDS) {
    checkField(key === 'exclude' || settings[key] !== undefined, `${field}.${key}`, 'is missing (pruneSettings fills in every field)');
  }
  // riaA and sparsegpt hold their defaults for the methods that do not read them, which pruneSettings would refuse as given.
  const { riaA, sparsegpt, ...rest } = settings as unknown as PruneSettings;
  try {
    pruneSettings({ ...rest, ...(rest.method === 'ria' && { riaA }), ...(updatesWeights(rest) && { sparsegpt }) });
  } catch (error) {
    if (error instanceof FieldError) throw new FieldError(`${field}.${error.field}`, error.problem);
    throw error;
  }
}

/** Whether SparseGPT's weight update runs (method sparsegpt, or reconstruct): the only step that changes kept weights. */
export function updatesWeights(settings: Pick<PruneSettings, 'method' | 'reconstruct'>): boolean {
  return settings.method === 'sparsegpt' || settings.reconstruct === true;
}

/** The target with its keys in the hashed order. */
function copyTarget(target: PruneTarget): PruneTarget {
  return target.kind === 'nm' ? { kind: 'nm', n: target.n, m: target.m } : { kind: 'unstructured', sparsity: target.sparsity };
}

/** SparseGPT's block size and dampening, defaults filled in (read by method sparsegpt and by reconstruct). */
function sparsegptSettings(given: PruneSettingsInput['sparsegpt'], isSparseGpt: boolean, target: PruneTarget): PruneSettings['sparsegpt'] {
  if (given !== undefined) checkKnownFields(given, 'sparsegpt', ['blockSize', 'percdamp']);
  const blockSize = given?.blockSize ?? PRUNE_DEFAULTS.sparsegpt.blockSize;
  const percdamp = given?.percdamp ?? PRUNE_DEFAULTS.sparsegpt.percdamp;
  checkPositiveInteger('sparsegpt.blockSize', blockSize);
  // A fraction of the mean Hessian diagonal (the references use 0.01, and 0.1 on retry); larger
  // dampening drowns the Hessian, and a huge one overflows it.
  checkNumber('sparsegpt.percdamp', percdamp, [0, 1], { min: true });
  if (isSparseGpt && target.kind === 'nm') {
    checkField(blockSize % target.m === 0, 'sparsegpt.blockSize', `${blockSize} must be a multiple of m = ${target.m} for the ${target.n}:${target.m} target`);
  }
  return { blockSize, percdamp };
}

/** Whether an optional pass is on: null (or left out) switches it off; an object switches it on, its missing fields defaulted. */
function switchedOn<T>(field: string, value: T | null | undefined, known: readonly string[]): value is T {
  if (value === undefined || value === null) return false;
  checkKnownFields(value, field, known);
  return true;
}

function owlSettings(given: PruneSettingsInput['owl'], target: PruneTarget): OwlSettings | null {
  if (!switchedOn('owl', given, ['m', 'lambda'])) return null;
  const owl = { m: given.m ?? PRUNE_DEFAULTS.owl.m, lambda: given.lambda ?? PRUNE_DEFAULTS.owl.lambda };
  validateOwl(owl, target);
  return owl;
}

/** Whether DSnoT re-prunes the linear `name` (a LinearName) under `settings`: when on, every linear but the MLP's when it skips them. */
export function dsnotApplies<S extends Pick<PruneSettings, 'dsnot'>>(settings: S, name: string): settings is S & { dsnot: NonNullable<PruneSettings['dsnot']> } {
  return settings.dsnot !== null && !(settings.dsnot.skip === 'mlp' && name.startsWith('mlp.'));
}

function dsnotSettings(given: PruneSettingsInput['dsnot'], isSparseGpt: boolean): PruneSettings['dsnot'] {
  if (!switchedOn('dsnot', given, ['maxCycles', 'updateThreshold', 'skip', 'sameSign'])) return null;
  checkField(!isSparseGpt, 'dsnot', 're-prunes a score-based mask; it does not apply to method sparsegpt');
  const maxCycles = given.maxCycles ?? PRUNE_DEFAULTS.dsnot.maxCycles;
  const updateThreshold = given.updateThreshold ?? PRUNE_DEFAULTS.dsnot.updateThreshold;
  const skip = given.skip ?? PRUNE_DEFAULTS.dsnot.skip;
  checkPositiveInteger('dsnot.maxCycles', maxCycles);
  checkField(typeof updateThreshold === 'number' && Number.isFinite(updateThreshold) && updateThreshold >= 0, 'dsnot.updateThreshold', () => `must be a number ≥ 0, got ${describeValue(updateThreshold)}`);
  checkField(DSNOT_SKIPS.includes(skip), 'dsnot.skip', `must be one of ${DSNOT_SKIPS.join(', ')}, got ${JSON.stringify(skip)}`);
  return { maxCycles, updateThreshold, skip, ...(flag('dsnot.sameSign', given.sameSign) && { sameSign: true }) };
}

function permuteSettings(given: PruneSettingsInput['permute'], target: PruneTarget, isSparseGpt: boolean): PruneSettings['permute'] {
  if (!switchedOn('permute', given, ['strategy', 'blocks'])) return null;
  const { strategy } = given;
  const blocks = given.blocks ?? PRUNE_DEFAULTS.permute.blocks;
  checkField(PERMUTE_STRATEGIES.includes(strategy), 'permute.strategy', `must be one of ${PERMUTE_STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`);
  checkPositiveInteger('permute.blocks', blocks);
  checkField(target.kind === 'nm', 'permute', 'needs an N:M target; channel permutation does nothing for unstructured sparsity');
  checkField(!isSparseGpt, 'permute', 'reorders a score-based mask; it does not apply to method sparsegpt');
  return { strategy, blocks };
}

/** The linears left dense, each a block linear's name; refused when they name every one. */
function excludedLinears(given: readonly string[]): LinearName[] {
  checkField(Array.isArray(given), 'exclude', () => `must be a list of linear names, got ${describeValue(given)}`);
  const exclude = given.map((linear) => {
    checkField((LINEAR_NAMES as readonly string[]).includes(linear), 'exclude', `${describeValue(linear)} is not a linear of a decoder block; expected some of ${LINEAR_NAMES.join(', ')}`);
    return linear as LinearName;
  });
  // Every linear left dense would publish the input unchanged as a pruned model.
  checkField(LINEAR_NAMES.some((linear) => !exclude.includes(linear)), 'exclude', `names every linear of a decoder block (${LINEAR_NAMES.join(', ')}), so nothing would be pruned`);
  return exclude;
}

function validateCalibration(calibration: PruneSettings['calibration']): PruneSettings['calibration'] {
  checkField(typeof calibration === 'object' && calibration !== null, 'calibration', 'is missing');
  checkKnownFields(calibration, 'calibration', ['file', 'sha256', 'nsamples', 'seqlen', 'seed']);
  const { file, sha256, nsamples, seqlen, seed } = calibration;
  checkField(typeof file === 'string' && file !== '', 'calibration.file', 'must name the calibration text');
  checkField(typeof sha256 === 'string', 'calibration.sha256', 'must be a string');
  checkPositiveInteger('calibration.nsamples', nsamples);
  checkPositiveInteger('calibration.seqlen', seqlen);
  checkInteger('calibration.seed', seed, 0);
  return { file, sha256, nsamples, seqlen, seed };
}
