/**
 * A model directory opened for computation: its ModelSpec (config.json) and its weights
 * (safetensors), checked against each other on open, so that a wrong or truncated checkpoint fails
 * before any work starts. Tensors are read on demand, one decoder block at a time, widened to
 * float32 and checked to be finite.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  SafetensorsWeights, DTYPE_BYTES, PIECE_BYTES, decodeInto, decodeToF32, elementCount, isDType, scanRaw, type DType, type RawTensorInfo, type TensorInfo,
} from '../io/safetensors.ts';
import { readBytesAt } from '../io/read-at.ts';
import { UserError } from '../util/errors.ts';
import { checkInteger } from '../util/fields.ts';
import { readModelConfig } from './config.ts';
import { checkLayerCount } from './layer-count.ts';
import {
  blockTensorShape,
  checkTokenIds,
  fusedTensors,
  storedBlockTensorNames,
  storedBlockTensorShape,
  storedTensorOf,
  EMBED_NAME,
  FINAL_NORM_NAME,
  layerPrefix,
  LINEAR_NAMES,
  LM_HEAD_NAME,
  type BlockWeights,
  type ModelSpec,
} from './spec.ts';

/** Throws a UserError naming `name` (in `where`) if `data` holds a NaN or an infinity. */
export function checkFinite(name: string, data: Float32Array, where: string): void {
  for (let i = 0; i < data.length; i++) {
    const value = data[i];
    // x - x is 0 for every finite x and NaN for NaN and ±Inf.
    if (value - value !== 0) {
      throw new UserError(`${where}: tensor "${name}" holds ${value} at index ${i}; weights must be finite`);
    }
  }
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((dim, i) => dim === b[i]);
const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

export class ModelCheckpoint {
  /** Arrays of blocks handed back by recycleBlock, filled by the next reads of the same length. */
  private spare: Float32Array[] = [];
  /** Set once verifyWeights has found every stored tensor finite: later reads need not scan again. */
  private allFinite = false;

  private constructor(
    readonly dir: string,
    readonly spec: ModelSpec,
    readonly weights: SafetensorsWeights,
    /** dtype of the decoder blocks' linear weights (the same for all of them). */
    readonly weightDtype: DType,
  ) {}

  static open(dir: string): ModelCheckpoint {
    const spec = readModelConfig(dir);
    const weights = SafetensorsWeights.open(dir);
    try {
      const weightDtype = validateWeights(dir, spec, weights);
      return new ModelCheckpoint(dir, spec, weights, weightDtype);
    } catch (error) {
      weights.close();
      throw error;
    }
  }

  /**
   * Every tensor of decoder block `layer`, keyed by its name inside the block, as float32; those
   * named in `without` are not read (a fused tensor is read when one of its parts is wanted).
   */
  readBlock(layer: number, without?: ReadonlySet<string>): BlockWeights {
    checkInteger('layer', layer, 0, this.spec.numLayers - 1);
    const fused = fusedTensors(this.spec);
    const block: BlockWeights = {};
    for (const name of storedBlockTensorNames(this.spec)) {
      const parts = fused.find((f) => f.stored === name)?.parts ?? [name];
      if (!without || parts.some((part) => !without.has(part))) block[name] = this.read(layerPrefix(layer) + name);
    }
    // Fused tensors (phi3) are split into their parts, rows in order.
    for (const { stored, parts } of fused) {
      const whole = block[stored];
      if (!whole) continue;
      delete block[stored];
      let row = 0;
      for (const part of parts) {
        const [rows, cols] = blockTensorShape(this.spec, part);
        if (!without?.has(part)) block[part] = whole.slice(row * cols, (row + rows) * cols);
        row += rows;
      }
    }
    return block;
  }

  /**
   * Hands back the arrays of a block read earlier whose values are no longer needed (written out),
   * so that the next readBlock fills them rather than fresh memory, whose first touch costs more
   * than reading and widening the weights. The caller must keep no reference to them. Views and
   * shared memory are left alone.
   */
  recycleBlock(block: BlockWeights): void {
    for (const array of Object.values(block)) {
      const whole = array.byteOffset === 0 && array.byteLength === array.buffer.byteLength && array.buffer instanceof ArrayBuffer;
      if (whole && !this.spare.includes(array)) this.spare.push(array);
    }
  }

  /** Token embedding [vocab, hidden]. */
  readEmbedding(): Float32Array {
    return this.read(EMBED_NAME);
  }

  /**
   * Rows `ids` of the token embedding, [ids.length, hidden]: the rows readEmbedding would give,
   * read and widened alone. The whole embedding is still checked to be finite, from its stored bits
   * (unless every weight already was).
   */
  readEmbeddingRows(ids: Int32Array): Float32Array {
    const { hiddenSize } = this.spec;
    // An id outside the vocabulary would read another tensor's bytes as its row.
    checkTokenIds('ids', ids, this.spec);
    const { dtype } = this.weights.info(EMBED_NAME);
    // A bitmask-stored embedding is decompressed whole; a dense one is read row by row.
    const whole = this.weights.isBitmaskCompressed(EMBED_NAME) ? this.weights.readRaw(EMBED_NAME) : null;
    const scannedFinite = (): boolean => {
      if (whole) return scanRaw(whole, dtype).allFinite;
      let finite = true;
      this.weights.readStoredPieces(EMBED_NAME, new Uint8Array(PIECE_BYTES), (piece) => { finite &&= scanRaw(piece, dtype).allFinite; });
      return finite;
    };
    // Not scanned again when every weight was (hashAndCheckFinite, checkAllFinite).
    if (!this.allFinite && !scannedFinite()) this.read(EMBED_NAME); // refuses it, naming the value
    const rowBytes = hiddenSize * DTYPE_BYTES[dtype];
    const row = new Uint8Array(rowBytes);
    const out = new Float32Array(ids.length * hiddenSize);
    ids.forEach((id, i) => {
      let bytes: Uint8Array = row;
      if (whole) bytes = whole.subarray(id * rowBytes, (id + 1) * rowBytes);
      else this.weights.readStoredInto(EMBED_NAME, row, id * rowBytes);
      decodeInto(bytes, dtype, out.subarray(i * hiddenSize, (i + 1) * hiddenSize));
    });
    return out;
  }

  /** Final RMSNorm weight [hidden]. */
  readFinalNorm(): Float32Array {
    return this.read(FINAL_NORM_NAME);
  }

  /** Output projection [vocab, hidden]: the embedding itself when the two are tied. */
  readLmHead(): Float32Array {
    return this.read(this.spec.tieWordEmbeddings ? EMBED_NAME : LM_HEAD_NAME);
  }

  checkFinite(name: string, data: Float32Array): void {
    checkFinite(name, data, this.dir);
  }

  /**
   * Reads every tensor once (one at a time) and refuses NaN or infinite values, so a long run
   * stops before it starts rather than at the layer that holds them.
   */
  checkAllFinite(): void {
    this.verifyWeights(false);
  }

  /**
   * One pass over every weight file: refuses NaN/Inf like checkAllFinite and returns each file's
   * sha256 (file name → hex). Tensors tile a safetensors data region exactly (validated on open),
   * so hashing the header bytes and then each tensor in offset order hashes the whole file.
   */
  hashAndCheckFinite(): Record<string, string> {
    return this.verifyWeights(true);
  }

  private verifyWeights(hash: boolean): Record<string, string> {
    const byFile = new Map<string, Array<TensorInfo | RawTensorInfo>>();
    for (const info of this.weights.storedTensors()) byFile.set(info.file, [...(byFile.get(info.file) ?? []), info]);
    const hashes: Record<string, string> = {};
    // Every tensor goes through one buffer, piece by piece: no fresh copy of each tensor's bytes.
    const scratch = new Uint8Array(PIECE_BYTES);
    for (const file of [...byFile.keys()].sort()) {
      const tensors = byFile.get(file)!.sort((a, b) => a.byteOffset - b.byteOffset);
      const digest = hash ? createHash('sha256') : null;
      if (digest) digest.update(readHeaderBytes(file, tensors.length ? tensors[0].byteOffset : statSync(file).size));
      for (const info of tensors) {
        const dtype = isDType(info.dtype) ? info.dtype : null;
        let allFinite = true;
        this.weights.readStoredPieces(info.name, scratch, (piece) => {
          digest?.update(piece);
          // A bitmask weight's stored values are its nonzeros: checking them checks the weight.
          if (dtype && allFinite) allFinite = scanRaw(piece, dtype).allFinite;
        });
        // Widened only to name the bad value.
        if (!allFinite) checkFinite(info.name, decodeToF32(this.weights.readStoredRaw(info.name), dtype!), this.dir);
      }
      if (digest) hashes[path.basename(file)] = digest.digest('hex');
    }
    this.allFinite = true;
    return hashes;
  }

  close(): void {
    this.weights.close();
    this.spare = [];
  }

  private read(name: string): Float32Array {
    if (!this.weights.has(name)) throw new UserError(`${this.dir}: the checkpoint has no tensor "${name}"`);
    const count = elementCount(this.weights.info(name).shape);
    const at = this.spare.findIndex((array) => array.length === count);
    const data = this.weights.readF32(name, at >= 0 ? this.spare.splice(at, 1)[0] : undefined);
    if (!this.allFinite) checkFinite(name, data, this.dir);
    return data;
  }
}

/** The first `length` bytes of a file (a safetensors length prefix and header). */
function readHeaderBytes(file: string, length: number): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    return readBytesAt(fd, 0, length, file);
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks that every tensor the spec implies exists with the right shape and that the block
 * linears share one dtype; returns that dtype.
 */
function validateWeights(dir: string, spec: ModelSpec, weights: SafetensorsWeights): DType {
  const expected: [string, number[]][] = [
    [EMBED_NAME, [spec.vocabSize, spec.hiddenSize]],
    [FINAL_NORM_NAME, [spec.hiddenSize]],
  ];
  if (!spec.tieWordEmbeddings) expected.push([LM_HEAD_NAME, [spec.vocabSize, spec.hiddenSize]]);
  checkLayerCount(spec.numLayers, weights.names(), /^model\.layers\.(\d+)\./, path.join(dir, 'config.json'), 'num_hidden_layers');
  for (let layer = 0; layer < spec.numLayers; layer++) {
    for (const name of storedBlockTensorNames(spec)) expected.push([layerPrefix(layer) + name, storedBlockTensorShape(spec, name)]);
  }
  // A block weight or bias the config does not use (a q_proj.bias under attention_bias false, …)
  // would be left out of the forward without a word; buffers such as rotary_emb.inv_freq are not
  // weights and stay allowed.
  const wanted = new Set(expected.map(([name]) => name));
  const unused = weights.names().filter((name) => /^model\.layers\.\d+\..*\.(weight|bias)$/.test(name) && !wanted.has(name));
  if (unused.length > 0) {
    throw new UserError(
      `${dir}: tensor "${unused[0]}"${unused.length > 1 ? ` (and ${unused.length - 1} more)` : ''} is not part of the ${spec.family} model config.json describes; the configuration does not match the checkpoint`,
    );
  }
  for (const [name, shape] of expected) {
    if (!weights.has(name)) {
      const hint = name === LM_HEAD_NAME ? ' (config.json says tie_word_embeddings is false)' : '';
      throw new UserError(`${dir}: the checkpoint has no tensor "${name}"${hint}`);
    }
    const actual = weights.info(name).shape;
    if (!sameShape(actual, shape)) {
      throw new UserError(`${dir}: tensor "${name}" has shape ${formatShape(actual)}, but config.json implies ${formatShape(shape)}`);
    }
  }

  const linears = [...new Set(LINEAR_NAMES.map((linear) => storedTensorOf(spec, `${linear}.weight`)))];
  const firstLinear = `${layerPrefix(0)}${linears[0]}`;
  const weightDtype = weights.info(firstLinear).dtype;
  for (let layer = 0; layer < spec.numLayers; layer++) {
    for (const linear of linears) {
      const name = `${layerPrefix(layer)}${linear}`;
      const dtype = weights.info(name).dtype;
      if (dtype !== weightDtype) {
        throw new UserError(`${dir}: tensor "${name}" is ${dtype} but "${firstLinear}" is ${weightDtype}; crepe needs one dtype for all block linears`);
      }
    }
  }
  return weightDtype;
}
