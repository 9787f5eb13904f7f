/**
 * How many held-out confirmation windows a calibration file yields for a model: the draw continued
 * past the `nsamples` statistics windows, 4 × `count` more, as search's and prune --auto's
 * confirmations draw it (seed 0), keeping those that overlap none (confirmationWindows).
 */
import { sampleCalibrationFile } from '../../src/data/calibration.ts';
import { ModelCheckpoint } from '../../src/model/checkpoint.ts';
import { confirmationWindows } from '../../src/search/auto.ts';
import { modelEncoder } from '../../src/workflows/common.ts';

export function heldCalibrationWindows(model: string, file: string, opts: { nsamples: number; count: number; seqlen: number }): number {
  const { nsamples, count, seqlen } = opts;
  const spec = ModelCheckpoint.open(model);
  try {
    const encode = modelEncoder(model, spec.spec);
    const continued = sampleCalibrationFile(file, (text) => encode(text, file), { nsamples: nsamples + 4 * count, seqlen, seed: 0, hiddenSize: spec.spec.hiddenSize });
    return confirmationWindows(continued, nsamples, count, seqlen).windows.length;
  } finally {
    spec.close();
  }
}
