#!/usr/bin/env node
// Entry point of the `crepe` command: runs the compiled CLI from dist/. In a source checkout,
// `npm run build` makes dist/ (npm test and npm run demo run it first); `npm run crepe -- …`
// runs the TypeScript sources directly. Where transparent huge pages need glibc's tunable,
// dist/cli/relaunch.js runs the command in a child process started with it, and this process
// only waits for it (without loading the command line's modules).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
const relaunch = new URL('../dist/cli/relaunch.js', import.meta.url);
if (!existsSync(entry) || !existsSync(relaunch)) {
  process.stderr.write(`crepe: ${fileURLToPath(entry)} is missing; run \`npm run build\` in ${fileURLToPath(new URL('..', import.meta.url))}\n`);
  process.exit(2);
}
const argv = process.argv.slice(2);
const { relaunchForHugePages } = await import(relaunch.href);
const relaunched = await relaunchForHugePages(argv);
if (relaunched !== null) process.exitCode = relaunched;
else {
  const { main } = await import(entry.href);
  process.exitCode = await main(argv);
}
