/**
 * crepe as a library: the workflows the `crepe` command runs, and the building blocks a
 * researcher reuses to put a pruning experiment together.
 *
 * Every workflow takes one request object, checks all of it (fields, files, the output directory,
 * lengths against the model) before any expensive step, and resolves to a result object. Errors a
 * caller can fix are `UserError`s; those about one request field are `FieldError`s naming the field
 * (`target`, `owl.lambda`, `evalText`). Long workflows report through `onProgress` and stop at
 * the next layer, window batch or candidate when their `signal` is aborted. Nothing here prints or
 * exits the process. The types of every function's arguments and callbacks are exported with it.
 */

// Workflows.
export { convertModel, type ConvertRequest, type ConvertResult } from './workflows/convert.ts';
export { evaluatePerplexity, type EvalRequest, type EvalResult } from './workflows/eval.ts';
export { pruneModel, type PruneRequest, type PruneResult, type PruneReport } from './workflows/prune.ts';
export { searchCoefficients, type SearchRequest, type SearchResult } from './workflows/search.ts';
export { inspectModel, type InspectRequest, type InspectResult, type TensorSparsity } from './workflows/inspect.ts';
export { evaluateTasks, type ZeroShotRequest, type ZeroShotResult } from './workflows/zeroshot.ts';
export type { EngineRequest, ProgressEvent, ProgressUnits, RunControl } from './workflows/common.ts';
export type { ConvertReport } from './model/convert.ts';

// Errors.
export { UserError, FieldError } from './util/errors.ts';

// Models: a checkpoint read block by block, its spec, its tokenizer.
export { ModelCheckpoint } from './model/checkpoint.ts';
export type { AsyncBlockModel, BlockSource, ModelSource } from './model/source.ts';
export type { EngineOptions } from './engine/session.ts';
export type { Progress } from './util/progress.ts';
export { readModelConfig, parseModelConfig } from './model/config.ts';
export { LINEAR_NAMES, type LinearName, type ModelSpec, type BlockWeights } from './model/spec.ts';
export { TextTokenizer } from './model/tokenizer.ts';
export { SafetensorsWeights } from './io/safetensors.ts';
export { writeCheckpoint, parseByteSize, SAVE_FORMATS, type SaveFormat, type WeightSource, type WriteCheckpointOptions } from './io/checkpoint-writer.ts';
export { bitmaskCompress, bitmaskDecompress } from './io/sparse-bitmask.ts';
export { sparsityConfig, withSparsityConfig, writeSparsityConfig, SparsityTally, type SparsityMetadata } from './prune/sparsity-config.ts';
export { resolveModelArgument, type ResolveOptions } from './hub/resolve.ts';
export { parseHubId, type HubId } from './hub/hub-id.ts';
export { hubSettings, type HubSettings } from './hub/settings.ts';

// Calibration and evaluation texts.
export { sampleCalibrationFile, sampleC4Windows, sampleTextWindows, windowsSha256, type CalibrationSet, type CalibrationFileOptions, type WindowOptions } from './data/calibration.ts';
export { readEvalText, readJsonlDocuments } from './data/text-sources.ts';
export { perplexity, type PerplexityOptions, type PerplexityResult } from './eval/perplexity.ts';

// Zero-shot tasks (lm-evaluation-harness prompts and metrics) and log-likelihood scoring.
export { TASKS, TASK_NAMES, taskByName, parseTaskList, type TaskDefinition, type TaskDoc, type TaskRequest, type MetricName } from './eval/tasks/index.ts';
export { documentMetrics, meanWithStderr, encodeRequest, formatZeroShotTable, type ZeroShotReport, type TaskResult, type MetricValue, type Encode, type EncodedRequest } from './eval/zeroshot.ts';
export { planLoglikelihoods, scoreLoglikelihoods, type LoglikelihoodRequest, type LoglikelihoodScore, type LoglikelihoodPlan, type PlanOptions, type ScoreOptions } from './eval/loglikelihood.ts';

// Pruning: targets, methods and their scores, masks, settings, the layer loop.
export { parseTarget, validateTarget, describeTarget, type PruneTarget, type Selection } from './prune/target.ts';
export { METHODS, METHOD_NAMES, pruningMethod, scoreMatrix, type MethodName } from './prune/methods.ts';
export type { InputSqNorms } from './prune/scores/index.ts';
export { magnitudeScores } from './prune/scores/magnitude.ts';
export { wandaScores } from './prune/scores/wanda.ts';
export { riaScores } from './prune/scores/ria.ts';
export { crepeScores, resolveCrepeParams, type CrepeParams, type CrepeVariant, type CrepeBorder } from './prune/scores/crepe.ts';
export { selectMask, applyMask, satisfiesNM } from './prune/mask.ts';
export { pruneSettings, type PruneSettings, type PruneSettingsInput } from './prune/settings.ts';
export { pruneLayers, type LayerReport, type LayerLoopRequest, type LoopStart } from './prune/layer-loop.ts';
export type { LinearReport } from './prune/prune-linear.ts';
export type { OwlSettings } from './prune/owl.ts';

// Search: CRePE configurations, proxies, PHO, hill climbing.
export { loadCrepeConfig, parseCrepeConfig, type CrepeConfigFile } from './search/crepe-config.ts';
export { ProxyContext, PROXY_NAMES, type ProxyName, type ProxyContextOptions, type ProxyValues, type CacheReport } from './search/proxy.ts';
export type { ProxyOptions } from './search/proxy-measures.ts';
export type { StatisticsFrom, RowSubset } from './search/proxy-cache.ts';
export type { WindowKey } from './search/proxy-terms.ts';
export type { SearchSpace } from './search/space.ts';
export { runPho, type PhoOptions, type PhoCandidate, type PhoResult } from './search/pho.ts';
export { defaultCrepeConfigFor, RIA_POINT } from './search/crepe-defaults.ts';
export { chooseByConfirmation, confirmationWindows, type AutoCandidate } from './search/auto.ts';
export type { AutoOptions, AutoReport } from './workflows/auto-crepe.ts';
export { runHillClimb, type HillClimbOptions, type HillClimbCandidate, type HillClimbResult } from './search/hillclimb.ts';
export type { ProxyCorrelation, SubsampleFidelity } from './search/validate.ts';
