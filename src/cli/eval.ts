/**
 * `alisa eval`: perplexity and top-1 agreement with dense of every KV
 * policy at every sparsity, on natural text (`--text`) or on documents
 * (`--docs`, one window per blank-line-separated document), ALISA.md
 * section 6. Progress on stderr (one line per result), the Markdown
 * tables (or `--json`) on stdout, a plot with `--svg FILE`.
 *
 * Arguments are checked before any GPU work: bad values print
 * `error: ...` and return exit code 2 ({@linkcode parseEvalArgs} throws
 * the TypeError/RangeError that says why).
 *
 * @module
 */
import { localModel } from "./cache.ts";
import { parseArgs } from "node:util";
import { defaultModelPath } from "../api/default_model.ts";
import { openModelFile } from "../formats/model_file.ts";
import {
  checkSparsity,
  parsePolicies,
  POLICY_NAMES,
  type PolicyName,
} from "../sparse/spec.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import {
  denseBaseline,
  formatChange,
  formatPpl,
  markdownTable,
  type PolicyResult,
  resultsJson,
  svgPlot,
} from "../eval/report.ts";
import { docWindows, textWindows } from "../eval/windows.ts";
import type { ModelConfig } from "../formats/config.ts";
import {
  checkEngineOptions,
  checkPolicyState,
  type EngineLimits,
} from "../model/limits.ts";
import { intOption, isArgError, joinNegativeValues } from "./options.ts";

/** Default `--sparsity` list (ALISA.md section 6). */
export const DEFAULT_SPARSITIES: readonly number[] = [
  0,
  0.2,
  0.4,
  0.5,
  0.6,
  0.7,
  0.8,
  0.9,
];

/** Usage of `alisa eval`. */
export const EVAL_USAGE = `usage: alisa eval [MODEL] --text FILE [options]

Perplexity of every KV policy at every sparsity, and top-1 agreement with
dense. MODEL is a .gguf file, a URL or a Hugging Face directory (default:
the embedded Austen 5.8M model).

options:
  --text FILE          the text to score (required)
  --docs               FILE holds documents separated by blank lines: score
                       each from BOS (cut to the window) instead of cutting
                       the whole text into consecutive windows
  --window N           tokens per window, BOS included: 2 to the model's
                       context (default 1024)
  --policies LIST      comma-separated, of ${POLICY_NAMES.join(",")}
                       (default: all)
  --sparsity LIST      comma-separated, each in [0, 1)
                       (default ${DEFAULT_SPARSITIES.join(",")})
  --max-windows N      score only the first N windows (N >= 1)
  --batch B            sequences evaluated at once (default 1; at most what
                       the GPU's buffers hold at this window)
  --min-budget M       smallest total budget: k >= ceil(M / 2), 0 to the
                       window (default 0)
  --json               print {"results": [{policy, sparsity, ppl,
                       top1_agree, tokens}, ...]} instead of the tables
  --svg FILE           also write a plot of perplexity against sparsity`;

/** The checked arguments of `alisa eval`. */
export interface EvalArgs {
  model: string;
  text: string;
  docs: boolean;
  window: number;
  policies: PolicyName[];
  sparsities: number[];
  maxWindows?: number;
  batch: number;
  minBudget: number;
  json: boolean;
  svg?: string;
}

/** Parses "0,0.5,0.9": RangeError for a non-number or one outside [0, 1). */
export function parseSparsities(list: string): number[] {
  const parts = list.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.length === 0) throw new RangeError("--sparsity: no value given");
  const out: number[] = [];
  for (const p of parts) {
    const v = Number(p);
    if (!Number.isFinite(v)) {
      throw new RangeError(`--sparsity: ${JSON.stringify(p)} is not a number`);
    }
    try {
      checkSparsity(v);
    } catch (e) {
      throw new RangeError(`--sparsity: ${(e as Error).message}`);
    }
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

/**
 * Parses and checks `alisa eval` arguments (no I/O); `"help"` for
 * `--help`. TypeError for unknown options or policy names and a missing
 * `--text`, RangeError for numbers out of range.
 */
export function parseEvalArgs(args: string[]): EvalArgs | "help" {
  const { values, positionals } = parseArgs({
    args: joinNegativeValues(args, [
      "window",
      "sparsity",
      "max-windows",
      "batch",
      "min-budget",
    ]),
    options: {
      text: { type: "string" },
      docs: { type: "boolean" },
      window: { type: "string" },
      policies: { type: "string" },
      sparsity: { type: "string" },
      "max-windows": { type: "string" },
      batch: { type: "string" },
      "min-budget": { type: "string" },
      json: { type: "boolean" },
      svg: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return "help";
  if (positionals.length > 1) {
    throw new TypeError(
      `expected one MODEL, got ${positionals.length}: ${positionals.join(" ")}`,
    );
  }
  if (values.text === undefined) throw new TypeError("--text FILE is required");
  const policies = [
    ...new Set(parsePolicies(values.policies ?? POLICY_NAMES.join(","))),
  ];
  const sparsities = values.sparsity === undefined
    ? [...DEFAULT_SPARSITIES]
    : parseSparsities(values.sparsity);
  const window = intOption(
    values.window,
    "window",
    2,
    Number.MAX_SAFE_INTEGER,
    " (at most the model's context)",
  ) ?? 1024;
  const minBudget =
    intOption(values["min-budget"], "min-budget", 0, window, " (--window)") ??
      0;
  if (values.svg === "") throw new TypeError("--svg needs a file name");
  return {
    model: positionals[0] ?? defaultModelPath(),
    text: values.text,
    docs: values.docs ?? false,
    window,
    policies,
    sparsities,
    maxWindows: intOption(values["max-windows"], "max-windows", 1),
    batch: intOption(values.batch, "batch", 1) ?? 1,
    minBudget,
    json: values.json ?? false,
    svg: values.svg,
  };
}

/** RangeError unless `window` fits the model's context. */
export function checkWindow(window: number, contextLength: number): void {
  if (window > contextLength) {
    throw new RangeError(
      `--window must be an integer from 2 to ${contextLength} (the model's context), got ${window}`,
    );
  }
}

/**
 * RangeError unless a model with `config` loaded for `a` (window, batch,
 * policies) fits a device with `limits`: its KV cache, attention weights
 * and policy state, named by the options that set them.
 */
export function checkEvalDevice(
  a: Pick<
    EvalArgs,
    "window" | "batch" | "policies" | "minBudget" | "sparsities"
  >,
  config: ModelConfig,
  limits: EngineLimits,
): void {
  const names = { contextLength: "--window", maxBatch: "--batch" };
  checkEngineOptions(
    config,
    { contextLength: a.window, maxBatch: a.batch },
    limits,
    names,
  );
  for (const name of a.policies) {
    for (const sparsity of a.sparsities) {
      checkPolicyState(
        config,
        { ctx: a.window, slots: a.batch },
        { name, sparsity, minBudget: a.minBudget },
        limits,
        names,
      );
    }
  }
}

/** The windows of `a.text` for `a.model` (reads the files; no GPU). */
export async function buildWindows(
  a: EvalArgs,
): Promise<
  { windows: number[][]; contextLength: number; config: ModelConfig }
> {
  const text = await Deno.readTextFile(a.text).catch((e) => {
    throw new Error(`Cannot read --text ${a.text}: ${(e as Error).message}`);
  });
  const file = await openModelFile(a.model);
  try {
    const contextLength = file.config.contextLength;
    checkWindow(a.window, contextLength);
    const tok = await Tokenizer.fromModelFile(file);
    const o = { contextLength, maxWindows: a.maxWindows };
    const windows = a.docs
      ? docWindows(tok, text, a.window, o)
      : textWindows(tok, text, a.window, o);
    return { windows, contextLength, config: file.config };
  } finally {
    file.close();
  }
}

function baseName(path: string): string {
  return path.replace(/[\\/]+$/, "").split(/[\\/]/).pop() ?? path;
}

/** `alisa eval ...`; returns the exit code (2: bad arguments). */
export async function evalCommand(args: string[]): Promise<number> {
  let a: EvalArgs;
  let windows: number[][];
  try {
    const parsed = parseEvalArgs(args);
    if (parsed === "help") {
      console.log(EVAL_USAGE);
      return 0;
    }
    a = { ...parsed, model: await localModel(parsed.model) };
    const built = await buildWindows(a);
    windows = built.windows;
    // The device's limits come from the adapter: no device, no allocation.
    const limits = (await navigator.gpu?.requestAdapter())?.limits;
    if (limits) checkEvalDevice(a, built.config, limits);
  } catch (e) {
    if (!isArgError(e)) throw e;
    console.error(`error: ${e.message}\n(alisa eval --help for usage)`);
    return 2;
  }

  const nTokens = windows.reduce((s, w) => s + w.length, 0);
  console.error(
    `eval: ${baseName(a.model)} on ${baseName(a.text)}: ${windows.length} ${
      a.docs ? "documents" : "windows"
    } (${nTokens} tokens, window ${a.window}); policies ${
      a.policies.join(",")
    }; sparsity ${a.sparsities.join(",")}${
      a.minBudget ? `; min budget ${a.minBudget}` : ""
    }`,
  );

  // The GPU side loads only now, after every argument is known good.
  const { loadModel } = await import("../api/model.ts");
  const { evaluatePolicies } = await import("../eval/perplexity.ts");
  const model = await loadModel(a.model, {
    contextLength: a.window,
    maxBatch: a.batch,
  });
  let results: PolicyResult[];
  const t0 = performance.now();
  const seen: PolicyResult[] = [];
  try {
    results = await evaluatePolicies(model, windows, a.policies, a.sparsities, {
      minBudget: a.minBudget,
      onResult: (r: PolicyResult) => {
        seen.push(r);
        const base = denseBaseline(seen);
        const rel = base === undefined || r.policy === "dense"
          ? ""
          : ` (${formatChange(r.ppl, base)})`;
        console.error(
          `  ${r.policy.padEnd(7)} s=${String(r.sparsity).padEnd(4)}  ppl ${
            formatPpl(r.ppl)
          }${rel}  top-1 ${
            (r.top1_agree * 100).toFixed(1)
          }%  ${r.tokens} tokens  ${
            ((performance.now() - t0) / 1000).toFixed(1)
          } s`,
        );
      },
    });
  } finally {
    model.dispose();
  }

  const title = `${baseName(a.text)}${a.docs ? " (documents)" : ""}, ${
    baseName(a.model)
  }, window ${a.window}`;
  if (a.json) {
    console.log(resultsJson(results));
  } else {
    console.log(markdownTable(results, { title }));
  }
  if (a.svg !== undefined) {
    await Deno.writeTextFile(a.svg, svgPlot(results, { title }));
    console.error(`wrote ${a.svg}`);
  }
  return 0;
}
