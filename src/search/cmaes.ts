/**
 * (μ/μ_w, λ)-CMA-ES for minimisation, as in Hansen's tutorial (arXiv:1604.00772) and ALGORITHMS.md
 * §9: weighted recombination, cumulative step-size adaptation, rank-one + rank-μ covariance update,
 * optionally the "active" update (negative weights for the worse half). Seeded and reproducible.
 *
 *     const es = new CmaEs(x0, sigma0, { seed: 1 });
 *     while (!es.shouldStop()) es.tell(es.ask().map((x) => ({ x, value: f(x) })));
 */
import { Rng } from '../util/rng.ts';
import { symmetricEigen } from '../util/linalg-small.ts';

export interface CmaesConstants {
  n: number;
  lambda: number;
  mu: number;
  /** λ recombination weights, best first: μ positive; then zeros (classic) or negatives (active). */
  weights: Float64Array;
  muEff: number;
  cSigma: number;
  dSigma: number;
  cc: number;
  c1: number;
  cMu: number;
  cm: number;
  /** E‖N(0, I)‖. */
  chiN: number;
}

/** Default strategy parameters (tutorial Table 1; ALGORITHMS.md §9). */
export function cmaesConstants(n: number, lambda?: number, opts: { active?: boolean } = {}): CmaesConstants {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`CMA-ES dimension must be a positive integer, got ${n}`);
  const popSize = lambda ?? 4 + Math.floor(3 * Math.log(n));
  if (!Number.isInteger(popSize) || popSize < 2) throw new RangeError(`CMA-ES population size must be an integer >= 2, got ${popSize}`);
  const mu = Math.floor(popSize / 2);

  const rawWeights = Float64Array.from({ length: popSize }, (_, i) => Math.log((popSize + 1) / 2) - Math.log(i + 1));
  let positiveSum = 0;
  let positiveSqSum = 0;
  for (let i = 0; i < mu; i++) {
    positiveSum += rawWeights[i];
    positiveSqSum += rawWeights[i] ** 2;
  }
  const muEff = positiveSum ** 2 / positiveSqSum;

  const cSigma = (muEff + 2) / (n + muEff + 5);
  const dSigma = 1 + 2 * Math.max(0, Math.sqrt((muEff - 1) / (n + 1)) - 1) + cSigma;
  const cc = (4 + muEff / n) / (n + 4 + (2 * muEff) / n);
  const c1 = 2 / ((n + 1.3) ** 2 + muEff);
  const cMu = Math.min(1 - c1, (2 * (muEff - 2 + 1 / muEff)) / ((n + 2) ** 2 + muEff));

  const weights = new Float64Array(popSize);
  for (let i = 0; i < mu; i++) weights[i] = rawWeights[i] / positiveSum;
  if (opts.active) {
    // Tutorial eqs. 50–53: negative weights scaled so the update stays positive definite.
    let negativeSum = 0;
    let negativeSqSum = 0;
    for (let i = mu; i < popSize; i++) {
      negativeSum += rawWeights[i];
      negativeSqSum += rawWeights[i] ** 2;
    }
    const muEffMinus = negativeSqSum > 0 ? negativeSum ** 2 / negativeSqSum : 0;
    const alphaMu = 1 + c1 / cMu;
    const alphaMuEff = 1 + (2 * muEffMinus) / (muEff + 2);
    const alphaPosDef = (1 - c1 - cMu) / (n * cMu);
    const scale = Math.min(alphaMu, alphaMuEff, alphaPosDef) / Math.abs(negativeSum);
    for (let i = mu; i < popSize; i++) weights[i] = negativeSum !== 0 ? rawWeights[i] * scale : 0;
  }

  const chiN = Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
  return { n, lambda: popSize, mu, weights, muEff, cSigma, dSigma, cc, c1, cMu, cm: 1, chiN };
}

export interface CmaesOptions {
  seed: number;
  /** Population size λ (default 4 + ⌊3 ln n⌋). */
  lambda?: number;
  /** Active covariance update (negative weights); default false (classic positive weights). */
  active?: boolean;
  /** Stop once this many candidates have been evaluated. */
  maxEvaluations?: number;
  /** Stop when the best value reaches this target. */
  targetValue?: number;
  /** Range of best/worst values over recent generations below which to stop (default 1e-12). */
  tolFun?: number;
  /** σ·diag(C) and σ·p_c threshold (default 1e-12·σ₀). */
  tolX?: number;
}

export interface Candidate {
  x: Float64Array;
  value: number;
}

const SIGMA_MAX = 1e32;
const EIGEN_FLOOR = 1e-8;
const TOL_X_UP = 1e4;
const TOL_CONDITION_COV = 1e14;

export class CmaEs {
  readonly constants: CmaesConstants;
  private readonly rng: Rng;
  private readonly opts: CmaesOptions;
  private readonly tolX: number;
  private readonly tolFun: number;

  private mean: Float64Array;
  private sigma: number;
  private readonly cov: Float64Array; // n×n row-major
  private eigenBasis: Float64Array; // B: columns are eigenvectors of C
  private eigenScales: Float64Array; // D: square roots of C's eigenvalues
  private readonly pathSigma: Float64Array;
  private readonly pathC: Float64Array;

  private generationCount = 0;
  private evaluationCount = 0;
  /** Best and worst value of each recent generation, for the TolFun rule. */
  private readonly valueHistory: number[] = [];
  private readonly historyGenerations: number;
  private bestSoFar: Candidate | null = null;

  constructor(x0: ArrayLike<number>, sigma0: number, opts: CmaesOptions) {
    const n = x0.length;
    if (!(sigma0 > 0) || !Number.isFinite(sigma0)) throw new RangeError(`CMA-ES sigma0 must be positive, got ${sigma0}`);
    this.constants = cmaesConstants(n, opts.lambda, { active: opts.active });
    this.rng = new Rng(opts.seed);
    this.opts = opts;
    this.tolX = opts.tolX ?? 1e-12 * sigma0;
    this.tolFun = opts.tolFun ?? 1e-12;
    this.historyGenerations = 10 + Math.ceil((30 * n) / this.constants.lambda);

    this.mean = Float64Array.from(x0);
    this.sigma = sigma0;
    this.cov = new Float64Array(n * n);
    this.eigenBasis = new Float64Array(n * n);
    for (let i = 0; i < n; i++) this.cov[i * n + i] = this.eigenBasis[i * n + i] = 1;
    this.eigenScales = new Float64Array(n).fill(1);
    this.pathSigma = new Float64Array(n);
    this.pathC = new Float64Array(n);
  }

  get dimension(): number {
    return this.constants.n;
  }
  get generation(): number {
    return this.generationCount;
  }
  get evaluations(): number {
    return this.evaluationCount;
  }
  get stepSize(): number {
    return this.sigma;
  }
  get currentMean(): Float64Array {
    return this.mean.slice();
  }
  /** Best candidate told so far (null before the first tell). */
  get best(): Candidate | null {
    return this.bestSoFar && { x: this.bestSoFar.x.slice(), value: this.bestSoFar.value };
  }

  /** λ new candidates x = m + σ·B·D·z, z ~ N(0, I). */
  ask(): Float64Array[] {
    const { n, lambda } = this.constants;
    const candidates: Float64Array[] = [];
    const scaled = new Float64Array(n);
    for (let k = 0; k < lambda; k++) {
      for (let i = 0; i < n; i++) scaled[i] = this.eigenScales[i] * this.rng.gaussian();
      const x = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let step = 0;
        for (let j = 0; j < n; j++) step += this.eigenBasis[i * n + j] * scaled[j];
        x[i] = this.mean[i] + this.sigma * step;
      }
      candidates.push(x);
    }
    return candidates;
  }

  /** One generation's update from all λ evaluated candidates (NaN values count as worst). */
  tell(solutions: readonly Candidate[]): void {
    const { n, lambda, mu, weights, muEff, cSigma, dSigma, cc, c1, cMu, cm, chiN } = this.constants;
    if (solutions.length !== lambda) throw new RangeError(`CMA-ES tell expects ${lambda} solutions, got ${solutions.length}`);
    const ranked = solutions
      .map((s, index) => ({ x: s.x, value: Number.isNaN(s.value) ? Infinity : s.value, index }))
      .sort((a, b) => a.value - b.value || a.index - b.index);
    this.generationCount++;
    this.evaluationCount += lambda;
    if (!this.bestSoFar || ranked[0].value < this.bestSoFar.value) {
      this.bestSoFar = { x: Float64Array.from(ranked[0].x), value: ranked[0].value };
    }
    this.valueHistory.push(ranked[0].value, ranked[lambda - 1].value);
    if (this.valueHistory.length > 2 * this.historyGenerations) this.valueHistory.splice(0, 2);

    // Steps y_k = (x_k − m)/σ in the old frame, best first.
    const steps = ranked.map(({ x }) => Float64Array.from(x, (xi, i) => (xi - this.mean[i]) / this.sigma));
    const meanStep = new Float64Array(n);
    for (let k = 0; k < mu; k++) for (let i = 0; i < n; i++) meanStep[i] += weights[k] * steps[k][i];
    for (let i = 0; i < n; i++) this.mean[i] += cm * this.sigma * meanStep[i];

    // Step-size path and σ (cumulative step-size adaptation), with C^{-1/2} of the old C.
    const whitenedMeanStep = this.inverseSqrtCovTimes(meanStep);
    const sigmaPathScale = Math.sqrt(cSigma * (2 - cSigma) * muEff);
    for (let i = 0; i < n; i++) this.pathSigma[i] = (1 - cSigma) * this.pathSigma[i] + sigmaPathScale * whitenedMeanStep[i];
    const pathSigmaNorm = Math.hypot(...this.pathSigma);
    this.sigma = Math.min(this.sigma * Math.exp((cSigma / dSigma) * (pathSigmaNorm / chiN - 1)), SIGMA_MAX);

    // Stall the rank-one path while ‖p_σ‖ is large (σ is growing fast).
    const hSigmaLeft = pathSigmaNorm / Math.sqrt(1 - (1 - cSigma) ** (2 * (this.generationCount + 1)));
    const hSigma = hSigmaLeft < (1.4 + 2 / (n + 1)) * chiN ? 1 : 0;
    const covPathScale = Math.sqrt(cc * (2 - cc) * muEff);
    for (let i = 0; i < n; i++) this.pathC[i] = (1 - cc) * this.pathC[i] + hSigma * covPathScale * meanStep[i];

    // Covariance: decay, rank-one (p_c) and rank-μ (weighted steps) terms.
    const hSigmaCorrection = (1 - hSigma) * cc * (2 - cc);
    let weightSum = 0;
    for (let k = 0; k < lambda; k++) weightSum += weights[k];
    const decay = 1 + c1 * hSigmaCorrection - c1 - cMu * weightSum;
    const rankMuWeights = Float64Array.from(weights, (w, k) => {
      if (w >= 0) return w;
      // Active update: negative terms rescaled by n/‖C^{-1/2} y‖² (tutorial eq. 46).
      const whitenedNormSq = this.inverseSqrtCovTimes(steps[k]).reduce((sum, v) => sum + v * v, 0);
      return (w * n) / (whitenedNormSq + 1e-8);
    });
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let rankMu = 0;
        for (let k = 0; k < lambda; k++) if (rankMuWeights[k] !== 0) rankMu += rankMuWeights[k] * steps[k][i] * steps[k][j];
        const updated = decay * this.cov[i * n + j] + c1 * this.pathC[i] * this.pathC[j] + cMu * rankMu;
        this.cov[i * n + j] = this.cov[j * n + i] = updated;
      }
    }
    this.updateEigen();
  }

  /** Why the search should stop now, or null to continue (CMAES `should_stop` rules + budget). */
  shouldStop(): string | null {
    const { n } = this.constants;
    if (this.opts.maxEvaluations !== undefined && this.evaluationCount >= this.opts.maxEvaluations) return 'maxEvaluations';
    if (this.opts.targetValue !== undefined && this.bestSoFar && this.bestSoFar.value <= this.opts.targetValue) return 'targetValue';
    if (this.generationCount > this.historyGenerations) {
      if (Math.max(...this.valueHistory) - Math.min(...this.valueHistory) < this.tolFun) return 'tolFun';
    }
    let tinySteps = true;
    for (let i = 0; i < n; i++) {
      if (!(this.sigma * this.cov[i * n + i] < this.tolX && this.sigma * Math.abs(this.pathC[i]) < this.tolX)) tinySteps = false;
    }
    if (tinySteps) return 'tolX';
    if (this.sigma * Math.max(...this.eigenScales) > TOL_X_UP) return 'tolXUp';
    // A step of 0.1σ along one principal axis (cycled by generation) no longer moves the mean.
    const axis = this.generationCount % n;
    let axisHasEffect = false;
    for (let i = 0; i < n; i++) {
      const m = this.mean[i];
      if (m + 0.1 * this.sigma * this.eigenScales[axis] * this.eigenBasis[i * n + axis] !== m) axisHasEffect = true;
    }
    if (!axisHasEffect) return 'noEffectAxis';
    for (let i = 0; i < n; i++) {
      const m = this.mean[i];
      if (m + 0.2 * this.sigma * Math.sqrt(this.cov[i * n + i]) === m) return 'noEffectCoord';
    }
    // Condition number of C (ratio of its extreme eigenvalues).
    const largest = Math.max(...this.eigenScales);
    const smallest = Math.min(...this.eigenScales);
    if ((largest / smallest) ** 2 > TOL_CONDITION_COV) return 'conditionCov';
    return null;
  }

  private updateEigen(): void {
    const { n } = this.constants;
    const { values, vectors } = symmetricEigen(this.cov, n);
    let floored = false;
    for (let k = 0; k < n; k++) {
      if (values[k] < 0) {
        values[k] = EIGEN_FLOOR;
        floored = true;
      }
    }
    if (floored) {
      // Keep C consistent with the floored spectrum: C = B diag(D²) Bᵀ.
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let sum = 0;
          for (let k = 0; k < n; k++) sum += vectors[i * n + k] * values[k] * vectors[j * n + k];
          this.cov[i * n + j] = sum;
        }
      }
    }
    this.eigenBasis = vectors;
    this.eigenScales = values.map(Math.sqrt);
  }

  /** C^{-1/2}·v = B·D⁻¹·Bᵀ·v. */
  private inverseSqrtCovTimes(v: Float64Array): Float64Array {
    const { n } = this.constants;
    const projected = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += this.eigenBasis[i * n + k] * v[i];
      projected[k] = dot / this.eigenScales[k];
    }
    const result = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += this.eigenBasis[i * n + k] * projected[k];
      result[i] = sum;
    }
    return result;
  }
}

export interface MinimizeOptions extends CmaesOptions {
  /**
   * IPOP restarts: after a run stops for any reason but the budget or the target, start again from
   * x0 with twice the population, up to this many times (default 0).
   */
  restarts?: number;
  /** Called after every generation. */
  onGeneration?: (es: CmaEs) => void;
}

export interface MinimizeResult {
  x: Float64Array;
  value: number;
  evaluations: number;
  generations: number;
  restartsUsed: number;
  stopReason: string;
}

/** Minimises f from x0 with step size sigma0; the evaluation budget spans all restarts. */
export function minimize(
  f: (x: Float64Array) => number,
  x0: ArrayLike<number>,
  sigma0: number,
  opts: MinimizeOptions,
): MinimizeResult {
  const maxRestarts = opts.restarts ?? 0;
  let lambda = opts.lambda ?? cmaesConstants(x0.length).lambda;
  let best: Candidate | null = null;
  let evaluations = 0;
  let generations = 0;
  let stopReason = '';
  let restart = 0;
  for (; ; restart++) {
    const budgetLeft = opts.maxEvaluations === undefined ? undefined : opts.maxEvaluations - evaluations;
    const es = new CmaEs(x0, sigma0, { ...opts, lambda, seed: opts.seed + restart, maxEvaluations: budgetLeft });
    let reason: string | null = null;
    while ((reason = es.shouldStop()) === null) {
      es.tell(es.ask().map((x) => ({ x, value: f(x) })));
      opts.onGeneration?.(es);
    }
    evaluations += es.evaluations;
    generations += es.generation;
    stopReason = reason;
    const runBest = es.best;
    if (runBest && (!best || runBest.value < best.value)) best = runBest;
    const finished = reason === 'maxEvaluations' || reason === 'targetValue';
    if (finished || restart >= maxRestarts) break;
    lambda *= 2;
  }
  if (!best) throw new RangeError('CMA-ES: the evaluation budget allows no generation');
  return { x: best.x, value: best.value, evaluations, generations, restartsUsed: restart, stopReason };
}
