/**
 * The vLLM-style baseline's own mechanism: paged KV that stays on the GPU
 * (blocks of 16 positions), with continuous batching. Under a budget too
 * small for every sequence at once, sequences wait, the newest is
 * preempted when a step runs out of blocks, and is prefilled again later;
 * every sequence still finishes with exactly the tokens of an
 * unconstrained run. Also: a paged store refuses a plain batch that
 * cannot fit, and options that do not apply to it.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { loadModel } from "../src/api/model.ts";
import { BLOCK_TOKENS } from "../src/kv/paged.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const ignore = !HAS_GPU;

const PROMPTS = [
  "It is a truth universally acknowledged",
  "Emma Woodhouse, handsome, clever, and rich",
  "No one who had ever seen Catherine Morland in her infancy",
  "Mr. Darcy",
  "Catherine had been reading all morning",
  "The Miss Thorpes were introduced",
];

Deno.test({
  name:
    "paged KV with continuous batching: preempts, recomputes, and every sequence ends with the unconstrained tokens and bit-identical logits",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const CTX = 128, N = 60;
    const ref = await loadModel(undefined, {
      gpu,
      contextLength: CTX,
      maxBatch: PROMPTS.length,
    });
    // The unconstrained run: every sequence in its own slot at once; the
    // logits each token was chosen from, by (sequence, token).
    const bits = (l: Float32Array) =>
      Array.from(new Uint32Array(l.slice().buffer)).join(",");
    const wantLogits = new Map<string, string>();
    const want = (await ref.generateContinuous(PROMPTS, {
      maxTokens: N,
      stopAtEos: false,
      onLogits: (s, t, l) => wantLogits.set(`${s},${t}`, bits(l)),
    })).sequences;
    assertEquals(wantLogits.size, PROMPTS.length * N);
    const c = ref.config;
    ref.dispose();
    // Blocks for about three sequences at their full length (each needs
    // ceil(~75 / 16) = 5 blocks), for six sequences in four slots.
    const rowBytes = c.nKvHeads * c.headDim * 4;
    const blockBytes = BLOCK_TOKENS * c.nLayers * rowBytes;
    const table = c.nLayers * 4 * CTX * 4 + c.nLayers * 16;
    const m = await loadModel(undefined, {
      gpu,
      contextLength: CTX,
      maxBatch: 4,
      kv: { gpuBytes: table + 14 * blockBytes, paged: true },
    });
    try {
      assertEquals(m.engine.kv.allocator!.blocks, 14);
      // A plain batch of all four slots at full length does not fit: refused.
      assertThrows(
        () => {
          m.engine.kv.planRun(
            m.engine.policy,
            [10, 10, 10, 10],
            N,
          );
        },
        RangeError,
        "use generateContinuous",
      );
      let mismatch = "";
      const r = await m.generateContinuous(PROMPTS, {
        maxTokens: N,
        stopAtEos: false,
        onLogits: (s, t, l) => {
          if (!mismatch && wantLogits.get(`${s},${t}`) !== bits(l)) {
            mismatch = `sequence ${s}, token ${t}`;
          }
        },
      });
      assertEquals(mismatch, "", "logits must be bit-identical");
      assert(r.preemptions > 0, "the budget must force preemptions");
      assert(r.recomputedTokens > 0);
      assertEquals(
        r.sequences.map((s) => s.ids),
        want.map((s) => s.ids),
      );
      assertEquals(r.kvStats.preemptions, r.preemptions);
      console.log(
        `${PROMPTS.length} sequences, 4 slots, 14 blocks: ${r.preemptions} preemptions, ${r.recomputedTokens} tokens recomputed, ${r.decodeSteps} decode steps`,
      );
    } finally {
      m.dispose();
    }
  },
});

Deno.test({
  name:
    "paged KV options: tiers' options refused, a budget under one block per sequence refused",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    await assertRejects(
      () =>
        loadModel(undefined, {
          gpu,
          contextLength: 64,
          kv: { gpuBytes: 100_000, paged: true, int8: false },
        }),
      TypeError,
      "kv.int8 does not apply to paged KV",
    );
    await assertRejects(
      () =>
        loadModel(undefined, {
          gpu,
          contextLength: 64,
          maxBatch: 4,
          kv: { gpuBytes: 60_000, paged: true },
        }),
      RangeError,
      "paged KV needs at least one block per sequence",
    );
  },
});
