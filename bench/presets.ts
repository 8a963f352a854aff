/**
 * Model shapes for the throughput benchmark where KV matters: synthetic
 * Llama-architecture GGUF files with seeded random weights (FlexGen's
 * dummy-weight practice: a step's cost does not depend on the weights'
 * values), written at bench time into a cache directory rather than
 * committed, so llama.cpp can read the very same file. The tokenizer
 * (vocabulary 4096) is the embedded Austen model's, copied from its GGUF.
 *
 * | preset | layers | dim | heads / KV heads | ffn | KV bytes per token (f16) |
 * | --- | ---: | ---: | ---: | ---: | ---: |
 * | `austen` | 6 | 256 | 8 / 4 | 768 | 6 x 2 x 128 x 2 = 3,072 |
 * | `mha-small` | 8 | 512 | 8 / 8 (MHA, OPT-like) | 1376 | 8 x 2 x 512 x 2 = 16,384 |
 * | `gqa-small` | 8 | 512 | 8 / 2 (GQA 4:1, Llama-3-like) | 1376 | 8 x 2 x 128 x 2 = 4,096 |
 * | `mha-1024` | 12 | 1024 | 16 / 16 (MHA; GPU machines) | 2752 | 12 x 2 x 1024 x 2 = 49,152 |
 *
 * `austen` is the embedded model itself; the others are q8_0 except the
 * norms (f32), with weights ~ N(0, 0.02) and norms 1.
 *
 * @module
 */
import { defaultModelPath } from "../src/api/default_model.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import { quantizeQ8_0 } from "../src/kv/int8.ts";
import {
  buildGguf,
  GGML,
  type GgufKv,
  GT,
  kvFromParsed,
  tensorBytes,
} from "../tests/_gguf_writer.ts";
import { rng } from "../tests/_gpu.ts";

/** A synthetic model's shape. */
export interface PresetShape {
  nLayers: number;
  dim: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  ctx: number;
}

/** The presets besides `austen` (the embedded model). */
export const PRESETS: Record<string, PresetShape> = {
  "mha-small": {
    nLayers: 8,
    dim: 512,
    nHeads: 8,
    nKvHeads: 8,
    ffnDim: 1376,
    ctx: 2048,
  },
  "gqa-small": {
    nLayers: 8,
    dim: 512,
    nHeads: 8,
    nKvHeads: 2,
    ffnDim: 1376,
    ctx: 2048,
  },
  "mha-1024": {
    nLayers: 12,
    dim: 1024,
    nHeads: 16,
    nKvHeads: 16,
    ffnDim: 2752,
    ctx: 2048,
  },
};

/** Every preset name. */
export const PRESET_NAMES = ["austen", ...Object.keys(PRESETS)];

/** KV bytes per token of a shape (K and V, f16, every layer). */
export function kvBytesPerToken(s: PresetShape): number {
  return s.nLayers * 2 * s.nKvHeads * (s.dim / s.nHeads) * 2;
}

/**
 * The GGUF file of preset `name` (written once into `dir`, default the
 * system's temp directory): its path. `austen`: the embedded model.
 */
export async function presetModel(name: string, dir?: string): Promise<string> {
  if (name === "austen") return defaultModelPath();
  const s = PRESETS[name];
  if (!s) {
    throw new TypeError(
      `unknown preset ${JSON.stringify(name)} (known: ${
        PRESET_NAMES.join(", ")
      })`,
    );
  }
  const base = dir ?? Deno.env.get("TMPDIR") ?? "/tmp";
  const path = `${base}/alisa-preset-${name}-v1.gguf`;
  try {
    await Deno.stat(path);
    return path;
  } catch { /* write it */ }
  const src = await openModelFile(defaultModelPath());
  const g = src.gguf!;
  const kvs: GgufKv[] = [];
  for (const [k, v] of g.metadata) {
    if (k.startsWith("tokenizer.")) {
      kvs.push(kvFromParsed(k, g.metadataTypes.get(k)!, v));
    }
  }
  src.close();
  const hd = s.dim / s.nHeads, kvDim = s.nKvHeads * hd, V = 4096;
  kvs.unshift(
    { key: "general.architecture", type: GT.STRING, value: "llama" },
    { key: "general.name", type: GT.STRING, value: `alisa-${name}` },
    { key: "general.alignment", type: GT.U32, value: 32 },
    { key: "llama.context_length", type: GT.U32, value: s.ctx },
    { key: "llama.embedding_length", type: GT.U32, value: s.dim },
    { key: "llama.block_count", type: GT.U32, value: s.nLayers },
    { key: "llama.feed_forward_length", type: GT.U32, value: s.ffnDim },
    { key: "llama.rope.dimension_count", type: GT.U32, value: hd },
    { key: "llama.attention.head_count", type: GT.U32, value: s.nHeads },
    { key: "llama.attention.head_count_kv", type: GT.U32, value: s.nKvHeads },
    {
      key: "llama.attention.layer_norm_rms_epsilon",
      type: GT.F32,
      value: 1e-5,
    },
    { key: "llama.rope.freq_base", type: GT.F32, value: 10000 },
    { key: "llama.vocab_size", type: GT.U32, value: V },
  );
  // Tensors: [name, rows, cols] (cols contiguous), q8_0 except norms.
  const mats: [string, number, number][] = [["token_embd.weight", V, s.dim]];
  const norms: string[] = [];
  for (let l = 0; l < s.nLayers; l++) {
    const b = `blk.${l}.`;
    norms.push(`${b}attn_norm.weight`, `${b}ffn_norm.weight`);
    mats.push(
      [`${b}attn_q.weight`, s.dim, s.dim],
      [`${b}attn_k.weight`, kvDim, s.dim],
      [`${b}attn_v.weight`, kvDim, s.dim],
      [`${b}attn_output.weight`, s.dim, s.dim],
      [`${b}ffn_gate.weight`, s.ffnDim, s.dim],
      [`${b}ffn_up.weight`, s.ffnDim, s.dim],
      [`${b}ffn_down.weight`, s.dim, s.ffnDim],
    );
  }
  norms.push("output_norm.weight");
  mats.push(["output.weight", V, s.dim]);
  const tensors = [
    ...mats.map(([n, rows, cols]) => ({
      name: n,
      ne: [cols, rows],
      typeId: GGML.Q8_0.id,
    })),
    ...norms.map((n) => ({ name: n, ne: [s.dim], typeId: GGML.F32.id })),
  ];
  const built = buildGguf({ kvs, tensors, alignment: 32 });
  // Fill the data section: packed, 32-aligned, in tensor order.
  const bytes = built.bytes;
  const r = rng(0xa115a + s.dim * 31 + s.nLayers);
  let off = 0;
  for (const t of tensors) {
    off = Math.ceil(off / 32) * 32;
    const n = t.ne.reduce((a, b) => a * b, 1);
    let data: Uint8Array;
    if (t.typeId === GGML.F32.id) {
      data = new Uint8Array(new Float32Array(n).fill(1).buffer);
    } else {
      const f = r.floats(n, 0.02);
      data = quantizeQ8_0(f);
    }
    bytes.set(data, built.dataOffset + off);
    off += tensorBytes(t.typeId, t.ne);
  }
  await Deno.writeFile(path + ".part", bytes);
  await Deno.rename(path + ".part", path);
  return path;
}
