/**
 * A model's own sliding window composes with the KV policy: in a windowed
 * layer, attention takes the policy's ascending set and keeps only its
 * entries within the last `window` positions; the others get weight 0.
 * Checked on the Mistral fixture (window 8 in every layer), decoding past
 * the window under each policy: the recorded set is the policy's, every
 * entry older than the window has weight exactly 0, and the kept entries'
 * weights sum to 1.
 */
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { loadModel } from "../src/api/model.ts";
import type { PolicyName } from "../src/sparse/spec.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";
import { hasModelFixture, modelFixture } from "./_shared.ts";

const DIR = modelFixture("mistral/hf");
const present = hasModelFixture("mistral/hf");
const CTX = 64;
const WINDOW = 8;

for (
  const name of [
    "dense",
    "local",
    "strided",
    "sinks",
    "h2o",
    "swa",
  ] as PolicyName[]
) {
  Deno.test({
    name:
      `mistral (window ${WINDOW}) under ${name}: only the policy's entries within the window are attended`,
    ignore: !HAS_GPU || !present,
    async fn() {
      const m = await loadModel(DIR, {
        gpu: (await testGpu())!,
        contextLength: CTX,
      });
      try {
        assertEquals(m.config.layerWindows, [WINDOW, WINDOW]);
        const e = m.engine, H = m.config.nHeads;
        e.recordSelections = true;
        e.setPolicy({ name, sparsity: name === "dense" ? 0 : 0.5 });
        const prompt = [
          1,
          412,
          341,
          279,
          447,
          330,
          446,
          285,
          458,
          297,
          427,
          291,
        ];
        const P = prompt.length;
        let id = (await e.stepCapture(
          prompt.map((tok, pos) => ({ slot: 0, pos, id: tok })),
          [P - 1],
          false,
          0,
        )).ids[0];
        await e.seedPolicy([0], [P]);
        let outside = 0;
        for (let q = P; q < P + 24; q++) {
          const n = q + 1;
          const r = await e.stepCapture(
            [{ slot: 0, pos: q, id }],
            [0],
            true,
            0,
          );
          for (let h = 0; h < H; h++) {
            const shared = name === "swa";
            const base = shared ? 0 : h * CTX;
            const count = shared ? r.selN[0] : r.selN[h];
            const pos = Array.from(r.sel.slice(base, base + count));
            const w = r.att.slice(h * CTX, h * CTX + count);
            for (let j = 1; j < count; j++) assert(pos[j] > pos[j - 1]);
            let sum = 0;
            pos.forEach((p, j) => {
              if (p < n - WINDOW) {
                assertEquals(w[j], 0, `n=${n} head ${h}: position ${p}`);
                outside++;
              } else sum += w[j];
            });
            assertLessOrEqual(Math.abs(sum - 1), 1e-5, `n=${n} head ${h}`);
            // The newest position is always in the set and the window.
            assertEquals(pos[count - 1], q);
          }
          id = r.ids[0];
        }
        // Every policy kept some entries older than the window.
        assert(outside > 0, "the sets reached past the window");
      } finally {
        m.dispose();
      }
    },
  });
}
