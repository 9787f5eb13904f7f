/**
 * `crepe <command> …` through the compiled CLI (dist/, as an installed crepe runs, without the
 * TypeScript loader the benchmarks themselves need), in this process so that its CPU time can be
 * read at the end. Prints, as the one line bench/child-process.ts reads, the process's CPU seconds
 * from its start to the end of the command and the command's --json report.
 *
 * Usage (after building dist/): node bench/crepe-cli-child.mjs <command> [options…] --json
 */
const { main } = await import('../dist/cli/main.js');
let stdout = '';
const io = { stdout: { write: (text) => { stdout += text; return true; } }, stderr: process.stderr };
const code = await main(process.argv.slice(2), io);
if (code !== 0) process.exit(code);
const used = process.cpuUsage();
process.stdout.write(`${JSON.stringify({ cpuSeconds: (used.user + used.system) / 1e6, report: JSON.parse(stdout) })}\n`);
