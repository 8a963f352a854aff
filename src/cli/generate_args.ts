/**
 * The numeric options of `alisa generate`, checked before the model is
 * loaded: each bad value is a RangeError (TypeError for a policy name or a
 * misplaced option) naming the option and its allowed range. The model's
 * context, which bounds `--context`, `--max-tokens` and `--min-budget`,
 * comes from the file's header, and the device's limits from the adapter:
 * nothing is uploaded or allocated until every option is known good.
 *
 * @example
 * ```ts
 * import { checkGenerateArgs } from "./generate_args.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 * const config = {
 *   contextLength: 1024, nLayers: 6, nHeads: 8, nKvHeads: 4, headDim: 32,
 *   ropeDim: 32, dim: 256, ffnDim: 768, vocabSize: 4096,
 * };
 * assertEquals(checkGenerateArgs({ context: "64" }, config).options.maxTokens, 64);
 * assertThrows(
 *   () => checkGenerateArgs({ context: "99999999" }, config),
 *   RangeError,
 *   "--context must be an integer from 2 to 1024 (the model's trained context)",
 * );
 * ```
 *
 * @module
 */
import type { GenerateOptions } from "../api/model.ts";
import { openModelFile } from "../formats/model_file.ts";
import {
  checkEngineOptions,
  checkPolicyState,
  type EngineConfig,
  type EngineLimits,
} from "../model/limits.ts";
import { parsePolicies } from "../sparse/spec.ts";
import { intOption, numberOption } from "./options.ts";
import type { KvOptions } from "../kv/store.ts";
import { kvOptions } from "./kv_report.ts";

/** The raw option values of `alisa generate` (strings as typed). */
export interface GenerateValues {
  "max-tokens"?: string;
  temperature?: string;
  "top-k"?: string;
  "top-p"?: string;
  seed?: string;
  stop?: string[];
  context?: string;
  policy?: string;
  sparsity?: string;
  "min-budget"?: string;
  "gpu-kv-budget"?: string;
  "kv-int8"?: string;
  recompute?: string;
}

/** Default `--max-tokens` (fewer when the context is shorter). */
export const DEFAULT_MAX_TOKENS = 128;

/** Largest `--seed`: seeds are 32-bit. */
export const MAX_SEED = 2 ** 32 - 1;

/**
 * Checks `alisa generate`'s options for a model with `config` and, when
 * `limits` are given, for the device (KV cache, attention and policy
 * buffers at `--context`). Returns the generation options (default
 * `maxTokens` filled in) and the context to load. RangeError naming the
 * option and its range; TypeError for an unknown policy or `--sparsity` /
 * `--min-budget` without `--policy`.
 */
export function checkGenerateArgs(
  values: GenerateValues,
  config: EngineConfig,
  limits?: EngineLimits,
): { options: GenerateOptions; contextLength: number; kv: KvOptions } {
  const kv = kvOptions(values);
  const trained = config.contextLength;
  const ctx = intOption(
    values.context,
    "context",
    2,
    trained,
    " (the model's trained context)",
  ) ?? trained;
  const ctxName = values.context === undefined
    ? " (the model's context)"
    : " (--context)";
  const maxTokens = intOption(
    values["max-tokens"],
    "max-tokens",
    1,
    ctx,
    ctxName,
  ) ?? Math.min(DEFAULT_MAX_TOKENS, ctx);
  const temperature = numberOption(values.temperature, "temperature", {
    min: 0,
    why: " (0 = greedy)",
  });
  const topK = intOption(
    values["top-k"],
    "top-k",
    0,
    config.vocabSize,
    " (the vocabulary; 0 = all tokens)",
  );
  const topP = numberOption(values["top-p"], "top-p", {
    min: 0,
    minOpen: true,
    max: 1,
  });
  const seed = intOption(values.seed, "seed", 0, MAX_SEED);
  const sparsity = numberOption(values.sparsity, "sparsity", {
    min: 0,
    max: 1,
    maxOpen: true,
  });
  const minBudget = intOption(
    values["min-budget"],
    "min-budget",
    0,
    ctx,
    ctxName,
  );
  if (
    values.policy === undefined &&
    (sparsity !== undefined || minBudget !== undefined)
  ) {
    throw new TypeError(
      `--${
        sparsity !== undefined ? "sparsity" : "min-budget"
      } applies to a KV policy: add --policy NAME`,
    );
  }
  const policy = values.policy === undefined ? undefined : {
    name: parsePolicies(values.policy)[0],
    sparsity: sparsity ?? 0,
    minBudget,
  };
  if (limits) {
    const names = { contextLength: "--context" };
    checkEngineOptions(
      config,
      { contextLength: ctx, kvGpuBytes: kv.gpuBytes },
      limits,
      names,
    );
    if (policy) {
      checkPolicyState(config, { ctx, slots: 1 }, policy, limits, names);
    }
  }
  return {
    options: {
      maxTokens,
      temperature,
      topK,
      topP,
      seed,
      stop: values.stop,
      policy,
    },
    contextLength: ctx,
    kv,
  };
}

/**
 * {@linkcode checkGenerateArgs} for the model at `path`: reads its header
 * (no weights) and the adapter's limits (no device), so that a bad option
 * fails in well under a second.
 */
export async function checkGenerateValues(
  values: GenerateValues,
  path: string,
): Promise<{ options: GenerateOptions; contextLength: number; kv: KvOptions }> {
  const file = await openModelFile(path);
  const config = file.config;
  file.close();
  const limits = (await navigator.gpu?.requestAdapter())?.limits;
  return checkGenerateArgs(values, config, limits);
}
