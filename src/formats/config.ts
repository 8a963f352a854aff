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
  /** Pairs (i, i + d/2): Hugging Face checkpoints, Qwen, Gemma, Phi-3 (NeoX). */
  | "rotate_half";

/** Architectures alisa runs, by their GGUF names. */
export const SUPPORTED_ARCHS = [
  "llama",
  "qwen2",
  "qwen3",
  "gemma2",
  "gemma3",
  "phi3",
] as const;
/** One of {@linkcode SUPPORTED_ARCHS}. */
export type Arch = typeof SUPPORTED_ARCHS[number];

/** The gated MLP's activation: `act(gate) * up`. */
export type Activation = "silu" | "gelu_tanh";

/**
 * How an architecture differs from Llama, in one table (candle keeps one
 * file per model; here the forward pass is one and reads these traits).
 */
export interface ArchTraits {
  /** RoPE pair layout of its GGUF weights (llama.cpp's rope type). */
  ggufRope: RopeLayout;
  act: Activation;
  /** Per-head RMSNorm of Q and K before RoPE (`attn_q_norm`, `attn_k_norm`). */
  qkNorm: boolean;
  /** RMSNorm of the attention and MLP outputs before each residual add. */
  postNorms: boolean;
  /** Embeddings are multiplied by sqrt(dim). */
  embedScale: boolean;
  /**
   * Hugging Face stores RMSNorm weights as w - 1 (Gemma: the norm
   * multiplies by 1 + w); GGUF stores w.
   */
  hfNormPlusOne: boolean;
  /** Q, K, V in one `attn_qkv` tensor and gate, up in one `ffn_up` (Phi-3). */
  fused: boolean;
  /**
   * Which layers use the sliding window when the file gives a window but
   * no per-layer list (llama.cpp's built-in patterns): every layer
   * (Mistral), even layers (Gemma 2), all but every 6th (Gemma 3).
   */
  swaLayer: (layer: number) => boolean;
}

const LLAMA_TRAITS: ArchTraits = {
  ggufRope: "interleaved",
  act: "silu",
  qkNorm: false,
  postNorms: false,
  embedScale: false,
  hfNormPlusOne: false,
  fused: false,
  swaLayer: () => true,
};

/** The per-architecture differences. */
export const ARCH_TRAITS: Readonly<Record<Arch, ArchTraits>> = {
  llama: LLAMA_TRAITS,
  qwen2: { ...LLAMA_TRAITS, ggufRope: "rotate_half" },
  qwen3: { ...LLAMA_TRAITS, ggufRope: "rotate_half", qkNorm: true },
  gemma2: {
    ...LLAMA_TRAITS,
    ggufRope: "rotate_half",
    act: "gelu_tanh",
    postNorms: true,
    embedScale: true,
    hfNormPlusOne: true,
    swaLayer: (l) => l % 2 === 0,
  },
  gemma3: {
    ...LLAMA_TRAITS,
    ggufRope: "rotate_half",
    act: "gelu_tanh",
    qkNorm: true,
    postNorms: true,
    embedScale: true,
    hfNormPlusOne: true,
    swaLayer: (l) => (l + 1) % 6 !== 0,
  },
  phi3: { ...LLAMA_TRAITS, ggufRope: "rotate_half", fused: true },
};

/**
 * RoPE frequency scaling: `linear` divides every frequency by `factor`;
 * `llama3` (Llama 3.1+) divides the low frequencies by `factor`, keeps the
 * high ones and blends between (see {@linkcode ropeFreqDivisors}).
 */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    /** Context length the base model was trained at. */
    originalContext: number;
  };

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
  /** Hidden width of the gated MLP. */
  ffnDim: number;
  vocabSize: number;
  /** Trained context length (positions). */
  contextLength: number;
  /** RoPE base of the full-attention layers. */
  ropeTheta: number;
  /**
   * RoPE base of the sliding-window layers, which then rotate without
   * scaling (Gemma 3: 10000); null: every layer uses the global RoPE.
   */
  ropeThetaLocal: number | null;
  /** RoPE frequency scaling of the full-attention layers, or null. */
  ropeScaling: RopeScaling | null;
  /**
   * The file holds per-frequency divisors (GGUF `rope_freqs.weight`, how
   * llama.cpp's converter stores Llama 3.1 scaling): read at load.
   */
  ropeFreqsTensor: boolean;
  /** Dimensions of each head that RoPE rotates (the leading ones). */
  ropeDim: number;
  ropeLayout: RopeLayout;
  normEps: number;
  /** The output projection reuses the token embedding. */
  tiedEmbeddings: boolean;
  /** Q/K/V projections have biases (Qwen2). */
  attnBias: boolean;
  /** Attention scores are q.k times this (1/sqrt(headDim) unless the model says). */
  attnScale: number;
  /** Scores become cap * tanh(s / cap) (Gemma 2); 0: none. */
  attnSoftcap: number;
  /** Logits become cap * tanh(l / cap) (Gemma 2); 0: none. */
  finalSoftcap: number;
  /** Per layer: its sliding window in positions, 0 for full attention. */
  layerWindows: number[];
}

/** The traits of `c`'s architecture (activation, norms, fusion). */
export function traitsOf(c: { arch: Arch }): ArchTraits {
  return ARCH_TRAITS[c.arch];
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
  if (c.layerWindows.length !== c.nLayers) {
    throw new TypeError(
      `${c.layerWindows.length} per-layer attention windows for ${c.nLayers} layers`,
    );
  }
  return c;
}

/** GGUF / config.json architecture names alisa reads as one of its own. */
const ARCH_ALIASES: Record<string, Arch> = {
  mistral: "llama",
  gemma3_text: "gemma3",
};

function archOf(name: unknown, where: string): Arch {
  if (typeof name !== "string") {
    throw new TypeError(`${where} does not name an architecture`);
  }
  const arch = ARCH_ALIASES[name] ?? name;
  if (!(SUPPORTED_ARCHS as readonly string[]).includes(arch)) {
    throw new TypeError(
      `architecture ${
        JSON.stringify(name)
      } (${where}) is not supported (supported: ${
        SUPPORTED_ARCHS.join(", ")
      }, and mistral, gemma3_text)`,
    );
  }
  return arch as Arch;
}

/** A tensor's name and shape, as config derivation needs them. */
export interface ShapeOf {
  name: string;
  shape: number[];
}

/**
 * The attention scale llama.cpp uses for Gemma, which its GGUF does not
 * store: 1/sqrt(dim / heads) for the 27B models (recognized, as llama.cpp
 * does, by their layer count), 1/sqrt(head_dim) otherwise.
 */
function gemmaGgufScale(
  arch: Arch,
  nLayers: number,
  dim: number,
  nHeads: number,
  headDim: number,
): number {
  const is27b = (arch === "gemma2" && nLayers === 46) ||
    (arch === "gemma3" && nLayers === 62);
  return 1 / Math.sqrt(is27b ? dim / nHeads : headDim);
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
  const traits = ARCH_TRAITS[arch];
  const key = (k: string) => `${arch}.${k}`;
  const need = (k: string) => {
    const v = md.get(key(k));
    if (v === undefined) {
      throw new TypeError(`metadata ${key(k)} is missing`);
    }
    return v;
  };
  const num = (k: string, dflt: number) => {
    const v = md.get(key(k));
    if (v === undefined) return dflt;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new TypeError(
        `metadata ${key(k)} must be a number >= 0, got ${String(v)}`,
      );
    }
    return v;
  };
  const dim = positiveInt(need("embedding_length"), key("embedding_length"));
  const nLayers = positiveInt(need("block_count"), key("block_count"));
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
  const valueDim = md.get(key("attention.value_length"));
  if (valueDim !== undefined && Number(valueDim) !== headDim) {
    throw new TypeError(
      `metadata ${
        key("attention.value_length")
      } = ${valueDim} differs from the key length ${headDim}: not supported`,
    );
  }
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
  const ropeFreqsTensor = names.has("rope_freqs.weight");
  const scalingType = md.get(key("rope.scaling.type"));
  const factor = num("rope.scaling.factor", 0);
  let ropeScaling: RopeScaling | null = null;
  if (scalingType === "linear") {
    if (!(factor > 0)) {
      throw new TypeError(
        `metadata ${key("rope.scaling.type")} = "linear" needs ${
          key("rope.scaling.factor")
        } > 0`,
      );
    }
    if (factor !== 1) ropeScaling = { type: "linear", factor };
  } else if (scalingType !== undefined && scalingType !== "none") {
    throw new TypeError(
      `metadata ${key("rope.scaling.type")} = ${
        JSON.stringify(scalingType)
      } (RoPE scaling) is not supported yet (supported: none, linear, and Llama 3 scaling as rope_freqs.weight)`,
    );
  } else if (factor !== 0 && factor !== 1) {
    throw new TypeError(
      `metadata ${
        key("rope.scaling.factor")
      } = ${factor} without a scaling type is not supported`,
    );
  }
  // Sliding windows as llama.cpp runs them: Gemma 2 and 3 use the key
  // (Gemma 2 with its defaults when absent: window 4096, caps 50 and 30);
  // llama.cpp disables Phi-3's (its converter writes one for every Phi-3),
  // so it is ignored here too; llama.cpp's llama and qwen ignore the key
  // entirely, so a file that has one is refused rather than guessed at.
  const isGemma = arch === "gemma2" || arch === "gemma3";
  const gemma2 = arch === "gemma2";
  let window = num("attention.sliding_window", gemma2 ? 4096 : 0);
  if (window && !Number.isInteger(window)) {
    throw new TypeError(
      `metadata ${
        key("attention.sliding_window")
      } = ${window} is not an integer`,
    );
  }
  if (arch === "phi3") window = 0;
  else if (window && !isGemma) {
    throw new TypeError(
      `metadata ${
        key("attention.sliding_window")
      } = ${window}: llama.cpp does not apply a sliding window to ${arch}, so this file's meaning is unclear; not supported`,
    );
  }
  const pattern = md.get(key("attention.sliding_window_pattern"));
  const layerWindows = Array.from({ length: nLayers }, (_, l) => {
    if (!window) return 0;
    if (Array.isArray(pattern)) return pattern[l] ? window : 0;
    if (typeof pattern === "number" && pattern > 0) {
      // llama.cpp's set_swa_pattern(n): the last layer of every n is full.
      return l % pattern < pattern - 1 ? window : 0;
    }
    return traits.swaLayer(l) ? window : 0;
  });
  const ropeTheta = shortestF32(
    positiveNumber(
      md.get(key("rope.freq_base")) ?? 10000,
      key("rope.freq_base"),
    ),
  );
  // Gemma 3's local layers: llama.cpp uses a fixed 10000 unless the file
  // says. Elsewhere a local base of its own is refused unless it is the
  // global one.
  const swaBase = md.get(key("rope.freq_base_swa"));
  const ropeThetaLocal = arch === "gemma3"
    ? shortestF32(positiveNumber(swaBase ?? 10000, key("rope.freq_base_swa")))
    : null;
  if (
    arch !== "gemma3" && swaBase !== undefined &&
    shortestF32(positiveNumber(swaBase, key("rope.freq_base_swa"))) !==
      ropeTheta
  ) {
    throw new TypeError(
      `metadata ${
        key("rope.freq_base_swa")
      } = ${swaBase} (a RoPE base of its own for the sliding layers) is not supported for ${arch}`,
    );
  }
  return checkConfig({
    arch,
    dim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    ffnDim: positiveInt(
      need("feed_forward_length"),
      key("feed_forward_length"),
    ),
    vocabSize,
    contextLength: positiveInt(need("context_length"), key("context_length")),
    ropeTheta,
    ropeThetaLocal,
    ropeScaling,
    ropeFreqsTensor,
    ropeDim: positiveInt(
      md.get(key("rope.dimension_count")) ?? headDim,
      key("rope.dimension_count"),
    ),
    ropeLayout: traits.ggufRope,
    normEps: shortestF32(positiveNumber(
      need("attention.layer_norm_rms_epsilon"),
      key("attention.layer_norm_rms_epsilon"),
    )),
    tiedEmbeddings: !names.has("output.weight"),
    attnBias: names.has("blk.0.attn_q.bias"),
    attnScale: isGemma
      ? gemmaGgufScale(arch, nLayers, dim, nHeads, headDim)
      : 1 / Math.sqrt(headDim),
    attnSoftcap: num("attn_logit_softcapping", gemma2 ? 50 : 0),
    finalSoftcap: num("final_logit_softcapping", gemma2 ? 30 : 0),
    layerWindows,
  });
}

/** Derives the config from a Hugging Face `config.json` and tensor list. */
export function configFromHf(
  json: Record<string, unknown>,
  tensors: ShapeOf[],
  ropeLayout: RopeLayout,
): ModelConfig {
  if (json.model_type === "gemma3" && json.text_config) {
    throw new TypeError(
      'config.json model_type "gemma3" is the multimodal Gemma 3 (text_config and a vision tower): not supported; the text-only "gemma3_text" is',
    );
  }
  const arch = archOf(json.model_type, "config.json model_type");
  const traits = ARCH_TRAITS[arch];
  const need = (k: string) => {
    if (json[k] === undefined) throw new TypeError(`config.json has no ${k}`);
    return json[k];
  };
  const opt = (k: string) => json[k] === null ? undefined : json[k];
  const dim = positiveInt(need("hidden_size"), "hidden_size");
  const nLayers = positiveInt(need("num_hidden_layers"), "num_hidden_layers");
  const nHeads = positiveInt(
    need("num_attention_heads"),
    "num_attention_heads",
  );
  const headDim = positiveInt(opt("head_dim") ?? dim / nHeads, "head_dim");
  const names = new Set(tensors.map((t) => t.name));
  // Gemma 3's global base defaults to 1e6 in transformers.
  const rope = hfRope(json, arch === "gemma3" ? 1e6 : 10000);
  // Settings this engine does not implement: refused, never defaulted.
  for (const k of ["hidden_act", "hidden_activation"]) {
    const act = json[k];
    if (act === undefined || act === null) continue;
    const want = traits.act === "silu" ? ["silu"] : [
      "gelu_pytorch_tanh",
      "gelu_tanh",
    ];
    if (!want.includes(act as string)) {
      throw new TypeError(
        `config.json ${k} ${
          JSON.stringify(act)
        } is not supported for ${arch} (${want.join(" or ")})`,
      );
    }
  }
  if (json.mlp_bias === true) {
    throw new TypeError("config.json mlp_bias true is not supported yet");
  }
  if (json.attention_bias === true && !names.has("blk.0.attn_q.bias")) {
    throw new TypeError(
      "config.json attention_bias true, but the checkpoint has no Q bias",
    );
  }
  if (names.has("blk.0.attn_output.bias")) {
    throw new TypeError(
      "tensor blk.0.attn_output.bias (an output projection bias) is not supported yet",
    );
  }
  const maxPos = positiveInt(
    need("max_position_embeddings"),
    "max_position_embeddings",
  );
  // transformers' defaults where a Gemma config leaves a key out.
  const isGemma = arch === "gemma2" || arch === "gemma3";
  const gemmaDefault = (k: string, v: number) =>
    isGemma && json[k] === undefined ? v : opt(k);
  if (json.use_bidirectional_attention === true) {
    throw new TypeError(
      "config.json use_bidirectional_attention true (an embedding model's non-causal attention) is not supported",
    );
  }
  // The sliding window: per layer from layer_types, else the arch's
  // pattern. Qwen's applies only with use_sliding_window true (its
  // default is false). A window at least the context long changes
  // nothing, except that Gemma tells its local layers (own RoPE base) by it.
  const sw = gemmaDefault("sliding_window", 4096);
  const qwen = arch === "qwen2" || arch === "qwen3";
  const swOn = qwen
    ? json.use_sliding_window === true
    : json.use_sliding_window !== false;
  let window = 0;
  if (sw !== undefined && swOn) {
    window = positiveInt(sw, "sliding_window");
    if (window >= maxPos && !isGemma) window = 0;
  }
  const types = json.layer_types;
  if (types !== undefined && types !== null) {
    if (
      !Array.isArray(types) || types.length !== nLayers ||
      types.some((t) => t !== "full_attention" && t !== "sliding_attention")
    ) {
      throw new TypeError(
        `config.json layer_types must list full_attention or sliding_attention for each of the ${nLayers} layers`,
      );
    }
  }
  const pattern = opt("sliding_window_pattern") ??
    opt("_sliding_window_pattern");
  const layerWindows = Array.from({ length: nLayers }, (_, l) => {
    if (!window) return 0;
    if (Array.isArray(types)) {
      return types[l] === "sliding_attention" ? window : 0;
    }
    if (typeof pattern === "number" && pattern > 0) {
      return (l + 1) % pattern !== 0 ? window : 0;
    }
    return traits.swaLayer(l) ? window : 0;
  });
  if (
    (arch === "qwen2" || arch === "qwen3") && layerWindows.some((w) => w) &&
    !Array.isArray(types)
  ) {
    throw new TypeError(
      "config.json use_sliding_window true without layer_types is not supported",
    );
  }
  const scalar = gemmaDefault("query_pre_attn_scalar", 256);
  const num0 = (k: string, gemma2Default: number) => {
    const v = arch === "gemma2" && json[k] === undefined
      ? gemma2Default
      : opt(k);
    if (v === undefined) return 0;
    return positiveNumber(v, k);
  };
  return checkConfig({
    arch,
    dim,
    nLayers,
    nHeads,
    nKvHeads: positiveInt(
      opt("num_key_value_heads") ?? nHeads,
      "num_key_value_heads",
    ),
    headDim,
    ffnDim: positiveInt(need("intermediate_size"), "intermediate_size"),
    vocabSize: positiveInt(need("vocab_size"), "vocab_size"),
    contextLength: maxPos,
    ropeTheta: rope.theta,
    ropeThetaLocal: localTheta(arch, rope),
    ropeScaling: rope.scaling,
    ropeFreqsTensor: false,
    ropeDim: ropeDimOf(headDim, rope.partial),
    ropeLayout,
    normEps: positiveNumber(need("rms_norm_eps"), "rms_norm_eps"),
    tiedEmbeddings: !names.has("output.weight"),
    attnBias: names.has("blk.0.attn_q.bias"),
    attnScale: isGemma && scalar !== undefined
      ? 1 / Math.sqrt(positiveNumber(scalar, "query_pre_attn_scalar"))
      : 1 / Math.sqrt(headDim),
    attnSoftcap: isGemma ? num0("attn_logit_softcapping", 50) : 0,
    finalSoftcap: isGemma ? num0("final_logit_softcapping", 30) : 0,
    layerWindows,
  });
}

/**
 * Gemma 3's local layers rotate with their own base (10000 unless given);
 * other architectures rotate every layer alike, so a different local base
 * there is refused.
 */
function localTheta(arch: Arch, rope: HfRope): number | null {
  if (arch === "gemma3") return rope.thetaLocal ?? 10000;
  if (rope.thetaLocal !== null && rope.thetaLocal !== rope.theta) {
    throw new TypeError(
      `config.json: a RoPE base of its own for the sliding layers (${rope.thetaLocal}) is not supported for ${arch}`,
    );
  }
  return null;
}

function ropeDimOf(headDim: number, partial: number): number {
  const d = Math.floor(headDim * partial);
  if (!(partial > 0 && partial <= 1) || d % 2) {
    throw new TypeError(
      `partial_rotary_factor ${partial} of head dimension ${headDim} gives ${d} rotated dimensions: not supported (an even number)`,
    );
  }
  return d;
}

/** What a config.json says about RoPE. */
export interface HfRope {
  /** Base of the full-attention layers. */
  theta: number;
  /** Base of the sliding-window layers where given (rope_local_base_freq, rope_parameters.sliding_attention). */
  thetaLocal: number | null;
  scaling: RopeScaling | null;
  /** Fraction of each head that rotates. */
  partial: number;
}

/** One RoPE parameter set (`rope_scaling` or a `rope_parameters` entry). */
function ropeSet(
  rp: Record<string, unknown>,
  where: string,
): { theta?: number; scaling: RopeScaling | null; partial?: number } {
  const type = rp.rope_type ?? rp.type ?? "default";
  const allowed: Record<string, string[]> = {
    default: [],
    linear: ["factor"],
    llama3: [
      "factor",
      "low_freq_factor",
      "high_freq_factor",
      "original_max_position_embeddings",
    ],
  };
  if (typeof type !== "string" || !(type in allowed)) {
    throw new TypeError(
      `config.json ${where}.rope_type ${
        JSON.stringify(type)
      } (RoPE scaling) is not supported yet (supported: default, linear, llama3)`,
    );
  }
  const known = [
    "rope_type",
    "type",
    "rope_theta",
    "partial_rotary_factor",
    ...allowed[type],
  ];
  const other = Object.keys(rp).filter((k) => !known.includes(k));
  if (other.length) {
    throw new TypeError(
      `config.json ${where} ${other.join(", ")} ${
        other.length === 1 ? "is" : "are"
      } not supported yet for rope_type ${JSON.stringify(type)}`,
    );
  }
  const n = (k: string) => positiveNumber(rp[k], `${where}.${k}`);
  let scaling: RopeScaling | null = null;
  if (type === "linear") {
    scaling = n("factor") === 1 ? null : { type, factor: n("factor") };
  } else if (type === "llama3") {
    scaling = {
      type,
      factor: n("factor"),
      lowFreqFactor: n("low_freq_factor"),
      highFreqFactor: n("high_freq_factor"),
      originalContext: n("original_max_position_embeddings"),
    };
    if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
      throw new TypeError(
        `config.json ${where}: high_freq_factor must exceed low_freq_factor`,
      );
    }
  }
  return {
    theta: rp.rope_theta === undefined ? undefined : n("rope_theta"),
    scaling,
    partial: rp.partial_rotary_factor === undefined
      ? undefined
      : n("partial_rotary_factor"),
  };
}

/**
 * The RoPE settings of a `config.json`, in either layout: transformers 4's
 * top-level `rope_theta` / `rope_scaling` (Gemma 3: `rope_local_base_freq`),
 * or transformers 5's `rope_parameters`, flat or keyed by layer type
 * (`full_attention`, `sliding_attention`). Scaling types other than linear
 * and llama3, unknown parameters, and two different values for one setting
 * are refused rather than read as the default.
 */
export function hfRope(
  json: Record<string, unknown>,
  /** The base when none is given (transformers' default for the model). */
  defaultTheta = 10000,
): HfRope {
  const obj = (v: unknown, where: string) => {
    if (typeof v !== "object" || Array.isArray(v) || v === null) {
      throw new TypeError(`config.json ${where} is not an object`);
    }
    return v as Record<string, unknown>;
  };
  let full: ReturnType<typeof ropeSet> = { scaling: null };
  let local: ReturnType<typeof ropeSet> | null = null;
  const p = json.rope_parameters;
  if (p !== undefined && p !== null) {
    const rp = obj(p, "rope_parameters");
    if ("full_attention" in rp || "sliding_attention" in rp) {
      const extra = Object.keys(rp).filter((k) =>
        k !== "full_attention" && k !== "sliding_attention"
      );
      if (extra.length) {
        throw new TypeError(
          `config.json rope_parameters ${extra.join(", ")} is not supported`,
        );
      }
      if (rp.full_attention) {
        full = ropeSet(
          obj(rp.full_attention, "rope_parameters.full_attention"),
          "rope_parameters.full_attention",
        );
      }
      if (rp.sliding_attention) {
        local = ropeSet(
          obj(rp.sliding_attention, "rope_parameters.sliding_attention"),
          "rope_parameters.sliding_attention",
        );
        if (local.scaling) {
          throw new TypeError(
            "config.json rope_parameters.sliding_attention with RoPE scaling is not supported yet",
          );
        }
      }
    } else {
      full = ropeSet(rp, "rope_parameters");
    }
  }
  const agree = (a: unknown, b: unknown, what: string) => {
    if (a !== undefined && b !== undefined && a !== b) {
      throw new TypeError(`config.json ${what} disagree (${a} and ${b})`);
    }
    return a ?? b;
  };
  const theta = agree(
    json.rope_theta ?? undefined,
    full.theta,
    "rope_theta and rope_parameters.rope_theta",
  );
  const rs = json.rope_scaling;
  if (rs !== undefined && rs !== null) {
    const s = ropeSet(obj(rs, "rope_scaling"), "rope_scaling");
    if (
      full.scaling && JSON.stringify(s.scaling) !== JSON.stringify(full.scaling)
    ) {
      throw new TypeError(
        "config.json rope_scaling and rope_parameters disagree",
      );
    }
    full = { ...full, scaling: s.scaling };
  }
  const partial = agree(
    json.partial_rotary_factor ?? undefined,
    full.partial,
    "partial_rotary_factor and rope_parameters.partial_rotary_factor",
  );
  const thetaFull = positiveNumber(theta ?? defaultTheta, "rope_theta");
  const thetaLocal = agree(
    json.rope_local_base_freq ?? undefined,
    local?.theta,
    "rope_local_base_freq and rope_parameters.sliding_attention.rope_theta",
  );
  return {
    theta: thetaFull,
    thetaLocal: thetaLocal === undefined
      ? null
      : positiveNumber(thetaLocal, "rope_local_base_freq"),
    scaling: full.scaling,
    partial: partial === undefined
      ? 1
      : positiveNumber(partial, "partial_rotary_factor"),
  };
}

/**
 * Per-frequency divisors of RoPE (frequency i is theta^(-2i/d) / div[i])
 * for a scaling, as llama.cpp's converter writes `rope_freqs.weight` and
 * transformers' `_compute_llama3_parameters` scales `inv_freq`.
 */
export function ropeFreqDivisors(
  s: RopeScaling | null,
  ropeDim: number,
  theta: number,
): Float64Array {
  const half = ropeDim / 2;
  const div = new Float64Array(half).fill(1);
  if (!s) return div;
  if (s.type === "linear") return div.fill(s.factor);
  const lowWavelen = s.originalContext / s.lowFreqFactor;
  const highWavelen = s.originalContext / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = Math.pow(theta, (-2 * i) / ropeDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) div[i] = 1;
    else if (wavelen > lowWavelen) div[i] = s.factor;
    else {
      const smooth = (s.originalContext / wavelen - s.lowFreqFactor) /
        (s.highFreqFactor - s.lowFreqFactor);
      div[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return div;
}

/** Tensors a model of `config` must have, with their row-major shapes. */
export function expectedTensors(c: ModelConfig): ShapeOf[] {
  const t = traitsOf(c);
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const out: ShapeOf[] = [
    { name: "token_embd.weight", shape: [c.vocabSize, c.dim] },
    { name: "output_norm.weight", shape: [c.dim] },
  ];
  if (!c.tiedEmbeddings) {
    out.push({ name: "output.weight", shape: [c.vocabSize, c.dim] });
  }
  if (c.ropeFreqsTensor) {
    out.push({ name: "rope_freqs.weight", shape: [c.ropeDim / 2] });
  }
  for (let i = 0; i < c.nLayers; i++) {
    const b = `blk.${i}.`;
    const v = (name: string, n: number) => ({ name: b + name, shape: [n] });
    const m = (name: string, rows: number, cols: number) => ({
      name: b + name,
      shape: [rows, cols],
    });
    out.push(v("attn_norm.weight", c.dim));
    if (t.fused) out.push(m("attn_qkv.weight", q + 2 * kv, c.dim));
    else {
      out.push(
        m("attn_q.weight", q, c.dim),
        m("attn_k.weight", kv, c.dim),
        m("attn_v.weight", kv, c.dim),
      );
    }
    out.push(m("attn_output.weight", c.dim, q), v("ffn_norm.weight", c.dim));
    if (t.fused) out.push(m("ffn_up.weight", 2 * c.ffnDim, c.dim));
    else {
      out.push(
        m("ffn_gate.weight", c.ffnDim, c.dim),
        m("ffn_up.weight", c.ffnDim, c.dim),
      );
    }
    out.push(m("ffn_down.weight", c.dim, c.ffnDim));
    if (c.attnBias) {
      out.push(v("attn_q.bias", q), v("attn_k.bias", kv), v("attn_v.bias", kv));
    }
    if (t.qkNorm) {
      out.push(
        v("attn_q_norm.weight", c.headDim),
        v("attn_k_norm.weight", c.headDim),
      );
    }
    if (t.postNorms) {
      out.push(
        v("post_attention_norm.weight", c.dim),
        v("post_ffw_norm.weight", c.dim),
      );
    }
  }
  return out;
}

/**
 * Throws a `TypeError` naming the first missing or misshapen tensor, or a
 * tensor the engine would not use (a bias or an expert it does not
 * implement must not be ignored silently).
 */
export function checkTensors(c: ModelConfig, tensors: ShapeOf[]): void {
  const have = new Map(tensors.map((t) => [t.name, t.shape]));
  const want = expectedTensors(c);
  for (const w of want) {
    const shape = have.get(w.name);
    if (!shape) throw new TypeError(`tensor ${w.name} is missing`);
    if (shape.join(",") !== w.shape.join(",")) {
      throw new TypeError(
        `tensor ${w.name} has shape [${shape}], expected [${w.shape}]`,
      );
    }
  }
  const known = new Set(want.map((w) => w.name));
  for (const t of tensors) {
    if (!known.has(t.name)) {
      throw new TypeError(
        `tensor ${t.name} is not used by alisa's ${c.arch} forward pass: not supported`,
      );
    }
  }
}
