/**
 * CPython's `random.Random`, bit for bit: MT19937 seeded the way `random.seed(int)` seeds it, and
 * the integer/float draws built on it (`getrandbits`, `randbelow`, `randint`, `random`).
 *
 * The reference pruning repositories draw their calibration windows with Python's `random`
 * (ALGORITHMS.md §1.1); matching its stream is what makes crepe's calibration sets identical to theirs.
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class PyRandom {
  private readonly state = new Uint32Array(N);
  private index = N + 1;

  constructor(seed: number | bigint = 0) {
    this.seed(seed);
  }

  /** `random.seed(int)`: init_by_array over |seed| split into little-endian 32-bit words ([0] for 0). */
  seed(seed: number | bigint): void {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
      throw new RangeError(`PyRandom.seed expects an integer, got ${seed}`);
    }
    let magnitude = BigInt(seed);
    if (magnitude < 0n) magnitude = -magnitude;
    const key: number[] = [];
    do {
      key.push(Number(magnitude & 0xffffffffn));
      magnitude >>= 32n;
    } while (magnitude > 0n);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.state;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1];
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
    this.index = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.state;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1];
      mt[i] = ((mt[i] ^ Math.imul(prev ^ (prev >>> 30), 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1];
      mt[i] = ((mt[i] ^ Math.imul(prev ^ (prev >>> 30), 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000; // MSB is 1, assuring a non-zero initial array
  }

  private twist(): void {
    const mt = this.state;
    for (let kk = 0; kk < N; kk++) {
      const y = (mt[kk] & UPPER_MASK) | (mt[(kk + 1) % N] & LOWER_MASK);
      mt[kk] = mt[(kk + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.index = 0;
  }

  /** One tempered 32-bit output (CPython's genrand_uint32). */
  genrandUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `random.random()`: 53 random bits from two outputs (27 + 26 bits). */
  random(): number {
    const high = this.genrandUint32() >>> 5;
    const low = this.genrandUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  /**
   * `random.getrandbits(k)`. For k ≤ 32 one output shifted right (a number); for larger k CPython
   * fills 32-bit words least significant first, the last word shifted to keep only its top bits.
   */
  getrandbits(k: number): number | bigint {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`getrandbits: k must be a non-negative integer, got ${k}`);
    if (k === 0) return 0;
    if (k <= 32) return this.genrandUint32() >>> (32 - k);
    let result = 0n;
    let shift = 0n;
    for (let remaining = k; remaining > 0; remaining -= 32) {
      let word = this.genrandUint32();
      if (remaining < 32) word >>>= 32 - remaining;
      result |= BigInt(word) << shift;
      shift += 32n;
    }
    return result;
  }

  /** `random._randbelow(n)`: uniform in [0, n) by rejection on bit_length(n) random bits. */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`randbelow: n must be a positive safe integer, got ${n}`);
    const bits = bitLength(n);
    if (bits <= 32) {
      let r = this.genrandUint32() >>> (32 - bits);
      while (r >= n) r = this.genrandUint32() >>> (32 - bits);
      return r;
    }
    const limit = BigInt(n);
    let r = this.getrandbits(bits) as bigint;
    while (r >= limit) r = this.getrandbits(bits) as bigint;
    return Number(r);
  }

  /** `random.randint(a, b)`: uniform over the integers a..b, both ends included. */
  randint(a: number, b: number): number {
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || b < a) {
      throw new RangeError(`randint: need integers a <= b, got (${a}, ${b})`);
    }
    return a + this.randbelow(b - a + 1);
  }
}

/** Number of bits needed to write n ≥ 1 (Python's int.bit_length). */
function bitLength(n: number): number {
  return n < 2 ** 32 ? 32 - Math.clz32(n) : 32 + bitLength(Math.floor(n / 2 ** 32));
}
