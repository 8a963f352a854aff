/**
 * End to end: greedy generation equals llama.cpp token for token for every
 * prompt in greedy-austen.json (32 tokens, from BOS + prompt ids), for the
 * f32, f16 and q8_0 GGUFs and the HF directory (f16 weights: compared with
 * the f16 GGUF's reference). Where the fixture's `stable_tokens` marks a
 * near-tie in the reference logits, a divergence may begin there, not before.
 *
 * The README's count is asserted: all 8 prompts identical for all 32 tokens
 * for f32, f16 and HF; at least 7 of 8 for q8_0, whose one divergence (at
 * token 7 of one prompt) starts exactly at the fixture's near-tie (llama.cpp
 * also rounds activations to 8 bits in q8_0 products; this engine does not).
 */
import { assertEquals, assertGreaterOrEqual } from "@std/assert";
import { loadModel, type Model } from "../src/api/model.ts";
import { hasShared, sharedPath } from "./_shared.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const FIXTURE = "fixtures/greedy-austen.json";
/** [reference variant, model, prompts (of 8) that must match all 32 tokens] */
const SOURCES: [string, string, number][] = [
  ["f32", "models/austen-5m-f32.gguf", 8],
  ["f16", "models/austen-5m-f16.gguf", 8],
  ["q8_0", "models/austen-5m-q8_0.gguf", 7],
  ["f16", "models/austen-5m-hf", 8],
];

interface Case {
  prompt: string;
  prompt_ids: number[];
  ids: number[];
  stable_tokens: number;
}

const present = HAS_GPU && hasShared(FIXTURE) &&
  SOURCES.every(([, p]) => hasShared(p));

for (const [variant, path, minIdentical] of SOURCES) {
  Deno.test({
    name:
      `greedy generation from ${path} equals llama.cpp (${variant} reference): at least ${minIdentical} of 8 prompts identical for 32 tokens, the rest only from a near-tie`,
    ignore: !present,
    async fn() {
      const cases: Case[] =
        JSON.parse(await Deno.readTextFile(sharedPath(FIXTURE)))
          .variants[variant];
      const model: Model = await loadModel(sharedPath(path), {
        gpu: (await testGpu())!,
      });
      const divergences: string[] = [];
      assertEquals(cases.length, 8, "prompts in the fixture");
      try {
        for (const c of cases) {
          // The tokenizer gives llama.cpp's prompt ids.
          assertEquals(
            model.tokenizer.encode(c.prompt),
            c.prompt_ids,
            c.prompt,
          );
          const gen = model.generate(c.prompt_ids, {
            maxTokens: 32,
            stopAtEos: false,
          });
          for await (const _ of gen) { /* drain */ }
          const { ids } = await gen.result;
          const first = ids.findIndex((id, i) => id !== c.ids[i]);
          if (first !== -1) {
            divergences.push(
              `token ${first} (near-tie from ${c.stable_tokens})`,
            );
          }
          if (first !== -1) {
            assertGreaterOrEqual(
              first,
              c.stable_tokens,
              `${
                JSON.stringify(c.prompt)
              }: diverged at token ${first}, before the first near-tie (${c.stable_tokens})`,
            );
          }
          assertEquals(ids.length, 32);
        }
        const identical = cases.length - divergences.length;
        console.log(
          `${path}: ${identical} of ${cases.length} prompts identical to llama.cpp for all 32 tokens${
            divergences.length
              ? `; the others leave it at ${divergences.join(", ")}`
              : ""
          }`,
        );
        assertGreaterOrEqual(
          identical,
          minIdentical,
          `${path}: prompts identical to llama.cpp for all 32 tokens (divergences: ${
            divergences.join(", ") || "none"
          })`,
        );
      } finally {
        model.dispose();
      }
    },
  });
}
