/**
 * `model.logits` against PyTorch fp32 logits of the f32 Austen model
 * (logits-austen.json): every vocabulary logit at three positions per case
 * and the top-20 logits at every position, for the f32, f16 and q8_0 GGUFs.
 *
 * The bounds are 3-5x what llvmpipe measures (printed), NMSE of full rows /
 * of the top 20 at every position:
 * - f32:  3.09e-9 / 2.37e-9 (the floor is the f16 KV cache: a TypeScript
 *   pass with f16-rounded K/V is 1e-9..3e-9 from PyTorch too, with f32 K/V
 *   8e-14; see scoring_reference_test.ts)
 * - f16:  2.49e-8 / 5.58e-9
 * - q8_0: 1.21e-5 / 2.49e-6
 */
import { assertEquals, assertLessOrEqual } from "@std/assert";
import { loadModel } from "../src/api/model.ts";
import { compare, hasShared, sharedPath } from "./_shared.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const FIXTURE = "fixtures/logits-austen.json";
/** [variant, NMSE bound of full rows, NMSE bound of the top 20] */
const VARIANTS: [string, number, number][] = [
  ["f32", 1e-8, 1e-8],
  ["f16", 1e-7, 3e-8],
  ["q8_0", 5e-5, 1e-5],
];
const present = HAS_GPU && hasShared(FIXTURE) &&
  VARIANTS.every(([v]) => hasShared(`models/austen-5m-${v}.gguf`));

interface Case {
  ids: number[];
  full: Record<string, number[]>;
  top20: { ids: number[]; logits: number[] }[];
}

for (const [variant, boundFull, boundTop] of VARIANTS) {
  Deno.test({
    name:
      `logits of the ${variant} GGUF match PyTorch fp32 (NMSE <= ${boundFull} full rows, <= ${boundTop} top 20)`,
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
        assertLessOrEqual(worstFull, boundFull, `${variant}: full rows`);
        assertLessOrEqual(worstTop, boundTop, `${variant}: top 20`);
      } finally {
        model.dispose();
      }
    },
  });
}
