/**
 * The systems the throughput benchmark compares, all in this engine with
 * the same kernels, so the ratios isolate KV management (ALISA.md section
 * 6):
 *
 * | system | attention | KV under the budget |
 * | --- | --- | --- |
 * | `dense-unlimited` | dense | everything on the GPU (no budget): the ceiling |
 * | `swa-gpu` | SWA 0.8 | everything on the GPU |
 * | `alisa` | SWA 0.8 | tiered: GPU pool, INT8 host tier, recompute by the cost model |
 * | `flexgen` | dense | tiered, recompute off: what does not fit lives on the host (f16, or INT8 with `int8`) and every host token is uploaded every step it is attended (all of them, for dense), layer by layer |
 * | `vllm` | dense | paged on the GPU (blocks of 16), continuous batching: admit when blocks fit, preempt the newest and recompute it later |
 *
 * Every system runs its sequences through the same continuous-batching
 * driver (`generateContinuous`), greedy, with the same prompts, output
 * length and GPU KV budget; tokens/s counts generated tokens only, over the
 * whole run's wall time (prefills included).
 *
 * @module
 */
import { loadModel, type Model } from "../src/api/model.ts";
import type { Gpu } from "../src/gpu/device.ts";
import type { KvOptions, KvStepStats } from "../src/kv/store.ts";
import type { PolicySpec } from "../src/sparse/spec.ts";

/** The systems, in the order tables and plots list them. */
export const SYSTEMS = [
  "dense-unlimited",
  "swa-gpu",
  "alisa",
  "flexgen",
  "vllm",
] as const;

/** One of {@linkcode SYSTEMS}. */
export type SystemName = typeof SYSTEMS[number];

/** The KV policy and store options of a system under `budget` bytes. */
export function systemConfig(
  name: SystemName,
  budget: number,
  o: { sparsity?: number; flexgenInt8?: boolean } = {},
): { policy: PolicySpec; kv?: KvOptions } {
  const swa: PolicySpec = { name: "swa", sparsity: o.sparsity ?? 0.8 };
  const dense: PolicySpec = { name: "dense", sparsity: 0 };
  switch (name) {
    case "dense-unlimited":
      return { policy: dense };
    case "swa-gpu":
      return { policy: swa };
    case "alisa":
      return { policy: swa, kv: { gpuBytes: budget, int8: true } };
    case "flexgen":
      return {
        policy: dense,
        kv: {
          gpuBytes: budget,
          int8: o.flexgenInt8 ?? false,
          recompute: "off",
        },
      };
    case "vllm":
      return { policy: dense, kv: { gpuBytes: budget, paged: true } };
  }
}

/** What one system did on one batch. */
export interface SystemRun {
  system: SystemName;
  batch: number;
  /** Generated tokens per second of the whole run. */
  tokens_per_s: number;
  /** Most GPU KV bytes held at once (the store's own accounting). */
  gpu_kv_peak_bytes: number;
  uploaded_bytes: number;
  /**
   * Tokens whose K/V were computed again: prompts and outputs prefilled
   * again after a preemption (vLLM-style), plus token-layers rebuilt from
   * x divided by the layer count (ALISA's phase III).
   */
  recomputed_tokens: number;
  preemptions: number;
  seconds: number;
  /** Generated ids per sequence. */
  ids: number[][];
  /** Per-step stats (when asked for). */
  steps?: { ms: number; stats: KvStepStats }[];
}

/**
 * Runs `prompts` on `system`: loads the model with `batch` slots and the
 * system's KV store, warms up, then generates `output` tokens per
 * sequence. `model` is the model source (path or bytes; default the
 * embedded model).
 */
export async function runSystem(
  gpu: Gpu,
  system: SystemName,
  prompts: number[][],
  o: {
    output: number;
    budget: number;
    batch: number;
    model?: string;
    sparsity?: number;
    flexgenInt8?: boolean;
    /** Positions per sequence to load (default: the longest prompt + output). */
    context?: number;
    /** Keep per-step wall times and stats. */
    steps?: boolean;
    /** Called after every decode step (progress). */
    onProgress?: (done: number, total: number) => void;
  },
): Promise<SystemRun> {
  const { policy, kv } = systemConfig(system, o.budget, o);
  const ctx = o.context ??
    Math.max(...prompts.map((p) => p.length)) + o.output;
  let m: Model;
  try {
    m = await loadModel(o.model, {
      gpu,
      contextLength: ctx,
      maxBatch: o.batch,
      kv,
    });
  } catch (e) {
    // A budget that holds every position makes no difference: the store
    // is static then; anything else is the caller's problem.
    throw new Error(`${system} at batch ${o.batch}: ${(e as Error).message}`);
  }
  try {
    // Warm-up: pipelines compiled, plans built.
    await m.generateContinuous(prompts.slice(0, 1), {
      maxTokens: 2,
      stopAtEos: false,
      policy,
    });
    const steps: { ms: number; stats: KvStepStats }[] = [];
    let last = performance.now(), done = 0;
    const total = prompts.length * o.output;
    const t0 = performance.now();
    const r = await m.generateContinuous(prompts, {
      maxTokens: o.output,
      stopAtEos: false,
      policy,
      onStep: (s) => {
        const now = performance.now();
        if (o.steps) steps.push({ ms: now - last, stats: s });
        last = now;
        done = Math.min(total, done + prompts.length);
        o.onProgress?.(done, total);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const generated = r.sequences.reduce((a, s) => a + s.ids.length, 0);
    return {
      system,
      batch: prompts.length,
      tokens_per_s: generated / seconds,
      gpu_kv_peak_bytes: r.kvStats.peak_gpu_kv_bytes,
      uploaded_bytes: r.kvStats.uploaded_bytes,
      recomputed_tokens: r.recomputedTokens +
        r.kvStats.recomputed_tokens / m.config.nLayers,
      preemptions: r.preemptions,
      seconds,
      ids: r.sequences.map((s) => s.ids),
      steps: o.steps ? steps : undefined,
    };
  } finally {
    m.dispose();
  }
}
