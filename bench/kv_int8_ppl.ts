/**
 * What the host tier's INT8 costs in accuracy (issue: KV tiers): SWA at
 * 80% sparsity scored by exact decode simulation (teacher forcing, as
 * `cli.ts eval`) on the shared prose and recall texts, with the KV under a
 * GPU budget of an eighth of the dense KV, so most attended tokens come
 * back from the host tier every step: host INT8 on against off (exact f16, which must
 * equal the all-GPU run bit for bit), and all on the GPU.
 *
 *     deno run -A bench/kv_int8_ppl.ts [--windows N] [--docs N] [--json FILE]
 *
 * Writes a Markdown table to stdout (and JSON with --json).
 */
import { parseArgs } from "node:util";
import { loadModel } from "../src/api/model.ts";
import { docWindows, textWindows } from "../src/eval/windows.ts";
import { hasShared, sharedPath } from "../tests/_shared.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    windows: { type: "string", default: "1" },
    docs: { type: "string", default: "2" },
    window: { type: "string", default: "1024" },
    json: { type: "string" },
    model: { type: "string", default: "models/austen-5m-f32.gguf" },
  },
});
const W = Number(args.values.window);
const needed = [
  args.values.model!,
  "data/northanger-abbey.txt",
  "data/northanger-recall.txt",
];
if (!needed.every(hasShared)) Deno.exit(0);

interface Row {
  text: string;
  config: string;
  tokens: number;
  ppl: number;
  uploaded_bytes: number;
  budget_bytes: number | null;
}

const policy = { name: "swa" as const, sparsity: 0.8, minBudget: 0 };
const modelPath = sharedPath(args.values.model!);
const probe = await loadModel(modelPath, { contextLength: W });
const tok = probe.tokenizer;
const perToken = 2 * probe.config.nLayers * probe.config.nKvHeads *
  probe.config.headDim * 2;
probe.dispose();
const prose = textWindows(
  tok,
  Deno.readTextFileSync(sharedPath("data/northanger-abbey.txt")),
  W,
).slice(0, Number(args.values.windows));
const recall = docWindows(
  tok,
  Deno.readTextFileSync(sharedPath("data/northanger-recall.txt")),
  W,
).slice(0, Number(args.values.docs));

const rows: Row[] = [];
for (const [text, windows] of [["prose", prose], ["recall", recall]] as const) {
  const dense = windows.reduce((a, w) => a + w.length * perToken, 0);
  const budget = Math.floor(dense / 8);
  let exact: Float32Array[] | null = null;
  for (
    const [config, kv] of [
      ["all on the GPU", undefined],
      ["budget 12.5%, host f16", {
        gpuBytes: budget,
        int8: false,
        recompute: "off" as const,
      }],
      ["budget 12.5%, host INT8", {
        gpuBytes: budget,
        int8: true,
        recompute: "off" as const,
      }],
    ] as const
  ) {
    const m = await loadModel(modelPath, {
      contextLength: W,
      maxBatch: windows.length,
      kv,
    });
    try {
      m.engine.setPolicy(policy);
      m.engine.kv.planRun(m.engine.policy, windows.map(() => 1), W - 1);
      const t0 = performance.now();
      const { nll } = await m.engine.scoreWindows(windows);
      let sum = 0, n = 0;
      for (const a of nll) for (const v of a) (sum += v), n++;
      const st = m.engine.kv.stats();
      rows.push({
        text,
        config,
        tokens: n,
        ppl: Math.exp(sum / n),
        uploaded_bytes: st.uploaded_bytes,
        budget_bytes: kv ? budget : null,
      });
      if (config === "all on the GPU") exact = nll;
      if (config === "budget 12.5%, host f16" && exact) {
        const same = nll.every((a, i) =>
          a.every((v, j) => Object.is(v, exact![i][j]))
        );
        console.error(`${text}: host f16 equals all-GPU bit for bit: ${same}`);
      }
      console.error(
        `${text} / ${config}: ppl ${rows[rows.length - 1].ppl.toFixed(4)} (${
          ((performance.now() - t0) / 1000).toFixed(0)
        } s, uploaded ${st.uploaded_bytes} B)`,
      );
    } finally {
      m.dispose();
    }
  }
}

const lines = [
  `SWA at sparsity 0.8, window ${W}, ${args.values.model}: host tier INT8 against f16 under a GPU KV budget of 12.5% of the dense KV (8x)`,
  "",
  "| text | KV | tokens | perplexity | vs all-GPU | uploaded |",
  "| --- | --- | ---: | ---: | ---: | ---: |",
];
for (const r of rows) {
  const base = rows.find((b) => b.text === r.text && b.budget_bytes === null)!;
  lines.push(
    `| ${r.text} | ${r.config} | ${r.tokens} | ${r.ppl.toFixed(4)} | ${
      ((r.ppl / base.ppl - 1) * 100).toFixed(3)
    }% | ${(r.uploaded_bytes / 2 ** 20).toFixed(1)} MiB |`,
  );
}
console.log(lines.join("\n"));
if (args.values.json) {
  Deno.writeTextFileSync(
    args.values.json,
    JSON.stringify({ policy, window: W, rows }, null, 2) + "\n",
  );
}
