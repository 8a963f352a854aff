/**
 * Size options against the model and the device (src/model/limits.ts):
 * a context beyond the trained one, a batch whose KV cache cannot be
 * bound, a step too wide, a policy state too large are refused with a
 * RangeError naming the option, the limit and the allowed range; through
 * the API this happens before a single tensor is uploaded.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  checkEngineOptions,
  checkPolicyState,
  type EngineLimits,
} from "../src/model/limits.ts";
import { loadModel } from "../src/api/model.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

/** The embedded Austen model's dimensions. */
const AUSTEN = {
  contextLength: 1024,
  nLayers: 6,
  nHeads: 8,
  nKvHeads: 4,
  headDim: 32,
  ropeDim: 32,
  dim: 256,
  ffnDim: 768,
  vocabSize: 4096,
};
/** llvmpipe's limits (a 128 MiB binding). */
const LLVMPIPE: EngineLimits = {
  maxBufferSize: 2 ** 31 - 1,
  maxStorageBufferBindingSize: 2 ** 27,
  maxComputeWorkgroupsPerDimension: 65535,
};

Deno.test("checkEngineOptions: the context is 1 to the trained context", () => {
  for (const v of [99999999, 1025, 0, -1, 1.5, NaN, Infinity]) {
    assertThrows(
      () => checkEngineOptions(AUSTEN, { contextLength: v }, LLVMPIPE),
      RangeError,
      `contextLength must be an integer from 1 to 1024 (the model's trained context), got ${v}`,
    );
  }
  assertThrows(
    () =>
      checkEngineOptions(
        AUSTEN,
        { contextLength: "64" as unknown as number },
        LLVMPIPE,
      ),
    TypeError,
    "contextLength must be a number, got string",
  );
  assertEquals(checkEngineOptions(AUSTEN, { contextLength: 1 }, LLVMPIPE), {
    contextLength: 1,
    maxBatch: 1,
    maxStepTokens: 512,
    maxOut: 512,
  });
});

Deno.test("checkEngineOptions: the batch's KV pool, row table and logit rows must fit", () => {
  // Without a KV budget every position has a row: 6 layers x 1024 x 341
  // slots x 512 bytes fits 8 bindings of 128 MiB, 342 slots do not.
  assertEquals(
    checkEngineOptions(AUSTEN, { maxBatch: 341 }, LLVMPIPE).maxBatch,
    341,
  );
  for (const v of [342, 1e9]) {
    assertThrows(
      () => checkEngineOptions(AUSTEN, { maxBatch: v }, LLVMPIPE),
      RangeError,
      `maxBatch must be an integer from 1 to 341 with contextLength 1024 on this GPU, got ${v}: the KV of every position (${v} slots x 1024 positions x 6 layers, 512 bytes each)`,
    );
  }
  // With a budget only the row table (6 x 1024 x 4 bytes a slot) and the
  // logit rows bound it.
  assertEquals(
    checkEngineOptions(AUSTEN, { maxBatch: 512, kvGpuBytes: 2 ** 26 }, LLVMPIPE)
      .maxBatch,
    512,
  );
  assertThrows(
    () =>
      checkEngineOptions(
        AUSTEN,
        { contextLength: 8, maxBatch: 1e6, kvGpuBytes: 2 ** 26 },
        LLVMPIPE,
      ),
    RangeError,
    "maxBatch must be an integer from 1 to 699050 with contextLength 8 on this GPU, got 1000000: the KV row table",
  );
  for (const v of [0, -3, 2.5]) {
    assertThrows(
      () => checkEngineOptions(AUSTEN, { maxBatch: v }, LLVMPIPE),
      RangeError,
      `maxBatch must be an integer >= 1, got ${v}`,
    );
  }
  // A short context leaves room for more slots than one step has rows.
  assertThrows(
    () =>
      checkEngineOptions(
        AUSTEN,
        { contextLength: 64, maxBatch: 600 },
        LLVMPIPE,
      ),
    RangeError,
    "maxBatch must be an integer from 1 to 512 on this GPU, got 600: a step of the whole batch needs 600 logit rows",
  );
  // The names the CLI uses.
  assertThrows(
    () =>
      checkEngineOptions(
        AUSTEN,
        { contextLength: 64, maxBatch: 1e9 },
        LLVMPIPE,
        {
          contextLength: "--window",
          maxBatch: "--batch",
        },
      ),
    RangeError,
    "--batch must be an integer from 1 to 5461 with --window 64 on this GPU",
  );
});

Deno.test("checkEngineOptions: a context the device cannot bind, and the step size", () => {
  // A model trained for 2^20 positions: without a KV budget one sequence's
  // KV (6 layers x 2^20 rows of 512 bytes, 3 GiB) is over 8 bindings.
  const long = { ...AUSTEN, contextLength: 2 ** 20 };
  assertThrows(
    () => checkEngineOptions(long, {}, LLVMPIPE),
    RangeError,
    "contextLength must be an integer from 1 to 349525 on this GPU without a KV budget, got 1048576: the KV of one sequence (6 layers x 1048576 positions, 512 bytes each) would take 3.0 GiB, over 8 x this GPU's maxStorageBufferBindingSize (128.0 MiB)",
  );
  // With a budget the context may be longer; the attention weights bound
  // the step: 128 MiB / (8 x 2^19 x 4) = 8 tokens.
  assertEquals(
    checkEngineOptions(
      long,
      { contextLength: 2 ** 19, kvGpuBytes: 2 ** 26 },
      LLVMPIPE,
    ),
    { contextLength: 2 ** 19, maxBatch: 1, maxStepTokens: 8, maxOut: 8 },
  );
  // One token's attention weights (8 heads x 2^22 f32 = 128 MiB + ...) do not fit.
  assertThrows(
    () =>
      checkEngineOptions(
        { ...AUSTEN, contextLength: 2 ** 23 },
        { kvGpuBytes: 2 ** 26 },
        LLVMPIPE,
      ),
    RangeError,
    "one token's attention weights (8 heads x 8388608 positions, f32) would take 256.0 MiB",
  );
  // A smaller maxBufferSize is the limit that counts, and is named.
  assertThrows(
    () =>
      checkEngineOptions(AUSTEN, { maxBatch: 65 }, {
        ...LLVMPIPE,
        maxBufferSize: 2 ** 24,
      }),
    RangeError,
    "over 8 x this GPU's maxBufferSize (16.0 MiB)",
  );
  for (const v of [0, 65536, 1.5]) {
    assertThrows(
      () => checkEngineOptions(AUSTEN, { maxStepTokens: v }, LLVMPIPE),
      RangeError,
      `maxStepTokens must be an integer from 1 to 65535 (maxComputeWorkgroupsPerDimension), got ${v}`,
    );
  }
  assertThrows(
    () =>
      checkEngineOptions(
        AUSTEN,
        { contextLength: 8, maxStepTokens: 60000 },
        LLVMPIPE,
      ),
    RangeError,
    "maxStepTokens must be an integer from 1 to 43690 on this GPU, got 60000: a step's activations (60000 tokens x 768, f32)",
  );
});

Deno.test("checkPolicyState: SWA's score rows and H2O's scores must fit one binding", () => {
  const kv = { ctx: 1024, slots: 64 };
  // Sparsity 0: k = 512, rows of 1025 entries: 64 x 513 x 1025 x 4 = 128.4 MiB.
  assertThrows(
    () => checkPolicyState(AUSTEN, kv, { name: "swa" }, LLVMPIPE),
    RangeError,
    "KV policy swa needs SWA's score rows (64 slots, context 1024, sparsity 0) per layer: 128.4 MiB, over this GPU's maxStorageBufferBindingSize (128.0 MiB); use a smaller maxBatch or contextLength",
  );
  checkPolicyState(AUSTEN, { ctx: 1024, slots: 63 }, { name: "swa" }, LLVMPIPE);
  // Sparsity 0.8 keeps k = 102: 64 x 103 x 206 x 4 bytes, far below.
  checkPolicyState(AUSTEN, kv, { name: "swa", sparsity: 0.8 }, LLVMPIPE);
  // minBudget widens the rows again (k >= 512).
  assertThrows(
    () =>
      checkPolicyState(
        AUSTEN,
        kv,
        { name: "swa", sparsity: 0.9, minBudget: 1024 },
        LLVMPIPE,
      ),
    RangeError,
    "(64 slots, context 1024, sparsity 0.9)",
  );
  assertThrows(
    () =>
      checkPolicyState(
        AUSTEN,
        { ctx: 1024, slots: 4097 },
        { name: "h2o" },
        LLVMPIPE,
      ),
    RangeError,
    "KV policy h2o needs H2O's scores (4097 slots x 8 heads x 1024 f32)",
  );
  for (const name of ["dense", "local", "strided", "sinks"]) {
    checkPolicyState(AUSTEN, { ctx: 1024, slots: 4097 }, { name }, LLVMPIPE);
  }
});

Deno.test({
  name:
    "loadModel: a context or batch beyond the model or the GPU throws at once, before any tensor is uploaded",
  ignore: !HAS_GPU,
  async fn() {
    const gpu = (await testGpu())!;
    const cases: [Record<string, number>, string][] = [
      [
        { contextLength: 99999999 },
        "contextLength must be an integer from 1 to 1024",
      ],
      [{ contextLength: 0 }, "contextLength must be an integer from 1 to 1024"],
      [{ maxBatch: 1e9 }, "maxBatch must be an integer from 1 to "],
      [{ maxBatch: 0 }, "maxBatch must be an integer >= 1, got 0"],
      [{ maxStepTokens: 0 }, "maxStepTokens must be an integer from 1 to "],
    ];
    for (const [o, message] of cases) {
      let uploaded = 0;
      const t0 = performance.now();
      await assertRejects(
        () => loadModel(undefined, { gpu, ...o, onProgress: () => uploaded++ }),
        RangeError,
        message,
      );
      const ms = performance.now() - t0;
      assertEquals(uploaded, 0, `${JSON.stringify(o)}: tensors were uploaded`);
      assert(ms < 5000, `${JSON.stringify(o)}: took ${ms.toFixed(0)} ms`);
    }
    // Its own device, as `loadModel(undefined, { contextLength: 99999999 })` is called.
    const t0 = performance.now();
    await assertRejects(
      () => loadModel(undefined, { contextLength: 99999999 }),
      RangeError,
      "(the model's trained context), got 99999999",
    );
    assert(performance.now() - t0 < 5000);
  },
});

Deno.test({
  name: "loadModel: the sizes checkEngineOptions returns are the engine's",
  ignore: !HAS_GPU,
  async fn() {
    const gpu = (await testGpu())!;
    const m = await loadModel(undefined, {
      gpu,
      contextLength: 256,
      maxBatch: 3,
    });
    try {
      const s = checkEngineOptions(
        m.config,
        { contextLength: 256, maxBatch: 3 },
        gpu.limits,
      );
      assertEquals(
        [s.contextLength, s.maxBatch, s.maxStepTokens, s.maxOut],
        [
          m.engine.kv.ctx,
          m.engine.kv.slots,
          m.engine.maxStepTokens,
          m.engine.maxOut,
        ],
      );
    } finally {
      m.dispose();
    }
  },
});
