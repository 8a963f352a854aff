/**
 * The model configuration every format is reduced to (Llama family: `llama`
 * with GQA, and `qwen2` with Q/K/V biases), derived from GGUF metadata or a
 * Hugging Face `config.json`, and checked for consistency.
 *
 * @module
 */
import type { GgufValue } from "./gguf.ts";

/** Which pairs of a head's dimensions RoPE rotates together. */
export type RopeLayout =
  /** Pairs (2i, 2i+1): GGUF `llama` weights, llama.cpp's `LLAMA_ROPE_TYPE_NORM`. */
  | "interleaved"
  /** Pairs (i, i + d/2): Hugging Face checkpoints, Qwen2, GPT-NeoX. */
  | "rotate_half";

/** Architectures alisa runs. */
export const SUPPORTED_ARCHS = ["llama", "qwen2"] as const;
/** One of {@linkcode SUPPORTED_ARCHS}. */
export type Arch = typeof SUPPORTED_ARCHS[number];

/** A Llama-family model's shape and constants. */
export interface ModelConfig {
  arch: Arch;
  /** Embedding width. */
  dim: number;
  nLayers: number;
  nHeads: number;
  /** Key/value heads (GQA: divides `nHeads`). */
  nKvHeads: number;
  /** Per-head width of Q, K and V. */
  headDim: number;
  /** Hidden width of the SiLU-gated MLP. */
  ffnDim: number;
  vocabSize: number;
  /** Trained context length (positions). */
  contextLength: number;
  ropeTheta: number;
  /** Dimensions of each head that RoPE rotates (all of them for Llama). */
  ropeDim: number;
  ropeLayout: RopeLayout;
  normEps: number;
  /** The output projection reuses the token embedding. */
  tiedEmbeddings: boolean;
  /** Q/K/V projections have biases (Qwen2). */
  attnBias: boolean;
}

/** What the tokenizer is, as far as loading can tell. */
export interface TokenizerInfo {
  /** `llama` (SentencePiece BPE) or `gpt2` (byte-level BPE), as GGUF names them. */
  model: string;
  vocabSize: number;
  bosId: number | null;
  eosId: number | null;
}

/** An f32 value printed as the shortest decimal that rounds back to it. */
export function shortestF32(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const y = Number(f.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return f;
}

function positiveInt(v: unknown, what: string): number {
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n <= 0) {
    throw new TypeError(`${what} must be a positive integer, got ${String(v)}`);
  }
  return n;
}

function positiveNumber(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new TypeError(`${what} must be a positive number, got ${String(v)}`);
  }
  return v;
}

/** Checks the relations between the numbers of a config. */
export function checkConfig(c: ModelConfig): ModelConfig {
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new TypeError(
      `${c.nHeads} attention heads is not a multiple of ${c.nKvHeads} KV heads`,
    );
  }
  if (c.headDim % 2 !== 0 || c.ropeDim % 2 !== 0 || c.ropeDim > c.headDim) {
    throw new TypeError(
      `head dimension ${c.headDim} with RoPE dimension ${c.ropeDim} is not supported (both even, RoPE <= head)`,
    );
  }
  return c;
}

function archOf(name: unknown, where: string): Arch {
  if (typeof name !== "string") {
    throw new TypeError(`${where} does not name an architecture`);
  }
  const arch = name === "mistral" ? "llama" : name;
  if (!(SUPPORTED_ARCHS as readonly string[]).includes(arch)) {
    throw new TypeError(
      `architecture ${JSON.stringify(name)} is not supported (supported: ${
        SUPPORTED_ARCHS.join(", ")
      })`,
    );
  }
  return arch as Arch;
}

/** A tensor's name and shape, as config derivation needs them. */
export interface ShapeOf {
  name: string;
  shape: number[];
}

/** Derives the config from GGUF metadata and tensor list. */
export function configFromGguf(
  md: Map<string, GgufValue>,
  tensors: ShapeOf[],
): ModelConfig {
  const arch = archOf(
    md.get("general.architecture"),
    "GGUF metadata general.architecture",
  );
  const key = (k: string) => `${arch}.${k}`;
  const need = (k: string) => {
    const v = md.get(key(k));
    if (v === undefined) {
      throw new TypeError(`metadata ${key(k)} is missing`);
    }
    return v;
  };
  const dim = positiveInt(need("embedding_length"), key("embedding_length"));
  const nHeads = positiveInt(
    need("attention.head_count"),
    key("attention.head_count"),
  );
  const nKvHeads = positiveInt(
    md.get(key("attention.head_count_kv")) ?? nHeads,
    key("attention.head_count_kv"),
  );
  const headDim = positiveInt(
    md.get(key("attention.key_length")) ?? dim / nHeads,
    key("attention.key_length"),
  );
  const embd = tensors.find((t) => t.name === "token_embd.weight");
  const tokens = md.get("tokenizer.ggml.tokens");
  const vocabSize = positiveInt(
    md.get(key("vocab_size")) ?? embd?.shape[0] ??
      (Array.isArray(tokens) ? tokens.length : undefined),
    key("vocab_size"),
  );
  const names = new Set(tensors.map((t) => t.name));
  // What this engine does not implement is refused here, at load, rather
  // than falling back to plain RoPE or full attention: that would load
  // and silently give wrong output.
  if (names.has("rope_freqs.weight")) {
    throw new TypeError(
      "tensor rope_freqs.weight (Llama 3.1-style RoPE frequency scaling) is not supported yet",
    );
  }
  const scaling = md.get(key("rope.scaling.type"));
  if (scaling !== undefined && scaling !== "none") {
    throw new TypeError(
      `metadata ${key("rope.scaling.type")} = ${
        JSON.stringify(scaling)
      } (RoPE scaling) is not supported yet`,
    );
  }
  const factor = md.get(key("rope.scaling.factor"));
  if (factor !== undefined && factor !== 1 && factor !== 0) {
    throw new TypeError(
      `metadata ${
        key("rope.scaling.factor")
      } = ${factor} (RoPE scaling) is not supported yet`,
    );
  }
  const window = md.get(key("attention.sliding_window"));
  if (window !== undefined && window !== 0) {
    throw new TypeError(
      `metadata ${
        key("attention.sliding_window")
      } = ${window} (sliding-window attention) is not supported yet`,
    );
  }
  return checkConfig({
    arch,
    dim,
    nLayers: positiveInt(need("block_count"), key("block_count")),
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: positiveInt(
      need("feed_forward_length"),
      key("feed_forward_length"),
    ),
    vocabSize,
    contextLength: positiveInt(need("context_length"), key("context_length")),
    ropeTheta: shortestF32(
      positiveNumber(
        md.get(key("rope.freq_base")) ?? 10000,
        key("rope.freq_base"),
      ),
    ),
    ropeDim: positiveInt(
      md.get(key("rope.dimension_count")) ?? headDim,
      key("rope.dimension_count"),
    ),
    // llama.cpp: LLAMA_ROPE_TYPE_NORM for llama, NEOX for qwen2.
    ropeLayout: arch === "llama" ? "interleaved" : "rotate_half",
    normEps: shortestF32(positiveNumber(
      need("attention.layer_norm_rms_epsilon"),
      key("attention.layer_norm_rms_epsilon"),
    )),
    tiedEmbeddings: !names.has("output.weight"),
    attnBias: names.has("blk.0.attn_q.bias"),
  });
}

/** Derives the config from a Hugging Face `config.json` and tensor list. */
export function configFromHf(
  json: Record<string, unknown>,
  tensors: ShapeOf[],
  ropeLayout: RopeLayout,
): ModelConfig {
  const arch = archOf(json.model_type, "config.json model_type");
  const need = (k: string) => {
    if (json[k] === undefined) throw new TypeError(`config.json has no ${k}`);
    return json[k];
  };
  const dim = positiveInt(need("hidden_size"), "hidden_size");
  const nHeads = positiveInt(
    need("num_attention_heads"),
    "num_attention_heads",
  );
  const headDim = positiveInt(json.head_dim ?? dim / nHeads, "head_dim");
  const names = new Set(tensors.map((t) => t.name));
  if (json.rope_scaling && typeof json.rope_scaling === "object") {
    throw new TypeError(
      `config.json rope_scaling ${
        JSON.stringify(json.rope_scaling)
      } is not supported yet`,
    );
  }
  const ropeTheta = hfRopeTheta(json);
  // Settings this engine does not implement: refused, never defaulted.
  for (const k of ["hidden_act", "hidden_activation"]) {
    const act = json[k];
    if (act !== undefined && act !== null && act !== "silu") {
      throw new TypeError(
        `config.json ${k} ${
          JSON.stringify(act)
        } is not supported yet (silu only)`,
      );
    }
  }
  const partial = json.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new TypeError(
      `config.json partial_rotary_factor ${partial} (partial RoPE) is not supported yet`,
    );
  }
  if (json.mlp_bias === true) {
    throw new TypeError("config.json mlp_bias true is not supported yet");
  }
  const sw = json.sliding_window;
  if (
    typeof sw === "number" && json.use_sliding_window !== false &&
    sw < Number(json.max_position_embeddings)
  ) {
    throw new TypeError(
      `config.json sliding_window ${sw} (sliding-window attention) is not supported yet`,
    );
  }
  return checkConfig({
    arch,
    dim,
    nLayers: positiveInt(need("num_hidden_layers"), "num_hidden_layers"),
    nHeads,
    nKvHeads: positiveInt(
      json.num_key_value_heads ?? nHeads,
      "num_key_value_heads",
    ),
    headDim,
    ffnDim: positiveInt(need("intermediate_size"), "intermediate_size"),
    vocabSize: positiveInt(need("vocab_size"), "vocab_size"),
    contextLength: positiveInt(
      need("max_position_embeddings"),
      "max_position_embeddings",
    ),
    ropeTheta,
    ropeDim: headDim,
    ropeLayout,
    normEps: positiveNumber(need("rms_norm_eps"), "rms_norm_eps"),
    tiedEmbeddings: !names.has("output.weight"),
    attnBias: names.has("blk.0.attn_q.bias"),
  });
}

/**
 * The RoPE base of a `config.json`: top-level `rope_theta`, or
 * `rope_parameters` (transformers 5 keeps the RoPE settings there). A
 * `rope_type` other than `default`, any other RoPE parameter, or two
 * different bases are refused rather than read as the default base.
 */
export function hfRopeTheta(json: Record<string, unknown>): number {
  const p = json.rope_parameters;
  let theta = json.rope_theta;
  if (p !== undefined && p !== null) {
    if (typeof p !== "object" || Array.isArray(p)) {
      throw new TypeError("config.json rope_parameters is not an object");
    }
    const rp = p as Record<string, unknown>;
    const type = rp.rope_type ?? rp.type ?? "default";
    if (type !== "default") {
      throw new TypeError(
        `config.json rope_parameters.rope_type ${
          JSON.stringify(type)
        } (RoPE scaling) is not supported yet`,
      );
    }
    const other = Object.keys(rp).filter((k) =>
      !["rope_type", "type", "rope_theta"].includes(k)
    );
    if (other.length) {
      throw new TypeError(
        `config.json rope_parameters ${other.join(", ")} ${
          other.length === 1 ? "is" : "are"
        } not supported yet`,
      );
    }
    if (rp.rope_theta !== undefined) {
      if (theta !== undefined && theta !== rp.rope_theta) {
        throw new TypeError(
          `config.json rope_theta ${theta} and rope_parameters.rope_theta ${rp.rope_theta} disagree`,
        );
      }
      theta = rp.rope_theta;
    }
  }
  return positiveNumber(theta ?? 10000, "rope_theta");
}

/** Tensors a model of `config` must have, with their row-major shapes. */
export function expectedTensors(c: ModelConfig): ShapeOf[] {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const out: ShapeOf[] = [
    { name: "token_embd.weight", shape: [c.vocabSize, c.dim] },
    { name: "output_norm.weight", shape: [c.dim] },
  ];
  if (!c.tiedEmbeddings) {
    out.push({ name: "output.weight", shape: [c.vocabSize, c.dim] });
  }
  for (let i = 0; i < c.nLayers; i++) {
    const b = `blk.${i}.`;
    out.push(
      { name: `${b}attn_norm.weight`, shape: [c.dim] },
      { name: `${b}attn_q.weight`, shape: [q, c.dim] },
      { name: `${b}attn_k.weight`, shape: [kv, c.dim] },
      { name: `${b}attn_v.weight`, shape: [kv, c.dim] },
      { name: `${b}attn_output.weight`, shape: [c.dim, q] },
      { name: `${b}ffn_norm.weight`, shape: [c.dim] },
      { name: `${b}ffn_gate.weight`, shape: [c.ffnDim, c.dim] },
      { name: `${b}ffn_up.weight`, shape: [c.ffnDim, c.dim] },
      { name: `${b}ffn_down.weight`, shape: [c.dim, c.ffnDim] },
    );
    if (c.attnBias) {
      out.push(
        { name: `${b}attn_q.bias`, shape: [q] },
        { name: `${b}attn_k.bias`, shape: [kv] },
        { name: `${b}attn_v.bias`, shape: [kv] },
      );
    }
  }
  return out;
}

/** Throws a `TypeError` naming the first missing or misshapen tensor. */
export function checkTensors(c: ModelConfig, tensors: ShapeOf[]): void {
  const have = new Map(tensors.map((t) => [t.name, t.shape]));
  for (const want of expectedTensors(c)) {
    const shape = have.get(want.name);
    if (!shape) throw new TypeError(`tensor ${want.name} is missing`);
    if (shape.join(",") !== want.shape.join(",")) {
      throw new TypeError(
        `tensor ${want.name} has shape [${shape}], expected [${want.shape}]`,
      );
    }
  }
}
