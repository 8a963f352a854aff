/**
 * Model settings the engine does not implement are refused at load, naming
 * the key, instead of loading and giving silently wrong output (issue 11's
 * two measured cases: a Llama-3.1-style GGUF with `rope_freqs.weight`, and a
 * transformers-5 `config.json` that keeps its RoPE base under
 * `rope_parameters`). What the engine does implement still loads.
 */
import { assertEquals, assertThrows } from "@std/assert";
import {
  configFromGguf,
  configFromHf,
  hfRopeTheta,
} from "../src/formats/config.ts";
import type { GgufValue } from "../src/formats/gguf.ts";

const HF = {
  model_type: "llama",
  hidden_size: 96,
  intermediate_size: 160,
  num_hidden_layers: 3,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  vocab_size: 300,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  hidden_act: "silu",
};

function gguf(extra: Record<string, GgufValue> = {}) {
  return new Map<string, GgufValue>(Object.entries({
    "general.architecture": "llama",
    "llama.embedding_length": 96,
    "llama.attention.head_count": 6,
    "llama.attention.head_count_kv": 2,
    "llama.block_count": 3,
    "llama.feed_forward_length": 160,
    "llama.context_length": 512,
    "llama.attention.layer_norm_rms_epsilon": 1e-5,
    "llama.rope.freq_base": 500000,
    "llama.vocab_size": 300,
    ...extra,
  }));
}

Deno.test("HF config: rope_parameters is read (transformers 5), its scaling refused", () => {
  const { rope_theta: _, ...noTheta } = HF;
  // The base under rope_parameters is used, not the default 10000.
  const c = configFromHf(
    {
      ...noTheta,
      rope_parameters: { rope_type: "default", rope_theta: 500000 },
    },
    [],
    "rotate_half",
  );
  assertEquals(c.ropeTheta, 500000);
  assertEquals(hfRopeTheta({ rope_theta: 1e6 }), 1e6);
  assertEquals(hfRopeTheta({}), 10000);
  for (
    const [rp, msg] of [
      [
        { rope_type: "llama3", rope_theta: 5e5, factor: 8 },
        'rope_type "llama3"',
      ],
      [
        { rope_theta: 5e5, factor: 8 },
        "rope_parameters factor is not supported",
      ],
      [{ rope_type: "yarn" }, 'rope_type "yarn"'],
      ["x", "not an object"],
    ] as const
  ) {
    assertThrows(
      () =>
        configFromHf({ ...noTheta, rope_parameters: rp }, [], "rotate_half"),
      TypeError,
      msg,
    );
  }
  assertThrows(
    () =>
      configFromHf(
        { ...HF, rope_parameters: { rope_theta: 10000 } },
        [],
        "rotate_half",
      ),
    TypeError,
    "disagree",
  );
});

Deno.test("HF config: activation, partial RoPE, MLP bias, sliding window refused; Qwen-style disabled window loads", () => {
  for (
    const [extra, msg] of [
      [{ hidden_act: "gelu_pytorch_tanh" }, 'hidden_act "gelu_pytorch_tanh"'],
      [{ hidden_activation: "gelu" }, 'hidden_activation "gelu"'],
      [{ partial_rotary_factor: 0.5 }, "partial_rotary_factor 0.5"],
      [{ mlp_bias: true }, "mlp_bias"],
      [{ sliding_window: 128 }, "sliding_window 128"],
      [{ rope_scaling: { rope_type: "llama3", factor: 8 } }, "rope_scaling"],
    ] as const
  ) {
    assertThrows(
      () => configFromHf({ ...HF, ...extra }, [], "rotate_half"),
      TypeError,
      msg,
    );
  }
  // Present but off, or as long as the context: nothing to implement.
  configFromHf(
    { ...HF, sliding_window: 128, use_sliding_window: false },
    [],
    "rotate_half",
  );
  configFromHf({ ...HF, sliding_window: 512 }, [], "rotate_half");
  configFromHf(
    { ...HF, sliding_window: null, partial_rotary_factor: 1 },
    [],
    "rotate_half",
  );
});

Deno.test("GGUF: rope_freqs.weight, RoPE scaling and sliding-window metadata refused", () => {
  assertEquals(configFromGguf(gguf(), []).ropeTheta, 500000);
  assertThrows(
    () => configFromGguf(gguf(), [{ name: "rope_freqs.weight", shape: [8] }]),
    TypeError,
    "rope_freqs.weight",
  );
  assertThrows(
    () => configFromGguf(gguf({ "llama.rope.scaling.type": "yarn" }), []),
    TypeError,
    "llama.rope.scaling.type",
  );
  assertThrows(
    () => configFromGguf(gguf({ "llama.rope.scaling.factor": 8 }), []),
    TypeError,
    "llama.rope.scaling.factor",
  );
  assertThrows(
    () => configFromGguf(gguf({ "llama.attention.sliding_window": 4096 }), []),
    TypeError,
    "sliding_window",
  );
  configFromGguf(gguf({ "llama.rope.scaling.type": "none" }), []);
});
