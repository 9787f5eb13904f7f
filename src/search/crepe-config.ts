/**
 * CRePE configuration files: the small JSON a search writes and `crepe prune --config` applies to
 * any model (the transfer experiment). Coefficients matter only as ratios; k is the odd window size.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CrepeParams } from '../prune/settings.ts';
import { UserError } from '../util/errors.ts';

export const CREPE_CONFIG_FORMAT = 'crepe-config/1';
export const DEFAULT_CREPE_CONFIG_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../configs/crepe-default.json');

export interface CrepeConfigFile extends CrepeParams {
  format: typeof CREPE_CONFIG_FORMAT;
  /** Where the numbers came from: model, search strategy, proxy and its sign, budget, date. */
  provenance?: Record<string, unknown>;
}

/** Validates parsed JSON as a CRePE configuration; `source` names the file in messages. */
export function parseCrepeConfig(json: unknown, source: string): CrepeConfigFile {
  const fail = (what: string): never => {
    throw new UserError(`${source}: ${what}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('expected a JSON object with k, alpha, beta, gamma, a');
  const obj = json as Record<string, unknown>;
  if (obj.format !== undefined && obj.format !== CREPE_CONFIG_FORMAT) fail(`unknown format "${String(obj.format)}", expected "${CREPE_CONFIG_FORMAT}"`);
  const number = (key: string, fallback?: number): number => {
    const value = obj[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) fail(`"${key}" must be a finite number, got ${JSON.stringify(obj[key])}`);
    return value as number;
  };
  const k = number('k');
  if (!Number.isInteger(k) || k < 1 || k % 2 === 0) fail(`"k" must be an odd integer ≥ 1 (the window is centred on the weight), got ${k}`);
  const alpha = number('alpha');
  const beta = number('beta');
  const gamma = number('gamma');
  const a = number('a', 0.5);
  for (const [key, value] of Object.entries({ alpha, beta, gamma })) {
    if (value < 0) fail(`"${key}" must be ≥ 0, got ${value}`);
  }
  if (alpha === 0 && beta === 0 && gamma === 0) fail('"alpha", "beta" and "gamma" are all zero: every weight would score 0');
  if (a < 0) fail(`"a" must be ≥ 0, got ${a}`);
  const variant = obj.variant ?? 'normalized';
  if (variant !== 'normalized' && variant !== 'smooth') fail(`"variant" must be "normalized" or "smooth", got ${JSON.stringify(variant)}`);
  const provenance = obj.provenance;
  if (provenance !== undefined && (typeof provenance !== 'object' || provenance === null)) fail('"provenance" must be an object');
  return {
    format: CREPE_CONFIG_FORMAT,
    k,
    alpha,
    beta,
    gamma,
    a,
    variant: variant as CrepeParams['variant'],
    provenance: provenance as Record<string, unknown> | undefined,
  };
}

export function loadCrepeConfig(file: string): CrepeConfigFile {
  if (!existsSync(file)) throw new UserError(`--config ${file}: no such file`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UserError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  return parseCrepeConfig(json, file);
}
