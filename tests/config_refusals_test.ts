/**
 * Model settings are read from both config layouts, and what the engine
 * does not implement is refused at load, naming the key, instead of
 * loading and giving silently wrong output (issue 11's two measured cases:
 * a Llama-3.1-style GGUF with `rope_freqs.weight`, and a transformers-5
 * `config.json` that keeps its RoPE settings under `rope_parameters`).
 */
import { assertEquals, assertThrows } from "@std/assert";
import {
  checkTensors,
  configFromGguf,
  configFromHf,
  expectedTensors,
  hfRope,
  ropeFreqDivisors,
} from "../src/formats/config.ts";
import type { GgufValue } from "../src/formats/gguf.ts";
import { hasModelFixture, modelFixture } from "./_shared.ts";

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

Deno.test("HF config: RoPE from rope_parameters (transformers 5) or rope_theta/rope_scaling (transformers 4); unknown scaling refused", () => {
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
  assertEquals(c.ropeScaling, null);
  assertEquals(hfRope({ rope_theta: 1e6 }).theta, 1e6);
  assertEquals(hfRope({}).theta, 10000);
  const llama3 = {
    rope_type: "llama3",
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  };
  const want = {
    type: "llama3" as const,
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalContext: 8192,
  };
  // Both layouts give the same scaling.
  assertEquals(
    configFromHf(
      { ...noTheta, rope_parameters: { ...llama3, rope_theta: 5e5 } },
      [],
      "rotate_half",
    ).ropeScaling,
    want,
  );
  assertEquals(
    configFromHf({ ...HF, rope_scaling: llama3 }, [], "rotate_half")
      .ropeScaling,
    want,
  );
  // Gemma 3 (transformers 5): bases per layer type.
  assertEquals(
    hfRope({
      rope_parameters: {
        sliding_attention: { rope_type: "default", rope_theta: 10000 },
        full_attention: { rope_type: "linear", factor: 8, rope_theta: 1e6 },
      },
    }),
    {
      theta: 1e6,
      thetaLocal: 10000,
      scaling: { type: "linear", factor: 8 },
      partial: 1,
    },
  );
  for (
    const [rp, msg] of [
      [{ rope_type: "llama3", rope_theta: 5e5, factor: 8 }, "low_freq_factor"],
      [
        { rope_theta: 5e5, factor: 8 },
        "rope_parameters factor is not supported",
      ],
      [{ rope_type: "yarn" }, 'rope_type "yarn"'],
      [{ rope_type: "longrope" }, 'rope_type "longrope"'],
      [{ rope_type: "dynamic", factor: 2 }, 'rope_type "dynamic"'],
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

Deno.test("HF config: activation, MLP bias, odd partial RoPE refused; sliding window and partial RoPE read", () => {
  for (
    const [extra, msg] of [
      [{ hidden_act: "gelu_pytorch_tanh" }, 'hidden_act "gelu_pytorch_tanh"'],
      [{ hidden_activation: "gelu" }, 'hidden_activation "gelu"'],
      [{ partial_rotary_factor: 0.2 }, "partial_rotary_factor 0.2"],
      [{ mlp_bias: true }, "mlp_bias"],
      [{ model_type: "falcon" }, 'architecture "falcon"'],
      [
        { model_type: "gemma3", text_config: {} },
        "multimodal Gemma 3",
      ],
    ] as const
  ) {
    assertThrows(
      () => configFromHf({ ...HF, ...extra }, [], "rotate_half"),
      TypeError,
      msg,
    );
  }
  // 16-dim heads, half rotated.
  assertEquals(
    configFromHf({ ...HF, partial_rotary_factor: 0.5 }, [], "rotate_half")
      .ropeDim,
    8,
  );
  // Mistral-style: every layer windowed.
  assertEquals(
    configFromHf({ ...HF, sliding_window: 128 }, [], "rotate_half")
      .layerWindows,
    [128, 128, 128],
  );
  // Present but off, or as long as the context: full attention.
  for (
    const extra of [
      { sliding_window: 128, use_sliding_window: false },
      { sliding_window: 512 },
      { sliding_window: null, partial_rotary_factor: 1 },
    ]
  ) {
    assertEquals(
      configFromHf({ ...HF, ...extra }, [], "rotate_half").layerWindows,
      [0, 0, 0],
    );
  }
  // Per layer from layer_types.
  assertEquals(
    configFromHf(
      {
        ...HF,
        sliding_window: 64,
        layer_types: [
          "sliding_attention",
          "full_attention",
          "sliding_attention",
        ],
      },
      [],
      "rotate_half",
    ).layerWindows,
    [64, 0, 64],
  );
});

Deno.test("GGUF: rope_freqs.weight and linear scaling read, other scaling refused, sliding windows per llama.cpp's pattern", () => {
  assertEquals(configFromGguf(gguf(), []).ropeTheta, 500000);
  assertEquals(
    configFromGguf(gguf(), [{ name: "rope_freqs.weight", shape: [8] }])
      .ropeFreqsTensor,
    true,
  );
  assertEquals(
    configFromGguf(
      gguf({
        "llama.rope.scaling.type": "linear",
        "llama.rope.scaling.factor": 4,
      }),
      [],
    ).ropeScaling,
    { type: "linear", factor: 4 },
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
    () => configFromGguf(gguf({ "general.architecture": "deepseek2" }), []),
    TypeError,
    'architecture "deepseek2"',
  );
  // llama.cpp's llama ignores a window key: refused rather than guessed.
  assertThrows(
    () => configFromGguf(gguf({ "llama.attention.sliding_window": 4096 }), []),
    TypeError,
    "llama.attention.sliding_window",
  );
  configFromGguf(gguf({ "llama.rope.scaling.type": "none" }), []);
});

Deno.test("llama3 RoPE divisors: high frequencies kept, low divided by the factor, the band between blended (as llama.cpp's converter writes rope_freqs)", () => {
  const s = {
    type: "llama3" as const,
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalContext: 8192,
  };
  const d = ropeFreqDivisors(s, 128, 500000);
  assertEquals(d[0], 1);
  assertEquals(d[63], 8);
  // The fixture test (arch_models_test.ts) checks the values against the
  // rope_freqs.weight llama.cpp's converter wrote; here the shape.
  const band = [...d].filter((x) => x > 1 && x < 8);
  assertEquals(band.length > 0, true);
  for (let i = 1; i < d.length; i++) assertEquals(d[i] >= d[i - 1], true);
  assertEquals([...ropeFreqDivisors(null, 8, 1e4)], [1, 1, 1, 1]);
  assertEquals([...ropeFreqDivisors({ type: "linear", factor: 2 }, 4, 1e4)], [
    2,
    2,
  ]);
});

Deno.test("a tensor the forward pass would not use is refused at load, naming it (a bias, MoE experts, LongRoPE factors)", () => {
  const c = configFromGguf(gguf(), []);
  const all = expectedTensors(c);
  checkTensors(c, all);
  for (
    const extra of [
      "blk.0.attn_output.bias",
      "blk.1.ffn_gate_exps.weight",
      "rope_factors_long.weight",
    ]
  ) {
    assertThrows(
      () => checkTensors(c, [...all, { name: extra, shape: [4] }]),
      TypeError,
      `tensor ${extra} is not used`,
    );
  }
  assertThrows(
    () => checkTensors(c, all.filter((t) => t.name !== "blk.2.ffn_up.weight")),
    TypeError,
    "tensor blk.2.ffn_up.weight is missing",
  );
});

/** GGUF metadata of another architecture, from the llama test set. */
function ggufAs(arch: string, extra: Record<string, GgufValue> = {}) {
  const m = new Map<string, GgufValue>();
  for (const [k, v] of gguf()) m.set(k.replace(/^llama\./, `${arch}.`), v);
  m.set("general.architecture", arch);
  for (const [k, v] of Object.entries(extra)) m.set(k, v);
  return m;
}

Deno.test("GGUF windows, caps and scales as llama.cpp runs them: Gemma 2 defaults and pattern, Gemma 3 pattern and local base, Phi-3's window off, the 27B scale rule", () => {
  // Gemma 2 without its keys: llama.cpp's defaults (window 4096, caps 50/30).
  const g2 = configFromGguf(ggufAs("gemma2"), []);
  assertEquals(g2.layerWindows, [4096, 0, 4096]);
  assertEquals([g2.attnSoftcap, g2.finalSoftcap], [50, 30]);
  assertEquals(g2.attnScale, 1 / Math.sqrt(16));
  assertEquals(g2.ropeThetaLocal, null);
  const g2k = configFromGguf(
    ggufAs("gemma2", {
      "gemma2.attention.sliding_window": 8,
      "gemma2.attn_logit_softcapping": 2,
      "gemma2.final_logit_softcapping": 3,
    }),
    [],
  );
  assertEquals(g2k.layerWindows, [8, 0, 8]);
  assertEquals([g2k.attnSoftcap, g2k.finalSoftcap], [2, 3]);
  assertThrows(
    () =>
      configFromGguf(ggufAs("gemma2", { "gemma2.rope.freq_base_swa": 10 }), []),
    TypeError,
    "gemma2.rope.freq_base_swa",
  );
  // The 27B models (46 / 62 layers) scale by dim / heads, as llama.cpp does.
  assertEquals(
    configFromGguf(ggufAs("gemma2", { "gemma2.block_count": 46 }), [])
      .attnScale,
    1 / Math.sqrt(96 / 6),
  );
  const g3 = configFromGguf(
    ggufAs("gemma3", {
      "gemma3.block_count": 7,
      "gemma3.attention.sliding_window": 512,
    }),
    [],
  );
  assertEquals(g3.layerWindows, [512, 512, 512, 512, 512, 0, 512]);
  assertEquals(g3.ropeThetaLocal, 10000);
  assertEquals(g3.ropeTheta, 500000);
  assertEquals(
    configFromGguf(
      ggufAs("gemma3", {
        "gemma3.block_count": 62,
        "gemma3.attention.sliding_window": 512,
      }),
      [],
    ).attnScale,
    1 / Math.sqrt(96 / 6),
  );
  // Phi-3: llama.cpp's converter writes a window, llama.cpp disables it.
  assertEquals(
    configFromGguf(
      ggufAs("phi3", { "phi3.attention.sliding_window": 2047 }),
      [],
    )
      .layerWindows,
    [0, 0, 0],
  );
});

Deno.test("HF config: Gemma's transformers defaults for missing keys, its own query scale, Qwen's window off unless use_sliding_window, bidirectional attention refused", () => {
  const gemma2 = {
    ...HF,
    model_type: "gemma2",
    hidden_act: undefined,
    hidden_activation: "gelu_pytorch_tanh",
    head_dim: 32,
  };
  const d = configFromHf(gemma2, [], "rotate_half");
  assertEquals([d.attnSoftcap, d.finalSoftcap], [50, 30]);
  assertEquals(d.attnScale, 1 / 16);
  assertEquals(d.layerWindows, [4096, 0, 4096]);
  const e = configFromHf(
    {
      ...gemma2,
      attn_logit_softcapping: null,
      final_logit_softcapping: null,
      query_pre_attn_scalar: 144,
      sliding_window: 64,
    },
    [],
    "rotate_half",
  );
  assertEquals([e.attnSoftcap, e.finalSoftcap], [0, 0]);
  assertEquals(e.attnScale, 1 / 12);
  assertEquals(e.layerWindows, [64, 0, 64]);
  const { rope_theta: _, ...noTheta } = HF;
  assertEquals(
    configFromHf(
      {
        ...noTheta,
        model_type: "gemma3_text",
        hidden_act: undefined,
        hidden_activation: "gelu_pytorch_tanh",
      },
      [],
      "rotate_half",
    ).ropeTheta,
    1e6,
  );
  assertThrows(
    () =>
      configFromHf(
        {
          ...gemma2,
          model_type: "gemma3_text",
          use_bidirectional_attention: true,
        },
        [],
        "rotate_half",
      ),
    TypeError,
    "use_bidirectional_attention",
  );
  // Qwen: sliding_window set but use_sliding_window absent (false).
  assertEquals(
    configFromHf(
      { ...HF, model_type: "qwen2", sliding_window: 64 },
      [],
      "rotate_half",
    ).layerWindows,
    [0, 0, 0],
  );
});

Deno.test("HF config: each fixture's transformers-5 config.json and its transformers-4 form (rope_theta / rope_scaling / rope_local_base_freq / sliding_window_pattern, no layer_types) give the same config", () => {
  for (const arch of ["llama3", "gemma2", "gemma3", "phi3", "mistral"]) {
    const rel = `${arch}/hf/config.json`;
    if (!hasModelFixture(rel)) {
      console.log(`skipped ${arch}: fixture absent`);
      continue;
    }
    const v5: Record<string, unknown> = JSON.parse(
      Deno.readTextFileSync(modelFixture(rel)),
    );
    const v4: Record<string, unknown> = { ...v5 };
    delete v4.rope_parameters;
    delete v4.layer_types;
    const rp = v5.rope_parameters as Record<string, Record<string, unknown>>;
    if (arch === "gemma3") {
      v4.rope_theta = rp.full_attention.rope_theta;
      v4.rope_local_base_freq = rp.sliding_attention.rope_theta;
      const types = v5.layer_types as string[];
      v4.sliding_window_pattern = types.indexOf("full_attention") + 1;
    } else {
      const { rope_theta, partial_rotary_factor, ...scaling } = rp as Record<
        string,
        unknown
      >;
      v4.rope_theta = rope_theta;
      if (partial_rotary_factor !== undefined) {
        v4.partial_rotary_factor = partial_rotary_factor;
      }
      if (scaling.rope_type !== "default") v4.rope_scaling = scaling;
    }
    const tensors = [{ name: "output.weight", shape: [1] }];
    assertEquals(
      configFromHf(v4, tensors, "rotate_half"),
      configFromHf(v5, tensors, "rotate_half"),
      arch,
    );
  }
});
