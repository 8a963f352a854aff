/**
 * Hugging Face model directories: `config.json`, `model.safetensors` or a
 * sharded `model.safetensors.index.json`, and the tokenizer files. Tensor
 * names are mapped to GGUF's (`model.layers.3.self_attn.q_proj.weight` ->
 * `blk.3.attn_q.weight`) so the engine sees one naming.
 *
 * RoPE layout: Hugging Face Llama checkpoints store Q and K rows in
 * rotate-half order, GGUF (`convert_hf_to_gguf.py`) permutes them to
 * interleaved pairs. By default the loader applies the same permutation while
 * reading, so HF and GGUF copies of a model give identical Q/K weights and the
 * config says `ropeLayout: "interleaved"`; with `permuteQK: false` the rows
 * stay as stored and the config says `"rotate_half"`. Qwen, Gemma and Phi-3
 * are rotate-half in both formats and are never permuted.
 *
 * Gemma stores its RMSNorm weights as w - 1 (its norm multiplies by 1 + w);
 * they are read back as w, as llama.cpp's converter writes them.
 *
 * @module
 */
import {
  ARCH_TRAITS,
  configFromHf,
  type ModelConfig,
  type TokenizerInfo,
} from "./config.ts";
import { tokenizerInfo, type Vocabulary } from "../tokenizer/vocab.ts";
import { vocabFromHfDir } from "../tokenizer/vocab_hf.ts";
import { exists, readJson } from "./json.ts";
import { SafetensorsFile, type SafetensorsTensorInfo } from "./safetensors.ts";
import { joinPath as join } from "../platform/fs.ts";

const LAYER_NAMES: Record<string, string> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj.weight": "attn_q.weight",
  "self_attn.k_proj.weight": "attn_k.weight",
  "self_attn.v_proj.weight": "attn_v.weight",
  "self_attn.o_proj.weight": "attn_output.weight",
  "self_attn.q_proj.bias": "attn_q.bias",
  "self_attn.k_proj.bias": "attn_k.bias",
  "self_attn.v_proj.bias": "attn_v.bias",
  "self_attn.o_proj.bias": "attn_output.bias",
  "self_attn.q_norm.weight": "attn_q_norm.weight",
  "self_attn.k_norm.weight": "attn_k_norm.weight",
  "self_attn.qkv_proj.weight": "attn_qkv.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight",
  "mlp.up_proj.weight": "ffn_up.weight",
  "mlp.gate_up_proj.weight": "ffn_up.weight",
  "mlp.down_proj.weight": "ffn_down.weight",
};

/**
 * Gemma 2/3 norm the attention and MLP outputs too: there
 * `post_attention_layernorm` is the attention output's norm and
 * `pre_feedforward_layernorm` the MLP input's (llama.cpp's names).
 */
const GEMMA_LAYER_NAMES: Record<string, string> = {
  ...LAYER_NAMES,
  "post_attention_layernorm.weight": "post_attention_norm.weight",
  "pre_feedforward_layernorm.weight": "ffn_norm.weight",
  "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
};

/**
 * The GGUF name of a Hugging Face tensor, `null` for tensors that carry no
 * weights (`rotary_emb.inv_freq`), or the name unchanged when unknown.
 * `modelType` (config.json's) picks Gemma's names for its extra norms.
 */
export function ggufName(hf: string, modelType = "llama"): string | null {
  if (hf === "model.embed_tokens.weight") return "token_embd.weight";
  if (hf === "model.norm.weight") return "output_norm.weight";
  if (hf === "lm_head.weight") return "output.weight";
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (m) {
    if (m[2].endsWith("rotary_emb.inv_freq")) return null;
    const table = modelType.startsWith("gemma")
      ? GEMMA_LAYER_NAMES
      : LAYER_NAMES;
    const n = table[m[2]];
    if (n) return `blk.${m[1]}.${n}`;
  }
  return hf;
}

/**
 * Row order that turns rotate-half Q/K rows into interleaved pairs, as
 * `convert_hf_to_gguf.py`'s `permute`: for head h, new row h*d + 2i + s
 * comes from old row h*d + s*d/2 + i.
 */
export function rotateHalfToInterleavedRows(
  nHeads: number,
  headDim: number,
): Int32Array {
  const rows = new Int32Array(nHeads * headDim);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        rows[h * headDim + 2 * i + s] = h * headDim + s * half + i;
      }
    }
  }
  return rows;
}

/** A tensor of an HF directory, under its GGUF name. */
export interface HfTensor extends SafetensorsTensorInfo {
  /** The name in the checkpoint. */
  hfName: string;
  /** The shard it lives in. */
  file: SafetensorsFile;
  /** Row permutation applied while reading (Q/K of Llama), or null. */
  rowOrder: Int32Array | null;
  /** Values are stored minus one (Gemma's RMSNorm weights): add it back. */
  plusOne: boolean;
}

/** Options for {@linkcode HfModelDir.open}. */
export interface HfOpenOptions {
  /** Permute Llama Q/K rows to interleaved RoPE order (default true). */
  permuteQK?: boolean;
}

/** An open Hugging Face model directory. */
export class HfModelDir {
  private readonly byName: Map<string, HfTensor>;
  /** What the tokenizer is: a summary of {@linkcode HfModelDir.vocabulary}. */
  readonly tokenizer: TokenizerInfo;

  private constructor(
    readonly dir: string,
    readonly configJson: Record<string, unknown>,
    readonly config: ModelConfig,
    /** The tokenizer files' vocabulary (see `vocabFromHfDir`), or null when there are none. */
    readonly vocabulary: Vocabulary | null,
    readonly tensors: HfTensor[],
    readonly files: SafetensorsFile[],
  ) {
    this.byName = new Map(tensors.map((t) => [t.name, t]));
    this.tokenizer = tokenizerInfo(vocabulary);
  }

  /** Opens `dir`: reads the configs and every shard's header. */
  static async open(
    dir: string,
    options: HfOpenOptions = {},
  ): Promise<HfModelDir> {
    const configJson = await readJson(join(dir, "config.json"));
    const indexPath = join(dir, "model.safetensors.index.json");
    let shardNames: string[];
    if (await exists(indexPath)) {
      const index = await readJson(indexPath);
      const map = index.weight_map;
      if (typeof map !== "object" || map === null) {
        throw new TypeError(`${indexPath} has no weight_map`);
      }
      shardNames = [...new Set(Object.values(map as Record<string, string>))];
      for (const s of shardNames) {
        if (typeof s !== "string" || s.includes("/") || s.includes("\\")) {
          throw new TypeError(
            `${indexPath} names an invalid shard ${JSON.stringify(s)}`,
          );
        }
      }
    } else if (await exists(join(dir, "model.safetensors"))) {
      shardNames = ["model.safetensors"];
    } else {
      throw new TypeError(
        `${dir} has neither model.safetensors nor model.safetensors.index.json`,
      );
    }
    const files: SafetensorsFile[] = [];
    try {
      for (const s of shardNames.sort()) {
        files.push(await SafetensorsFile.open(join(dir, s)));
      }
      const tensors: HfTensor[] = [];
      const seen = new Set<string>();
      const modelType = String(configJson.model_type);
      for (const file of files) {
        for (const t of file.tensors) {
          const name = ggufName(t.name, modelType);
          if (name === null) continue;
          if (seen.has(name)) {
            throw new TypeError(`tensor ${t.name} appears in two shards`);
          }
          seen.add(name);
          tensors.push({
            ...t,
            name,
            hfName: t.name,
            file,
            rowOrder: null,
            plusOne: false,
          });
        }
      }
      const permute = (options.permuteQK ?? true) &&
        (modelType === "llama" || modelType === "mistral");
      const config = configFromHf(
        configJson,
        tensors,
        permute ? "interleaved" : "rotate_half",
      );
      if (ARCH_TRAITS[config.arch].hfNormPlusOne) {
        for (const t of tensors) t.plusOne = t.name.endsWith("norm.weight");
      }
      if (permute) {
        const q = rotateHalfToInterleavedRows(config.nHeads, config.headDim);
        const k = rotateHalfToInterleavedRows(config.nKvHeads, config.headDim);
        for (const t of tensors) {
          if (/^blk\.\d+\.attn_q\.(weight|bias)$/.test(t.name)) t.rowOrder = q;
          if (/^blk\.\d+\.attn_k\.(weight|bias)$/.test(t.name)) t.rowOrder = k;
        }
      }
      const vocabulary = await vocabFromHfDir(dir);
      return new HfModelDir(
        dir,
        configJson,
        config,
        vocabulary,
        tensors,
        files,
      );
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
  }

  /** The tensor called `name` (GGUF naming). */
  tensor(name: string): HfTensor {
    const t = this.byName.get(name);
    if (!t) {
      throw new TypeError(
        `Cannot load model ${this.dir}: it has no tensor ${name}`,
      );
    }
    return t;
  }

  /** Whether the directory has a tensor called `name` (GGUF naming). */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The stored bytes of a tensor, rows permuted where `rowOrder` says. */
  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.tensor(name);
    const raw = await t.file.read(t);
    if (!t.rowOrder) return raw;
    const rows = t.rowOrder.length;
    if (t.shape[0] !== rows) {
      throw new TypeError(
        `tensor ${t.hfName} has ${
          t.shape[0]
        } rows, expected ${rows} for its heads`,
      );
    }
    const rowBytes = raw.length / rows;
    const out = new Uint8Array(raw.length);
    for (let r = 0; r < rows; r++) {
      const from = t.rowOrder[r] * rowBytes;
      out.set(raw.subarray(from, from + rowBytes), r * rowBytes);
    }
    return out;
  }

  close() {
    for (const f of this.files) f.close();
  }
}
