/**
 * The tiered KV store (GPU pool under a byte budget, host tier, recompute
 * tier) against a store that keeps everything on the GPU:
 * - exactness: with the host tier in f16 and x in f32 every tier is exact,
 *   so SWA under a budget that forces all three phases gives the same
 *   tokens and bit-identical logits, step by step, for a batch of four
 *   sequences of different prompt lengths, 400+ tokens each, whose dense
 *   KV is 8x the budget;
 * - accounting: the store's bytes never pass the budget, at every step,
 *   and equal the sum of every buffer it created;
 * - dense under a budget (FlexGen-style): every host token moves every
 *   step, and the tokens equal all-GPU dense;
 * - bad budgets and options give clear errors before anything is
 *   allocated or generated.
 */
import {
  assert,
  assertEquals,
  assertGreaterOrEqual,
  assertLessOrEqual,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { loadModel, type Model } from "../src/api/model.ts";
import type { KvOptions, KvStepStats } from "../src/kv/store.ts";
import { parseBytes } from "../src/kv/store.ts";
import type { PolicySpec } from "../src/sparse/spec.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const ignore = !HAS_GPU;

/** Dense KV bytes (K and V, f16, every layer) of sequences at these lengths. */
function denseKvBytes(m: Model, lengths: number[]): number {
  const c = m.config;
  const perToken = 2 * c.nLayers * c.nKvHeads * c.headDim * 2;
  return lengths.reduce((a, n) => a + n * perToken, 0);
}

/**
 * Greedy decoding of `prompts` (one slot each) for `steps` steps, driving
 * the engine step by step as the API does; returns every step's logits.
 */
async function decodeRun(
  m: Model,
  prompts: number[][],
  steps: number,
  policy: PolicySpec,
  onLogits: (step: number, logits: Float32Array) => void,
): Promise<number[][]> {
  const e = m.engine, kv = e.kv, V = m.config.vocabSize;
  e.setPolicy(policy);
  kv.planRun(e.policy, prompts.map((p) => p.length), steps);
  prompts.forEach((_, s) => kv.clear(s));
  const out: number[][] = prompts.map(() => []);
  // Prefill each prompt in one step of its own (prompts are short).
  for (let s = 0; s < prompts.length; s++) {
    const p = prompts[s];
    const logits = await e.stepLogits(
      p.map((id, pos) => ({ slot: s, pos, id })),
      [p.length - 1],
      false,
    );
    out[s].push(argmax(logits));
    kv.lengths[s] = p.length;
  }
  await e.seedPolicy(prompts.map((_, s) => s), prompts.map((p) => p.length));
  for (let j = 0; j < steps; j++) {
    const toks = prompts.map((p, s) => ({
      slot: s,
      pos: p.length + j,
      id: out[s][j],
    }));
    const logits = await e.stepLogits(toks, toks.map((_, r) => r), true);
    onLogits(j, logits);
    toks.forEach((_, s) =>
      out[s].push(argmax(logits.subarray(s * V, (s + 1) * V)))
    );
  }
  return out;
}

function argmax(a: Float32Array): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i;
  return b;
}

Deno.test({
  name:
    "tiered SWA (f16 host tier, f32 x, forced recompute) equals all-GPU SWA: same tokens, bit-identical logits, batch of 4 x 400+ tokens, dense KV 8x the budget, phases 1-2-3, budget never passed",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const CTX = 512, STEPS = 420;
    const policy: PolicySpec = { name: "swa", sparsity: 0.8 };
    const ref = await loadModel(undefined, {
      gpu,
      contextLength: CTX,
      maxBatch: 4,
    });
    const text = [
      "It is a truth universally acknowledged",
      "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition",
      "No one who had ever seen Catherine Morland in her infancy would have supposed her born to be an heroine. Her situation in life,",
      "Mr. Darcy",
    ];
    const prompts = text.map((t) => ref.tokenizer.encode(t));
    const lengths = prompts.map((p) => p.length + STEPS + 1);
    const dense = denseKvBytes(ref, lengths);
    const budget = Math.floor(dense / 8);
    const want: Float32Array[] = [];
    const wantIds = await decodeRun(
      ref,
      prompts,
      STEPS,
      policy,
      (_, l) => want.push(l.slice()),
    );
    ref.dispose();

    const opts: KvOptions = { gpuBytes: budget, int8: false, recompute: "on" };
    const m = await loadModel(undefined, {
      gpu,
      contextLength: CTX,
      maxBatch: 4,
      kv: opts,
    });
    try {
      const kv = m.engine.kv;
      assert(kv.tiered, "the budget must make the store tiered");
      const stats: KvStepStats[] = [];
      kv.recordSteps = true;
      let mismatch = -1;
      const gotIds = await decodeRun(m, prompts, STEPS, policy, (j, l) => {
        // Accounting, every step: the budgeted buffers and what is held.
        assertLessOrEqual(kv.budgetedBytes, budget);
        const s = kv.steps[kv.steps.length - 1];
        assertLessOrEqual(s.gpuKvBytes, budget);
        stats.push(s);
        if (mismatch < 0 && !sameBits(l, want[j])) mismatch = j;
      });
      assertEquals(
        mismatch,
        -1,
        `logits differ first at decode step ${mismatch}`,
      );
      assertEquals(gotIds, wantIds);
      const sum = kv.budgetSet.all.reduce((a, b) => a + b.size, 0);
      assertEquals(kv.budgetedBytes, sum);
      assertLessOrEqual(sum, budget);
      const st = kv.stats();
      assertEquals(st.phases_entered, [1, 2, 3]);
      assertGreaterOrEqual(dense / budget, 8);
      assert(st.uploaded_bytes > 0, "tokens came back from the host");
      assert(st.recomputed_tokens > 0, "tokens were recomputed");
      console.log(
        `dense KV ${dense} B = ${
          (dense / budget).toFixed(2)
        }x the budget ${budget} B (${kv.pool.rows} rows); ` +
          `phases ${st.phases_entered}, p1 ${st.plan.p1}, p2 ${st.plan.p2}; uploaded ${st.uploaded_bytes} B, recomputed ${st.recomputed_tokens} token-layers, evictions ${st.evictions}, host peak ${st.host_tokens_peak} token-layers`,
      );
    } finally {
      m.dispose();
    }
  },
});

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

Deno.test({
  name:
    "dense under a GPU KV budget (FlexGen-style): every host token moves every step, tokens equal all-GPU dense",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const CTX = 128, STEPS = 40;
    const policy: PolicySpec = { name: "dense", sparsity: 0 };
    const ref = await loadModel(undefined, { gpu, contextLength: CTX });
    const prompt = ref.tokenizer.encode(
      "It is a truth universally acknowledged",
    );
    const wantIds = await decodeRun(ref, [prompt], STEPS, policy, () => {});
    ref.dispose();
    // A quarter of the final dense KV: more than one layer's working set
    // (a sixth), so the step streams layers through the pool.
    const budget = Math.floor(
      denseKvBytes(ref, [prompt.length + STEPS + 1]) / 4,
    ) + 60_000;
    const m = await loadModel(undefined, {
      gpu,
      contextLength: CTX,
      kv: { gpuBytes: budget, recompute: "off" },
    });
    try {
      const kv = m.engine.kv;
      kv.recordSteps = true;
      const rowBytes = 2 * m.config.nKvHeads * m.config.headDim * 2;
      const got = await decodeRun(m, [prompt], STEPS, policy, () => {});
      assertEquals(got, wantIds);
      const steps = kv.steps;
      let checked = 0;
      for (let i = 1; i < steps.length; i++) {
        const before = steps[i - 1].hostTokens + steps[i - 1].recomputeTokens;
        if (before === 0) continue;
        // Dense attends every token: each one off the GPU is uploaded.
        assertGreaterOrEqual(steps[i].uploadedBytes / rowBytes, before);
        checked++;
      }
      assert(checked > 10, `only ${checked} steps had host tokens`);
    } finally {
      m.dispose();
    }
  },
});

Deno.test({
  name:
    "bad GPU KV budgets and options: clear errors naming the minimum or the option",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    // Not positive integers, unknown options.
    for (const gpuBytes of [0, -5, 1.5, NaN, Infinity]) {
      await assertRejects(
        () => loadModel(undefined, { gpu, kv: { gpuBytes } }),
        RangeError,
        "kv.gpuBytes must be a positive integer",
      );
    }
    await assertRejects(
      // deno-lint-ignore no-explicit-any
      () => loadModel(undefined, { gpu, kv: { recompute: "maybe" as any } }),
      TypeError,
      "kv.recompute",
    );
    // A forced plan: beta in [0, 1], p2 a step; alpha and p1 follow from the budget.
    for (
      const [plan, err, msg] of [
        [{ beta: 1.5, p2: 0 }, RangeError, "kv.plan.beta must be in [0, 1]"],
        [{ beta: -0.1, p2: 0 }, RangeError, "kv.plan.beta must be in [0, 1]"],
        [{ beta: 0.5, p2: -1 }, RangeError, "kv.plan.p2"],
        [{ beta: 0.5, p2: 0, alpha: 0.3 }, TypeError, "kv.plan.alpha follows"],
      ] as const
    ) {
      await assertRejects(
        () =>
          loadModel(undefined, {
            gpu,
            kv: { gpuBytes: 90_000, plan: plan as KvOptions["plan"] },
          }),
        err,
        msg,
      );
    }
    // Too small for the fixed parts and one token per sequence.
    await assertRejects(
      () =>
        loadModel(undefined, {
          gpu,
          contextLength: 64,
          kv: { gpuBytes: 4096 },
        }),
      RangeError,
      "at least",
    );
    const m = await loadModel(undefined, {
      gpu,
      contextLength: 256,
      kv: { gpuBytes: 90_000 },
    });
    try {
      // h2o evicts inside the layer: it cannot run tiered.
      assertThrows(
        () => m.generate("Emma", { policy: { name: "h2o", sparsity: 0.5 } }),
        TypeError,
        "h2o",
      );
      // A run whose one-layer working set cannot fit: names the budget it needs.
      assertThrows(
        () =>
          m.generate("Emma", {
            maxTokens: 240,
            policy: { name: "dense", sparsity: 0 },
          }),
        RangeError,
        "use a budget of at least",
      );
      // Host memory for the host tier runs out: an error naming it, not a crash.
      const small = await loadModel(undefined, {
        gpu,
        contextLength: 256,
        kv: { gpuBytes: 90_000, hostBytes: 20_000 },
      });
      try {
        await assertRejects(
          async () => {
            const g = small.generate("It is a truth universally acknowledged", {
              maxTokens: 200,
              stopAtEos: false,
              policy: { name: "swa", sparsity: 0.8 },
            });
            for await (const _ of g) { /* drain */ }
          },
          RangeError,
          "host memory for KV is exhausted",
        );
      } finally {
        small.dispose();
      }
      // The model is still usable after the refusals.
      const g = m.generate("Emma", {
        maxTokens: 8,
        policy: { name: "swa", sparsity: 0.8 },
      });
      for await (const _ of g) { /* drain */ }
      assertEquals((await g.result).ids.length, 8);
    } finally {
      m.dispose();
    }
  },
});

Deno.test("parseBytes: integers and KiB/MiB/GiB; anything else names the option", () => {
  assertEquals(parseBytes("65536"), 65536);
  assertEquals(parseBytes("64KiB"), 65536);
  assertEquals(parseBytes("1.5MiB"), 1572864);
  assertEquals(parseBytes("2GiB"), 2 * 2 ** 30);
  assertEquals(parseBytes("3MB"), 3e6);
  for (const bad of ["", "abc", "12XB", "-1", "0", "0.1"]) {
    assertThrows(
      () => parseBytes(bad, "--gpu-kv-budget"),
      RangeError,
      "--gpu-kv-budget",
    );
  }
});

Deno.test({
  name:
    "a prompt whose prefill does not fit the pool is refused before the run, naming a budget that then works",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const prompt = Array.from({ length: 150 }, (_, i) => 1 + (i % 200));
    const swa: PolicySpec = { name: "swa", sparsity: 0.8 };
    const m = await loadModel(undefined, {
      gpu,
      contextLength: 256,
      kv: { gpuBytes: 90_000 },
    });
    let suggested = 0;
    try {
      const e = assertThrows(
        () => m.generate(prompt, { maxTokens: 4, policy: swa }),
        RangeError,
        "the prefill of a 150-token prompt attends all of it",
      );
      suggested = Number(/at least (\d+) bytes/.exec(e.message)![1]);
      assert(suggested > 90_000);
    } finally {
      m.dispose();
    }
    const ok = await loadModel(undefined, {
      gpu,
      contextLength: 256,
      kv: { gpuBytes: suggested },
    });
    try {
      const g = ok.generate(prompt, {
        maxTokens: 4,
        stopAtEos: false,
        policy: swa,
      });
      for await (const _ of g) { /* drain */ }
      assertEquals((await g.result).ids.length, 4);
      // Logits of a sequence longer than the pool: refused the same way.
      await assertRejects(
        () => ok.logits(Array.from({ length: 250 }, (_, i) => 1 + i)),
        RangeError,
        "the prefill of a 250-token prompt",
      );
    } finally {
      ok.dispose();
    }
  },
});

Deno.test({
  name:
    "a tiered run starts clean (earlier runs' sequences are cleared), allocates nothing per step, and its store holds only budgeted and staging buffers",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const m = await loadModel(undefined, {
      gpu,
      contextLength: 256,
      maxBatch: 3,
      kv: { gpuBytes: 200_000, int8: false },
    });
    try {
      const kv = m.engine.kv;
      const swa: PolicySpec = { name: "swa", sparsity: 0.8 };
      await m.generateBatch(["Emma", "Mr. Darcy", "It is a truth"], {
        maxTokens: 120,
        stopAtEos: false,
        policy: swa,
      });
      assertEquals(kv.stats().phases_entered, [1, 2]);
      // Count buffer creations during a second, short run (after its prefill).
      const create = gpu.device.createBuffer.bind(gpu.device);
      let made = 0, steps = 0;
      gpu.device.createBuffer = (d) => {
        if (steps > 2) made++;
        return create(d);
      };
      try {
        const g = m.generate("Emma", {
          maxTokens: 30,
          stopAtEos: false,
          policy: swa,
          onStep: () => steps++,
        });
        for await (const _ of g) { /* drain */ }
        const st = (await g.result).kvStats;
        // 30 tokens of one sequence fit: the first run's sequences are gone.
        assertEquals(st.phases_entered, [1]);
        assertEquals(st.host_tokens_peak, 0);
      } finally {
        gpu.device.createBuffer = create;
      }
      assertEquals(made, 0, "a tiered step must allocate nothing");
      assertEquals(kv.set.bytes, kv.budgetSet.bytes + kv.stagingSet.bytes);
      assertLessOrEqual(kv.budgetSet.bytes, kv.budgetBytes);
    } finally {
      m.dispose();
    }
  },
});
