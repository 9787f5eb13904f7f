#!/usr/bin/env node
// Entry point of the `crepe` command: runs the compiled CLI from dist/. In a source checkout,
// `npm run build` makes dist/ (npm test and npm run demo run it first); `npm run crepe -- …`
// runs the TypeScript sources directly.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(`crepe: ${fileURLToPath(entry)} is missing; run \`npm run build\` in ${fileURLToPath(new URL('..', import.meta.url))}\n`);
  process.exit(2);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
