/**
 * Loading a module in a worker thread. A worker does not inherit its parent's module hooks: run
 * from the TypeScript sources (through tsx), the worker registers tsx's loader before importing the
 * module; the compiled package (dist/, installed without tsx) imports its JavaScript directly.
 */

/** A JavaScript expression, for a worker's `eval` source, that imports the module at `url` (a promise of it). */
export function importInWorker(url: string): string {
  const module = JSON.stringify(url);
  return url.endsWith('.ts')
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${module}); })`
    : `import(${module})`;
}
