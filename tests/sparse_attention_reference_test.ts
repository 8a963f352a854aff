/**
 * Sparse attention's output (the K/V gather over the selected positions),
 * not only its selection, against the plain TypeScript forward pass
 * (`_forward_reference.ts`): a prompt is prefilled densely, then a few
 * decode steps run under each KV policy (swa, h2o, local, strided, sinks
 * at sparsity 0.5). `stepCapture` records, step by step, the positions
 * every head of a layer attended and the weights it gave them; the logits
 * of the same steps (`stepLogits`, in a run that repeats the same tokens)
 * must equal the TypeScript pass that attends exactly those positions,
 * and the recorded weights must equal its softmax weights.
 *
 * `stepCapture` sees one layer per call, so the sequence is run once per
 * layer (the GPU is deterministic: the ids of every run must agree). swa
 * and h2o choose per layer, so every layer is captured; local, strided and
 * sinks are arithmetic in n, the same at every layer, so layers 0 and
 * last are captured (and must agree) and their lists serve every layer.
 */
import {
  assert,
  assertEquals,
  assertLess,
  assertLessOrEqual,
} from "@std/assert";
import { loadModel, type Model } from "../src/api/model.ts";
import type { PolicyName, PolicySpec } from "../src/sparse/spec.ts";
import { argmaxOf, ReferenceLlama } from "./_forward_reference.ts";
import { compare, hasShared, sharedPath } from "./_shared.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const MODEL = "models/austen-5m-f32.gguf";
const CTX = 64;
/** BOS "It is a truth universally acknowledged, that a single man" */
const PROMPT = [
  ...[1, 597, 366, 261, 1818, 450, 4022, 1189, 557, 2672],
  ...[4035, 336, 261, 3114, 537],
];
const STEPS = 8;
/**
 * Logits NMSE, GPU vs TypeScript, worst step: measured 3.2e-12 (swa),
 * 2.1e-12 (h2o), 5.0e-11 (local), 9.0e-11 (strided), 1.5e-12 (sinks).
 */
const BOUND_NMSE = 5e-10;
/**
 * Attention weights (in [0, 1]), max |GPU - TS| over the captured layers:
 * measured 4.2e-6, 3.7e-6, 1.9e-5, 3.6e-6, 4.4e-6 (same order).
 */
const BOUND_WEIGHT = 1e-4;

/** Per decode step, per layer, per head: the attended positions and weights. */
interface Captured {
  ids: number[]; // the token each decode step feeds (the previous argmax)
  lists: Int32Array[][][]; // [step][layer][head]
  weights: (Float32Array[] | undefined)[][]; // [step][layer][head], captured layers
}

/** Prefills PROMPT densely (seeding the policy), as generation does. */
async function prefill(m: Model, capture?: number): Promise<number> {
  const e = m.engine;
  const toks = PROMPT.map((id, pos) => ({ slot: 0, pos, id }));
  const P = PROMPT.length;
  const [first] = capture === undefined
    ? await e.stepArgmax(toks, [P - 1], false)
    : (await e.stepCapture(toks, [P - 1], false, capture)).ids;
  await e.seedPolicy([0], [P]);
  return first;
}

/** Runs the sequence once per layer in `layers`, capturing that layer. */
async function capture(
  m: Model,
  spec: PolicySpec,
  layers: number[],
): Promise<Captured> {
  const e = m.engine, H = m.config.nHeads;
  const lists: Int32Array[][][] = Array.from({ length: STEPS }, () => []);
  const weights: (Float32Array[] | undefined)[][] = Array.from(
    { length: STEPS },
    () => [],
  );
  let ids: number[] | undefined;
  for (const layer of layers) {
    const run: number[] = [];
    let id = await prefill(m, layer);
    for (let s = 0; s < STEPS; s++) {
      run.push(id);
      const q = PROMPT.length + s;
      const r = await e.stepCapture(
        [{ slot: 0, pos: q, id }],
        [0],
        true,
        layer,
      );
      const perHead: Int32Array[] = [], w: Float32Array[] = [];
      for (let h = 0; h < H; h++) {
        // swa lists one set per token (shared by heads), the others one per head.
        const base = spec.name === "swa" ? 0 : h * CTX;
        const count = spec.name === "swa" ? r.selN[0] : r.selN[h];
        perHead.push(Int32Array.from(r.sel.subarray(base, base + count)));
        w.push(r.att.slice(h * CTX, h * CTX + count));
      }
      lists[s][layer] = perHead;
      weights[s][layer] = w;
      id = r.ids[0];
    }
    // Deterministic: every run feeds the same tokens.
    if (ids) {
      assertEquals(run, ids, `${spec.name}: run capturing layer ${layer}`);
    }
    ids = run;
  }
  return { ids: ids!, lists, weights };
}

/** The logits of every decode step, in a fresh run of the same tokens. */
async function stepLogits(m: Model, ids: number[]): Promise<Float32Array[]> {
  const e = m.engine;
  assertEquals(await prefill(m), ids[0]);
  const out: Float32Array[] = [];
  for (let s = 0; s < STEPS; s++) {
    const q = PROMPT.length + s;
    const logits = await e.stepLogits(
      [{ slot: 0, pos: q, id: ids[s] }],
      [0],
      true,
    );
    if (s + 1 < STEPS) assertEquals(argmaxOf(logits), ids[s + 1], `step ${s}`);
    out.push(logits);
  }
  return out;
}

Deno.test({
  name:
    "sparse decode attention (K/V gather) equals the TypeScript forward pass attending the GPU's recorded positions: swa, h2o, local, strided, sinks",
  ignore: !(HAS_GPU && hasShared(MODEL)),
  async fn(t) {
    const model = await loadModel(sharedPath(MODEL), {
      gpu: (await testGpu())!,
      contextLength: CTX,
    });
    const ref = await ReferenceLlama.open(sharedPath(MODEL));
    const e = model.engine;
    const nL = model.config.nLayers, H = model.config.nHeads;
    try {
      for (
        const name of [
          "swa",
          "h2o",
          "local",
          "strided",
          "sinks",
        ] as PolicyName[]
      ) {
        await t.step(
          `${name} 0.5: logits of ${STEPS} decode steps and layer weights equal the TS pass over the recorded sets`,
          async () => {
            const spec = { name, sparsity: 0.5 };
            e.recordSelections = true;
            e.setPolicy(spec);
            const perLayer = name === "swa" || name === "h2o";
            const layers = perLayer
              ? Array.from({ length: nL }, (_, l) => l)
              : [0, nL - 1];
            const cap = await capture(model, spec, layers);
            const gpuLogits = await stepLogits(model, cap.ids);
            if (!perLayer) {
              // Arithmetic in n: the same at layer 0 and the last layer.
              for (let s = 0; s < STEPS; s++) {
                assertEquals(
                  cap.lists[s][nL - 1],
                  cap.lists[s][0],
                  `step ${s}`,
                );
                for (let l = 1; l < nL - 1; l++) {
                  cap.lists[s][l] = cap.lists[s][0];
                }
              }
            }

            // The TypeScript pass: dense prefill, then the recorded sets.
            const seq = ref.sequence();
            for (const id of PROMPT) seq.step(id);
            let worstNmse = 0, worstW = 0, sparse = 0, attended = 0;
            for (let s = 0; s < STEPS; s++) {
              const n = PROMPT.length + s + 1;
              const tsWeights: Float32Array[][] = [];
              const logits = seq.step(cap.ids[s], {
                select: (l) => cap.lists[s][l],
                observe: (l, _q, w) => (tsWeights[l] = w),
              });
              for (let l = 0; l < nL; l++) {
                for (let h = 0; h < H; h++) {
                  const list = cap.lists[s][l][h];
                  // Ascending positions in [0, n), the current one included.
                  assert(
                    list.every((p, j) =>
                      p >= 0 && p < n && (j === 0 || p > list[j - 1])
                    ),
                    `step ${s} layer ${l} head ${h}: [${list}] is not ascending in [0, ${n})`,
                  );
                  assertEquals(
                    list[list.length - 1],
                    n - 1,
                    `step ${s} layer ${l} head ${h}: the current position`,
                  );
                  attended += list.length;
                  if (list.length < n) sparse++;
                  const w = cap.weights[s][l]?.[h];
                  if (w) {
                    worstW = Math.max(
                      worstW,
                      compare(w, tsWeights[l][h]).maxAbs,
                    );
                  }
                }
              }
              worstNmse = Math.max(
                worstNmse,
                compare(gpuLogits[s], logits).nmse,
              );
            }
            const heads = STEPS * nL * H;
            console.log(
              `${name} 0.5: logits NMSE <= ${worstNmse.toExponential(2)}, ` +
                `weights max |GPU - TS| ${worstW.toExponential(2)}; ` +
                `${sparse} of ${heads} head sets sparse, mean size ${
                  (attended / heads).toFixed(1)
                } of n = ${PROMPT.length + 1}..${PROMPT.length + STEPS}`,
            );
            assertLessOrEqual(worstNmse, BOUND_NMSE);
            assertLessOrEqual(worstW, BOUND_WEIGHT);
            // The sets are sparse (most steps), so the gather is exercised.
            assertLess(heads / 2, sparse);
          },
        );
      }
    } finally {
      e.recordSelections = false;
      e.setPolicy({ name: "dense", sparsity: 0 });
      model.dispose();
    }
  },
});
