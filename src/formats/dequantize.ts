/**
 * Dequantization of stored tensor bytes to f32 or f16, in the Wasm core,
 * chunk by chunk so Wasm memory stays bounded whatever the tensor size.
 *
 * @module
 */
import { dequantizeF16, dequantizeF32 } from "../../wasm/pkg/alisa_wasm.js";
import { type FloatType, ggmlType, type TensorData } from "./tensor.ts";

/** Raw bytes handed to the Wasm core per call (rounded to whole blocks). */
export const CHUNK_BYTES = 4 << 20;

/**
 * Dequantizes `nElements` elements of ggml type `type`, whose stored bytes
 * are delivered by `readChunk(byteOffset, byteLength)`, into a new array.
 */
export async function dequantizeChunked(
  type: string,
  nElements: number,
  to: FloatType,
  readChunk: (byteOffset: number, byteLength: number) => Promise<Uint8Array>,
): Promise<TensorData> {
  const t = ggmlType(type);
  if (!t.dequantizable) {
    throw new TypeError(`alisa cannot dequantize tensor type ${t.name} yet`);
  }
  const nBlocks = nElements / t.blockSize;
  const blocksPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / t.typeSize));
  // Read the first chunk before allocating, so a tensor that a hostile
  // header declares huge fails on its data, not on the allocation.
  let raw = await readChunk(0, Math.min(blocksPerChunk, nBlocks) * t.typeSize);
  let out: TensorData;
  try {
    out = to === "f32"
      ? new Float32Array(nElements)
      : new Uint16Array(nElements);
  } catch {
    throw new RangeError(
      `cannot allocate ${nElements} ${to} values (${
        nElements * (to === "f32" ? 4 : 2)
      } bytes)`,
    );
  }
  for (let b = 0; b < nBlocks; b += blocksPerChunk) {
    const n = Math.min(blocksPerChunk, nBlocks - b);
    if (b > 0) raw = await readChunk(b * t.typeSize, n * t.typeSize);
    const part = to === "f32"
      ? dequantizeF32(t.id, raw, n * t.blockSize)
      : dequantizeF16(t.id, raw, n * t.blockSize);
    out.set(part, b * t.blockSize);
  }
  return out;
}

/** Dequantizes bytes already in memory. */
export function dequantize(
  type: string,
  raw: Uint8Array,
  nElements: number,
  to: FloatType = "f32",
): TensorData {
  const t = ggmlType(type);
  return to === "f32"
    ? dequantizeF32(t.id, raw, nElements)
    : dequantizeF16(t.id, raw, nElements);
}
