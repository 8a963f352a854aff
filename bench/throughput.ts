/**
 * Throughput under a GPU memory limit: ALISA against FlexGen-style and
 * vLLM-style KV management, side by side, in this engine
 * (`bench/throughput_systems.ts` defines the systems). ALISA.md section 6:
 * prompts of 128 tokens, 512 generated, batches 1 to 64, one GPU KV budget
 * holding a quarter of batch 64's dense KV at full length.
 *
 *     deno task bench:throughput [--quick] [--batches 1,4,8,16,32,64]
 *       [--prompt 128] [--output 512] [--budget BYTES] [--systems LIST]
 *       [--sparsity 0.8] [--flexgen-int8] [--breakdown BATCH]
 *       [--preset austen|mha-small|gqa-small|mha-1024]
 *       [--llama-cpp vulkan,cpu] [--llama-cpp-timeout SECONDS]
 *       [--json FILE] [--svg FILE] [--md FILE]
 *
 * `--quick`: batch 4, 64 tokens. Prints a Markdown table (tokens/s per
 * system and batch, ALISA's ratio to each baseline, GPU KV bytes peak,
 * bytes moved host -> GPU, tokens recomputed) and a per-step breakdown for
 * one batch; writes JSON and an SVG plot when asked. `--llama-cpp` adds
 * llama.cpp (node-llama-cpp 3.21.1; its Vulkan build runs on the same
 * adapter) as outside-engine columns, run on the same GGUF and prompts by
 * `bench/llama_cpp_system.ts`, one process per batch; those rows hold no
 * GPU KV budget (llama.cpp allocates each sequence's whole context).
 * Every row also says for how many sequences its greedy tokens equal
 * dense-unlimited's (when that system ran). Prompts are seeded
 * slices of `northanger-abbey.txt` (`$ALISA_SHARED`), or of a built-in
 * text where it is absent.
 */
import { parseArgs } from "node:util";
import { openGpu } from "../src/gpu/device.ts";
import { loadModel } from "../src/api/model.ts";
import { hasShared, sharedPath } from "../tests/_shared.ts";
import { presetModel, PRESETS } from "./presets.ts";
import {
  runSystem,
  type SystemName,
  type SystemRun,
  SYSTEMS,
} from "./throughput_systems.ts";
import { type LlamaCppBackend, runLlamaCpp } from "./llama_cpp_system.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean" },
    batches: { type: "string" },
    prompt: { type: "string" },
    output: { type: "string" },
    budget: { type: "string" },
    systems: { type: "string" },
    sparsity: { type: "string", default: "0.8" },
    preset: { type: "string", default: "austen" },
    "llama-cpp": { type: "string" },
    "llama-cpp-timeout": { type: "string", default: "1800" },
    "flexgen-int8": { type: "boolean" },
    breakdown: { type: "string" },
    json: { type: "string" },
    svg: { type: "string" },
    md: { type: "string" },
  },
});
const v = args.values;
const quick = v.quick ?? false;
const batches = (v.batches ?? (quick ? "4" : "1,4,8,16,32,64")).split(",").map(
  Number,
);
const P = Number(v.prompt ?? 128);
const O = Number(v.output ?? (quick ? 64 : 512));
const systems = (v.systems?.split(",") ?? [...SYSTEMS]) as SystemName[];
for (const s of systems) {
  if (!(SYSTEMS as readonly string[]).includes(s)) {
    throw new TypeError(`unknown system ${s} (known: ${SYSTEMS.join(", ")})`);
  }
}
const llamaCpp = (v["llama-cpp"]?.split(",") ?? []) as LlamaCppBackend[];
for (const b of llamaCpp) {
  if (b !== "cpu" && b !== "vulkan") {
    throw new TypeError(`--llama-cpp takes cpu and/or vulkan, not ${b}`);
  }
}
/** Table columns: our systems, then llama.cpp's backends. */
const columns: string[] = [
  ...systems,
  ...llamaCpp.map((b) => `llama.cpp-${b}`),
];
const sparsity = Number(v.sparsity);
const breakdownBatch = Number(v.breakdown ?? batches[batches.length - 1]);

const gpu = await openGpu().catch((e) => {
  console.warn(`skipping the throughput benchmark: ${(e as Error).message}`);
  return null;
});
if (!gpu) Deno.exit(0);

// The model: the embedded one, or a synthetic preset (bench/presets.ts).
const preset = v.preset!;
const modelPath = await presetModel(preset);
// Seeded prompts: slices of the shared novel (or a built-in text).
const probe = await loadModel(modelPath, { gpu, contextLength: P + O });
const c = probe.config;
const text = hasShared("data/northanger-abbey.txt")
  ? Deno.readTextFileSync(sharedPath("data/northanger-abbey.txt"))
  : "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. "
    .repeat(400);
const all = probe.tokenizer.encode(text, { addSpecial: false });
const bos = probe.tokenizer.bos;
probe.dispose();
const maxB = Math.max(...batches);
const prompts = Array.from({ length: maxB }, (_, i) => {
  const start = (i * 997) % Math.max(1, all.length - P);
  const body = all.slice(start, start + P - (bos === null ? 0 : 1));
  return bos === null ? body : [bos, ...body];
});
const perToken = 2 * c.nLayers * c.nKvHeads * c.headDim * 2;
const budget = v.budget !== undefined
  ? Number(v.budget)
  : Math.floor(64 * (P + O) * perToken / 4);

const progress = Deno.stderr.isTerminal()
  ? (label: string) => (done: number, total: number) => {
    const w = 30, f = Math.round(done / total * w);
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `\r${label.padEnd(24)} [${"#".repeat(f)}${
          " ".repeat(w - f)
        }] ${done}/${total}`,
      ),
    );
  }
  : () => undefined;

const adapterName = gpu.adapterInfo.description;
/** A row: one of our systems, or llama.cpp (`system` "llama.cpp-BACKEND"). */
type Row = Omit<SystemRun, "system"> & { system: string; device?: string };
const rows: Row[] = [];
const t0 = performance.now();
for (const B of batches) {
  for (const s of systems) {
    const label = `${s} batch ${B}`;
    const r = await runSystem(gpu, s, prompts.slice(0, B), {
      output: O,
      budget,
      batch: B,
      sparsity,
      model: modelPath,
      flexgenInt8: v["flexgen-int8"],
      steps: B === breakdownBatch,
      onProgress: progress(label),
    });
    if (Deno.stderr.isTerminal()) {
      Deno.stderr.writeSync(new TextEncoder().encode("\n"));
    }
    console.error(
      `${label}: ${r.tokens_per_s.toFixed(1)} tok/s, ${
        r.seconds.toFixed(1)
      } s, uploaded ${
        (r.uploaded_bytes / 2 ** 20).toFixed(1)
      } MiB, recomputed ${
        r.recomputed_tokens.toFixed(0)
      }, preemptions ${r.preemptions} (${
        ((performance.now() - t0) / 1000).toFixed(0)
      } s so far)`,
    );
    rows.push(r);
  }
  for (const b of llamaCpp) {
    const label = `llama.cpp-${b} batch ${B}`;
    console.error(`${label}: running (its own process)`);
    try {
      const r = await runLlamaCpp(b, {
        model: modelPath,
        prompts: prompts.slice(0, B),
        output: O,
        timeoutS: Number(v["llama-cpp-timeout"]),
      });
      console.error(
        `${label}: ${r.tokens_per_s.toFixed(1)} tok/s, ${
          r.seconds.toFixed(1)
        } s on ${r.device}`,
      );
      rows.push({
        system: `llama.cpp-${b}`,
        batch: B,
        tokens_per_s: r.tokens_per_s,
        gpu_kv_peak_bytes: b === "vulkan" ? B * (P + O) * perToken : 0,
        uploaded_bytes: 0,
        recomputed_tokens: 0,
        preemptions: 0,
        seconds: r.seconds,
        ids: r.ids,
        device: r.device,
      });
    } catch (e) {
      console.error(`${label}: ${(e as Error).message}`);
      rows.push({
        system: `llama.cpp-${b}`,
        batch: B,
        tokens_per_s: NaN,
        gpu_kv_peak_bytes: 0,
        uploaded_bytes: 0,
        recomputed_tokens: 0,
        preemptions: 0,
        seconds: NaN,
        ids: [],
        device: `failed: ${(e as Error).message.split("\n")[0]}`,
      });
    }
  }
  // Write what is done so far, so a run cut short (a GPU machine's time
  // limit) still leaves the finished batches' table, JSON and plot.
  report(batches.slice(0, batches.indexOf(B) + 1), false);
}
report(batches, true);

// Batch 1 of each system equals its own run alone (greedy): checked in
// tests/throughput_test.ts; here the outputs of all systems are compared
// with dense-unlimited only for the record.

/** Sequences of `r` whose greedy tokens equal dense-unlimited's, "k/B". */
function sameAsDense(r: Row): string {
  const d = rows.find((x) =>
    x.system === "dense-unlimited" && x.batch === r.batch
  );
  if (!d || r.ids.length === 0) return "-";
  const k =
    r.ids.filter((ids, i) =>
      ids.length === d.ids[i]?.length && ids.every((t, j) => t === d.ids[i][j])
    ).length;
  return `${k}/${r.batch}`;
}

/** Writes the table (printed at the end), JSON and SVG for `done`. */
function report(done: number[], final: boolean): void {
  const fmtB = (n: number) =>
    n >= 2 ** 20
      ? `${(n / 2 ** 20).toFixed(1)} MiB`
      : `${(n / 1024).toFixed(1)} KiB`;
  const lines: string[] = [
    `Throughput, preset ${preset} (${c.nLayers} layers, dim ${c.dim}, ${c.nHeads}/${c.nKvHeads} heads, q8_0${
      preset in PRESETS ? ", random weights" : ""
    }; KV ${perToken} bytes per token), prompts ${P}, output ${O}, GPU KV budget ${budget} B (${
      fmtB(budget)
    }: a quarter of batch 64's dense KV at full length), SWA sparsity ${sparsity}; ${
      adapterName || "WebGPU"
    }`,
    "",
    `| batch | ${columns.join(" | ")} |${
      systems.includes("alisa") ? " ALISA / FlexGen | ALISA / vLLM |" : ""
    }`,
    `| ---: | ${columns.map(() => "---:").join(" | ")} |${
      systems.includes("alisa") ? " ---: | ---: |" : ""
    }`,
  ];
  for (const B of done) {
    const at = (s: string) => rows.find((r) => r.system === s && r.batch === B);
    const cells = columns.map((s) => {
      const t = at(s)?.tokens_per_s ?? NaN;
      return Number.isFinite(t) ? t.toFixed(1) : "failed";
    });
    let ratio = "";
    if (systems.includes("alisa")) {
      const a = at("alisa")!.tokens_per_s;
      const f = at("flexgen")?.tokens_per_s, vl = at("vllm")?.tokens_per_s;
      ratio = ` ${f ? (a / f).toFixed(2) : "-"} | ${
        vl ? (a / vl).toFixed(2) : "-"
      } |`;
    }
    lines.push(`| ${B} | ${cells.join(" | ")} |${ratio}`);
  }
  lines.push(
    "",
    "tokens/s (generated tokens over the whole run, prefills included)",
    "",
    "| system | batch | GPU KV peak | uploaded | recomputed tokens | preemptions | same tokens as dense-unlimited |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((r) =>
      `| ${r.system} | ${r.batch} | ${fmtB(r.gpu_kv_peak_bytes)} | ${
        fmtB(r.uploaded_bytes)
      } | ${r.recomputed_tokens.toFixed(0)} | ${r.preemptions} | ${
        sameAsDense(r)
      } |`
    ),
  );
  const outside = [
    ...new Set(
      rows.filter((r) => r.device).map((r) => `${r.system}: ${r.device}`),
    ),
  ];
  if (outside.length) {
    lines.push(
      "",
      `llama.cpp (node-llama-cpp 3.21.1, greedy, same GGUF and prompts, a 2-token warm-up of every sequence; its GPU KV peak is the whole context it allocates) ran on: ${
        outside.join("; ")
      }`,
    );
  }

  // Per-step breakdown at one batch: wall time per step, and the modelled
  // transfer and recompute time from the store's profile (upload GB/s,
  // GPU ms per rebuilt token-layer).
  const bd = rows.filter((r) => r.batch === breakdownBatch && r.steps);
  if (bd.length) {
    lines.push(
      "",
      `Per step at batch ${breakdownBatch} (mean over every step of the run, prefill steps included)`,
      "",
      "| system | ms per step | uploaded per step | rebuilt token-layers per step |",
      "| --- | ---: | ---: | ---: |",
    );
    for (const r of bd) {
      const st = r.steps!;
      const ms = st.reduce((a, s) => a + s.ms, 0) / st.length;
      const up = st.reduce((a, s) => a + s.stats.uploadedBytes, 0) / st.length;
      const rc = st.reduce((a, s) => a + s.stats.recomputedTokens, 0) /
        st.length;
      lines.push(
        `| ${r.system} | ${ms.toFixed(1)} | ${fmtB(up)} | ${rc.toFixed(1)} |`,
      );
    }
  }
  const md = lines.join("\n");
  if (final) console.log(md);
  if (v.md) Deno.writeTextFileSync(v.md, md + "\n");
  if (v.json) {
    Deno.writeTextFileSync(
      v.json,
      JSON.stringify(
        {
          rows: rows.map((r) => ({
            system: r.system,
            batch: r.batch,
            tokens_per_s: r.tokens_per_s,
            gpu_kv_peak_bytes: r.gpu_kv_peak_bytes,
            uploaded_bytes: r.uploaded_bytes,
            recomputed_tokens: r.recomputed_tokens,
            preemptions: r.preemptions,
            seconds: r.seconds,
            same_tokens_as_dense: sameAsDense(r),
            ...(r.device ? { device: r.device } : {}),
          })),
          budget_bytes: budget,
          preset,
          prompt: P,
          output: O,
          sparsity,
          adapter: adapterName,
        },
        null,
        2,
      ) + "\n",
    );
  }
  if (v.svg) Deno.writeTextFileSync(v.svg, plot(rows, columns, done));
}

/** Tokens/s against batch (log2 axis), one line per system. */
function plot(
  rows: Row[],
  systems: string[],
  batches: number[],
): string {
  const W = 640, H = 400, left = 70, right = 150, top = 40, bottom = 50;
  const xs = batches.map((b) => Math.log2(b));
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const ymax = Math.max(
    1,
    ...rows.map((r) => r.tokens_per_s).filter(Number.isFinite),
  ) * 1.1;
  const X = (b: number) =>
    left + (Math.log2(b) - x0) / (x1 - x0) * (W - left - right);
  const Y = (t: number) => top + (1 - t / ymax) * (H - top - bottom);
  const colors = ["#444", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${
      (W - right + left) / 2
    }" y="22" text-anchor="middle" font-size="14" font-weight="bold">Throughput under a GPU KV budget (prompt ${P}, output ${O})</text>`,
    `<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${
      H - bottom
    }" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${
      H - bottom
    }" stroke="black"/>`,
    `<text x="${(W - right + left) / 2}" y="${
      H - 12
    }" text-anchor="middle">batch</text>`,
    `<text x="16" y="${
      (H - bottom + top) / 2
    }" text-anchor="middle" transform="rotate(-90 16 ${
      (H - bottom + top) / 2
    })">generated tokens / s</text>`,
  ];
  for (const b of batches) {
    out.push(
      `<text x="${X(b)}" y="${
        H - bottom + 16
      }" text-anchor="middle">${b}</text>`,
    );
  }
  for (let i = 0; i <= 4; i++) {
    const t = ymax * i / 4;
    out.push(
      `<text x="${left - 6}" y="${Y(t) + 4}" text-anchor="end">${
        t.toFixed(0)
      }</text>`,
      `<line x1="${left}" y1="${Y(t)}" x2="${W - right}" y2="${
        Y(t)
      }" stroke="#eee"/>`,
    );
  }
  systems.forEach((s, i) => {
    const pts = batches.flatMap((b) => {
      const t = rows.find((r) => r.system === s && r.batch === b)
        ?.tokens_per_s ?? NaN;
      return Number.isFinite(t)
        ? [`${X(b).toFixed(1)},${Y(t).toFixed(1)}`]
        : [];
    });
    out.push(
      `<polyline fill="none" stroke="${
        colors[i % colors.length]
      }" stroke-width="2" points="${pts.join(" ")}"/>`,
      `<text x="${W - right + 10}" y="${top + 16 * i + 10}" fill="${
        colors[i % colors.length]
      }">${s}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
