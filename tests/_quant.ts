/**
 * Quantized test data: random valid ggml blocks (random bytes, with every
 * f16 scale and min set to a finite value of a sane size), and GGUF copies
 * of a model with its matrices replaced by such blocks, together with the
 * same model stored as F32 holding their exact dequantization.
 *
 * @module
 */
import { dequantize } from "../src/formats/dequantize.ts";
import { GgufFile } from "../src/formats/gguf.ts";
import { ggmlType } from "../src/formats/tensor.ts";
import { GPU_WEIGHT_TYPES } from "../src/gpu/weights.ts";
import { f16ToF32, rng } from "./_shared.ts";
import { buildGguf, GGML, kvFromParsed } from "./_gguf_writer.ts";

/** The stored types the GPU keeps as raw blocks, besides Q8_0. */
export const BLOCK_TYPES = [
  "Q4_0",
  "Q4_1",
  "Q5_0",
  "Q5_1",
  "Q4_K",
  "Q5_K",
  "Q6_K",
] as const;

/**
 * Where each type's f16 fields are in a block, and the range of their
 * values: d (the scale) positive, m / dmin (the min) of either sign.
 */
const F16_FIELDS: Record<string, [number, number, number][]> = {
  // [byte offset, low, high]
  Q4_0: [[0, 0.002, 0.02]],
  Q4_1: [[0, 0.001, 0.01], [2, -0.05, 0.05]],
  Q5_0: [[0, 0.001, 0.01]],
  Q5_1: [[0, 0.0005, 0.005], [2, -0.05, 0.05]],
  Q8_0: [[0, 0.0002, 0.002]],
  Q2_K: [[80, 0.001, 0.01], [82, -0.01, 0.01]],
  Q3_K: [[108, 0.0005, 0.005]],
  Q4_K: [[0, 0.0002, 0.002], [2, -0.002, 0.002]],
  Q5_K: [[0, 0.0001, 0.001], [2, -0.002, 0.002]],
  Q6_K: [[208, 0.00002, 0.0002]],
  IQ2_XXS: [[0, 0.001, 0.01]],
};

/** f32 values to f16 bits (round to nearest even), through the Wasm core. */
export function toF16(x: Float32Array): Uint16Array {
  return dequantize(
    "F32",
    new Uint8Array(x.buffer, x.byteOffset, x.byteLength),
    x.length,
    "f16",
  ) as Uint16Array;
}

/** `nElements` elements of ggml type `type` as random valid blocks. */
export function randomBlocks(
  type: string,
  nElements: number,
  seed: number,
): Uint8Array {
  const t = GGML[type];
  const fields = F16_FIELDS[type];
  if (!t || !fields) throw new TypeError(`no random blocks for ${type}`);
  const r = rng(seed);
  const nb = nElements / t.block;
  const raw = new Uint8Array(nb * t.size);
  for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(r.u() * 256);
  for (const [at, lo, hi] of fields) {
    const v = toF16(
      Float32Array.from({ length: nb }, () => lo + (hi - lo) * r.u()),
    );
    for (let b = 0; b < nb; b++) {
      raw[b * t.size + at] = v[b] & 0xff;
      raw[b * t.size + at + 1] = v[b] >> 8;
    }
  }
  return raw;
}

/** A GGUF copy of a model and its F32 twin. */
export interface RequantizedModel {
  /** Matrices as `typeOf` says, random valid blocks. */
  quant: Uint8Array;
  /**
   * The same tensors as F32 holding what the GPU computes with: the exact
   * dequantization of `quant`'s for the types it keeps, rounded to f16
   * for the types it dequantizes at upload, zeros for types alisa cannot
   * dequantize.
   */
  f32: Uint8Array;
  /** The type of each tensor in `quant`. */
  types: Map<string, string>;
}

/**
 * Copies the GGUF at `path` with each 2-D tensor replaced by random blocks
 * of `typeOf(name, layer, nLayers)` (F32 and F16 keep the original values,
 * F16 rounded); 1-D tensors (norms) stay as they are.
 */
export async function requantizedGguf(
  path: string,
  typeOf: (name: string, layer: number, nLayers: number) => string,
  seed = 1,
): Promise<RequantizedModel> {
  const g = await GgufFile.open(path);
  try {
    const kvs = [...g.metadata].map(([k, v]) =>
      kvFromParsed(k, g.metadataTypes.get(k)!, v)
    );
    const nLayers = Number(
      g.metadata.get(`${g.metadata.get("general.architecture")}.block_count`),
    );
    const quant = [], f32 = [];
    const types = new Map<string, string>();
    for (const t of g.tensors) {
      const layer = Number(/^blk\.(\d+)\./.exec(t.name)?.[1] ?? -1);
      const type = t.shape.length > 1 ? typeOf(t.name, layer, nLayers) : t.type;
      types.set(t.name, type);
      const orig = await g.read(t.name, "f32") as Float32Array;
      let raw: Uint8Array, values: Float32Array;
      if (type === "F32" || type === "F16") {
        const h = type === "F16" ? toF16(orig) : orig;
        raw = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
        values = type === "F16" ? Float32Array.from(h, f16ToF32) : orig;
      } else {
        raw = randomBlocks(type, t.nElements, seed++);
        values = !ggmlType(type).dequantizable
          ? new Float32Array(t.nElements)
          : GPU_WEIGHT_TYPES[type]
          ? dequantize(type, raw, t.nElements) as Float32Array
          : Float32Array.from(
            dequantize(type, raw, t.nElements, "f16"),
            f16ToF32,
          );
      }
      quant.push({ name: t.name, ne: t.ne, typeId: GGML[type].id, data: raw });
      f32.push({
        name: t.name,
        ne: t.ne,
        typeId: GGML.F32.id,
        data: new Uint8Array(
          values.buffer,
          values.byteOffset,
          values.byteLength,
        ),
      });
    }
    return {
      quant: buildGguf({ kvs, tensors: quant }).bytes,
      f32: buildGguf({ kvs, tensors: f32 }).bytes,
      types,
    };
  } finally {
    g.close();
  }
}

/**
 * llama.cpp's Q4_K_M mix (llama-quant.cpp): Q6_K for the output matrix and
 * for attn_v and ffn_down in the first and last eighth of the layers and
 * every third between; Q4_K everywhere else.
 */
export function q4kmType(name: string, layer: number, nLayers: number) {
  if (name === "output.weight") return "Q6_K";
  const eighth = Math.floor(nLayers / 8);
  const moreBits = layer < eighth || layer >= Math.floor(7 * nLayers / 8) ||
    (layer - eighth) % 3 === 2;
  if (/attn_v|ffn_down/.test(name) && moreBits) return "Q6_K";
  return "Q4_K";
}
