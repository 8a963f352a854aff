/**
 * Tensor descriptions shared by the GGUF and safetensors loaders, and the ggml
 * type table (from the Wasm core).
 *
 * @module
 */
import { ggmlTypes } from "../../wasm/pkg/alisa_wasm.js";

/** One ggml tensor type. */
export interface GgmlTypeInfo {
  id: number;
  /** ggml's name: `F32`, `F16`, `BF16`, `Q8_0`, `Q4_K`, ... */
  name: string;
  /** Elements per block. */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
  /** Whether the Wasm core can dequantize it. */
  dequantizable: boolean;
}

/** Every ggml type the loaders know, by name. */
export const GGML_TYPES: ReadonlyMap<string, GgmlTypeInfo> = new Map(
  (ggmlTypes() as GgmlTypeInfo[]).map((t) => [t.name, t]),
);

/** Looks up a ggml type by name; throws a `TypeError` for unknown names. */
export function ggmlType(name: string): GgmlTypeInfo {
  const t = GGML_TYPES.get(name.toUpperCase());
  if (!t) throw new TypeError(`Unknown tensor type ${name}`);
  return t;
}

/** A tensor in a model file, in the same terms for every format. */
export interface TensorInfo {
  /** GGUF-style name (`token_embd.weight`, `blk.0.attn_q.weight`, ...). */
  name: string;
  /** Row-major shape, outermost first (PyTorch/NumPy order: the reverse of GGUF's `ne`). */
  shape: number[];
  /** ggml type name of the stored data (`F32`, `F16`, `BF16`, `Q8_0`, ...). */
  type: string;
  nElements: number;
  /** Bytes of stored data. */
  nBytes: number;
  /** Absolute offset of the data in its file. */
  fileOffset: number;
}

/** Dequantized tensor data: f32 values, or IEEE f16 bit patterns. */
export type TensorData = Float32Array | Uint16Array;

/** The element type to dequantize to. */
export type FloatType = "f32" | "f16";
