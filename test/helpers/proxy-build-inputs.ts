/** The inputs of test/helpers/proxy-build-child.ts: a 6-layer random llama, 3 windows of 16 tokens, the proxy cache options. */
import type { BlockSource } from '../../src/prune/layer-loop.ts';
import type { ProxyContextOptions } from '../../src/search/proxy.ts';
import { Rng } from '../../src/util/rng.ts';
import { randomModel, smallSpec } from './random-model.ts';

export function slowBuildInputs(cacheDir: string, msPerLayer: number): { model: BlockSource; windows: Int32Array[]; seqlen: number; options: ProxyContextOptions } {
  const spec = smallSpec('llama', { numLayers: 6 });
  const random = randomModel(spec, 11);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const model: BlockSource = {
    spec,
    readEmbedding: () => random.readEmbedding(),
    readBlock: (layer) => {
      if (msPerLayer > 0) Atomics.wait(pause, 0, 0, msPerLayer);
      return random.readBlock(layer);
    },
  };
  const rng = new Rng(8);
  const windows = Array.from({ length: 3 }, () => Int32Array.from({ length: 16 }, () => rng.below(spec.vocabSize)));
  const options: ProxyContextOptions = {
    cacheDir, cacheBudgetBytes: 2 ** 26, threads: 1, modelSha256: 'slow-random-llama', calibrationSeed: 0, withGram: false,
    windows: [{ k: 3, variant: 'normalized', a: null }],
  };
  return { model, windows, seqlen: 16, options };
}
