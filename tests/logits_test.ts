/**
 * `model.logits` against PyTorch fp32 logits of the f32 Austen model
 * (logits-austen.json): every vocabulary logit at three positions per case
 * and the top-20 logits at every position. NMSE <= 1e-5 is required for the
 * f32 weights; the f16 and q8_0 files are measured and printed (and bounded
 * loosely, so a broken kernel still fails).
 */
import { assertEquals, assertLessOrEqual } from "@std/assert";
import { loadModel } from "../src/api/model.ts";
import { compare, hasShared, sharedPath } from "./_shared.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const FIXTURE = "fixtures/logits-austen.json";
const VARIANTS: [string, number][] = [["f32", 1e-5], ["f16", 1e-4], [
  "q8_0",
  1e-3,
]];
const present = HAS_GPU && hasShared(FIXTURE) &&
  VARIANTS.every(([v]) => hasShared(`models/austen-5m-${v}.gguf`));

interface Case {
  ids: number[];
  full: Record<string, number[]>;
  top20: { ids: number[]; logits: number[] }[];
}

for (const [variant, bound] of VARIANTS) {
  Deno.test({
    name: `logits of the ${variant} GGUF match PyTorch fp32 (NMSE <= ${bound})`,
    ignore: !present,
    async fn() {
      const cases: Case[] =
        JSON.parse(await Deno.readTextFile(sharedPath(FIXTURE))).cases;
      const model = await loadModel(
        sharedPath(`models/austen-5m-${variant}.gguf`),
        { gpu: (await testGpu())! },
      );
      const V = model.config.vocabSize;
      try {
        let worstFull = 0, worstTop = 0;
        for (const c of cases) {
          const logits = await model.logits(c.ids);
          assertEquals(logits.length, c.ids.length * V);
          for (const [pos, want] of Object.entries(c.full)) {
            const got = logits.subarray(Number(pos) * V, (Number(pos) + 1) * V);
            worstFull = Math.max(worstFull, compare(got, want).nmse);
          }
          const got: number[] = [], want: number[] = [];
          c.top20.forEach((t, pos) => {
            t.ids.forEach((id, j) => {
              got.push(logits[pos * V + id]);
              want.push(t.logits[j]);
            });
          });
          worstTop = Math.max(worstTop, compare(got, want).nmse);
        }
        console.log(
          `${variant}: worst NMSE full rows ${
            worstFull.toExponential(2)
          }, top-20 at every position ${worstTop.toExponential(2)}`,
        );
        assertLessOrEqual(worstFull, bound);
        assertLessOrEqual(worstTop, bound);
      } finally {
        model.dispose();
      }
    },
  });
}
