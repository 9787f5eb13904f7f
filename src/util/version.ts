/** crepe's version, from package.json. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function crepeVersion(): string {
  const file = fileURLToPath(new URL('../../package.json', import.meta.url));
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}
