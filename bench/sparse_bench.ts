/**
 * The cost of a decode step at context 1024 under each KV policy at 80%
 * sparsity against dense, in GPU time (timestamp queries, median of 5),
 * split into attention, the policy's own kernels (selection, score
 * update) and the rest. ALISA.md section 5 names the risk: selecting can
 * cost more than it saves.
 */
import { loadModel } from "../src/api/model.ts";
import type { PolicyName } from "../src/sparse/spec.ts";

const gpuOk = !!(await navigator.gpu?.requestAdapter());
if (!gpuOk) console.warn("skipping sparse benchmarks: no WebGPU adapter");

if (gpuOk) {
  const CTX = 1024;
  const model = await loadModel(undefined, { contextLength: CTX });
  if (!model.engine.gpu.hasTimestamps) {
    console.warn("skipping sparse benchmarks: no timestamp-query");
  } else {
    const e = model.engine;
    const text =
      "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. ";
    const ids = model.tokenizer.encode(text.repeat(60)).slice(0, CTX - 8);
    const P = ids.length;
    const lines: string[] = [];
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
      e.setPolicy({ name, sparsity: name === "dense" ? 0 : 0.8 });
      // Dense prefill in steps, then the policy's seed.
      for (let i = 0; i < P; i += e.maxStepTokens) {
        const chunk = ids.slice(i, i + e.maxStepTokens).map((id, j) => ({
          slot: 0,
          pos: i + j,
          id,
        }));
        await e.stepArgmax(chunk, [chunk.length - 1], false);
      }
      await e.seedPolicy([0], [P]);
      const tok = [{ slot: 0, pos: P, id: 285 }];
      await e.stepArgmax(tok, [0], true); // warm-up (compiles)
      const runs: { att: number; pol: number; rest: number }[] = [];
      for (let r = 0; r < 5; r++) {
        // Re-run the same position: the KV and policy state stay valid.
        const prof = await e.profileStep([{ slot: 0, pos: P + 1, id: 285 }], [
          0,
        ], true);
        const sum = (f: (l: string) => boolean) =>
          prof.filter((p) => f(p.label)).reduce((a, p) => a + p.ms, 0);
        const att = sum((l) => l.startsWith("attention"));
        const pol = sum((l) => /select|score_swa|accum_h2o/.test(l));
        runs.push({ att, pol, rest: sum(() => true) - att - pol });
      }
      const med = (f: (x: typeof runs[0]) => number) =>
        runs.map(f).sort((a, b) => a - b)[2];
      const att = med((x) => x.att),
        pol = med((x) => x.pol),
        rest = med((x) => x.rest);
      lines.push(
        `${name.padEnd(8)} context ${P + 2}: attention ${
          att.toFixed(2)
        } ms, policy kernels ${pol.toFixed(2)} ms, other ${
          rest.toFixed(2)
        } ms, total ${(att + pol + rest).toFixed(2)} ms`,
      );
    }
    console.log(lines.join("\n"));
  }
  model.dispose();
}
