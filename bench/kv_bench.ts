/**
 * The KV tiers' costs, in one run on this machine (`deno bench -A
 * bench/kv_bench.ts`, or `deno run -A bench/kv_bench.ts` for the tables
 * only):
 * - the scheduler's device profile: upload GB/s, recompute time per
 *   token-layer, attention time per attended token;
 * - one SWA decode step's GPU time by dispatch kind (selection = choosing
 *   the next step's sets, the prefetch's GPU side);
 * - decode tokens/s of a batch of 4 for dense all-GPU, SWA all-GPU, and
 *   SWA tiered under GPU KV budgets of 25% and 10% of the dense KV at the
 *   final length, with what each moved;
 * - `deno bench`: a 64-row upload, and a decode step all-GPU vs tiered.
 *
 * llvmpipe is a CPU stand-in for a GPU: compare ratios from one run.
 */
import { loadModel, type Model } from "../src/api/model.ts";
import { openGpu } from "../src/gpu/device.ts";
import type { KvOptions } from "../src/kv/store.ts";
import type { PolicySpec } from "../src/sparse/spec.ts";

const gpu = await openGpu().catch((e) => {
  console.warn(`skipping KV benchmarks: ${(e as Error).message}`);
  return null;
});

const CTX = 320, BATCH = 4, GEN = 192;
const PROMPTS = [
  "It is a truth universally acknowledged",
  "Emma Woodhouse, handsome, clever, and rich",
  "No one who had ever seen Catherine Morland in her infancy",
  "Mr. Darcy",
];
const swa: PolicySpec = { name: "swa", sparsity: 0.8 };
const dense: PolicySpec = { name: "dense", sparsity: 0 };

async function load(kv?: KvOptions): Promise<Model> {
  return await loadModel(undefined, {
    gpu: gpu!,
    contextLength: CTX,
    maxBatch: BATCH,
    kv,
  });
}

/** Decode tok/s of the batch (prefill timed apart by a 1-token run). */
async function decodeRate(m: Model, policy: PolicySpec) {
  const run = async (n: number) => {
    const t0 = performance.now();
    await m.generateBatch(PROMPTS, { maxTokens: n, policy, stopAtEos: false });
    return performance.now() - t0;
  };
  await run(4); // warm-up: pipelines
  const t1 = await run(1);
  const tN = await run(GEN);
  const st = m.engine.kv.stats();
  return { tokS: (BATCH * (GEN - 1)) / ((tN - t1) / 1000), st };
}

if (gpu) {
  const lines: string[] = [];
  const ref = await load();
  const ids = PROMPTS.map((p) => ref.tokenizer.encode(p));
  const c = ref.config;
  const perToken = 2 * c.nLayers * c.nKvHeads * c.headDim * 2;
  const denseBytes = ids.reduce((a, p) => a + (p.length + GEN) * perToken, 0);

  // One SWA decode step by dispatch kind (GPU timestamps).
  if (gpu.hasTimestamps) {
    ref.engine.setPolicy(swa);
    const e = ref.engine;
    const P = ids[0].length;
    await e.stepArgmax(
      ids[0].map((id, pos) => ({ slot: 0, pos, id })),
      [P - 1],
      false,
    );
    await e.seedPolicy([0], [P]);
    let id = 285;
    for (let q = P; q < P + 64; q++) {
      [id] = await e.stepArgmax([{ slot: 0, pos: q, id }], [0], true);
    }
    const prof = await e.profileStep([{ slot: 0, pos: P + 64, id }], [0], true);
    const kind = (l: string) =>
      l.startsWith("select_swa")
        ? "selection (next step)"
        : l.startsWith("score_swa")
        ? "score update"
        : l.startsWith("attention")
        ? "attention"
        : l.startsWith("matmul") || l.startsWith("embed")
        ? "weights (matmul, embed)"
        : "other";
    const by = new Map<string, number>();
    for (const p of prof) {
      by.set(kind(p.label), (by.get(kind(p.label)) ?? 0) + p.ms);
    }
    const total = prof.reduce((a, p) => a + p.ms, 0);
    lines.push(
      `SWA 0.8 decode step at n = ${P + 65} (batch 1), GPU ${
        total.toFixed(2)
      } ms: ${
        [...by].sort((a, b) => b[1] - a[1]).map(([k, v]) =>
          `${k} ${v.toFixed(3)} ms (${(v / total * 100).toFixed(0)}%)`
        ).join(", ")
      }`,
    );
  }

  const rows: string[] = [
    "| KV | policy | decode tok/s | vs SWA all-GPU | phases | uploaded | recomputed | evictions |",
    "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
  ];
  const configs: [string, PolicySpec, KvOptions | undefined][] = [
    ["all on the GPU", dense, undefined],
    ["all on the GPU", swa, undefined],
    ["budget 25% (host INT8)", swa, { gpuBytes: Math.floor(denseBytes / 4) }],
    ["budget 10% (host INT8)", swa, { gpuBytes: Math.floor(denseBytes / 10) }],
  ];
  let swaRate = 0;
  for (const [name, policy, kv] of configs) {
    const m = kv ? await load(kv) : ref;
    if (kv && m.engine.kv.profile) {
      const p = m.engine.kv.profile;
      if (name.startsWith("budget 25%")) {
        lines.push(
          `profile: upload ${p.uploadGBs.toFixed(2)} GB/s, recompute ${
            p.recomputeMsPerToken.toFixed(4)
          } ms per token-layer, attention ${
            p.attendMsPerToken.toFixed(5)
          } ms per attended token; x kept for recompute: ${m.engine.kv.keepX}`,
        );
      }
    }
    const { tokS, st } = await decodeRate(m, policy);
    if (policy.name === "swa" && !kv) swaRate = tokS;
    rows.push(
      `| ${name}${kv ? ` = ${kv.gpuBytes} B` : ""} | ${policy.name}${
        policy.name === "dense" ? "" : ` ${policy.sparsity}`
      } | ${tokS.toFixed(1)} | ${
        swaRate ? (tokS / swaRate).toFixed(2) : "-"
      } | ${st.phases_entered.join(",")} | ${
        (st.uploaded_bytes / 2 ** 20).toFixed(2)
      } MiB | ${st.recomputed_tokens} | ${st.evictions} |`,
    );
    if (kv) m.dispose();
  }
  lines.push(
    `batch ${BATCH}, prompts ${
      ids.map((p) => p.length).join("/")
    } tokens, ${GEN} generated each, context ${CTX}; dense KV at the end ${denseBytes} B`,
    "",
    ...rows,
  );
  console.log(lines.join("\n"));

  // deno bench: the pieces of a tiered step.
  const tiered = await load({ gpuBytes: Math.floor(denseBytes / 10) });
  const words = new Uint32Array(64 * tiered.engine.kv.pool.rowWords);
  Deno.bench({
    name: "upload 64 K/V rows host -> GPU (queue.writeBuffer + wait)",
    group: "kv",
    async fn() {
      tiered.engine.kv.pool.writeRows(0, words);
      await gpu.device.queue.onSubmittedWorkDone();
    },
  });
  for (const [name, m] of [["all-GPU", ref], ["tiered 10%", tiered]] as const) {
    let pos = 0, id = 1;
    Deno.bench({
      name: `SWA 0.8 decode step, batch ${BATCH}, ${name} (wall clock)`,
      group: "step",
      async fn(b) {
        if (pos === 0) {
          m.engine.setPolicy(swa);
          m.engine.kv.planRun(m.engine.policy, ids.map((p) => p.length), 200);
          for (let s = 0; s < BATCH; s++) {
            m.engine.kv.clear(s);
            await m.engine.stepArgmax(
              ids[s].map((id, p) => ({ slot: s, pos: p, id })),
              [ids[s].length - 1],
              false,
            );
            m.engine.kv.lengths[s] = ids[s].length;
          }
          await m.engine.seedPolicy(
            ids.map((_, s) => s),
            ids.map((p) => p.length),
          );
          pos = 1;
        }
        const toks = ids.map((p, s) => ({
          slot: s,
          pos: p.length + pos - 1,
          id,
        }));
        b.start();
        const out = await m.engine.stepArgmax(
          toks,
          toks.map((_, r) => r),
          true,
        );
        b.end();
        id = out[0];
        pos = pos >= 150 ? 0 : pos + 1;
      },
    });
  }
}
