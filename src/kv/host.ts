/**
 * The host tier of the KV store: every token's K and V (and, when the
 * recompute tier may be used, its layer input x) in host memory, per
 * layer and sequence, in chunks of {@linkcode HOST_CHUNK} positions.
 *
 * Each step's new K/V rows come back from the GPU with the step's ids
 * (write-through), so a token's host copy exists from the step that made
 * it, and taking its GPU row away (a spill) moves no data. The GPU tier is
 * a cache over this one.
 *
 * Compression (ALISA section 4, `--kv-int8`): asymmetric min-max INT8
 * from the Wasm core (`int8.ts`), with the project's measured group
 * shapes: keys per channel over the chunk's 32 tokens (`KEY_GROUP`), values
 * per token over one head (`VALUE_GROUP`). A chunk is quantized when its
 * 32 positions are all present; until then (the newest tokens, which are
 * on the GPU anyway) it stays f16. With INT8 off the host keeps the exact
 * f16 bits the GPU wrote, so a token uploaded back is bit-identical.
 * x is kept as f32 (exact) or INT8 per token over the whole row.
 *
 * Dropping a token for recompute (phase III) frees its K/V; whole chunks
 * are freed once none of their tokens keeps K/V. Every allocation is
 * counted; past `maxBytes`, or when the runtime cannot allocate, a
 * RangeError names the host budget.
 *
 * @module
 */
import {
  dequantizeInt8,
  type Int8Block,
  type Int8Layout,
  quantizeInt8,
} from "./int8.ts";
import type { KvDims } from "./pool.ts";

/** Positions per host chunk (the keys' INT8 token group). */
export const HOST_CHUNK = 32;

/** Sizes of the host tier. */
export interface HostDims extends KvDims {
  headDim: number;
  /** Elements of x (the model width). */
  dim: number;
}

/** Options of the host tier. */
export interface HostOptions {
  /** INT8-compress full chunks (default true); false keeps exact f16. */
  int8?: boolean;
  /** Most host bytes (default: unlimited). */
  maxBytes?: number;
}

/** One chunk of K/V rows: f16 while filling (or always, INT8 off), then INT8. */
interface KvChunk {
  /** (HOST_CHUNK, 2 kvDim) f16 bits, K then V per position; null once quantized. */
  raw: Uint16Array | null;
  /** Keys, (HOST_CHUNK, kvDim) per channel; values, per token-head. */
  k: Int8Block | null;
  v: Int8Block | null;
  /** Which positions hold K/V. */
  have: Uint8Array;
  count: number;
}

/** One chunk of x rows. */
interface XChunk {
  /** Which positions hold x. */
  have: Uint8Array;
  /** (HOST_CHUNK, dim) f32 (exact mode). */
  f32: Float32Array | null;
  /** (HOST_CHUNK, dim) INT8 with per-position scale and zero. */
  q: Uint8Array | null;
  scale: Float32Array | null;
  zero: Float32Array | null;
}

function blockBytes(b: Int8Block | null): number {
  return b ? b.q.byteLength + b.scale.byteLength + b.zero.byteLength : 0;
}

/** The host copies of K/V and x. */
export class HostTier {
  readonly int8: boolean;
  readonly maxBytes: number;
  private readonly kv: (KvChunk | undefined)[][];
  private readonly xs: (XChunk | undefined)[][];
  private readonly keyLayout: Int8Layout;
  private readonly valueLayout: Int8Layout;
  private used = 0;
  /** The chunk last dequantized (uploads read neighbours together). */
  private cache: { chunk: KvChunk; rows: Uint16Array } | null = null;

  constructor(readonly dims: HostDims, o: HostOptions = {}) {
    this.int8 = o.int8 ?? true;
    this.maxBytes = o.maxBytes ?? Infinity;
    const n = dims.nLayers * dims.slots;
    this.kv = Array.from({ length: n }, () => []);
    this.xs = Array.from({ length: n }, () => []);
    this.keyLayout = {
      groupShape: "perChannel",
      tokens: HOST_CHUNK,
      channels: dims.kvDim,
      groupTokens: HOST_CHUNK,
    };
    this.valueLayout = {
      groupShape: "perToken",
      tokens: HOST_CHUNK,
      channels: dims.kvDim,
      headDim: dims.headDim,
    };
  }

  /** Host bytes held. */
  get bytes(): number {
    return this.used;
  }

  private alloc<T>(bytes: number, make: () => T): T {
    if (this.used + bytes > this.maxBytes) {
      throw new RangeError(
        `host memory for KV is exhausted: ${
          this.used + bytes
        } bytes needed, the host KV budget is ${this.maxBytes}`,
      );
    }
    let out: T;
    try {
      out = make();
    } catch (e) {
      throw new RangeError(
        `host memory for KV is exhausted: allocating ${bytes} more bytes (holding ${this.used}) failed: ${
          (e as Error).message
        }`,
      );
    }
    this.used += bytes;
    return out;
  }

  private list(l: number, slot: number) {
    return this.kv[l * this.dims.slots + slot];
  }

  /** Whether (layer, slot, pos) has K/V on the host. */
  hasKv(l: number, slot: number, pos: number): boolean {
    const c = this.list(l, slot)[Math.floor(pos / HOST_CHUNK)];
    return !!c && c.have[pos % HOST_CHUNK] === 1;
  }

  /** Whether (layer, slot, pos) has x on the host. */
  hasX(l: number, slot: number, pos: number): boolean {
    const c = this.xs[l * this.dims.slots + slot][Math.floor(pos / HOST_CHUNK)];
    return !!c && c.have[pos % HOST_CHUNK] === 1;
  }

  /**
   * Stores the K/V row (kvDim u32 words: K then V as f16 pairs) of
   * (layer, slot, pos).
   */
  putKv(l: number, slot: number, pos: number, row: Uint32Array): void {
    const words = this.dims.kvDim;
    if (row.length !== words) {
      throw new RangeError(`a K/V row has ${words} words, got ${row.length}`);
    }
    const list = this.list(l, slot);
    const ci = Math.floor(pos / HOST_CHUNK), i = pos % HOST_CHUNK;
    let c = list[ci];
    if (!c) {
      c = this.alloc(HOST_CHUNK * words * 4 + HOST_CHUNK, () => ({
        raw: new Uint16Array(HOST_CHUNK * words * 2),
        k: null,
        v: null,
        have: new Uint8Array(HOST_CHUNK),
        count: 0,
      }));
      list[ci] = c;
    }
    if (!c.raw) this.unquantize(c);
    new Uint32Array(c.raw!.buffer, i * words * 4, words).set(row);
    if (!c.have[i]) {
      c.have[i] = 1;
      c.count++;
    }
    if (this.cache?.chunk === c) this.cache = null;
    if (this.int8 && c.count === HOST_CHUNK) this.quantize(c);
  }

  private quantize(c: KvChunk): void {
    const { kvDim } = this.dims;
    const raw = c.raw!;
    const kBits = new Uint16Array(HOST_CHUNK * kvDim);
    const vBits = new Uint16Array(HOST_CHUNK * kvDim);
    for (let t = 0; t < HOST_CHUNK; t++) {
      kBits.set(raw.subarray(t * 2 * kvDim, t * 2 * kvDim + kvDim), t * kvDim);
      vBits.set(
        raw.subarray(t * 2 * kvDim + kvDim, (t + 1) * 2 * kvDim),
        t * kvDim,
      );
    }
    const k = quantizeInt8(kBits, this.keyLayout);
    const v = quantizeInt8(vBits, this.valueLayout);
    this.used += blockBytes(k) + blockBytes(v) - raw.byteLength;
    c.k = k;
    c.v = v;
    c.raw = null;
  }

  /** f16 rows of a quantized chunk, (HOST_CHUNK, 2 kvDim). */
  private dequantized(c: KvChunk): Uint16Array {
    if (this.cache?.chunk === c) return this.cache.rows;
    const { kvDim } = this.dims;
    const k = dequantizeInt8(c.k!, this.keyLayout, "f16") as Uint16Array;
    const v = dequantizeInt8(c.v!, this.valueLayout, "f16") as Uint16Array;
    const rows = new Uint16Array(HOST_CHUNK * 2 * kvDim);
    for (let t = 0; t < HOST_CHUNK; t++) {
      rows.set(k.subarray(t * kvDim, (t + 1) * kvDim), t * 2 * kvDim);
      rows.set(v.subarray(t * kvDim, (t + 1) * kvDim), t * 2 * kvDim + kvDim);
    }
    this.cache = { chunk: c, rows };
    return rows;
  }

  /** A chunk being written again (a rewritten position) goes back to f16. */
  private unquantize(c: KvChunk): void {
    const rows = this.alloc(
      HOST_CHUNK * this.dims.kvDim * 4 - blockBytes(c.k) - blockBytes(c.v),
      () => this.dequantized(c).slice(),
    );
    c.raw = rows;
    c.k = c.v = null;
    this.cache = null;
  }

  /**
   * Copies the K/V row of (layer, slot, pos) as f16 pairs into `out` at
   * word `offset` (dequantized when the chunk is INT8).
   */
  getKv(
    l: number,
    slot: number,
    pos: number,
    out: Uint32Array,
    offset: number,
  ): void {
    const c = this.list(l, slot)[Math.floor(pos / HOST_CHUNK)];
    const i = pos % HOST_CHUNK;
    if (!c || !c.have[i]) {
      throw new Error(
        `KV store: no host K/V for layer ${l}, slot ${slot}, position ${pos}`,
      );
    }
    const words = this.dims.kvDim;
    const rows = c.raw ?? this.dequantized(c);
    out.set(new Uint32Array(rows.buffer, i * words * 4, words), offset);
  }

  /** Stores x (dim f32) of (layer, slot, pos). */
  putX(l: number, slot: number, pos: number, x: Float32Array): void {
    const { dim } = this.dims;
    const list = this.xs[l * this.dims.slots + slot];
    const ci = Math.floor(pos / HOST_CHUNK), i = pos % HOST_CHUNK;
    let c = list[ci];
    if (!c) {
      c = this.int8
        ? this.alloc(HOST_CHUNK * (dim + 9), () => ({
          have: new Uint8Array(HOST_CHUNK),
          f32: null,
          q: new Uint8Array(HOST_CHUNK * dim),
          scale: new Float32Array(HOST_CHUNK),
          zero: new Float32Array(HOST_CHUNK),
        }))
        : this.alloc(HOST_CHUNK * (dim * 4 + 1), () => ({
          have: new Uint8Array(HOST_CHUNK),
          f32: new Float32Array(HOST_CHUNK * dim),
          q: null,
          scale: null,
          zero: null,
        }));
      list[ci] = c;
    }
    c.have[i] = 1;
    if (c.f32) {
      c.f32.set(x, i * dim);
    } else {
      const b = quantizeInt8(x, {
        groupShape: "perToken",
        tokens: 1,
        channels: dim,
        headDim: dim,
      });
      c.q!.set(b.q, i * dim);
      c.scale![i] = b.scale[0];
      c.zero![i] = b.zero[0];
    }
  }

  /** Copies x of (layer, slot, pos) into `out` at element `offset`. */
  getX(
    l: number,
    slot: number,
    pos: number,
    out: Float32Array,
    offset: number,
  ): void {
    const { dim } = this.dims;
    const c = this.xs[l * this.dims.slots + slot][Math.floor(pos / HOST_CHUNK)];
    if (!c) {
      throw new Error(
        `KV store: no host x for layer ${l}, slot ${slot}, position ${pos}`,
      );
    }
    const i = pos % HOST_CHUNK;
    if (!c.have[i]) {
      throw new Error(
        `KV store: no host x for layer ${l}, slot ${slot}, position ${pos}`,
      );
    }
    if (c.f32) {
      out.set(c.f32.subarray(i * dim, (i + 1) * dim), offset);
      return;
    }
    const back = dequantizeInt8({
      q: c.q!.subarray(i * dim, (i + 1) * dim),
      scale: c.scale!.subarray(i, i + 1),
      zero: c.zero!.subarray(i, i + 1),
    }, { groupShape: "perToken", tokens: 1, channels: dim, headDim: dim });
    out.set(back as Float32Array, offset);
  }

  /**
   * Drops the K/V of (layer, slot, pos) (phase III: the token is rebuilt
   * from x when needed). Frees the chunk once no position keeps K/V.
   */
  dropKv(l: number, slot: number, pos: number): void {
    const list = this.list(l, slot);
    const ci = Math.floor(pos / HOST_CHUNK), i = pos % HOST_CHUNK;
    const c = list[ci];
    if (!c || !c.have[i]) return;
    c.have[i] = 0;
    c.count--;
    if (c.count === 0) {
      this.used -= (c.raw?.byteLength ?? 0) + blockBytes(c.k) +
        blockBytes(c.v) + HOST_CHUNK;
      if (this.cache?.chunk === c) this.cache = null;
      list[ci] = undefined;
    }
  }

  /** Forgets every host row of `slot` (a finished sequence). */
  clear(slot: number): void {
    for (let l = 0; l < this.dims.nLayers; l++) {
      const i = l * this.dims.slots + slot;
      for (const c of this.kv[i]) {
        if (c) {
          this.used -= (c.raw?.byteLength ?? 0) + blockBytes(c.k) +
            blockBytes(c.v) + HOST_CHUNK;
        }
      }
      for (const c of this.xs[i]) {
        if (c) {
          this.used -= (c.f32?.byteLength ?? 0) + (c.q?.byteLength ?? 0) +
            (c.scale?.byteLength ?? 0) + (c.zero?.byteLength ?? 0) +
            c.have.byteLength;
        }
      }
      this.kv[i] = [];
      this.xs[i] = [];
    }
    this.cache = null;
  }
}
