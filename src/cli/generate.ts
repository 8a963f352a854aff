/**
 * `alisa generate` and `alisa demo`: stream a continuation to stdout, then
 * report prefill and decode speed (or one JSON object with `--json`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type GenerateOptions, loadModel, type Model } from "../api/model.ts";
import { defaultModelPath } from "../api/default_model.ts";
import { checkGenerateValues } from "./generate_args.ts";
import { localModel } from "./cache.ts";
import { isArgError, joinNegativeValues } from "./options.ts";
import type { KvStepStats } from "../kv/store.ts";
import { formatKvStats, formatSchedulerProfile } from "./kv_report.ts";

const NUMERIC_OPTIONS = [
  "max-tokens",
  "temperature",
  "top-k",
  "top-p",
  "seed",
  "context",
  "sparsity",
  "min-budget",
  "gpu-kv-budget",
] as const;

/** Usage of `alisa generate`. */
export const GENERATE_USAGE =
  `usage: alisa generate [MODEL] --prompt TEXT [options]

MODEL is a .gguf file, a URL or a Hugging Face directory (default: the
embedded Austen 5.8M model).

options:
  --prompt TEXT        the text to continue (required)
  --max-tokens N       tokens to generate, 1 to the context (default 128)
  --temperature T      >= 0; 0 = greedy (default 0)
  --top-k K            sample from the K most likely tokens (0 = all)
  --top-p P            sample from the smallest set with probability P,
                       in (0, 1]
  --seed S             seed for sampling, 0 to 4294967295
  --stop TEXT          stop when TEXT appears (repeatable)
  --context N          positions to allocate, 2 to the model's context
                       (default: the model's)
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
  --json               print {"prompt_ids","ids","text","finish_reason",
                       "prefill_tok_s","decode_tok_s","gpu_bytes","kv_stats"}`;

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
  if (report.profile) console.error(formatSchedulerProfile(model));
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
  let values, positionals;
  let checked: Awaited<ReturnType<typeof checkGenerateValues>>;
  let path: string;
  try {
    ({ values, positionals } = parseArgs({
      args: joinNegativeValues(args, NUMERIC_OPTIONS),
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
    }));
    if (values.help) {
      console.log(GENERATE_USAGE);
      return 0;
    }
    if (values.prompt === undefined || positionals.length > 1) {
      console.error(GENERATE_USAGE);
      return 2;
    }
    path = await localModel(positionals[0] ?? defaultModelPath());
    checked = await checkGenerateValues(values, path);
  } catch (e) {
    if (!isArgError(e)) throw e;
    console.error(`error: ${e.message}\n(alisa generate --help for usage)`);
    return 2;
  }
  const model = await loadModel(path, {
    contextLength: checked.contextLength,
    onProgress: progressBar(),
    kv: checked.kv,
  });
  const steps: KvStepStats[] = [];
  try {
    await stream(
      model,
      values.prompt,
      {
        ...checked.options,
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
