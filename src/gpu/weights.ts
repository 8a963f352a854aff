/**
 * Weight matrices on the GPU, kept in their stored type: f32, f16 (two per
 * u32), Q8_0 (quants and scales in two buffers), and Q4_0, Q4_1, Q5_0,
 * Q5_1, Q4_K, Q5_K and Q6_K as ggml's raw blocks, byte for byte, each
 * dequantized in the shader (`shaders/model/weight_<type>.wgsl`). Other
 * stored types are dequantized to f16 at upload. A matrix larger than one
 * storage binding (`maxStorageBufferBindingSize`, often 128 MiB) is split
 * by whole rows into parts, each bound on its own.
 *
 * @module
 */
import type { BufferSet } from "./buffers.ts";
import type { GpuWeightType } from "./shaders.ts";

/** How a stored tensor type is read and kept on the GPU. */
export interface GpuWeightOf {
  /** The GPU representation (a `shaders/model/weight_<type>.wgsl`). */
  type: GpuWeightType;
  /** What the loader hands over: f32 values, f16 bits, or the raw blocks. */
  read: "f32" | "f16" | "raw";
}

/**
 * The one table of stored types the GPU keeps as they are; every other
 * type is dequantized to f16 at upload. Used by the upload path and by
 * `inspect`'s GPU-memory estimate.
 */
export const GPU_WEIGHT_TYPES: Readonly<Record<string, GpuWeightOf>> = {
  F32: { type: "f32", read: "f32" },
  F16: { type: "f16", read: "f16" },
  Q8_0: { type: "q8_0", read: "raw" },
  Q4_0: { type: "q4_0", read: "raw" },
  Q4_1: { type: "q4_1", read: "raw" },
  Q5_0: { type: "q5_0", read: "raw" },
  Q5_1: { type: "q5_1", read: "raw" },
  Q4_K: { type: "q4_k", read: "raw" },
  Q5_K: { type: "q5_k", read: "raw" },
  Q6_K: { type: "q6_k", read: "raw" },
};

/**
 * Elements and bytes per block of each GPU weight type (ggml's block
 * layouts, ggml-common.h; f32 and f16 are one element per "block").
 */
export const WEIGHT_BLOCKS: Readonly<
  Record<GpuWeightType, { block: number; bytes: number }>
> = {
  f32: { block: 1, bytes: 4 },
  f16: { block: 1, bytes: 2 },
  q8_0: { block: 32, bytes: 34 },
  q4_0: { block: 32, bytes: 18 },
  q4_1: { block: 32, bytes: 20 },
  q5_0: { block: 32, bytes: 22 },
  q5_1: { block: 32, bytes: 24 },
  q4_k: { block: 256, bytes: 144 },
  q5_k: { block: 256, bytes: 176 },
  q6_k: { block: 256, bytes: 210 },
};

/** How a tensor stored as `stored` goes to the GPU. */
export function gpuWeightOf(stored: string): GpuWeightOf {
  return GPU_WEIGHT_TYPES[stored] ?? { type: "f16", read: "f16" };
}

/** Rows [rowStart, rowStart + rows) of a matrix, in its own buffers. */
export interface WeightPart {
  rowStart: number;
  rows: number;
  /** f32 values, packed f16 pairs, Q8_0 quants (8 u32 per block), or raw blocks. */
  w: GPUBuffer;
  /** Q8_0 scales, packed f16 pairs. */
  ws?: GPUBuffer;
}

/** A (rows, cols) row-major weight matrix on the GPU. */
export interface GpuWeight {
  name: string;
  type: GpuWeightType;
  rows: number;
  cols: number;
  parts: WeightPart[];
  /** GPU bytes held. */
  bytes: number;
}

/** Bytes per row of a matrix with `cols` columns stored as `type`. */
export function weightRowBytes(type: GpuWeightType, cols: number): number {
  const b = WEIGHT_BLOCKS[type];
  return cols / b.block * b.bytes;
}

/**
 * Uploads a matrix. `data` is f32 values (`f32`), f16 bits (`f16`) or the
 * raw ggml blocks (`q8_0` and the other block types). Block types need
 * whole blocks per row (`cols` a multiple of 32, 256 for K-quants).
 */
export function uploadWeight(
  set: BufferSet,
  name: string,
  type: GpuWeightType,
  rows: number,
  cols: number,
  data: Float32Array | Uint16Array | Uint8Array,
  /** Largest part in bytes (default: the device's maxStorageBufferBindingSize). */
  maxPartBytes: number = set.gpu.limits.maxStorageBufferBindingSize,
): GpuWeight {
  const { block } = WEIGHT_BLOCKS[type];
  if (cols % block !== 0) {
    throw new TypeError(
      `${name}: ${type.toUpperCase()} needs a multiple of ${block} columns to keep whole blocks per row, got ${cols}`,
    );
  }
  const rowBytes = weightRowBytes(type, cols);
  if (data.byteLength !== rows * rowBytes) {
    throw new RangeError(
      `${name}: ${type.toUpperCase()} (${rows}, ${cols}) is ${
        rows * rowBytes
      } bytes, got ${data.byteLength}`,
    );
  }
  const limit = Math.min(
    maxPartBytes,
    set.gpu.limits.maxStorageBufferBindingSize,
  );
  // Each part is its own buffer (starting at element 0) holding whole rows.
  const rowsPerPart = Math.max(1, Math.floor(limit / rowBytes));
  const bytesOf = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const parts: WeightPart[] = [];
  let bytes = 0;
  for (let r0 = 0; r0 < rows; r0 += rowsPerPart) {
    const n = Math.min(rowsPerPart, rows - r0);
    let part: WeightPart;
    if (type === "q8_0") {
      const nb = n * cols / 32;
      const b0 = r0 * cols / 32;
      const qs = new Uint8Array(nb * 32);
      const ds = new Uint16Array(nb + (nb % 2));
      for (let b = 0; b < nb; b++) {
        const o = (b0 + b) * 34;
        ds[b] = bytesOf[o] | (bytesOf[o + 1] << 8);
        qs.set(bytesOf.subarray(o + 2, o + 34), b * 32);
      }
      part = {
        rowStart: r0,
        rows: n,
        w: set.buffer(`${name}.q[${r0}]`, qs.byteLength, qs),
        ws: set.buffer(`${name}.d[${r0}]`, ds.byteLength, ds),
      };
    } else {
      // f32, f16 and raw blocks: the rows' bytes as they are.
      const d = bytesOf.subarray(r0 * rowBytes, (r0 + n) * rowBytes);
      part = {
        rowStart: r0,
        rows: n,
        w: set.buffer(`${name}[${r0}]`, d.byteLength, d),
      };
    }
    bytes += part.w.size + (part.ws?.size ?? 0);
    parts.push(part);
  }
  return { name, type, rows, cols, parts, bytes };
}
