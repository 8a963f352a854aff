/**
 * The throughput benchmark's systems (bench/throughput_systems.ts) are
 * honest: at batch 1, each one's greedy output equals its own
 * non-batched run (`generate` with the same policy and KV store), under a
 * budget small enough that the tiered and paged systems are not static.
 */
import { assert, assertEquals } from "@std/assert";
import { loadModel } from "../src/api/model.ts";
import {
  runSystem,
  systemConfig,
  SYSTEMS,
} from "../bench/throughput_systems.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

Deno.test({
  name:
    "throughput systems: batch 1 of each equals its own generate() run (dense-unlimited, swa-gpu, alisa, flexgen, vllm)",
  ignore: !HAS_GPU,
  async fn() {
    const gpu = (await testGpu())!;
    const probe = await loadModel(undefined, { gpu, contextLength: 64 });
    const prompt = probe.tokenizer.encode(
      "It is a truth universally acknowledged, that a single man",
    );
    const c = probe.config;
    probe.dispose();
    const O = 40;
    const perToken = 2 * c.nLayers * c.nKvHeads * c.headDim * 2;
    // A third of the sequence's dense KV at its full length (plus the row
    // tables and scratch): the tiered systems spill; vLLM's blocks fit it.
    const budget = Math.floor((prompt.length + O) * perToken / 3) + 40_000;
    for (const system of SYSTEMS) {
      // vLLM's blocks of 16 need a context longer than the run to be
      // smaller than the static pool.
      const ctx = 128;
      const r = await runSystem(gpu, system, [prompt], {
        output: O,
        budget: system === "vllm" ? 200_000 : budget,
        batch: 1,
        context: ctx,
      });
      const { policy, kv } = systemConfig(
        system,
        system === "vllm" ? 200_000 : budget,
      );
      const m = await loadModel(undefined, { gpu, contextLength: ctx, kv });
      try {
        if (system === "alisa" || system === "flexgen") {
          assert(m.engine.kv.tiered, `${system} must be tiered here`);
        }
        if (system === "vllm") assert(m.engine.kv.paged);
        const g = m.generate(prompt, {
          maxTokens: O,
          stopAtEos: false,
          policy,
        });
        for await (const _ of g) { /* drain */ }
        const res = await g.result;
        assertEquals(r.ids[0], res.ids, system);
        if (system === "alisa" || system === "flexgen") {
          assert(
            res.kvStats.phases_entered.includes(2),
            `${system}: the budget must make tokens spill`,
          );
        }
      } finally {
        m.dispose();
      }
    }
  },
});
