/**
 * End to end: greedy generation equals llama.cpp token for token for every
 * prompt in greedy-austen.json (32 tokens, from BOS + prompt ids), for the
 * f32, f16 and q8_0 GGUFs and the HF directory (f16 weights: compared with
 * the f16 GGUF's reference). Where the fixture's `stable_tokens` marks a
 * near-tie in the reference logits, a divergence may begin there, not before.
 */
import { assertEquals, assertGreaterOrEqual } from "@std/assert";
import { loadModel, type Model } from "../src/api/model.ts";
import { hasShared, sharedPath } from "./_shared.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const FIXTURE = "fixtures/greedy-austen.json";
const SOURCES: [string, string][] = [
  ["f32", "models/austen-5m-f32.gguf"],
  ["f16", "models/austen-5m-f16.gguf"],
  ["q8_0", "models/austen-5m-q8_0.gguf"],
  ["f16", "models/austen-5m-hf"],
];

interface Case {
  prompt: string;
  prompt_ids: number[];
  ids: number[];
  stable_tokens: number;
}

const present = HAS_GPU && hasShared(FIXTURE) &&
  SOURCES.every(([, p]) => hasShared(p));

for (const [variant, path] of SOURCES) {
  Deno.test({
    name:
      `greedy generation from ${path} equals llama.cpp (${variant} reference)`,
    ignore: !present,
    async fn() {
      const cases: Case[] =
        JSON.parse(await Deno.readTextFile(sharedPath(FIXTURE)))
          .variants[variant];
      const model: Model = await loadModel(sharedPath(path), {
        gpu: (await testGpu())!,
      });
      const divergences: string[] = [];
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
        console.log(
          `${path}: ${
            cases.length - divergences.length
          } of ${cases.length} prompts identical to llama.cpp for all 32 tokens${
            divergences.length
              ? `; the others leave it at ${divergences.join(", ")}`
              : ""
          }`,
        );
      } finally {
        model.dispose();
      }
    },
  });
}
