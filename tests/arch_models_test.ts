/**
 * Every architecture alisa runs, on tiny random-weight models built with
 * `transformers` and converted by llama.cpp's own `convert_hf_to_gguf.py`
 * and `llama-quantize` (`tests/fixtures/models/`, made by
 * `make_models.py`; its README says how):
 *
 * - logits of the Hugging Face directory and of the f16 GGUFs (and the f32
 *   one of llama3: the others are its upcast copies, not committed) equal
 *   `transformers` fp32 logits (NMSE per prompt; the issue asks <= 1e-5
 *   f32 and <= 1e-4 f16, bounds here are ~3x what llvmpipe measures);
 * - the quantized GGUFs (llama3q's K-quants and Q4_0, and a Q4_0 copy of
 *   every other architecture but Mistral) give `transformers` fp32 logits
 *   computed on their dequantized weights (the fixture's `logits-<type>.bin`);
 * - greedy generation from each GGUF equals llama.cpp's (node-llama-cpp
 *   3.21.1) token for token for 32 tokens, or leaves it only at or after
 *   the first near-tie the fixture's margin check found, or where llama.cpp
 *   itself leaves the fp32 reference (Q4_0: it rounds activations to 8 bits).
 *
 * Mistral's GGUF is the exception the converter makes: it drops the
 * sliding window (llama.cpp runs Mistral with full attention), so its GGUF
 * is compared with the full-attention logits; the window is honoured from
 * `config.json`.
 */
import {
  assertEquals,
  assertGreaterOrEqual,
  assertLessOrEqual,
} from "@std/assert";
import { loadModel } from "../src/api/model.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import { ropeFreqDivisors } from "../src/formats/config.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";
import { compare, hasModelFixture, modelFixture } from "./_shared.ts";

const path = modelFixture;
const exists = hasModelFixture;

interface Reference {
  arch: string;
  vocab: number;
  prompts: { ids: number[]; offset_bytes: number; shape: [number, number] }[];
  greedy?:
    | Record<
      string,
      {
        prompt_ids: number[];
        ids: number[];
        stable_tokens: number;
        /** Where llama.cpp's own path leaves the fp32 reference's argmax, or null. */
        reference_first_disagreement?: number | null;
      }
    >
    | null;
  checks?: Record<string, Record<string, unknown>>;
}

const reference = (arch: string): Reference =>
  JSON.parse(Deno.readTextFileSync(path(`${arch}/reference.json`)));

/** The fixture's logits of prompt i from `file` (default logits.bin). */
function refLogits(
  arch: string,
  ref: Reference,
  i: number,
  file = "logits.bin",
): Float32Array {
  const bytes = Deno.readFileSync(path(`${arch}/${file}`));
  const p = ref.prompts[i];
  const n = p.shape[0] * p.shape[1];
  return new Float32Array(
    bytes.buffer.slice(p.offset_bytes, p.offset_bytes + n * 4),
  );
}

const nmse = (got: Float32Array, want: Float32Array) => compare(got, want).nmse;

/** [architecture, files compared with transformers, NMSE bound] */
const LOGIT_CASES: [string, string[], number][] = [
  ["llama", ["hf", "llama-f16.gguf"], 1e-6],
  ["llama3", ["hf", "llama3-f32.gguf", "llama3-f16.gguf"], 1e-6],
  ["mistral", ["hf"], 1e-6],
  ["qwen2", ["hf", "qwen2-f16.gguf"], 1e-6],
  ["qwen3", ["hf", "qwen3-f16.gguf"], 1e-6],
  ["gemma2", ["hf", "gemma2-f16.gguf"], 1e-6],
  ["gemma3", ["hf", "gemma3-f16.gguf"], 2e-6],
  ["phi3", ["hf", "phi3-f16.gguf"], 1e-6],
];

async function checkLogits(
  arch: string,
  file: string,
  bound: number,
  logitsFile = "logits.bin",
): Promise<number> {
  const ref = reference(arch);
  const model = await loadModel(path(`${arch}/${file}`), {
    gpu: (await testGpu())!,
  });
  let worst = 0;
  try {
    assertEquals(model.config.vocabSize, ref.vocab);
    for (let i = 0; i < ref.prompts.length; i++) {
      const got = await model.logits(ref.prompts[i].ids);
      const e = nmse(got, refLogits(arch, ref, i, logitsFile));
      worst = Math.max(worst, e);
    }
  } finally {
    model.dispose();
  }
  console.log(`${arch}/${file}: worst prompt NMSE ${worst.toExponential(2)}`);
  assertLessOrEqual(worst, bound, `${arch}/${file} logits NMSE`);
  return worst;
}

for (const [arch, files, bound] of LOGIT_CASES) {
  const present = files.filter((f) => exists(`${arch}/${f}`));
  Deno.test({
    name: `${arch}: logits of ${
      present.join(", ")
    } equal transformers fp32 (NMSE <= ${bound})`,
    ignore: !HAS_GPU || present.length === 0 ||
      !exists(`${arch}/reference.json`),
    async fn() {
      for (const f of present) await checkLogits(arch, f, bound);
    },
  });
}

Deno.test({
  name:
    "mistral: its GGUF (the converter drops the sliding window, as llama.cpp runs it) equals transformers with full attention; the window changes the logits",
  ignore: !HAS_GPU || !exists("mistral/logits_full_attention.bin"),
  async fn() {
    await checkLogits(
      "mistral",
      "mistral-f16.gguf",
      1e-6,
      "logits_full_attention.bin",
    );
    // The window matters on these prompts: the two references differ.
    const ref = reference("mistral");
    assertGreaterOrEqual(
      nmse(
        refLogits("mistral", ref, 1),
        refLogits("mistral", ref, 1, "logits_full_attention.bin"),
      ),
      1e-3,
    );
  },
});

/** [model, quantized copies]: llama3q's K-quants, a Q4_0 of the others. */
const QUANT_CASES: [string, string[]][] = [
  ["llama3q", ["q6_k", "q5_k_m", "q4_k_m", "q4_0"]],
  ...["llama", "llama3", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"].map((
    a,
  ): [string, string[]] => [a, ["q4_0"]]),
];
for (const [arch, quants] of QUANT_CASES) {
  const present = quants.filter((q) =>
    exists(`${arch}/${arch}-${q}.gguf`) && exists(`${arch}/logits-${q}.bin`)
  );
  Deno.test({
    name: `${arch}: logits of its ${
      present.join(", ")
    } GGUFs equal transformers fp32 on their dequantized weights`,
    ignore: !HAS_GPU || present.length === 0,
    async fn() {
      for (const q of present) {
        await checkLogits(arch, `${arch}-${q}.gguf`, 1e-6, `logits-${q}.bin`);
      }
    },
  });
}

Deno.test({
  name:
    "llama3: rope_freqs.weight written by llama.cpp's converter equals the divisors alisa computes from config.json's llama3 rope scaling",
  ignore: !exists("llama3/llama3-f32.gguf"),
  async fn() {
    const gguf = await openModelFile(path("llama3/llama3-f32.gguf"));
    const hf = await openModelFile(path("llama3/hf"));
    try {
      const stored = await gguf.read("rope_freqs.weight") as Float32Array;
      const c = hf.config;
      const ours = ropeFreqDivisors(c.ropeScaling, c.ropeDim, c.ropeTheta);
      assertEquals(stored.length, ours.length);
      let worst = 0;
      for (let i = 0; i < ours.length; i++) {
        worst = Math.max(worst, Math.abs(stored[i] - ours[i]) / ours[i]);
      }
      assertLessOrEqual(worst, 1e-6);
      // Some frequencies are scaled, some not: the fixture exercises both.
      assertEquals(ours.some((d) => d === 1) && ours.some((d) => d > 1), true);
    } finally {
      gguf.close();
      hf.close();
    }
  },
});

const GREEDY_ARCHS = [
  "llama",
  "llama3",
  "mistral",
  "qwen2",
  "qwen3",
  "gemma2",
  "gemma3",
  "phi3",
  "llama3q",
];
for (const arch of GREEDY_ARCHS) {
  const ref = exists(`${arch}/reference.json`) ? reference(arch) : null;
  const files = Object.keys(ref?.greedy ?? {}).filter((f) =>
    exists(`${arch}/${f}`)
  );
  Deno.test({
    name: `${arch}: greedy generation from ${
      files.join(", ")
    } equals llama.cpp's for 32 tokens (divergence only at or after a near-tie)`,
    ignore: !HAS_GPU || files.length === 0,
    async fn() {
      const report: string[] = [];
      for (const f of files) {
        const g = ref!.greedy![f];
        const model = await loadModel(path(`${arch}/${f}`), {
          gpu: (await testGpu())!,
        });
        try {
          const gen = model.generate(g.prompt_ids, {
            maxTokens: g.ids.length,
            stopAtEos: false,
          });
          for await (const _ of gen) { /* drain */ }
          const { ids } = await gen.result;
          assertEquals(ids.length, g.ids.length);
          const first = ids.findIndex((id, i) => id !== g.ids[i]);
          // A correct engine may leave llama.cpp's path at the first near-tie
          // of the fp32 reference, or where llama.cpp itself leaves that
          // reference (it rounds activations to 8 bits against quantized
          // weights), whichever comes first.
          const free = Math.min(
            g.stable_tokens,
            g.reference_first_disagreement ?? g.ids.length,
          );
          report.push(
            `${f}: ${
              first === -1 ? "identical" : `leaves at ${first}`
            } (allowed from ${free})`,
          );
          if (first !== -1) {
            assertGreaterOrEqual(
              first,
              free,
              `${arch}/${f}: diverged from llama.cpp at token ${first}, before the first near-tie (${g.stable_tokens}) or llama.cpp's own departure from the fp32 reference (${g.reference_first_disagreement})`,
            );
          }
        } finally {
          model.dispose();
        }
      }
      console.log(`${arch}: ${report.join("; ")}`);
    },
  });
}

/**
 * Greedy decoding of `prompts` (one slot each) driven step by step through
 * the engine, as the API does; returns every decode step's logits.
 */
async function decodeLogits(
  m: Awaited<ReturnType<typeof loadModel>>,
  prompts: number[][],
  steps: number,
): Promise<Float32Array[]> {
  const e = m.engine, kv = e.kv, V = m.config.vocabSize;
  e.setPolicy({ name: "swa", sparsity: 0.8 });
  kv.planRun(e.policy, prompts.map((p) => p.length), steps);
  prompts.forEach((_, s) => kv.clear(s));
  const last: number[] = [];
  for (let s = 0; s < prompts.length; s++) {
    // Prefill in chunks of 8 (a tiered store takes few tokens per step).
    const p = prompts[s];
    let l: Float32Array = new Float32Array(0);
    for (let a = 0; a < p.length; a += 8) {
      const chunk = p.slice(a, a + 8);
      l = await e.stepLogits(
        chunk.map((id, i) => ({ slot: s, pos: a + i, id })),
        [chunk.length - 1],
        false,
      );
    }
    last.push(argmax(l));
    kv.lengths[s] = p.length;
  }
  await e.seedPolicy(prompts.map((_, s) => s), prompts.map((p) => p.length));
  const out: Float32Array[] = [];
  for (let j = 0; j < steps; j++) {
    const toks = prompts.map((p, s) => ({
      slot: s,
      pos: p.length + j,
      id: last[s],
    }));
    const l = await e.stepLogits(toks, toks.map((_, r) => r), true);
    out.push(l);
    toks.forEach((_, s) => last[s] = argmax(l.subarray(s * V, (s + 1) * V)));
  }
  return out;
}

function argmax(a: Float32Array): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i;
  return b;
}

/**
 * The recompute tier rebuilds K/V with the forward pass's own kernels
 * (biases, Q/K norms, the layer's RoPE table): a tiered run forced to
 * recompute gives the all-GPU run's logits bit for bit, on the
 * architectures whose K/V path differs from Llama's.
 */
for (const arch of ["qwen2", "qwen3", "gemma3", "phi3"]) {
  Deno.test({
    name:
      `${arch}: a tiered KV store (forced recompute, a quarter of the dense KV on the GPU) gives the all-GPU logits bit for bit`,
    ignore: !HAS_GPU || !exists(`${arch}/hf`),
    async fn() {
      const gpu = (await testGpu())!;
      const STEPS = 150;
      const ref = reference(arch);
      const prompts = [ref.prompts[0].ids, ref.prompts[1].ids];
      const all = await loadModel(path(`${arch}/hf`), { gpu, maxBatch: 2 });
      const c = all.config;
      const want = await decodeLogits(all, prompts, STEPS);
      all.dispose();
      const perToken = 2 * c.nLayers * c.nKvHeads * c.headDim * 2;
      const dense = prompts.reduce(
        (a, p) => a + (p.length + STEPS) * perToken,
        0,
      );
      const m = await loadModel(path(`${arch}/hf`), {
        gpu,
        maxBatch: 2,
        kv: { gpuBytes: Math.floor(dense / 4), int8: false, recompute: "on" },
      });
      try {
        assertEquals(m.engine.kv.tiered, true);
        const got = await decodeLogits(m, prompts, STEPS);
        const first = got.findIndex((g, j) =>
          !new Uint32Array(g.buffer).every((x, i) =>
            x === new Uint32Array(want[j].buffer)[i]
          )
        );
        assertEquals(first, -1, `logits differ first at decode step ${first}`);
        const st = m.engine.kv.stats();
        assertGreaterOrEqual(st.recomputed_tokens, 1, "tokens were recomputed");
        console.log(
          `${arch}: ${STEPS} steps x 2 bit-identical; recomputed ${st.recomputed_tokens} token-layers, phases ${st.phases_entered}`,
        );
      } finally {
        m.dispose();
      }
    },
  });
}

Deno.test({
  name:
    "a GGUF whose rope_freqs.weight holds a zero or NaN is refused at load, naming the tensor, before any weight is uploaded",
  ignore: !HAS_GPU || !exists("llama3/llama3-f16.gguf"),
  async fn() {
    const src = path("llama3/llama3-f16.gguf");
    const f = await openModelFile(src);
    const t = f.tensors.find((t) => t.name === "rope_freqs.weight")!;
    f.close();
    const bytes = await Deno.readFile(src);
    const tmp = await Deno.makeTempFile({ suffix: ".gguf" });
    try {
      for (const bad of [0, NaN, -1]) {
        const copy = bytes.slice();
        new DataView(copy.buffer).setFloat32(t.fileOffset + 4 * 3, bad, true);
        await Deno.writeFile(tmp, copy);
        let uploaded = 0;
        const err = await loadModel(tmp, {
          gpu: (await testGpu())!,
          onProgress: () => uploaded++,
        }).then(() => null, (e) => e);
        assertEquals(err instanceof RangeError, true, String(err));
        assertEquals(
          /rope_freqs\.weight/.test(err.message) &&
            /divisor 3 /.test(err.message),
          true,
          err.message,
        );
        assertEquals(uploaded, 0);
      }
    } finally {
      await Deno.remove(tmp);
    }
  },
});
