/**
 * The proxy cache directory: PHO's candidate-independent terms (proxy-terms.ts) on disk, one file
 * per linear (and one per linear and neighbourhood term), so that a search holds one linear's
 * terms at a time plus what an in-memory LRU keeps within its byte budget, whatever the number of
 * layers; and so that the expensive dense calibration pass is paid once per model and
 * calibration set, reused across window sizes, --validate and --confirm runs and restarts.
 *
 *   manifest.json                              what the cache was built from, layers done, terms present
 *   layer-00000.self_attn.q_proj.terms.bin     weights, coordinates, row/column factors, statistics
 *   layer-00000.self_attn.q_proj.normalized-k3.bin   the neighbourhood term of one k (and a, for smooth)
 *   hidden.bin                                 calibration activations entering the next layer (while building)
 *   rows-0.1-seed0/…                           the same files restricted to a fixed subset of rows
 *   natural/layer-00000.self_attn.q_proj.terms.bin          the terms in the natural layout (row-major)
 *   natural/layer-00000.self_attn.q_proj.normalized-k3.bin  its neighbourhood terms, row-major
 *   natural/layer-00000.self_attn.q_proj.gram.bin           XᵀX, when the cache keeps grams
 *
 * The terms are stored in one of two layouts (proxy-terms.ts), Manifest.layout: 'position' (the
 * reference order, for every proxy; the layout of a manifest without the field) or 'natural'
 * (row-major, the files under natural/, for a cache built for masks alone: calib-nll and pruned
 * perplexities). A position-layout cache serves masks too; a natural-layout one serves no
 * per-linear proxy: a run that may need one converts it to the position layout first (the
 * position files made from the natural ones are those a position build writes, byte for byte),
 * then removes natural/.
 *
 * A cache built for a search on one row subset alone (Manifest.rowsOnly) holds that subset's files
 * and no others: a fraction of the disk (a tenth at 0.1), for runs on that subset only.
 *
 * Every file is written atomically (temporary name, fsync, rename) and carries a header with the
 * sha256 of each array, checked the first time a process reads it; a file whose size or checksum
 * is wrong, or a manifest built from another model, calibration set or cache format, is refused
 * with a UserError naming the directory, never used.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { atomicWriteJson, withAtomicFile } from '../io/atomic.ts';
import type { LinearName, ModelSpec } from '../model/spec.ts';
import type { CrepeParams } from '../prune/scores/crepe.ts';
import type { PruneTarget, Selection } from '../prune/settings.ts';
import { UserError, checkField } from '../util/errors.ts';
import type { LinearTerms, NaturalTerms, WindowKey, WindowPrecision, WindowTerm } from './proxy-terms.ts';

export const CACHE_FORMAT = 'crepe-proxy-cache/2';
const MAGIC = 'CRPXC001';
/** readSync takes at most 2 GiB − 1 bytes per call. */
const MAX_CHUNK = 1 << 30;

/** What a cache is built from: two caches with equal identities hold the same terms. */
export interface CacheIdentity {
  format: string;
  crepeVersion: string;
  /** sha256 of the model's weights (one hash over the weight files' hashes). */
  modelSha256: string;
  /** The architecture config.json describes: its shape, and rms_norm_eps, rope_theta, … that change every activation. */
  spec: ModelSpec;
  calibration: { nsamples: number; seqlen: number; seed: number; windowsSha256: string };
  device: string;
  grams: boolean;
  windowPrecision: WindowPrecision;
  /** Present when the statistics are those of a model pruned layer by layer (ProxyContextOptions.statisticsFrom), absent for the dense model's. */
  statisticsFrom?: StatisticsFrom;
}

/** The configuration whose layer-by-layer prune the statistics follow, with the target and selection it prunes to. */
export interface StatisticsFrom {
  params: CrepeParams;
  target: PruneTarget;
  selection: Selection;
}

export interface Manifest {
  identity: CacheIdentity;
  /** The calibration text the windows were drawn from (informational; the windows' hash decides). */
  calibrationFile: string | null;
  numLayers: number;
  layersDone: number;
  complete: boolean;
  /** Neighbourhood terms present for every linear. */
  windows: WindowKey[];
  denseSeconds: number;
  created: string;
  /** Present when the cache holds only this row subset's files (ProxyContextOptions.rowsOnly); absent: all rows. */
  rowsOnly?: RowSubset;
  /** The layout of the terms files; absent: 'position'. */
  layout?: TermsLayout;
}

/** Where a cache's terms sit: in the reference order (every proxy) or row-major (masks alone); see proxy-terms.ts. */
export type TermsLayout = 'position' | 'natural';

/** A manifest's layout ('position' when it names none). */
export const layoutOf = (manifest: Pick<Manifest, 'layout'>): TermsLayout => manifest.layout ?? 'position';

/** One linear of the model, as the cache and the evaluators address it. */
export interface Unit {
  index: number;
  layer: number;
  name: LinearName;
  dOut: number;
  dIn: number;
}

/** A fixed subset of rows: the fraction of rows and the seed that drew them. */
export interface RowSubset {
  fraction: number;
  seed: number;
}

export type ArrayKind = 'uint8' | 'uint16' | 'uint32' | 'float32' | 'float64';
export type StoredArray = Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array;
/** Provides the array a stored array is read into (e.g. a reused one); new arrays by default. */
export type Allocate = (kind: ArrayKind, length: number) => StoredArray;
const allocateNew: Allocate = (kind, length) => new CONSTRUCTORS[kind](length);
const CONSTRUCTORS = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, float32: Float32Array, float64: Float64Array } as const;

function kindOf(values: StoredArray): ArrayKind {
  if (values instanceof Uint8Array) return 'uint8';
  if (values instanceof Uint16Array) return 'uint16';
  if (values instanceof Uint32Array) return 'uint32';
  if (values instanceof Float32Array) return 'float32';
  return 'float64';
}

interface ArrayEntry { name: string; kind: ArrayKind; length: number; offset: number; sha256: string }
interface FileHeader { format: string; endianness: string; meta: Record<string, unknown>; arrays: ArrayEntry[]; bytes: number }

const bytesOf = (values: StoredArray): Uint8Array => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
const align8 = (n: number): number => Math.ceil(n / 8) * 8;

/** The cache directory's error: one line naming the directory and what to do. */
export function cacheError(dir: string, problem: string): UserError {
  return new UserError(`proxy cache ${dir}: ${problem}; remove the directory (or name another as proxyCache) to rebuild it`);
}

/** Writes named arrays and metadata into `file` atomically. */
export async function writeArrays(file: string, meta: Record<string, unknown>, arrays: Record<string, StoredArray>): Promise<void> {
  const entries: ArrayEntry[] = [];
  const names = Object.keys(arrays);
  // Offsets depend on the header's length, which depends on the offsets' digits: settle in two rounds.
  let dataStart = 0;
  for (let round = 0; round < 3; round++) {
    entries.length = 0;
    let offset = dataStart;
    for (const name of names) {
      const values = arrays[name];
      entries.push({ name, kind: kindOf(values), length: values.length, offset, sha256: '' });
      offset = align8(offset + values.byteLength);
    }
    const header: FileHeader = { format: CACHE_FORMAT, endianness: os.endianness(), meta, arrays: entries.map((e) => ({ ...e, sha256: '0'.repeat(64) })), bytes: offset };
    const next = align8(12 + Buffer.byteLength(JSON.stringify(header)));
    if (next === dataStart) break;
    dataStart = next;
  }
  for (const entry of entries) entry.sha256 = createHash('sha256').update(bytesOf(arrays[entry.name])).digest('hex');
  const last = entries.at(-1);
  const bytes = last ? align8(last.offset + arrays[last.name].byteLength) : dataStart;
  const headerText = Buffer.from(JSON.stringify({ format: CACHE_FORMAT, endianness: os.endianness(), meta, arrays: entries, bytes } satisfies FileHeader));
  const prefix = Buffer.alloc(dataStart);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(headerText.length, 8);
  headerText.copy(prefix, 12);
  await withAtomicFile(file, async (tmp) => {
    const handle = await open(tmp, 'wx');
    try {
      await handle.write(prefix, 0, prefix.length, 0);
      for (const entry of entries) {
        const data = bytesOf(arrays[entry.name]);
        for (let done = 0; done < data.length; done += MAX_CHUNK) {
          await handle.write(data, done, Math.min(MAX_CHUNK, data.length - done), entry.offset + done);
        }
      }
      await handle.truncate(bytes);
    } finally {
      await handle.close();
    }
  });
}

/**
 * Reads a file written by writeArrays. `verify`: check each array's sha256. Any inconsistency is a
 * UserError naming the cache directory `dir`.
 */
export function readArrays(
  file: string, dir: string, verify: boolean, allocate: Allocate = allocateNew,
): { meta: Record<string, unknown>; arrays: Record<string, StoredArray> } {
  const name = path.relative(dir, file);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    throw cacheError(dir, `cannot open ${name} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    const size = statSync(file).size;
    const read = (target: Uint8Array, position: number): void => {
      for (let done = 0; done < target.length;) {
        const got = readSync(fd, target, done, Math.min(MAX_CHUNK, target.length - done), position + done);
        if (got === 0) throw cacheError(dir, `${name} is truncated`);
        done += got;
      }
    };
    const start = new Uint8Array(12);
    if (size < 12) throw cacheError(dir, `${name} is truncated (${size} bytes)`);
    read(start, 0);
    const buffer = Buffer.from(start.buffer);
    if (buffer.toString('latin1', 0, 8) !== MAGIC) throw cacheError(dir, `${name} is not a proxy cache file`);
    const headerLength = buffer.readUInt32LE(8);
    if (12 + headerLength > size) throw cacheError(dir, `${name} is truncated`);
    const headerBytes = new Uint8Array(headerLength);
    read(headerBytes, 12);
    let header: FileHeader;
    try {
      header = JSON.parse(Buffer.from(headerBytes.buffer).toString('utf8')) as FileHeader;
    } catch {
      throw cacheError(dir, `${name} has a corrupt header`);
    }
    if (header.format !== CACHE_FORMAT) throw cacheError(dir, `${name} has format ${JSON.stringify(header.format)}, expected ${CACHE_FORMAT}`);
    if (header.endianness !== os.endianness()) throw cacheError(dir, `${name} was written on a ${header.endianness} machine`);
    if (header.bytes !== size) throw cacheError(dir, `${name} is truncated or extended (${size} bytes, its header says ${header.bytes})`);
    const arrays: Record<string, StoredArray> = {};
    for (const entry of header.arrays) {
      const Constructor = CONSTRUCTORS[entry.kind];
      if (!Constructor || !(entry.offset + entry.length * Constructor.BYTES_PER_ELEMENT <= size)) throw cacheError(dir, `${name} has a corrupt header`);
      const values = allocate(entry.kind, entry.length);
      read(bytesOf(values), entry.offset);
      if (verify && createHash('sha256').update(bytesOf(values)).digest('hex') !== entry.sha256) {
        throw cacheError(dir, `${name} is corrupt (checksum of "${entry.name}" does not match)`);
      }
      arrays[entry.name] = values;
    }
    return { meta: header.meta, arrays };
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// File names

const pad = (layer: number): string => String(layer).padStart(5, '0');

/** A row subset's folder name in the cache, `rows-<fraction>-seed<seed>`, which also names it in messages. */
export const subsetName = (rows: RowSubset): string => `rows-${rows.fraction}-seed${rows.seed}`;

export const sameRows = (a: RowSubset | null | undefined, b: RowSubset | null | undefined): boolean =>
  (a ?? null) === (b ?? null) || (a != null && b != null && a.fraction === b.fraction && a.seed === b.seed);

/** The folder of the files of a row subset (position layout) or of the natural layout (all rows). */
export function subsetDir(dir: string, rows: RowSubset | null, layout: TermsLayout = 'position'): string {
  if (layout === 'natural') {
    if (rows) throw new Error('internal: the natural layout holds all rows');
    return path.join(dir, 'natural');
  }
  return rows ? path.join(dir, subsetName(rows)) : dir;
}

export function termsFile(dir: string, unit: Pick<Unit, 'layer' | 'name'>, rows: RowSubset | null = null, layout: TermsLayout = 'position'): string {
  return path.join(subsetDir(dir, rows, layout), `layer-${pad(unit.layer)}.${unit.name}.terms.bin`);
}

/** The exponent a as exact text (its float64 bits), for the smooth variant's file name. */
const exactText = (a: number): string => Buffer.from(new Float64Array([a]).buffer).toString('hex');

/** XᵀX of a linear's input in the natural layout (the position layout keeps it in the terms file). */
export function gramFile(dir: string, unit: Pick<Unit, 'layer' | 'name'>): string {
  return path.join(subsetDir(dir, null, 'natural'), `layer-${pad(unit.layer)}.${unit.name}.gram.bin`);
}

export function windowFile(dir: string, unit: Pick<Unit, 'layer' | 'name'>, key: WindowKey, rows: RowSubset | null = null, layout: TermsLayout = 'position'): string {
  const suffix = key.variant === 'smooth' ? `smooth-k${key.k}-a${exactText(key.a ?? Number.NaN)}` : `normalized-k${key.k}`;
  return path.join(subsetDir(dir, rows, layout), `layer-${pad(unit.layer)}.${unit.name}.${suffix}.bin`);
}

const manifestFile = (dir: string): string => path.join(dir, 'manifest.json');
export const hiddenFile = (dir: string): string => path.join(dir, 'hidden.bin');

// ---------------------------------------------------------------------------------------------
// Terms <-> files

export async function writeTerms(file: string, terms: LinearTerms): Promise<void> {
  const arrays: Record<string, StoredArray> = {
    row: terms.row, col: terms.col,
    inverseRowSums: terms.inverseRowSums, inverseColSums: terms.inverseColSums, sqNorm: terms.sqNorm,
  };
  if (terms.weightF16) arrays.weightF16 = terms.weightF16;
  if (terms.weightF32) arrays.weightF32 = terms.weightF32;
  if (terms.rows) arrays.rows = terms.rows;
  if (terms.basePositions) arrays.basePositions = terms.basePositions;
  if (terms.gram) arrays.gram = terms.gram;
  mkdirSync(path.dirname(file), { recursive: true });
  await writeArrays(file, { kind: 'terms', dOut: terms.dOut, dIn: terms.dIn, referenceTotal: terms.referenceTotal, outputEnergy: terms.outputEnergy }, arrays);
}

export function readTerms(file: string, dir: string, verify: boolean, expected: { dOut: number; dIn: number }, allocate?: Allocate): LinearTerms {
  const { meta, arrays } = readArrays(file, dir, verify, allocate);
  const name = path.relative(dir, file);
  if (meta.kind !== 'terms' || meta.dOut !== expected.dOut || meta.dIn !== expected.dIn) {
    throw cacheError(dir, `${name} holds ${String(meta.kind)} of shape ${String(meta.dOut)}×${String(meta.dIn)}, expected terms of ${expected.dOut}×${expected.dIn}`);
  }
  const need = <T extends StoredArray>(key: string, Constructor: new (n: number) => T): T => {
    const values = arrays[key];
    if (!(values instanceof Constructor)) throw cacheError(dir, `${name} lacks "${key}"`);
    return values;
  };
  const row = arrays.row as Uint16Array | Uint32Array;
  const col = arrays.col as Uint16Array | Uint32Array;
  const weightF16 = (arrays.weightF16 as Uint16Array | undefined) ?? null;
  const weightF32 = (arrays.weightF32 as Float32Array | undefined) ?? null;
  const n = row?.length ?? -1;
  if (!row || !col || col.length !== n || (weightF16 ?? weightF32)?.length !== n) throw cacheError(dir, `${name} has arrays of inconsistent lengths`);
  return {
    dOut: expected.dOut,
    dIn: expected.dIn,
    weightF16,
    weightF32,
    row,
    col,
    inverseRowSums: need('inverseRowSums', Float64Array),
    inverseColSums: need('inverseColSums', Float64Array),
    sqNorm: need('sqNorm', Float64Array),
    referenceTotal: Number(meta.referenceTotal),
    rows: (arrays.rows as Uint32Array | undefined) ?? null,
    basePositions: (arrays.basePositions as Uint32Array | undefined) ?? null,
    gram: (arrays.gram as Float64Array | undefined) ?? null,
    outputEnergy: meta.outputEnergy === null ? Number.NaN : Number(meta.outputEnergy),
  };
}

export async function writeNaturalTerms(file: string, terms: NaturalTerms): Promise<void> {
  const arrays: Record<string, StoredArray> = { inverseRowSums: terms.inverseRowSums, inverseColSums: terms.inverseColSums, sqNorm: terms.sqNorm };
  if (terms.weightF16) arrays.weightF16 = terms.weightF16;
  if (terms.weightF32) arrays.weightF32 = terms.weightF32;
  mkdirSync(path.dirname(file), { recursive: true });
  await writeArrays(file, { kind: 'natural-terms', dOut: terms.dOut, dIn: terms.dIn }, arrays);
}

export function readNaturalTerms(file: string, dir: string, verify: boolean, expected: { dOut: number; dIn: number }, allocate?: Allocate): NaturalTerms {
  const { meta, arrays } = readArrays(file, dir, verify, allocate);
  const name = path.relative(dir, file);
  const { dOut, dIn } = expected;
  if (meta.kind !== 'natural-terms' || meta.dOut !== dOut || meta.dIn !== dIn) {
    throw cacheError(dir, `${name} holds ${String(meta.kind)} of shape ${String(meta.dOut)}×${String(meta.dIn)}, expected natural-terms of ${dOut}×${dIn}`);
  }
  const weightF16 = arrays.weightF16 instanceof Uint16Array ? arrays.weightF16 : null;
  const weightF32 = arrays.weightF32 instanceof Float32Array ? arrays.weightF32 : null;
  const { inverseRowSums, inverseColSums, sqNorm } = arrays;
  if (
    (weightF16 ?? weightF32)?.length !== dOut * dIn
    || !(inverseRowSums instanceof Float64Array) || inverseRowSums.length !== dOut
    || !(inverseColSums instanceof Float64Array) || inverseColSums.length !== dIn
    || !(sqNorm instanceof Float64Array) || sqNorm.length !== dIn
  ) throw cacheError(dir, `${name} lacks arrays of the natural terms or has arrays of inconsistent lengths`);
  return { dOut, dIn, weightF16, weightF32, inverseRowSums, inverseColSums, sqNorm };
}

export async function writeWindow(file: string, key: WindowKey, window: WindowTerm): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await writeArrays(file, { kind: 'window', ...key }, { window });
}

export function readWindow(file: string, dir: string, verify: boolean, key: WindowKey, length: number, allocate?: Allocate): WindowTerm {
  const { meta, arrays } = readArrays(file, dir, verify, allocate);
  const window = arrays.window;
  if (meta.kind !== 'window' || meta.k !== key.k || meta.variant !== key.variant || !(window instanceof Float32Array || window instanceof Float64Array) || window.length !== length) {
    throw cacheError(dir, `${path.relative(dir, file)} does not hold the ${key.variant} neighbourhood term of k=${key.k} for ${length} weights`);
  }
  return window;
}

// ---------------------------------------------------------------------------------------------
// Manifest

/** Field-by-field comparison: the first difference, as text, or null when equal. */
function identityDifference(found: CacheIdentity, wanted: CacheIdentity): string | null {
  const flatten = (value: unknown, prefix: string, out: Map<string, string>): Map<string, string> => {
    if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
    else out.set(prefix, JSON.stringify(value));
    return out;
  };
  const a = flatten(found, '', new Map());
  const b = flatten(wanted, '', new Map());
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(key) !== b.get(key)) return `${key} is ${a.get(key) ?? 'missing'} there, ${b.get(key) ?? 'missing'} here`;
  }
  return null;
}

export function readManifest(dir: string): Manifest | null {
  const file = manifestFile(dir);
  if (!existsSync(file)) return null;
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  } catch {
    throw cacheError(dir, 'manifest.json is corrupt');
  }
  if (!manifest || typeof manifest !== 'object' || !manifest.identity || !Array.isArray(manifest.windows)) throw cacheError(dir, 'manifest.json is corrupt');
  return manifest;
}

/**
 * Opens the cache at `dir` for `identity`: an existing manifest must match it exactly; a new
 * directory (missing or empty) gets a fresh manifest. Any other directory is refused.
 */
export async function openCacheDir(dir: string, identity: CacheIdentity, fresh: Omit<Manifest, 'identity'>): Promise<Manifest> {
  const existing = readManifest(dir);
  if (existing) {
    if (existing.identity.format !== identity.format) throw cacheError(dir, `it has format ${JSON.stringify(existing.identity.format)}, this crepe writes ${identity.format}`);
    const difference = identityDifference(existing.identity, identity);
    if (difference) throw cacheError(dir, `it was built from other inputs (${difference})`);
    return existing;
  }
  if (existsSync(dir)) {
    checkField(statSync(dir).isDirectory(), 'proxyCache', `${dir}: not a directory`);
    checkField(readdirSync(dir).length === 0, 'proxyCache', `${dir}: the directory exists and is not a proxy cache (no manifest.json); name an empty or new directory`);
  }
  mkdirSync(dir, { recursive: true });
  const manifest: Manifest = { identity, ...fresh };
  await atomicWriteJson(manifestFile(dir), manifest);
  return manifest;
}

export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  await atomicWriteJson(manifestFile(dir), manifest);
}

// ---------------------------------------------------------------------------------------------
// In-memory LRU

/**
 * Values kept in memory up to a byte budget, for a caller that touches the same keys in the same
 * order round after round (every linear, every candidate). Eviction is least-recently-used, but
 * only among entries not used in the current round: a plain LRU would evict, in a cyclic scan,
 * exactly the entry needed next and never hit; this keeps a fixed part of the cycle in memory and
 * reads the rest. A value larger than the budget, or one that would need an entry of the current
 * round evicted, is not kept.
 */
export class ByteLru<V> {
  private readonly entries = new Map<string, { value: V; bytes: number; round: number }>();
  private used = 0;
  private round = 0;

  /**
   * `onEvict` receives each value evicted to make room (never one of the current round) once no
   * entry holds it any more (one value may be kept under two keys), so that its owner may reuse it.
   */
  constructor(private readonly budget: number, private readonly onEvict?: (value: V) => void) {}

  /** Starts the next round (e.g. the next candidate). */
  nextRound(): void {
    this.round++;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    entry.round = this.round;
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Keeps `value` if it fits (see the class comment); returns whether it was kept. */
  set(key: string, value: V, bytes: number): boolean {
    const old = this.entries.get(key);
    if (old) {
      this.used -= old.bytes;
      this.entries.delete(key);
    }
    if (bytes > this.budget) return false;
    let evictable = 0;
    for (const entry of this.entries.values()) if (entry.round < this.round) evictable += entry.bytes;
    if (this.used - evictable + bytes > this.budget) return false;
    for (const [oldest, entry] of this.entries) {
      if (this.used + bytes <= this.budget) break;
      if (entry.round === this.round) continue;
      this.entries.delete(oldest);
      this.used -= entry.bytes;
      if (this.onEvict && !this.holds(entry.value)) this.onEvict(entry.value);
    }
    this.entries.set(key, { value, bytes, round: this.round });
    this.used += bytes;
    return true;
  }

  get bytes(): number {
    return this.used;
  }

  /** Whether an entry holds `value` (the same object). */
  holds(value: V): boolean {
    for (const entry of this.entries.values()) if (entry.value === value) return true;
    return false;
  }
}

/** The arrays a terms object (of either layout) holds. */
export function termsArrays(terms: LinearTerms | NaturalTerms): StoredArray[] {
  const common = [terms.weightF16, terms.weightF32, terms.inverseRowSums, terms.inverseColSums, terms.sqNorm];
  const position = 'row' in terms ? [terms.row, terms.col, terms.rows, terms.basePositions, terms.gram] : [];
  return [...common, ...position].filter((a): a is NonNullable<typeof a> => a !== null);
}

/** Bytes a terms object holds (for the LRU). */
export function termsBytes(terms: LinearTerms | NaturalTerms): number {
  return termsArrays(terms).reduce((sum, a) => sum + a.byteLength, 0);
}

/**
 * Arrays to read into again: a linear's arrays that the LRU does not keep are handed back after
 * its evaluation and reused for the next linear of the same shape, instead of a fresh allocation
 * (which the system zero-fills and maps page by page) for every linear of every candidate.
 */
export class ArrayPool {
  private readonly free = new Map<string, StoredArray[]>();

  constructor(private readonly perShape = 4) {}

  readonly allocate: Allocate = (kind, length) => this.free.get(`${kind}:${length}`)?.pop() ?? allocateNew(kind, length);

  /** `arrays` are no longer referenced by the caller. */
  give(arrays: StoredArray[]): void {
    for (const array of arrays) {
      const key = `${kindOf(array)}:${array.length}`;
      const list = this.free.get(key) ?? [];
      if (list.length < this.perShape && !list.includes(array)) list.push(array);
      this.free.set(key, list);
    }
  }
}
