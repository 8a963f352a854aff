/**
 * ALISA's cost model and plan search (section 3): the total time of a
 * generation is
 *
 *     sum over decode steps j of  T_compute(j) + T_transfer(j) + T_recompute(j)
 *
 * with T_transfer = bytes uploaded / upload bandwidth and the compute and
 * recompute times from a profile of this device taken at start-up
 * ({@linkcode DeviceProfile}). The plan (`TierPlan`) is found by a grid
 * search over beta (the fraction of each sequence's oldest tokens dropped
 * for recompute) and p2 (the step phase III starts), minimising the total.
 *
 * p1 and alpha follow from the budget: p1 is the first decode step whose
 * KV does not fit the pool, alpha the fraction of the KV on the host at
 * the end. Spilling earlier or more than the budget forces only adds
 * uploads (a spill itself moves nothing: the host has every token's copy),
 * so the search would never choose it; the scheduler spills on demand,
 * least recently used first.
 *
 * Misses per step are estimated as: the local window (k per sequence and
 * layer) stays on the GPU, and the k global tokens SWA picks are resident
 * in proportion to the rows left for older tokens (a uniform assumption;
 * SWA's picks repeat from step to step, so real runs miss less). For a
 * dense policy every older token is a "global" pick. A recomputed token
 * costs its x upload (dim + 8 bytes INT8, 4 dim f32) plus the GPU time to
 * rebuild K and V; an uploaded one costs its f16 K/V row (4 kv_dim bytes).
 * Where the first is not cheaper (a large GQA group, x in f32, or a device
 * whose GPU time per rebuilt token outweighs the bytes saved, as llvmpipe),
 * recompute never pays and the search returns beta = 0.
 *
 * @module
 */
import { budgetK } from "../sparse/spec.ts";
import type { PolicySpec } from "../sparse/spec.ts";
import type { TierPlan } from "./scheduler.ts";

/** What the device costs, measured at start-up. */
export interface DeviceProfile {
  /** Host -> GPU upload bandwidth (queue.writeBuffer), GB/s. */
  uploadGBs: number;
  /** GPU time to rebuild one token's K and V at one layer (batched), ms. */
  recomputeMsPerToken: number;
  /** GPU time of attention per attended token, per layer and sequence, ms. */
  attendMsPerToken: number;
  /** GPU time of one decode step's other work (weights), per sequence, ms. */
  stepMs: number;
}

/** What the plan is for. */
export interface Workload {
  batch: number;
  /** Prompt tokens per sequence (the mean). */
  promptLen: number;
  /** Tokens generated per sequence. */
  genLen: number;
  policy: Required<PolicySpec>;
  nLayers: number;
  /** Pool rows (the GPU budget). */
  rows: number;
  /** Host bytes uploaded per K/V row (INT8 is dequantized on the host: f16 rows). */
  rowBytes: number;
  /** Host bytes uploaded per recomputed token (x). */
  xBytes: number;
}

/** The modelled cost of a plan. */
export interface PlanCost {
  totalMs: number;
  computeMs: number;
  transferMs: number;
  recomputeMs: number;
  uploadedRows: number;
  recomputedTokens: number;
}

/** How recompute is allowed: by the cost model, always when spilling, never. */
export type RecomputeMode = "auto" | "on" | "off";

function attended(policy: Required<PolicySpec>, n: number) {
  if (policy.name === "dense") return { b: n, local: 0 };
  const k = budgetK(n, policy.sparsity, policy.minBudget);
  const b = Math.min(n, 2 * k);
  return { b, local: Math.min(b, k) };
}

/** First decode step whose KV does not fit, and the host fraction at the end. */
export function forcedSpill(w: Workload): { p1: number; alpha: number } {
  let p1 = Infinity;
  for (let j = 0; j < w.genLen; j++) {
    const entries = w.nLayers * w.batch * (w.promptLen + j + 1);
    if (entries > w.rows) {
      p1 = j;
      break;
    }
  }
  const end = w.nLayers * w.batch * (w.promptLen + w.genLen);
  return { p1, alpha: Math.max(0, 1 - w.rows / end) };
}

/** The modelled cost of `plan` for `w` on a device with profile `d`. */
export function planCost(
  d: DeviceProfile,
  w: Workload,
  plan: TierPlan,
): PlanCost {
  const c: PlanCost = {
    totalMs: 0,
    computeMs: 0,
    transferMs: 0,
    recomputeMs: 0,
    uploadedRows: 0,
    recomputedTokens: 0,
  };
  const L = w.nLayers, B = w.batch;
  const bytesPerMs = d.uploadGBs * 1e6;
  for (let j = 0; j < w.genLen; j++) {
    const n = w.promptLen + j + 1;
    const { b, local } = attended(w.policy, n);
    c.computeMs += B * d.stepMs + L * B * b * d.attendMsPerToken;
    const entries = L * B * n;
    if (entries <= w.rows) continue;
    const older = L * B * (n - local);
    const spare = w.rows - L * B * local;
    const hit = older > 0 ? Math.min(1, Math.max(0, spare / older)) : 1;
    const misses = L * B * (b - local) * (1 - hit);
    const dropped = j >= plan.p2
      ? Math.min(1, plan.beta * n / Math.max(1, n - local))
      : 0;
    const rc = misses * dropped, up = misses - rc;
    c.uploadedRows += up;
    c.recomputedTokens += rc;
    c.transferMs += up * w.rowBytes / bytesPerMs;
    c.recomputeMs += rc * (d.recomputeMsPerToken + w.xBytes / bytesPerMs);
  }
  c.totalMs = c.computeMs + c.transferMs + c.recomputeMs;
  return c;
}

/**
 * The plan minimising the modelled total time: beta in {0, 0.1, ..., 1}
 * and p2 on a grid from p1 to the last step. `recompute: "off"` keeps
 * beta = 0; `"on"` forces phase III whenever the budget forces a spill
 * (so tests can reach it): beta = 0.5 from a third of the way from p1 to
 * the end, whatever the model says.
 */
export function solvePlan(
  d: DeviceProfile,
  w: Workload,
  recompute: RecomputeMode = "auto",
): { plan: TierPlan; cost: PlanCost; candidates: number } {
  const { p1, alpha } = forcedSpill(w);
  const none: TierPlan = { p1, p2: Infinity, alpha, beta: 0 };
  if (!Number.isFinite(p1) || recompute === "off") {
    return { plan: none, cost: planCost(d, w, none), candidates: 1 };
  }
  const last = w.genLen - 1;
  if (recompute === "on") {
    const plan = {
      p1,
      p2: p1 + Math.max(1, Math.floor((last - p1) / 3)),
      alpha,
      beta: 0.5,
    };
    return { plan, cost: planCost(d, w, plan), candidates: 1 };
  }
  let best = { plan: none, cost: planCost(d, w, none) };
  let candidates = 1;
  const p2s = new Set<number>();
  for (let i = 0; i <= 10; i++) {
    p2s.add(Math.round(p1 + (last - p1) * i / 10));
  }
  for (let bi = 1; bi <= 10; bi++) {
    for (const p2 of p2s) {
      const plan = { p1, p2, alpha, beta: bi / 10 };
      const cost = planCost(d, w, plan);
      candidates++;
      if (cost.totalMs < best.cost.totalMs) best = { plan, cost };
    }
  }
  return { ...best, candidates };
}
