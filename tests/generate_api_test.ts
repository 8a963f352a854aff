/**
 * The generation API on the embedded model: batched decode of sequences
 * with different prompt lengths gives each the tokens it gets alone;
 * prefill split into several steps equals one step; seeded sampling is
 * reproducible; stop strings and streaming text agree with the result;
 * bad input gives clear errors.
 */
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { loadModel, type Model } from "../src/api/model.ts";
import { evaluatePolicies } from "../src/eval/perplexity.ts";
import { HAS_GPU, withModel } from "./_gpu.ts";

const ignore = !HAS_GPU;

async function alone(m: Model, ids: number[], n: number): Promise<number[]> {
  const g = m.generate(ids, { maxTokens: n, stopAtEos: false });
  for await (const _ of g) { /* drain */ }
  return (await g.result).ids;
}

Deno.test({
  name:
    "batched greedy decode of 4 sequences with different prompt lengths equals decoding each alone",
  ignore,
  async fn() {
    await withModel({ maxBatch: 4, contextLength: 256 }, async (m) => {
      const prompts = [
        "It is a truth universally acknowledged",
        "Mr. Darcy",
        '"My dear Mr. Bennet," said his lady to him one day, "have you heard',
        "Emma",
      ].map((p) => m.tokenizer.encode(p));
      const batch = await m.generateBatch(prompts, {
        maxTokens: 12,
        stopAtEos: false,
      });
      for (let i = 0; i < prompts.length; i++) {
        assertEquals(
          batch[i].ids,
          await alone(m, prompts[i], 12),
          `sequence ${i}`,
        );
      }
    });
  },
});

Deno.test({
  name:
    "prefill in many small steps equals one step; logits rows agree with generation",
  ignore,
  async fn() {
    const ids = [
      1,
      597,
      366,
      261,
      1818,
      450,
      4022,
      1189,
      557,
      2672,
      4035,
      285,
      304,
    ];
    let one: number[] = [], many: number[] = [];
    await withModel({ contextLength: 64 }, async (m) => {
      one = await alone(m, ids, 8);
    });
    await withModel({ contextLength: 64, maxStepTokens: 3 }, async (m) => {
      many = await alone(m, ids, 8);
      const logits = await m.logits(ids);
      const V = m.config.vocabSize;
      const last = logits.subarray((ids.length - 1) * V);
      let best = 0;
      for (let i = 1; i < V; i++) if (last[i] > last[best]) best = i;
      assertEquals(best, many[0]);
    });
    assertEquals(many, one);
  },
});

Deno.test({
  name:
    "seeded sampling is reproducible, streaming text equals the result, stop strings cut",
  ignore,
  async fn() {
    await withModel({ contextLength: 128 }, async (m) => {
      const run = async (opts: Parameters<Model["generate"]>[1]) => {
        const g = m.generate("It is a truth universally acknowledged", opts);
        let streamed = "";
        for await (const p of g) streamed += p.text;
        const r = await g.result;
        assertEquals(streamed, r.text);
        return r;
      };
      const a = await run({
        maxTokens: 20,
        temperature: 0.9,
        topK: 40,
        topP: 0.9,
        seed: 7,
      });
      const b = await run({
        maxTokens: 20,
        temperature: 0.9,
        topK: 40,
        topP: 0.9,
        seed: 7,
      });
      assertEquals(a.ids, b.ids);
      const greedy = await run({ maxTokens: 20 });
      assertEquals(
        greedy.text,
        m.tokenizer.decode(greedy.ids, { stripLeadingSpace: false }),
      );
      assertStringIncludes(greedy.text, " I am");
      const stopped = await run({ maxTokens: 20, stop: [" I am"] });
      assertEquals(stopped.finishReason, "stop");
      assertEquals(
        stopped.text,
        greedy.text.slice(0, greedy.text.indexOf(" I am")),
      );
    });
  },
});

Deno.test({
  name:
    "bad input: prompt longer than the context, ids out of range, bad options; exclusive calls refuse while generating, generate waits for them",
  ignore,
  async fn() {
    await withModel({ contextLength: 32 }, async (m) => {
      assertThrows(
        () => m.generate(new Array(40).fill(5)),
        RangeError,
        "context holds 32",
      );
      assertThrows(() => m.generate([]), RangeError, "empty");
      assertThrows(
        () => m.generate("x", { temperature: -1 }),
        RangeError,
        "temperature",
      );
      assertThrows(() => m.generate("x", { topP: 0 }), RangeError, "topP");
      assertThrows(
        () => m.generate("x", { maxTokens: 0 }),
        RangeError,
        "maxTokens",
      );
      assertThrows(
        () => m.generate("x", { policy: { name: "swa", sparsity: 1 } }),
        RangeError,
        "sparsity",
      );
      assertThrows(
        () =>
          m.generate("x", {
            policy: { name: "nope" as unknown as "swa", sparsity: 0.5 },
          }),
        TypeError,
        "unknown KV policy",
      );
      assertThrows(
        () =>
          m.generate("x", {
            policy: { name: "local", sparsity: 0.5, minBudget: 64 },
          }),
        RangeError,
        "minBudget",
      );
      await assertRejects(
        () => m.logits([1, 99999]),
        RangeError,
        "outside the vocabulary",
      );
      await assertRejects(
        () => m.generateBatch(["a", "b"]),
        RangeError,
        "maxBatch",
      );
      const g = m.generate("Emma", { maxTokens: 40 });
      // Calls that need the engine alone refuse while a generation runs.
      await assertRejects(() => m.logits([1, 2]), Error, "already generating");
      const r = await (async () => {
        for await (const _ of g) { /* drain */ }
        return await g.result;
      })();
      // The context (32) ends generation.
      assert(
        r.finishReason === "context" || r.finishReason === "eos",
        r.finishReason,
      );
      assert(r.promptIds.length + r.ids.length <= 33);
      // Scoring holds the engine: a generate started meanwhile waits for
      // it (it cannot change the policy under it) and then runs.
      const scoring = evaluatePolicies(m, [[1, 597, 366, 263, 10]], ["swa"], [
        0.5,
      ]);
      const later = m.generate("Emma", { maxTokens: 4, stopAtEos: false });
      assertEquals((await scoring).length, 1);
      for await (const _ of later) { /* drain */ }
      const lr = await later.result;
      assertEquals(lr.ids.length, 4);
      assertEquals(m.engine.policy.name, "dense");
      assert(lr.queuedMs > 0);
    });
  },
});

Deno.test({
  name: "a lost device is reported as an error, not a hang",
  ignore,
  async fn() {
    const m = await loadModel(undefined, { contextLength: 32 }); // its own device
    m.engine.gpu.device.destroy();
    await m.engine.gpu.device.lost;
    await assertRejects(
      async () => {
        const g = m.generate("Emma", { maxTokens: 4 });
        for await (const _ of g) { /* drain */ }
      },
      Error,
      "lost",
    );
    m.file.close();
  },
});
