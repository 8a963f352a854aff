/**
 * The GPU's KV selections against the plain TypeScript reference
 * (src/sparse/reference.ts), step by step, on the attention weights the
 * GPU recorded: a prompt is prefilled densely (its rows seed SWA's score
 * and H2O's accumulators), then every decode step's attended set, for
 * every head, must equal the reference's, which is then fed the weights
 * the GPU gave that set. Covers the first steps where n is small, ties
 * (scores that are still zero), minBudget, layers 0 and 5; and that at
 * sparsity 0 every policy generates exactly like dense.
 */
import { assertEquals } from "@std/assert";
import type { Model } from "../src/api/model.ts";
import { referenceSelection } from "../src/sparse/reference.ts";
import type { PolicyName, PolicySpec } from "../src/sparse/spec.ts";
import { HAS_GPU, withModel } from "./_gpu.ts";

const ignore = !HAS_GPU;
const CTX = 64;

/** Drives one policy for `steps` decode steps after a `prompt`, checking layer `layer`. */
async function check(
  m: Model,
  spec: PolicySpec,
  prompt: number[],
  steps: number,
  layer: number,
) {
  const e = m.engine;
  const H = m.config.nHeads;
  e.recordSelections = true;
  e.setPolicy(spec);
  const P = prompt.length;
  // Dense prefill, capturing the weights of every prompt query.
  const pre = await e.stepCapture(
    prompt.map((id, pos) => ({ slot: 0, pos, id })),
    [P - 1],
    false,
    layer,
  );
  await e.seedPolicy([0], [P]);
  const rows = prompt.map((_, q) =>
    Array.from(
      { length: H },
      (_, h) => pre.att.slice((q * H + h) * CTX, (q * H + h) * CTX + q + 1),
    )
  );
  const ref = referenceSelection(spec, H);
  ref.seed(rows);
  let id = pre.ids[0];
  for (let q = P; q < P + steps; q++) {
    const r = await e.stepCapture([{ slot: 0, pos: q, id }], [0], true, layer);
    const want = ref.select(q + 1);
    const weights: Float32Array[] = [];
    for (let h = 0; h < H; h++) {
      const shared = spec.name === "swa";
      const base = shared ? 0 : h * CTX;
      const count = shared ? r.selN[0] : r.selN[h];
      const got = Array.from(r.sel.slice(base, base + count));
      assertEquals(
        got,
        Array.from(want[h]),
        `${spec.name} ${spec.sparsity} layer ${layer} step n=${
          q + 1
        } head ${h}`,
      );
      weights.push(r.att.slice(h * CTX, h * CTX + count));
    }
    ref.observe(q, weights);
    id = r.ids[0];
  }
  e.recordSelections = false;
}

const PROMPT = [1, 597, 366, 261, 1818, 450]; // BOS "It is a truth universally"

for (
  const name of ["local", "strided", "sinks", "h2o", "swa"] as PolicyName[]
) {
  Deno.test({
    name:
      `${name}: GPU selections equal the TypeScript reference step by step (sparsity 0.5, 0.8; minBudget; layers 0 and 5)`,
    ignore,
    async fn() {
      await withModel({ contextLength: CTX }, async (m) => {
        await check(m, { name, sparsity: 0.8 }, PROMPT, 40, 5);
        await check(m, { name, sparsity: 0.5 }, PROMPT.slice(0, 1), 30, 0);
        await check(
          m,
          { name, sparsity: 0.9, minBudget: 6 },
          PROMPT.slice(0, 3),
          30,
          5,
        );
      });
    },
  });
}

Deno.test({
  name:
    "swa: a prompt longer than the score ring, prefilled in one step (ring 7 at context 64, sparsity 0.8), seeds S exactly as the reference",
  ignore,
  async fn() {
    await withModel({ contextLength: CTX }, async (m) => {
      // Prefill rows of queries q and q + ring land in the same ring row;
      // only the later one may be written, or the seed reads a stale row.
      const prompt = [1];
      for (let i = 1; i < 45; i++) prompt.push(PROMPT[1 + (i % 5)] + i);
      await check(m, { name: "swa", sparsity: 0.8 }, prompt, 12, 0);
      await check(m, { name: "swa", sparsity: 0.8 }, prompt, 12, 5);
    });
  },
});

Deno.test({
  name: "at sparsity 0 every policy generates exactly like dense (same tokens)",
  ignore,
  async fn() {
    await withModel({ contextLength: CTX }, async (m) => {
      const run = async (policy: PolicySpec) => {
        const g = m.generate(PROMPT, {
          maxTokens: 24,
          stopAtEos: false,
          policy,
        });
        for await (const _ of g) { /* drain */ }
        return (await g.result).ids;
      };
      const dense = await run({ name: "dense", sparsity: 0 });
      for (
        const name of [
          "local",
          "strided",
          "sinks",
          "h2o",
          "swa",
        ] as PolicyName[]
      ) {
        assertEquals(await run({ name, sparsity: 0 }), dense, name);
      }
    });
  },
});
