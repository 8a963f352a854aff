/**
 * A Llama-family model's weights on the GPU, uploaded through one path:
 * each tensor goes to the GPU as the table in `src/gpu/weights.ts` says
 * (F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K kept as
 * stored, other types dequantized to f16; 1-D norms as f32), into the
 * model's buffer set. A tensor of a type that is neither is refused before
 * anything uploads.
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
import { ggmlType } from "../formats/tensor.ts";

/** One layer's weights. */
export interface LayerWeights {
  attnNorm: GPUBuffer; // (dim,) f32
  wq: GpuWeight; // (q_dim, dim)
  wk: GpuWeight; // (kv_dim, dim)
  wv: GpuWeight; // (kv_dim, dim)
  wo: GpuWeight; // (dim, q_dim)
  ffnNorm: GPUBuffer; // (dim,) f32
  wGate: GpuWeight; // (ffn_dim, dim)
  wUp: GpuWeight; // (ffn_dim, dim)
  wDown: GpuWeight; // (dim, ffn_dim)
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

/** The tensors of one layer, as `blk.<l>.<name>.weight`. */
const LAYER_TENSORS = [
  "attn_norm",
  "attn_q",
  "attn_k",
  "attn_v",
  "attn_output",
  "ffn_norm",
  "ffn_gate",
  "ffn_up",
  "ffn_down",
];

/**
 * Throws a `TypeError` naming the first tensor the model uses whose type
 * the GPU neither keeps nor the Wasm core dequantizes (IQ*, TQ*, ...).
 */
export function checkWeightTypes(file: ModelFile): void {
  const c = file.config;
  const names = [
    "token_embd.weight",
    ...Array.from(
      { length: c.nLayers },
      (_, l) => LAYER_TENSORS.map((n) => `blk.${l}.${n}.weight`),
    ).flat(),
    "output_norm.weight",
    ...(c.tiedEmbeddings ? [] : ["output.weight"]),
  ];
  for (const name of names) {
    const t = file.tensor(name);
    const kept = t.shape.length > 1 && GPU_WEIGHT_TYPES[t.type];
    if (!kept && !ggmlType(t.type).dequantizable) {
      throw new TypeError(
        `Cannot load model ${file.name}: tensor ${name} has type ${t.type}, which alisa can neither keep on the GPU nor dequantize yet`,
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
  checkWeightTypes(file);
  const c = file.config;
  const total = file.tensors.length;
  let loaded = 0;
  const done = (tensor: string) =>
    onProgress?.({ loaded: ++loaded, total, tensor });

  const matrix = async (name: string): Promise<GpuWeight> => {
    const t = file.tensor(name);
    const [rows, cols] = t.shape;
    const how = gpuWeightOf(t.type);
    const data = how.read === "raw"
      ? await file.readRaw(name)
      : await file.read(name, how.read);
    const w = uploadWeight(set, name, how.type, rows, cols, data);
    done(name);
    return w;
  };
  const vector = async (name: string): Promise<GPUBuffer> => {
    const v = await file.read(name, "f32") as Float32Array;
    done(name);
    return set.buffer(name, v.byteLength, v);
  };

  const tokenEmbd = await matrix("token_embd.weight");
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blk.${l}.`;
    layers.push({
      attnNorm: await vector(`${b}attn_norm.weight`),
      wq: await matrix(`${b}attn_q.weight`),
      wk: await matrix(`${b}attn_k.weight`),
      wv: await matrix(`${b}attn_v.weight`),
      wo: await matrix(`${b}attn_output.weight`),
      ffnNorm: await vector(`${b}ffn_norm.weight`),
      wGate: await matrix(`${b}ffn_gate.weight`),
      wUp: await matrix(`${b}ffn_up.weight`),
      wDown: await matrix(`${b}ffn_down.weight`),
    });
  }
  const outputNorm = await vector("output_norm.weight");
  const output = c.tiedEmbeddings ? tokenEmbd : await matrix("output.weight");
  return { tokenEmbd, layers, outputNorm, output };
}
