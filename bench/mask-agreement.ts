/**
 * How far two pruned copies of one model agree: the zero pattern of every linear weight, position
 * by position (benchmarks and scripts/gpu-check compare crepe with a peer, or one device with
 * another).
 */
import path from 'node:path';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { LINEAR_NAMES, layerPrefix } from '../src/model/spec.ts';

export interface MaskAgreement {
  /** Positions zero in both or in neither. */
  same: number;
  total: number;
  aZeros: number;
  bZeros: number;
}

export function maskAgreement(aDir: string, bDir: string, layers: number): MaskAgreement {
  const a = SafetensorsFile.open(path.join(aDir, 'model.safetensors'));
  const b = SafetensorsFile.open(path.join(bDir, 'model.safetensors'));
  const result: MaskAgreement = { same: 0, total: 0, aZeros: 0, bZeros: 0 };
  try {
    for (let layer = 0; layer < layers; layer++) {
      for (const linear of LINEAR_NAMES) {
        const name = `${layerPrefix(layer)}${linear}.weight`;
        const x = a.readF32(name);
        const y = b.readF32(name);
        for (let i = 0; i < x.length; i++) {
          const zx = x[i] === 0;
          const zy = y[i] === 0;
          if (zx === zy) result.same++;
          if (zx) result.aZeros++;
          if (zy) result.bZeros++;
        }
        result.total += x.length;
      }
    }
  } finally {
    a.close();
    b.close();
  }
  return result;
}
