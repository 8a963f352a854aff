/**
 * `alisa generate` and `alisa demo`: stream a continuation to stdout, then
 * report prefill and decode speed (or one JSON object with `--json`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type GenerateOptions, loadModel, type Model } from "../api/model.ts";
import { defaultModelPath } from "../api/default_model.ts";
import { checkSparsity, parsePolicies } from "../sparse/spec.ts";
import {
  type KvOptions,
  type KvStats,
  type KvStepStats,
  parseBytes,
} from "../kv/store.ts";

/** Usage of `alisa generate`. */
export const GENERATE_USAGE =
  `usage: alisa generate [MODEL] --prompt TEXT [options]

MODEL is a .gguf file, a URL or a Hugging Face directory (default: the
embedded Austen 5.8M model).

options:
  --prompt TEXT        the text to continue (required)
  --max-tokens N       tokens to generate (default 128)
  --temperature T      0 = greedy (default 0)
  --top-k K            sample from the K most likely tokens
  --top-p P            sample from the smallest set with probability P
  --seed S             seed for sampling
  --stop TEXT          stop when TEXT appears (repeatable)
  --context N          positions to allocate (default: the model's)
  --policy NAME        KV policy for decoding: dense (default), local, strided,
                       sinks, h2o, swa
  --sparsity S         fraction of the cached tokens not attended, in [0, 1)
  --min-budget M       attend at least M tokens per step
  --gpu-kv-budget SIZE GPU bytes for K/V (e.g. 65536, 512KiB, 64MiB): tokens
                       that do not fit spill to host memory and come back when
                       attended (ALISA's tiers; default: everything on the GPU)
  --kv-int8 on|off     host tier in INT8 (default on) or exact f16
  --recompute MODE     auto (cost model, default), on (drop old host tokens and
                       recompute them whenever the budget forces a spill), off
  --stats              print where the KV lived: phases, tiers, bytes moved
  --scheduler-profile  print the device profile and the scheduler's plan
  --json               print {"prompt_ids","ids","text","prefill_tok_s",
                       "decode_tok_s","gpu_bytes","kv_stats"}`;

function num(
  v: string | undefined,
  what: string,
  int = false,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) {
    throw new RangeError(
      `--${what}: ${JSON.stringify(v)} is not a${
        int ? "n integer" : " number"
      }`,
    );
  }
  return n;
}

/** A one-line progress bar on stderr while a model uploads (terminals only). */
function progressBar():
  | ((p: { loaded: number; total: number }) => void)
  | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const enc = new TextEncoder();
  return ({ loaded, total }) => {
    const w = 30, f = Math.round((loaded / total) * w);
    Deno.stderr.writeSync(
      enc.encode(
        `\rloading [${"#".repeat(f)}${
          " ".repeat(w - f)
        }] ${loaded}/${total} tensors${loaded === total ? "\n" : ""}`,
      ),
    );
  };
}

async function stream(
  model: Model,
  prompt: string,
  o: GenerateOptions,
  json: boolean,
  report: { stats: KvStepStats[] | null; profile: boolean } = {
    stats: null,
    profile: false,
  },
): Promise<void> {
  const enc = new TextEncoder();
  const gen = model.generate(prompt, o);
  if (report.profile) {
    const kv = model.engine.kv;
    const p = kv.profile;
    console.error(
      p
        ? `scheduler profile: upload ${
          p.uploadGBs.toFixed(3)
        } GB/s, recompute ${
          p.recomputeMsPerToken.toFixed(4)
        } ms per token-layer, attention ${
          p.attendMsPerToken.toPrecision(3)
        } ms per attended token; x kept for recompute: ${kv.keepX}\nplan: p1 ${kv.plan.p1}, p2 ${kv.plan.p2}, alpha ${
          kv.plan.alpha.toFixed(3)
        }, beta ${kv.plan.beta}${
          kv.planCost
            ? ` (modelled: transfer ${
              kv.planCost.transferMs.toFixed(1)
            } ms, recompute ${kv.planCost.recomputeMs.toFixed(1)} ms, ${
              Math.round(kv.planCost.uploadedRows)
            } rows uploaded)`
            : ""
        }`
        : "scheduler profile: none (no GPU KV budget below what the run needs: everything stays on the GPU)",
    );
  }
  if (!json) await Deno.stdout.write(enc.encode(prompt));
  for await (const piece of gen) {
    if (!json && piece.text) await Deno.stdout.write(enc.encode(piece.text));
  }
  const r = await gen.result;
  if (json) {
    console.log(JSON.stringify({
      prompt_ids: r.promptIds,
      ids: r.ids,
      text: r.text,
      finish_reason: r.finishReason,
      prefill_tok_s: r.prefillTokS,
      decode_tok_s: r.decodeTokS,
      gpu_bytes: model.gpuBytes,
      kv_stats: r.kvStats,
    }));
  } else {
    console.log();
    console.error(
      `prefill: ${r.promptIds.length} tokens, ${
        r.prefillTokS.toFixed(1)
      } tok/s; ` +
        `decode: ${r.ids.length} tokens, ${r.decodeTokS.toFixed(1)} tok/s; ` +
        `GPU memory ${
          (model.gpuBytes / 2 ** 20).toFixed(1)
        } MiB (${r.finishReason})`,
    );
  }
  if (report.stats) console.error(formatKvStats(r.kvStats, report.stats));
}

/** `alisa generate ...`; returns the exit code. */
export async function generateCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      prompt: { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      seed: { type: "string" },
      stop: { type: "string", multiple: true },
      context: { type: "string" },
      policy: { type: "string" },
      sparsity: { type: "string" },
      "min-budget": { type: "string" },
      "gpu-kv-budget": { type: "string" },
      "kv-int8": { type: "string" },
      recompute: { type: "string" },
      stats: { type: "boolean" },
      "scheduler-profile": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(GENERATE_USAGE);
    return 0;
  }
  const kv = kvOptions(values);
  if (values.prompt === undefined || positionals.length > 1) {
    console.error(GENERATE_USAGE);
    return 2;
  }
  const policy = values.policy === undefined ? undefined : {
    name: parsePolicies(values.policy)[0],
    sparsity: num(values.sparsity, "sparsity") ?? 0,
    minBudget: num(values["min-budget"], "min-budget", true),
  };
  if (policy) checkSparsity(policy.sparsity);
  const model = await loadModel(positionals[0] ?? defaultModelPath(), {
    contextLength: num(values.context, "context", true),
    onProgress: progressBar(),
    kv,
  });
  const steps: KvStepStats[] = [];
  try {
    await stream(
      model,
      values.prompt,
      {
        maxTokens: num(values["max-tokens"], "max-tokens", true) ?? 128,
        temperature: num(values.temperature, "temperature"),
        topK: num(values["top-k"], "top-k", true),
        topP: num(values["top-p"], "top-p"),
        seed: num(values.seed, "seed", true),
        stop: values.stop,
        policy,
        onStep: values.stats ? (s) => steps.push(s) : undefined,
      },
      values.json ?? false,
      {
        stats: values.stats ? steps : null,
        profile: values["scheduler-profile"] ?? false,
      },
    );
  } finally {
    model.dispose();
  }
  return 0;
}

/** The KV store options of the command line (errors name the flag). */
export function kvOptions(v: {
  "gpu-kv-budget"?: string;
  "kv-int8"?: string;
  recompute?: string;
}): KvOptions {
  const kv: KvOptions = {};
  if (v["gpu-kv-budget"] !== undefined) {
    kv.gpuBytes = parseBytes(v["gpu-kv-budget"], "--gpu-kv-budget");
  }
  if (v["kv-int8"] !== undefined) {
    if (!["on", "off"].includes(v["kv-int8"])) {
      throw new TypeError(
        `--kv-int8: ${JSON.stringify(v["kv-int8"])} is not on or off`,
      );
    }
    kv.int8 = v["kv-int8"] === "on";
  }
  if (v.recompute !== undefined) {
    if (!["auto", "on", "off"].includes(v.recompute)) {
      throw new TypeError(
        `--recompute: ${JSON.stringify(v.recompute)} is not auto, on or off`,
      );
    }
    kv.recompute = v.recompute as KvOptions["recompute"];
  }
  return kv;
}

const fmtBytes = (n: number) =>
  n >= 2 ** 20
    ? `${(n / 2 ** 20).toFixed(2)} MiB`
    : n >= 1024
    ? `${(n / 1024).toFixed(1)} KiB`
    : `${n} B`;

/** The `--stats` summary: the run's totals and each phase change. */
export function formatKvStats(s: KvStats, steps: KvStepStats[]): string {
  const lines = [
    `KV store: ${s.tiered ? "tiered" : "all on the GPU"}, budget ${
      fmtBytes(s.budget_bytes)
    } (allocated ${fmtBytes(s.allocated_gpu_kv_bytes)}, peak held ${
      fmtBytes(s.peak_gpu_kv_bytes)
    }), host tier ${s.int8 ? "INT8" : "f16"}`,
    `plan: p1 ${s.plan.p1 ?? "-"}, p2 ${s.plan.p2 ?? "-"}, alpha ${
      s.plan.alpha.toFixed(3)
    }, beta ${s.plan.beta}`,
    `steps ${s.steps}, phases entered ${
      s.phases_entered.join(", ")
    }; uploaded ${
      fmtBytes(s.uploaded_bytes)
    }, recomputed ${s.recomputed_tokens} token-layers, evictions ${s.evictions}; host peak ${s.host_tokens_peak} token-layers (${
      fmtBytes(s.host_bytes_peak)
    })`,
  ];
  let phase = 0;
  for (const t of steps) {
    if (t.phase === phase) continue;
    phase = t.phase;
    lines.push(
      `  step ${t.step}: phase ${t.phase} (token-layers: GPU ${t.gpuTokens}, host ${t.hostTokens}, recompute ${t.recomputeTokens}; rows ${t.rowsUsed}/${t.rows})`,
    );
  }
  const last = steps[steps.length - 1];
  if (last) {
    lines.push(
      `  end: GPU ${last.gpuTokens}, host ${last.hostTokens}, recompute ${last.recomputeTokens} token-layers; GPU KV ${
        fmtBytes(last.gpuKvBytes)
      }, host ${fmtBytes(last.hostBytes)}`,
    );
  }
  return lines.join("\n");
}

/** `alisa demo`: the embedded model continues an Austen opening, offline. */
export async function demoCommand(): Promise<number> {
  const model = await loadModel(defaultModelPath());
  try {
    console.error(
      `alisa demo: the embedded Austen model (${model.config.nLayers} layers, dim ${model.config.dim}) on ${
        model.engine.gpu.adapterInfo.description || "WebGPU"
      }\n`,
    );
    await stream(
      model,
      "It is a truth universally acknowledged",
      { maxTokens: 64, temperature: 0.7, topK: 40, topP: 0.95, seed: 1811 },
      false,
    );
  } finally {
    model.dispose();
  }
  return 0;
}
