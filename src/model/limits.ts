/**
 * Checks of the engine's size options against the model and the device,
 * made before anything large is allocated: a context beyond what the model
 * was trained for, or one whose KV cache, attention weights or RoPE table
 * would not fit one GPU binding, is a RangeError naming the option, the
 * limit and the allowed range, instead of minutes of work (the RoPE table
 * for 10^8 positions is computed on the CPU) and an allocation failure or
 * a validation error later.
 *
 * The buffer sizes here mirror what `LlamaModel.load` and
 * `LlamaModel.setPolicy` allocate (`src/model/llama.ts`); every buffer is
 * bound whole as storage, so each must fit `maxStorageBufferBindingSize`
 * (and `maxBufferSize`).
 *
 * @example A context longer than the model's is refused
 * ```ts
 * import { checkEngineOptions } from "./limits.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 * const config = {
 *   contextLength: 1024, nLayers: 6, nHeads: 8, nKvHeads: 4, headDim: 32,
 *   ropeDim: 32, dim: 256, ffnDim: 768, vocabSize: 4096,
 * };
 * const limits = {
 *   maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 27,
 *   maxComputeWorkgroupsPerDimension: 65535,
 * };
 * assertThrows(
 *   () => checkEngineOptions(config, { contextLength: 99999999 }, limits),
 *   RangeError,
 *   "contextLength must be an integer from 1 to 1024",
 * );
 * const sizes = checkEngineOptions(config, { maxBatch: 4 }, limits);
 * assertEquals(sizes, {
 *   contextLength: 1024, maxBatch: 4, maxStepTokens: 512, maxOut: 512,
 * });
 * ```
 *
 * @module
 */
import type { ModelConfig } from "../formats/config.ts";
import { MAX_POOL_PARTS } from "../kv/pool.ts";
import { budgetK } from "../sparse/spec.ts";

/** The model dimensions the checks need. */
export type EngineConfig = Pick<
  ModelConfig,
  | "contextLength"
  | "nLayers"
  | "nHeads"
  | "nKvHeads"
  | "headDim"
  | "ropeDim"
  | "dim"
  | "ffnDim"
  | "vocabSize"
>;

/** The device limits the checks need (a `GPUSupportedLimits` has them). */
export interface EngineLimits {
  readonly maxBufferSize: number;
  readonly maxStorageBufferBindingSize: number;
  readonly maxComputeWorkgroupsPerDimension: number;
}

/** The size options of `LlamaModel.load` (all optional). */
export interface EngineOptions {
  /** Positions per sequence (default: the model's context length). */
  contextLength?: number;
  /** Sequences at once, i.e. KV slots (default 1). */
  maxBatch?: number;
  /** Most tokens per step (default 512, fewer when the attention weights would not fit). */
  maxStepTokens?: number;
  /** The KV store's GPU budget (`kv.gpuBytes`); none: every position of every sequence. */
  kvGpuBytes?: number;
}

/** What to call each option in messages (e.g. the CLI's `--context`). */
export interface EngineOptionNames {
  contextLength?: string;
  maxBatch?: string;
  maxStepTokens?: string;
}

/** The sizes the engine will use, once the options passed. */
export interface EngineSizes {
  contextLength: number;
  maxBatch: number;
  /** Tokens per step after fitting the attention weights into one binding. */
  maxStepTokens: number;
  /** Logit rows per step. */
  maxOut: number;
}

/** Default tokens per step (`LlamaModel.load`). */
export const DEFAULT_MAX_STEP_TOKENS = 512;

function bytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/** The largest buffer the engine may bind, and the limit that sets it. */
function bindLimit(limits: EngineLimits): { max: number; name: string } {
  return limits.maxBufferSize < limits.maxStorageBufferBindingSize
    ? { max: limits.maxBufferSize, name: "maxBufferSize" }
    : {
      max: limits.maxStorageBufferBindingSize,
      name: "maxStorageBufferBindingSize",
    };
}

function checkInt(
  v: unknown,
  name: string,
  min: number,
  max: number,
  why = "",
): number {
  if (typeof v !== "number") {
    throw new TypeError(
      `${name} must be a number, got ${v === null ? "null" : typeof v}`,
    );
  }
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER
      ? `an integer >= ${min}`
      : `an integer from ${min} to ${max}`;
    throw new RangeError(`${name} must be ${range}${why}, got ${v}`);
  }
  return v;
}

/**
 * Checks `o` against the model and the device and returns the sizes the
 * engine will use. TypeError for an option that is not a number,
 * RangeError (naming the option, the limit and the allowed range) for a
 * non-integer, one out of range, or sizes whose buffers would not fit:
 *
 * - contextLength: 1 to the model's trained context, and one token's
 *   attention weights (heads x ctx f32), the RoPE table (ctx x rope_dim
 *   f32) and the KV row table (layers x maxBatch x ctx u32) each within
 *   one binding;
 * - maxBatch: >= 1; without a KV budget its KV pool (every position of
 *   every sequence: layers x maxBatch x ctx rows of 2 kv_dim f16) within
 *   the pool's most parts of one binding each; its logit rows within what
 *   one step produces;
 * - maxStepTokens: 1 to maxComputeWorkgroupsPerDimension, the step's
 *   activations (tokens x the widest of dim, q_dim, ffn_dim f32) within
 *   one binding.
 */
export function checkEngineOptions(
  config: EngineConfig,
  o: EngineOptions,
  limits: EngineLimits,
  names: EngineOptionNames = {},
): EngineSizes {
  const nCtx = names.contextLength ?? "contextLength";
  const nBatch = names.maxBatch ?? "maxBatch";
  const nStep = names.maxStepTokens ?? "maxStepTokens";
  const c = config;
  const { max: bind, name: limitName } = bindLimit(limits);
  const limitText = `this GPU's ${limitName} (${bytes(bind)})`;

  const ctx = o.contextLength === undefined ? c.contextLength : checkInt(
    o.contextLength,
    nCtx,
    1,
    c.contextLength,
    " (the model's trained context)",
  );
  const batch = o.maxBatch === undefined
    ? 1
    : checkInt(o.maxBatch, nBatch, 1, Number.MAX_SAFE_INTEGER);
  const stepOption = o.maxStepTokens === undefined
    ? DEFAULT_MAX_STEP_TOKENS
    : checkInt(
      o.maxStepTokens,
      nStep,
      1,
      limits.maxComputeWorkgroupsPerDimension,
      " (maxComputeWorkgroupsPerDimension)",
    );

  // Per position: one token's attention weights (and selections), the
  // RoPE table's row, one slot's K (or V) row in one layer.
  const kvDim = c.nKvHeads * c.headDim;
  const perPos: [string, number][] = [
    [
      `one token's attention weights (${c.nHeads} heads x ${ctx} positions, f32)`,
      c.nHeads * 4,
    ],
    [`the RoPE table (${ctx} positions x ${c.ropeDim}, f32)`, c.ropeDim * 4],
    [
      `the KV row table of one sequence (${c.nLayers} layers x ${ctx} positions, u32)`,
      c.nLayers * 4,
    ],
  ];
  for (const [what, b] of perPos) {
    if (ctx * b > bind) {
      throw new RangeError(
        `${nCtx} must be an integer from 1 to ${
          Math.min(Math.floor(bind / b), c.contextLength)
        } on this GPU, got ${ctx}: ${what} would take ${
          bytes(ctx * b)
        }, over ${limitText}`,
      );
    }
  }
  // The row table, and without a budget the whole KV pool, bound the
  // batch at this context (and, without a budget, the context itself).
  const perSlot = c.nLayers * ctx;
  const rowBytes = kvDim * 4;
  const rowsPerPart = Math.floor(bind / rowBytes);
  if (o.kvGpuBytes === undefined && perSlot > MAX_POOL_PARTS * rowsPerPart) {
    const most = Math.floor(MAX_POOL_PARTS * rowsPerPart / c.nLayers);
    throw new RangeError(
      `${nCtx} must be an integer from 1 to ${
        Math.min(most, c.contextLength)
      } on this GPU without a KV budget, got ${ctx}: the KV of one sequence (${c.nLayers} layers x ${ctx} positions, ${rowBytes} bytes each) would take ${
        bytes(perSlot * rowBytes)
      }, over ${MAX_POOL_PARTS} x ${limitText} (give the KV store a budget, kv.gpuBytes, to keep part of it in host memory)`,
    );
  }
  const maxBatchTable = Math.floor(bind / (perSlot * 4));
  const maxBatchKv = o.kvGpuBytes === undefined
    ? Math.floor(MAX_POOL_PARTS * rowsPerPart / perSlot)
    : Infinity;
  const maxBatchAll = Math.min(maxBatchTable, maxBatchKv);
  if (batch > maxBatchAll) {
    const kvWhy = maxBatchKv <= maxBatchTable
      ? `the KV of every position (${batch} slots x ${ctx} positions x ${c.nLayers} layers, ${rowBytes} bytes each) would take ${
        bytes(batch * perSlot * rowBytes)
      }, over ${MAX_POOL_PARTS} x ${limitText} (give the KV store a budget, kv.gpuBytes, to keep part of it in host memory)`
      : `the KV row table (${batch} slots x ${ctx} positions x ${c.nLayers} layers, u32) would take ${
        bytes(batch * perSlot * 4)
      }, over ${limitText}`;
    throw new RangeError(
      `${nBatch} must be an integer from 1 to ${maxBatchAll} with ${nCtx} ${ctx} on this GPU, got ${batch}: ${kvWhy}`,
    );
  }
  if (c.vocabSize * 4 > bind) {
    throw new RangeError(
      `one row of logits (${c.vocabSize} f32) takes ${
        bytes(c.vocabSize * 4)
      }, over ${limitText}`,
    );
  }

  // Tokens per step: the attention weights (tokens, heads, ctx) f32 bound
  // it (as LlamaModel.load fits them), then the widest activation.
  const steps = Math.max(
    1,
    Math.min(stepOption, Math.floor(bind / (c.nHeads * ctx * 4))),
  );
  const width = Math.max(c.dim, c.nHeads * c.headDim, kvDim, c.ffnDim);
  if (steps * width * 4 > bind) {
    throw new RangeError(
      `${nStep} must be an integer from 1 to ${
        Math.floor(bind / (width * 4))
      } on this GPU, got ${stepOption}: a step's activations (${steps} tokens x ${width}, f32) would take ${
        bytes(steps * width * 4)
      }, over ${limitText}`,
    );
  }
  const maxOut = Math.max(
    1,
    Math.min(steps, Math.floor(bind / (c.vocabSize * 4))),
  );
  if (batch > maxOut) {
    throw new RangeError(
      `${nBatch} must be an integer from 1 to ${maxOut} on this GPU, got ${batch}: a step of the whole batch needs ${batch} logit rows, and one step produces at most ${maxOut} (${nStep} ${steps}; ${
        bytes(c.vocabSize * 4)
      } per row within ${limitText})`,
    );
  }
  return { contextLength: ctx, maxBatch: batch, maxStepTokens: steps, maxOut };
}

/**
 * SWA's largest per-layer buffer at first (src/sparse/swa_gpu.ts): the
 * score rows, slots x (k(ctx) + 1) rows x (min(ctx, 2 k(ctx)) + 1)
 * entries of 4 bytes (positions; the weights take another such buffer).
 */
export function swaRowBytes(
  ctx: number,
  slots: number,
  sparsity: number,
  minBudget: number,
): number {
  const k = budgetK(ctx, sparsity, minBudget);
  return slots * (k + 1) * (Math.min(ctx, 2 * k) + 1) * 4;
}

/**
 * Checks that the per-layer state of KV policy `name` fits the device
 * (before `setPolicy` allocates it): SWA's score rows (see
 * {@linkcode swaRowBytes}; a prompt longer than the rows grows them when
 * it is prefilled, checked then) and H2O's scores and kept flags (slots x
 * heads x ctx, 4 bytes each). RangeError naming the limit otherwise.
 */
export function checkPolicyState(
  config: Pick<EngineConfig, "nHeads">,
  /** The KV cache's shape (a `KvCache` has it). */
  kv: { ctx: number; slots: number },
  policy: { name: string; sparsity?: number; minBudget?: number },
  limits: EngineLimits,
  names: EngineOptionNames = {},
): void {
  const { max: bind, name: limitName } = bindLimit(limits);
  const { ctx, slots } = kv;
  let what = "", need = 0;
  if (policy.name === "swa") {
    need = swaRowBytes(ctx, slots, policy.sparsity ?? 0, policy.minBudget ?? 0);
    what = `SWA's score rows (${slots} slots, context ${ctx}, sparsity ${
      policy.sparsity ?? 0
    })`;
  } else if (policy.name === "h2o") {
    what =
      `H2O's scores (${slots} slots x ${config.nHeads} heads x ${ctx} f32)`;
    need = slots * config.nHeads * ctx * 4;
  }
  if (need > bind) {
    throw new RangeError(
      `KV policy ${policy.name} needs ${what} per layer: ${
        bytes(need)
      }, over this GPU's ${limitName} (${bytes(bind)}); use a smaller ${
        slots > 1 ? `${names.maxBatch ?? "maxBatch"} or ` : ""
      }${names.contextLength ?? "contextLength"}`,
    );
  }
}
