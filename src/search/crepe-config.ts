/**
 * CRePE configuration files: the small JSON a search writes and `crepe prune --config` applies to
 * any model (the transfer experiment). Coefficients matter only as ratios; k is the odd window size.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveCrepeParams, type CrepeParams } from '../prune/scores/crepe.ts';
import { FieldError, UserError, checkField } from '../util/errors.ts';
import { checkKnownFields } from '../util/fields.ts';
import { readInputJson } from '../io/input-file.ts';

export const CREPE_CONFIG_FORMAT = 'crepe-config/1';
/** The package's root directory, which holds configs/. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_CREPE_CONFIG_PATH = path.join(PACKAGE_ROOT, 'configs/crepe-default.json');

export interface CrepeConfigFile extends CrepeParams {
  format: typeof CREPE_CONFIG_FORMAT;
  /** Where the numbers came from: model, search strategy, proxy and its sign, budget, date. */
  provenance?: Record<string, unknown>;
}

/** The fields of a configuration file. */
const CONFIG_FIELDS: readonly string[] = ['format', 'k', 'alpha', 'beta', 'gamma', 'a', 'variant', 'border', 'provenance'];

/** Validates parsed JSON as a CRePE configuration; `source` names the file in messages. */
export function parseCrepeConfig(json: unknown, source: string): CrepeConfigFile {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${source}: expected a JSON object with k, alpha, beta, gamma (and optionally a, variant, border)`);
  }
  const obj = json as Record<string, unknown>;
  if (obj.format !== undefined && obj.format !== CREPE_CONFIG_FORMAT) {
    throw new UserError(`${source}: unknown format "${String(obj.format)}", expected "${CREPE_CONFIG_FORMAT}"`);
  }
  // A misspelt field ("gama") would leave its parameter at the default without a word.
  try {
    checkKnownFields(obj, '', CONFIG_FIELDS, 'a CRePE configuration');
  } catch (error) {
    if (error instanceof FieldError) throw new UserError(`${source}: ${error.message}`);
    throw error;
  }
  for (const key of ['k', 'alpha', 'beta', 'gamma']) {
    if (obj[key] === undefined) throw new UserError(`${source}: "${key}" is missing`);
  }
  for (const key of ['k', 'alpha', 'beta', 'gamma', 'a']) {
    if (obj[key] !== undefined && typeof obj[key] !== 'number') {
      throw new UserError(`${source}: "${key}" must be a number, got ${JSON.stringify(obj[key])}`);
    }
  }
  const provenance = obj.provenance;
  if (provenance !== undefined && (typeof provenance !== 'object' || provenance === null || Array.isArray(provenance))) {
    throw new UserError(`${source}: "provenance" must be an object`);
  }
  const params = resolveCrepeParams(
    {
      k: obj.k as number,
      alpha: obj.alpha as number,
      beta: obj.beta as number,
      gamma: obj.gamma as number,
      a: obj.a as number | undefined,
      variant: obj.variant as CrepeParams['variant'] | undefined,
      border: obj.border as CrepeParams['border'] | undefined,
    },
    source,
  );
  return { format: CREPE_CONFIG_FORMAT, ...params, provenance: provenance as Record<string, unknown> | undefined };
}

/** Refuses an empty configuration file name (the request field crepeConfig), which would resolve to the working directory. */
export function checkCrepeConfigName(file: string): void {
  checkField(typeof file === 'string' && file.trim() !== '', 'crepeConfig', 'must name a file');
}

export function loadCrepeConfig(file: string): CrepeConfigFile {
  checkCrepeConfigName(file);
  if (!existsSync(file)) throw new UserError(`${file}: no such CRePE configuration file`);
  return parseCrepeConfig(readInputJson(file, 'crepeConfig'), file);
}
