/** crepe's own version, from its package.json (src/ and the compiled dist/ sit at the same depth). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function crepeVersion(): string {
  if (cached === undefined) {
    const file = fileURLToPath(new URL('../../package.json', import.meta.url));
    cached = (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return cached;
}
