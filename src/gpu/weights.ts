/**
 * Weight matrices on the GPU, kept in their stored type: f32, f16 (two per
 * u32) or Q8_0 (quants and scales in two buffers). Other stored types are
 * dequantized to f16 at upload. A matrix larger than one storage binding
 * (`maxStorageBufferBindingSize`, often 128 MiB) is split by rows into
 * parts, each bound on its own.
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
};

/** How a tensor stored as `stored` goes to the GPU. */
export function gpuWeightOf(stored: string): GpuWeightOf {
  return GPU_WEIGHT_TYPES[stored] ?? { type: "f16", read: "f16" };
}

/** Rows [rowStart, rowStart + rows) of a matrix, in its own buffers. */
export interface WeightPart {
  rowStart: number;
  rows: number;
  /** f32 values, packed f16 pairs, or Q8_0 quants (8 u32 per block). */
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
  return type === "f32" ? cols * 4 : type === "f16" ? cols * 2 : cols / 32 * 34;
}

/**
 * Uploads a matrix. `data` is f32 values (`f32`), f16 bits (`f16`) or the
 * raw ggml Q8_0 blocks (`q8_0`).
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
  if (type === "q8_0" && cols % 32 !== 0) {
    throw new TypeError(`${name}: Q8_0 rows of ${cols} are not whole blocks`);
  }
  const limit = Math.min(
    maxPartBytes,
    set.gpu.limits.maxStorageBufferBindingSize,
  );
  // Each part is its own buffer (starting at element 0), so any row split works.
  const rowsPerPart = Math.max(
    1,
    Math.floor(limit / weightRowBytes(type, cols)),
  );
  const parts: WeightPart[] = [];
  let bytes = 0;
  for (let r0 = 0; r0 < rows; r0 += rowsPerPart) {
    const n = Math.min(rowsPerPart, rows - r0);
    let part: WeightPart;
    if (type === "f32") {
      const d = (data as Float32Array).subarray(r0 * cols, (r0 + n) * cols);
      part = {
        rowStart: r0,
        rows: n,
        w: set.buffer(`${name}[${r0}]`, d.byteLength, d),
      };
    } else if (type === "f16") {
      const d = (data as Uint16Array).subarray(r0 * cols, (r0 + n) * cols);
      part = {
        rowStart: r0,
        rows: n,
        w: set.buffer(`${name}[${r0}]`, d.byteLength, d),
      };
    } else {
      const raw = data as Uint8Array;
      const nb = n * cols / 32;
      const b0 = r0 * cols / 32;
      const qs = new Uint8Array(nb * 32);
      const ds = new Uint16Array(nb + (nb % 2));
      for (let b = 0; b < nb; b++) {
        const o = (b0 + b) * 34;
        ds[b] = raw[o] | (raw[o + 1] << 8);
        qs.set(raw.subarray(o + 2, o + 34), b * 32);
      }
      part = {
        rowStart: r0,
        rows: n,
        w: set.buffer(`${name}.q[${r0}]`, qs.byteLength, qs),
        ws: set.buffer(`${name}.d[${r0}]`, ds.byteLength, ds),
      };
    }
    bytes += part.w.size + (part.ws?.size ?? 0);
    parts.push(part);
  }
  return { name, type, rows, cols, parts, bytes };
}
