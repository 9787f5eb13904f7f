/**
 * Where the Hugging Face Hub is and how crepe talks to it, from the same environment variables
 * huggingface_hub reads: HF_ENDPOINT (default https://huggingface.co), HF_HUB_CACHE or
 * HF_HOME/hub (default ~/.cache/huggingface/hub, XDG_CACHE_HOME honoured), HF_TOKEN (or the
 * token file HF_TOKEN_PATH, default HF_HOME/token), HF_HUB_OFFLINE and HF_HUB_DOWNLOAD_TIMEOUT
 * (seconds without a byte from the Hub before a request is given up, default 10).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkFlag, checkKnownFields, checkNumber } from '../util/fields.ts';

export interface HubSettings {
  endpoint: string;
  cacheDir: string;
  token: string | null;
  offline: boolean;
  /** Milliseconds a request may wait for the Hub's next byte (default DEFAULT_HUB_TIMEOUT_MS). */
  timeoutMs?: number;
}

export const DEFAULT_HUB_TIMEOUT_MS = 10_000;

/** HF_HUB_DOWNLOAD_TIMEOUT in milliseconds; a value that is not a positive number of seconds is ignored. */
function timeoutOf(value: string | undefined): number {
  const seconds = Number(value);
  return value !== undefined && value.trim() !== '' && Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_HUB_TIMEOUT_MS;
}

const truthy = (value: string | undefined): boolean => value !== undefined && ['1', 'true', 'yes', 'on'].includes(value.trim().toLowerCase());

function readToken(file: string): string | null {
  try {
    const token = readFileSync(file, 'utf8').trim();
    return token === '' ? null : token;
  } catch {
    return null;
  }
}

/** The settings `env` gives (process.env by default); `overrides` win. */
export function hubSettings(overrides: Partial<HubSettings> = {}, env: Readonly<Record<string, string | undefined>> = process.env): HubSettings {
  // A misspelt override ("ofline") would leave the Hub online without a word.
  checkKnownFields(overrides, '', ['endpoint', 'cacheDir', 'token', 'offline', 'timeoutMs'], 'the Hub settings');
  checkFlag('offline', overrides.offline);
  if (overrides.timeoutMs !== undefined) checkNumber('timeoutMs', overrides.timeoutMs, [0, Number.MAX_SAFE_INTEGER], { min: true });
  const home = env.HF_HOME || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'huggingface');
  const token = env.HF_TOKEN?.trim() || readToken(env.HF_TOKEN_PATH || path.join(home, 'token'));
  return {
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    cacheDir: env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || path.join(home, 'hub'),
    token: token || null,
    offline: truthy(env.HF_HUB_OFFLINE),
    timeoutMs: timeoutOf(env.HF_HUB_DOWNLOAD_TIMEOUT),
    ...overrides,
  };
}
