/**
 * What `cli.ts inspect` prints: a model's config, tokenizer and tensors, as
 * text or as one JSON object.
 *
 * @module
 */
import type { ModelFile } from "./model_file.ts";
import type { GgufValue } from "./gguf.ts";
import { type RopeScaling, traitsOf } from "./config.ts";
import { gpuWeightOf } from "../gpu/weights.ts";

/** The JSON form of `inspect --json`. */
export interface InspectReport {
  format: "gguf" | "hf";
  /** GGUF version (GGUF only). */
  version?: number;
  arch: string;
  config: {
    dim: number;
    n_layers: number;
    n_heads: number;
    n_kv_heads: number;
    head_dim: number;
    ffn_dim: number;
    vocab_size: number;
    context_length: number;
    rope_theta: number;
    rope_dim: number;
    rope_layout: string;
    norm_eps: number;
    tied_embeddings: boolean;
    attn_bias: boolean;
    /** RoPE base of the sliding-window layers where it is their own (Gemma 3). */
    rope_theta_local: number | null;
    rope_scaling: RopeScaling | null;
    /** Frequency divisors come from the file's rope_freqs.weight. */
    rope_freqs_tensor: boolean;
    attn_scale: number;
    attn_softcap: number;
    final_softcap: number;
    /** Per layer: sliding window in positions, 0 for full attention. */
    layer_windows: number[];
    activation: string;
    qk_norm: boolean;
    post_norms: boolean;
    embed_scale: boolean;
    fused_tensors: boolean;
  };
  tokenizer: {
    model: string;
    vocab_size: number;
    bos_id: number | null;
    eos_id: number | null;
  };
  tensors: { name: string; shape: number[]; type: string; bytes: number }[];
  totals: { tensors: number; parameters: number; bytes: number };
  /**
   * GPU memory `generate` will need, before activations: the weights as
   * the GPU engine stores them (the types of `GPU_WEIGHT_TYPES` as stored:
   * F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; other types
   * as f16; norms as f32) and the f16 KV cache per sequence at the full
   * context.
   */
  gpu: {
    weight_bytes: number;
    kv_bytes_per_token: number;
    kv_bytes_full_context: number;
  };
  /** GGUF metadata (arrays longer than 16 shown by type and length). */
  metadata?: Record<string, unknown>;
}

function summarize(v: GgufValue, type: string): unknown {
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const a = v as ArrayLike<unknown>;
    if (a.length > 16) return `<${type}, ${a.length} elements>`;
    return Array.from(a, (x) => (typeof x === "bigint" ? x.toString() : x));
  }
  return v;
}

/** Builds the report for an open model. */
export function inspectReport(m: ModelFile): InspectReport {
  const c = m.config;
  const tensors = m.tensors.map((t) => ({
    name: t.name,
    shape: t.shape,
    type: t.type,
    bytes: t.nBytes,
  }));
  const report: InspectReport = {
    format: m.format,
    arch: c.arch,
    config: {
      dim: c.dim,
      n_layers: c.nLayers,
      n_heads: c.nHeads,
      n_kv_heads: c.nKvHeads,
      head_dim: c.headDim,
      ffn_dim: c.ffnDim,
      vocab_size: c.vocabSize,
      context_length: c.contextLength,
      rope_theta: c.ropeTheta,
      rope_dim: c.ropeDim,
      rope_layout: c.ropeLayout,
      norm_eps: c.normEps,
      tied_embeddings: c.tiedEmbeddings,
      attn_bias: c.attnBias,
      rope_theta_local: c.ropeThetaLocal,
      rope_scaling: c.ropeScaling,
      rope_freqs_tensor: c.ropeFreqsTensor,
      attn_scale: c.attnScale,
      attn_softcap: c.attnSoftcap,
      final_softcap: c.finalSoftcap,
      layer_windows: c.layerWindows,
      activation: traitsOf(c).act,
      qk_norm: traitsOf(c).qkNorm,
      post_norms: traitsOf(c).postNorms,
      embed_scale: traitsOf(c).embedScale,
      fused_tensors: traitsOf(c).fused,
    },
    tokenizer: {
      model: m.tokenizer.model,
      vocab_size: m.tokenizer.vocabSize,
      bos_id: m.tokenizer.bosId,
      eos_id: m.tokenizer.eosId,
    },
    tensors,
    gpu: (() => {
      const weightBytes = m.tensors.reduce((n, t) => {
        if (t.shape.length === 1) return n + t.nElements * 4; // norms: f32
        const type = gpuWeightOf(t.type).type;
        return n + (type === "f16" && t.type !== "F16"
          ? t.nElements * 2 // dequantized to f16 at upload
          : t.nBytes);
      }, 0);
      const perToken = 2 * c.nLayers * c.nKvHeads * c.headDim * 2;
      return {
        weight_bytes: weightBytes,
        kv_bytes_per_token: perToken,
        kv_bytes_full_context: perToken * c.contextLength,
      };
    })(),
    totals: {
      tensors: tensors.length,
      parameters: m.tensors.reduce((n, t) => n + t.nElements, 0),
      bytes: m.tensors.reduce((n, t) => n + t.nBytes, 0),
    },
  };
  if (m.gguf) {
    const md: Record<string, unknown> = {};
    for (const [k, v] of m.gguf.metadata) {
      md[k] = summarize(v, m.gguf.metadataTypes.get(k) ?? "?");
    }
    report.metadata = md;
    report.version = m.gguf.version;
  }
  return report;
}

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return `${n}`;
}

/** The config lines that differ from plain Llama, for the text report. */
function archLines(c: InspectReport["config"]): string[] {
  const parts: string[] = [];
  if (c.rope_scaling) {
    parts.push(`RoPE scaling ${JSON.stringify(c.rope_scaling)}`);
  }
  if (c.rope_freqs_tensor) parts.push("RoPE divisors from rope_freqs.weight");
  if (c.rope_theta_local !== null) {
    parts.push(`local layers' RoPE theta ${c.rope_theta_local}`);
  }
  if (c.activation !== "silu") parts.push(`activation ${c.activation}`);
  if (c.qk_norm) parts.push("Q/K norms");
  if (c.post_norms) parts.push("post-norms");
  if (c.embed_scale) parts.push("embeddings x sqrt(dim)");
  if (c.fused_tensors) parts.push("fused QKV and gate/up");
  if (Math.abs(c.attn_scale * Math.sqrt(c.head_dim) - 1) > 1e-6) {
    parts.push(`attention scale ${c.attn_scale.toPrecision(6)}`);
  }
  if (c.attn_softcap) parts.push(`attention soft-cap ${c.attn_softcap}`);
  if (c.final_softcap) parts.push(`logit soft-cap ${c.final_softcap}`);
  const windowed = c.layer_windows.filter((w) => w > 0).length;
  if (windowed) {
    parts.push(
      `sliding window ${
        Math.max(...c.layer_windows)
      } on ${windowed} of ${c.n_layers} layers`,
    );
  }
  return parts.length ? [`        ${parts.join(", ")}`] : [];
}

/** The report as text for a terminal. */
export function formatReport(name: string, r: InspectReport): string {
  const c = r.config;
  const lines = [
    `${name}: ${
      r.format === "gguf" ? `GGUF v${r.version}` : "Hugging Face safetensors"
    }, architecture ${r.arch}`,
    `config: dim ${c.dim}, ${c.n_layers} layers, ${c.n_heads} heads (${c.n_kv_heads} KV heads, head dim ${c.head_dim}), FFN ${c.ffn_dim}, vocab ${c.vocab_size}, context ${c.context_length}`,
    `        RoPE theta ${c.rope_theta} over ${c.rope_dim} dims (${c.rope_layout}), RMSNorm eps ${c.norm_eps}, ${
      c.tied_embeddings ? "tied" : "separate"
    } output embedding${c.attn_bias ? ", Q/K/V biases" : ""}`,
    ...archLines(c),
    `tokenizer: ${r.tokenizer.model}, ${r.tokenizer.vocab_size} tokens, BOS ${r.tokenizer.bos_id}, EOS ${r.tokenizer.eos_id}`,
    "",
  ];
  const w = Math.max(...r.tensors.map((t) => t.name.length), 4);
  lines.push(
    `${"name".padEnd(w)}  ${"shape".padEnd(14)}  ${"type".padEnd(6)}  bytes`,
  );
  for (const t of r.tensors) {
    lines.push(
      `${t.name.padEnd(w)}  ${`[${t.shape.join(", ")}]`.padEnd(14)}  ${
        t.type.padEnd(6)
      }  ${t.bytes}`,
    );
  }
  lines.push(
    "",
    `total: ${r.totals.tensors} tensors, ${
      human(r.totals.parameters)
    } parameters, ${human(r.totals.bytes)} bytes`,
  );
  return lines.join("\n");
}
