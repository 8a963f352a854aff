/**
 * A Llama-family model's weights on the GPU, uploaded through one path:
 * each tensor goes to the GPU as the table in `src/gpu/weights.ts` says
 * (F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K kept as
 * stored, other types dequantized to f16; 1-D norms and biases as f32),
 * into the model's buffer set. A tensor of a type that is neither is
 * refused before anything uploads. Fused tensors (Phi-3's `attn_qkv`, and
 * its `ffn_up` holding gate and up) are split by rows at upload, so the
 * forward pass sees one layout.
 *
 * @module
 */
import type { BufferSet } from "../gpu/buffers.ts";
import {
  GPU_WEIGHT_TYPES,
  type GpuWeight,
  gpuWeightOf,
  uploadWeight,
} from "../gpu/weights.ts";
import type { ModelFile } from "../formats/model_file.ts";
import { traitsOf } from "../formats/config.ts";
import { ggmlType } from "../formats/tensor.ts";

/** One layer's weights. Optional parts are null where the architecture has none. */
export interface LayerWeights {
  attnNorm: GPUBuffer; // (dim,) f32
  wq: GpuWeight; // (q_dim, dim)
  wk: GpuWeight; // (kv_dim, dim)
  wv: GpuWeight; // (kv_dim, dim)
  bq: GPUBuffer | null; // (q_dim,) f32 (Qwen2)
  bk: GPUBuffer | null; // (kv_dim,) f32
  bv: GPUBuffer | null; // (kv_dim,) f32
  qNorm: GPUBuffer | null; // (head_dim,) f32, per-head (Qwen3, Gemma 3)
  kNorm: GPUBuffer | null; // (head_dim,) f32
  wo: GpuWeight; // (dim, q_dim)
  postAttnNorm: GPUBuffer | null; // (dim,) f32 (Gemma)
  ffnNorm: GPUBuffer; // (dim,) f32
  wGate: GpuWeight; // (ffn_dim, dim)
  wUp: GpuWeight; // (ffn_dim, dim)
  wDown: GpuWeight; // (dim, ffn_dim)
  postFfwNorm: GPUBuffer | null; // (dim,) f32 (Gemma)
}

/** All weights on the GPU. */
export interface Weights {
  tokenEmbd: GpuWeight; // (vocab, dim)
  layers: LayerWeights[];
  outputNorm: GPUBuffer; // (dim,) f32
  output: GpuWeight; // (vocab, dim); the embedding when tied
}

/** Progress of an upload: tensors done of the total. */
export type UploadProgress = (
  p: { loaded: number; total: number; tensor: string },
) => void;

type Data = Float32Array | Uint16Array | Uint8Array;

/** Rows [r0, r1) of a row-major matrix of `rows` rows, in any stored form. */
function sliceRows(data: Data, rows: number, r0: number, r1: number): Data {
  const per = data.length / rows;
  return data.subarray(r0 * per, r1 * per);
}

/**
 * Throws a `TypeError` naming the first tensor whose type the GPU neither
 * keeps nor the Wasm core dequantizes (IQ*, TQ*, ...). Called at load
 * before anything is allocated (by `LlamaModel.load`).
 */
export function checkWeightTypes(file: ModelFile): void {
  for (const t of file.tensors) {
    const kept = t.shape.length > 1 && GPU_WEIGHT_TYPES[t.type];
    if (!kept && !ggmlType(t.type).dequantizable) {
      throw new TypeError(
        `Cannot load model ${file.name}: tensor ${t.name} has type ${t.type}, which alisa can neither keep on the GPU nor dequantize yet`,
      );
    }
  }
}

/** Uploads `file`'s weights into `set`, reporting each tensor. */
export async function uploadWeights(
  set: BufferSet,
  file: ModelFile,
  onProgress?: UploadProgress,
): Promise<Weights> {
  const c = file.config;
  const traits = traitsOf(c);
  const total = file.tensors.filter((t) => t.name !== "rope_freqs.weight")
    .length;
  let loaded = 0;
  const done = (tensor: string) =>
    onProgress?.({ loaded: ++loaded, total, tensor });

  /** A matrix, cut by rows into named pieces ([name, rows] in order). */
  const matrices = async (
    name: string,
    pieces: [string, number][],
  ): Promise<GpuWeight[]> => {
    const t = file.tensor(name);
    const [rows, cols] = t.shape;
    const how = gpuWeightOf(t.type);
    const data = how.read === "raw"
      ? await file.readRaw(name)
      : await file.read(name, how.read);
    const out: GpuWeight[] = [];
    let r0 = 0;
    for (const [piece, n] of pieces) {
      const d = pieces.length === 1 ? data : sliceRows(data, rows, r0, r0 + n);
      out.push(uploadWeight(set, piece, how.type, n, cols, d));
      r0 += n;
    }
    done(name);
    return out;
  };
  const matrix = async (name: string) =>
    (await matrices(name, [[name, file.tensor(name).shape[0]]]))[0];
  const vector = async (name: string): Promise<GPUBuffer> => {
    const v = await file.read(name, "f32") as Float32Array;
    done(name);
    return set.buffer(name, v.byteLength, v);
  };
  const optional = (has: boolean, name: string) =>
    has ? vector(name) : Promise.resolve(null);

  const q = c.nHeads * c.headDim, kv = c.nKvHeads * c.headDim;
  const tokenEmbd = await matrix("token_embd.weight");
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blk.${l}.`;
    const attnNorm = await vector(`${b}attn_norm.weight`);
    const [wq, wk, wv] = traits.fused
      ? await matrices(`${b}attn_qkv.weight`, [
        [`${b}attn_q.weight`, q],
        [`${b}attn_k.weight`, kv],
        [`${b}attn_v.weight`, kv],
      ])
      : [
        await matrix(`${b}attn_q.weight`),
        await matrix(`${b}attn_k.weight`),
        await matrix(`${b}attn_v.weight`),
      ];
    const bq = await optional(c.attnBias, `${b}attn_q.bias`);
    const bk = await optional(c.attnBias, `${b}attn_k.bias`);
    const bv = await optional(c.attnBias, `${b}attn_v.bias`);
    const qNorm = await optional(traits.qkNorm, `${b}attn_q_norm.weight`);
    const kNorm = await optional(traits.qkNorm, `${b}attn_k_norm.weight`);
    const wo = await matrix(`${b}attn_output.weight`);
    const postAttnNorm = await optional(
      traits.postNorms,
      `${b}post_attention_norm.weight`,
    );
    const ffnNorm = await vector(`${b}ffn_norm.weight`);
    const [wGate, wUp] = traits.fused
      ? await matrices(`${b}ffn_up.weight`, [
        [`${b}ffn_gate.weight`, c.ffnDim],
        [`${b}ffn_up.weight`, c.ffnDim],
      ])
      : [
        await matrix(`${b}ffn_gate.weight`),
        await matrix(`${b}ffn_up.weight`),
      ];
    const wDown = await matrix(`${b}ffn_down.weight`);
    const postFfwNorm = await optional(
      traits.postNorms,
      `${b}post_ffw_norm.weight`,
    );
    layers.push({
      attnNorm,
      wq,
      wk,
      wv,
      bq,
      bk,
      bv,
      qNorm,
      kNorm,
      wo,
      postAttnNorm,
      ffnNorm,
      wGate,
      wUp,
      wDown,
      postFfwNorm,
    });
  }
  const outputNorm = await vector("output_norm.weight");
  const output = c.tiedEmbeddings ? tokenEmbd : await matrix("output.weight");
  return { tokenEmbd, layers, outputNorm, output };
}
