/**
 * INT8 compression of KV-cache blocks (ALISA section 4) and ggml Q8_0
 * quantization, computed in the Wasm core (`wasm/src/int8.rs`, wasm SIMD).
 *
 * A KV block is a row-major `(tokens, channels)` array of f32 values or f16
 * bits (`Uint16Array`). It is cut into groups that share an f32 `scale` and
 * `zero` (asymmetric min-max):
 *
 * ```text
 * scale = (max - min) / 255        zero = round(-min / scale)
 * q = clamp(round(x / scale) + zero, 0, 255)      x ~ (q - zero) * scale
 * ```
 *
 * `round` is half away from zero. Every element comes back within
 * `scale / 2` (plus f32 rounding, a few ulps of the group's magnitude).
 *
 * Group shapes ({@linkcode GroupShape}) and the shape of `scale` / `zero`:
 * - `perChannel` (`groupTokens` G): each channel of each run of G tokens;
 *   `(ceil(tokens / G), channels)`. KIVI's choice for keys.
 * - `perToken` (`headDim` D): each run of D channels of one token (a head);
 *   `(tokens, ceil(channels / D))`. KIVI's choice for values.
 * - `contiguous` (`groupSize` N): runs of N elements of the flattened block;
 *   `(ceil(tokens * channels / N),)`.
 *
 * Edge cases:
 * - A constant group (`max == min == c`) gets `scale = |c|` (1 when c is 0),
 *   `zero = -sign(c)`, all `q = 0`, and dequantizes to exactly `c` (-0 to +0).
 * - A range whose `/ 255` underflows f32 gets the smallest subnormal scale.
 * - NaN or +-Infinity anywhere: `RangeError` naming the first such index.
 * - Blocks whose tokens, channels or length are not multiples of the group
 *   end with a shorter group of their own.
 * - Empty blocks (0 tokens or 0 channels) give empty outputs.
 * - Lengths that disagree with `tokens * channels` or with the group count:
 *   `RangeError`; a missing or unknown option: `TypeError`.
 *
 * The one-call functions copy in and out of Wasm memory. For the hot path,
 * {@linkcode Int8Workspace} exposes the Wasm buffers as typed-array views:
 * write the block into `input`, call `quantize()`, read `q`, `scale`, `zero`
 * (or write those and call `dequantize()`, read `output`), without copies.
 *
 * @example Quantize a block of keys per channel
 * ```ts
 * import { assert, assertEquals } from "@std/assert";
 * import { dequantizeInt8, quantizeInt8 } from "./int8.ts";
 * const tokens = 64, channels = 128;
 * const k = Float32Array.from({ length: tokens * channels }, () => Math.random());
 * const layout = { groupShape: "perChannel", tokens, channels, groupTokens: 64 } as const;
 * const block = quantizeInt8(k, layout);
 * assertEquals([block.q.length, block.scale.length], [8192, 128]);
 * const back = dequantizeInt8(block, layout) as Float32Array;
 * assert(Math.abs(back[0] - k[0]) <= block.scale[0] / 2 + 1e-6);
 * ```
 *
 * @module
 */
import {
  int8Memory,
  int8SimdAvailable,
  Int8Workspace as WasmInt8Workspace,
} from "../../wasm/pkg/alisa_wasm.js";
import type { FloatType } from "../formats/tensor.ts";

/** How a block is cut into groups sharing a scale and a zero point. */
export type GroupShape = "perChannel" | "perToken" | "contiguous";

/** A KV block's shape and grouping. */
export interface Int8Layout {
  groupShape: GroupShape;
  /** Rows of the block (required except for `contiguous`). */
  tokens?: number;
  /** Columns of the block (required except for `contiguous`). */
  channels?: number;
  /** `perChannel`: tokens per group. */
  groupTokens?: number;
  /** `perToken`: channels per group (one head). */
  headDim?: number;
  /** `contiguous`: elements per group. */
  groupSize?: number;
}

/** {@linkcode Int8Layout} plus the kernel choice. */
export interface Int8Options extends Int8Layout {
  /** Use the wasm SIMD kernels (default true; false runs the scalar ones). */
  simd?: boolean;
}

/** A quantized block: codes `(tokens, channels)` and per-group parameters. */
export interface Int8Block {
  q: Uint8Array;
  scale: Float32Array;
  zero: Float32Array;
}

/** Whether the Wasm build has the SIMD kernels. */
export const INT8_SIMD: boolean = int8SimdAvailable();

/**
 * The group shape alisa uses for keys: per channel over runs of 32 tokens
 * (each key channel of a 32-token block shares one scale and zero).
 *
 * Measured in `tests/int8_test.ts` (NMSE, 10 bits per element for both):
 * on the Austen model's real post-RoPE keys (6 layers, 128 tokens) 1.8e-5
 * against 2.2e-5 per token-head; on key-like data with 10-50x outlier
 * channels, as large models' keys have (KIVI), 2.0e-5 against 5.3e-5,
 * because a per-channel group keeps each outlier's range to itself. Longer
 * token groups save scale bytes but lose accuracy (G=64: 2.4e-5, G=128:
 * 3.1e-5 on the real keys), and 32 tokens is a natural KV block size to
 * spill. A block's last, partial group is quantized on its own.
 */
export const KEY_GROUP: Readonly<Int8Layout> = {
  groupShape: "perChannel",
  groupTokens: 32,
};

/**
 * The group shape alisa uses for values: per token over one head (set
 * `headDim` to the model's). Values have no outlier channels: on the
 * Austen model per token-head and per channel (G=32) tie (2.3e-5 and
 * 2.1e-5), on value-like data whose tokens vary in magnitude per token-head
 * wins (2.2e-5 against 3.4e-5), and it quantizes each token as it arrives,
 * with no token group to wait for.
 */
export const VALUE_GROUP: Readonly<Int8Layout> = { groupShape: "perToken" };

const memory = int8Memory() as WebAssembly.Memory;

const SHAPES: readonly GroupShape[] = ["perChannel", "perToken", "contiguous"];
const PARAM: Record<GroupShape, "groupTokens" | "headDim" | "groupSize"> = {
  perChannel: "groupTokens",
  perToken: "headDim",
  contiguous: "groupSize",
};

function count(v: unknown, what: string, min: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw new RangeError(
      `${what} must be an integer >= ${min}, got ${String(v)}`,
    );
  }
  if (v > 0xffffffff) {
    throw new RangeError(`${what} ${v} is too large`);
  }
  return v;
}

/** A layout resolved against a block of `n` elements. */
interface Resolved {
  shape: GroupShape;
  tokens: number;
  channels: number;
  param: number;
  nGroups: number;
}

function resolve(layout: Int8Layout, n?: number): Resolved {
  const shape = layout?.groupShape;
  if (!SHAPES.includes(shape)) {
    throw new TypeError(
      `unknown group shape ${
        JSON.stringify(shape)
      } (perChannel, perToken or contiguous)`,
    );
  }
  const name = PARAM[shape];
  if (layout[name] === undefined) {
    throw new TypeError(`${shape} groups need ${name}`);
  }
  const param = count(layout[name], name, 1);
  let tokens: number, channels: number;
  if (
    shape === "contiguous" && layout.tokens === undefined &&
    layout.channels === undefined
  ) {
    if (n === undefined) {
      throw new TypeError("contiguous groups need tokens and channels here");
    }
    tokens = 1;
    channels = n;
  } else {
    if (layout.tokens === undefined || layout.channels === undefined) {
      throw new TypeError(`${shape} groups need tokens and channels`);
    }
    tokens = count(layout.tokens, "tokens", 0);
    channels = count(layout.channels, "channels", 0);
  }
  const len = tokens * channels;
  if (n !== undefined && n !== len) {
    throw new RangeError(
      `block has ${n} elements, expected tokens x channels = ${tokens} x ${channels} = ${len}`,
    );
  }
  const nGroups = shape === "perChannel"
    ? Math.ceil(tokens / param) * channels
    : shape === "perToken"
    ? tokens * Math.ceil(channels / param)
    : Math.ceil(len / param);
  return { shape, tokens, channels, param, nGroups };
}

/** Number of scale/zero pairs of a block of `n` elements with `layout`. */
export function int8GroupCount(layout: Int8Layout, n?: number): number {
  return resolve(layout, n).nGroups;
}

/** Shape of the `scale` and `zero` arrays (see the module docs). */
export function int8ParamShape(layout: Int8Layout, n?: number): number[] {
  const r = resolve(layout, n);
  if (r.shape === "perChannel") {
    return [Math.ceil(r.tokens / r.param), r.channels];
  }
  if (r.shape === "perToken") {
    return [r.tokens, Math.ceil(r.channels / r.param)];
  }
  return [r.nGroups];
}

/**
 * INT8 buffers in Wasm memory for blocks of one layout, read and written
 * through typed-array views (no copy per call).
 *
 * `configure()` (or `configureQ8_0()`) sizes the buffers; it may grow Wasm
 * memory, which detaches every view over it, so take views from the getters
 * after it (the getters re-create their views whenever memory has grown,
 * also through other Wasm calls; do not keep a view across other calls).
 * `quantize()`, `dequantize()` and `quantizeQ8_0()` allocate nothing.
 *
 * @example Hot path: quantize in place
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { Int8Workspace } from "./int8.ts";
 * using ws = new Int8Workspace();
 * ws.configure({ groupShape: "perToken", tokens: 16, channels: 64, headDim: 32 });
 * ws.input.fill(0.5); // write the block straight into Wasm memory
 * ws.quantize();
 * assertEquals([ws.q[0], ws.scale.length, ws.scale[0], ws.zero[0]], [0, 32, 0.5, -1]);
 * ```
 */
export class Int8Workspace {
  #ws: WasmInt8Workspace | null = new WasmInt8Workspace();
  #buffer: ArrayBuffer | null = null;
  #input: Float32Array | Uint16Array = new Float32Array(0);
  #q = new Uint8Array(0);
  #scale = new Float32Array(0);
  #zero = new Float32Array(0);
  #output: Float32Array | Uint16Array = new Float32Array(0);
  #inF16 = false;
  #outF16 = false;
  #mode: "none" | "int8" | "q8_0" = "none";

  #wasm(): WasmInt8Workspace {
    if (!this.#ws) throw new TypeError("the Int8Workspace was freed");
    return this.#ws;
  }

  #views(): void {
    const buf = memory.buffer as ArrayBuffer;
    if (buf === this.#buffer) return;
    const ws = this.#wasm();
    const n = this.#mode === "int8" ? ws.length : 0;
    const inLen = this.#mode === "none" ? 0 : ws.length;
    const g = ws.nGroups;
    this.#input = this.#inF16
      ? new Uint16Array(buf, ws.inputPtr, inLen)
      : new Float32Array(buf, ws.inputPtr, inLen);
    this.#q = new Uint8Array(buf, ws.qPtr, ws.qLength);
    this.#scale = new Float32Array(buf, ws.scalePtr, g);
    this.#zero = new Float32Array(buf, ws.zeroPtr, g);
    this.#output = this.#outF16
      ? new Uint16Array(buf, ws.outputPtr, n)
      : new Float32Array(buf, ws.outputPtr, n);
    this.#buffer = buf;
  }

  /**
   * Sizes the buffers for blocks of `layout` (`tokens` and `channels`
   * required): `input` as `input` type (default f32), `output` as `output`
   * type (default f32).
   */
  configure(
    layout: Int8Layout & { input?: FloatType; output?: FloatType },
  ): void {
    const r = resolve(layout);
    const input = layout.input ?? "f32", output = layout.output ?? "f32";
    this.#mode = "none";
    this.#buffer = null;
    this.#wasm().configure(
      r.shape,
      r.tokens,
      r.channels,
      r.param,
      input,
      output,
    );
    this.#inF16 = input === "f16";
    this.#outF16 = output === "f16";
    this.#mode = "int8";
  }

  /** Sizes the buffers for Q8_0 quantization of `nElements` f32 values. */
  configureQ8_0(nElements: number): void {
    this.#mode = "none";
    this.#buffer = null;
    this.#wasm().configureQ8_0(count(nElements, "nElements", 0));
    this.#inF16 = this.#outF16 = false;
    this.#mode = "q8_0";
  }

  /** Elements per block. */
  get length(): number {
    return this.#mode === "none" ? 0 : this.#wasm().length;
  }
  /** Scale/zero pairs per block. */
  get nGroups(): number {
    return this.#wasm().nGroups;
  }
  /** The block to quantize (f32 values or f16 bits), `(tokens, channels)`. */
  get input(): Float32Array | Uint16Array {
    this.#views();
    return this.#input;
  }
  /** Codes `(tokens, channels)`; for Q8_0, the blocks (34 bytes per 32). */
  get q(): Uint8Array {
    this.#views();
    return this.#q;
  }
  /** Per-group scales `(nGroups,)`. */
  get scale(): Float32Array {
    this.#views();
    return this.#scale;
  }
  /** Per-group zero points `(nGroups,)` (integers stored as f32). */
  get zero(): Float32Array {
    this.#views();
    return this.#zero;
  }
  /** The dequantized block (f32 values or f16 bits). */
  get output(): Float32Array | Uint16Array {
    this.#views();
    return this.#output;
  }

  /** `input` to `q`, `scale`, `zero`. */
  quantize(simd = true): void {
    this.#wasm().quantize(simd);
  }
  /** `q`, `scale`, `zero` to `output`. */
  dequantize(simd = true): void {
    this.#wasm().dequantize(simd);
  }
  /** `input` to Q8_0 blocks in `q` (after `configureQ8_0`). */
  quantizeQ8_0(simd = true): void {
    this.#wasm().quantizeQ8_0(simd);
  }

  /** Frees the Wasm buffers (also on `using`). */
  free(): void {
    this.#ws?.free();
    this.#ws = null;
    this.#buffer = null;
    this.#mode = "none";
  }
  [Symbol.dispose](): void {
    this.free();
  }
}

let shared: Int8Workspace | null = null;
function sharedWorkspace(): Int8Workspace {
  return shared ??= new Int8Workspace();
}

/**
 * Quantizes a block (f32 values, or f16 bits as a `Uint16Array`) to INT8
 * codes and per-group f32 scales and zero points (new arrays).
 */
export function quantizeInt8(
  x: Float32Array | Uint16Array,
  options: Int8Options,
): Int8Block {
  const r = resolve(options, x.length);
  const ws = sharedWorkspace();
  ws.configure({
    groupShape: r.shape,
    tokens: r.tokens,
    channels: r.channels,
    [PARAM[r.shape]]: r.param,
    input: x instanceof Uint16Array ? "f16" : "f32",
  });
  ws.input.set(x);
  ws.quantize(options.simd ?? true);
  return { q: ws.q.slice(), scale: ws.scale.slice(), zero: ws.zero.slice() };
}

/**
 * Dequantizes a block from {@linkcode quantizeInt8} to f32 values or f16
 * bits (round to nearest even).
 */
export function dequantizeInt8(
  block: Int8Block,
  options: Int8Options,
  to: FloatType = "f32",
): Float32Array | Uint16Array {
  const r = resolve(options, block.q.length);
  for (const k of ["scale", "zero"] as const) {
    if (block[k].length !== r.nGroups) {
      throw new RangeError(
        `${k} has ${block[k].length} elements, expected ${r.nGroups}`,
      );
    }
  }
  const ws = sharedWorkspace();
  ws.configure({
    groupShape: r.shape,
    tokens: r.tokens,
    channels: r.channels,
    [PARAM[r.shape]]: r.param,
    output: to,
  });
  ws.q.set(block.q);
  ws.scale.set(block.scale);
  ws.zero.set(block.zero);
  ws.dequantize(options.simd ?? true);
  return ws.output.slice();
}

/**
 * Quantizes f32 values (a multiple of 32) to ggml Q8_0 blocks, bit for bit
 * as ggml's `quantize_row_q8_0_ref`: per 32 values, f16 `d = amax / 127`
 * then 32 i8 `round(x / d)`. Non-finite values are a `RangeError`.
 */
export function quantizeQ8_0(
  x: Float32Array,
  options: { simd?: boolean } = {},
): Uint8Array {
  if (x.length % 32 !== 0) {
    throw new RangeError(
      `${x.length} elements is not a whole number of Q8_0 blocks (32 elements each)`,
    );
  }
  const ws = sharedWorkspace();
  ws.configureQ8_0(x.length);
  (ws.input as Float32Array).set(x);
  ws.quantizeQ8_0(options.simd ?? true);
  return ws.q.slice();
}
