/**
 * KV selection policies: names, options and the exact rules, shared by
 * the GPU kernels (`shaders/sparse/select_*.wgsl`, `shaders/model/attention.wgsl`) and
 * the plain TypeScript reference (`reference.ts`). ALISA.md section 2.
 *
 * A decode step for the query at position q caches q + 1 tokens:
 * `n = q + 1` (the current token included). Every policy attends a set
 * I of positions in [0, n), listed in ascending order (so that at
 * sparsity 0 every policy sums exactly like dense attention).
 *
 * Budget, the same for every policy: with caching ratio r = 1 - sparsity,
 *
 *     k = max(1, floor(n * r / 2 + 0.5), ceil(minBudget / 2))
 *     b = min(n, 2k)                                  (tokens attended)
 *
 * (`floor(x + 0.5)`: rounding half up, identical in WGSL and TypeScript;
 * all of it computed in f32 on the GPU: r and n * r / 2 are f32 values.)
 *
 * - dense: all of [0, n).
 * - local: the last b positions [n - b, n).
 * - sinks (StreamingLLM): the first s = min(4, b - 1) positions plus the
 *   last b - s positions (so the current token is always attended).
 * - strided (Sparse Transformer): all of [0, n) when 2k >= n; otherwise
 *   the last k positions [n - k, n) plus, of the older m = n - k
 *   positions, the k evenly spaced ones floor(i * m / k), i = 0 .. k-1
 *   (so strided uses its whole budget b = 2k, like the others).
 * - swa (ALISA): the last k positions [n - k, n) plus the k positions of
 *   [0, n - k) with the highest score S (all of them when n - k <= k);
 *   ties go to the smaller position, and a score <= 0 (the running sum
 *   can cancel to -0 or -1e-9) ranks as 0. One set per layer and sequence,
 *   shared by all heads. S[p] = the attention weight position p received
 *   from the queries of the last k steps, summed over the layer's heads:
 *   after the step of query q, its row w_q[p] = sum over heads h = 0, 1,
 *   ... (in that order, f32) of the weight head h gave p (0 where p was
 *   not attended), and S is updated as a running window sum:
 *
 *       S[p] = S[p] + w_q[p]                  (f32, for every p <= q)
 *       if k(n + 1) == k(n) and q - k(n) >= 0:
 *           S[p] = S[p] - w_{q - k(n)}[p]     (the row leaving the window)
 *
 *   with k(n) the k of the step that just ran (n = q + 1) and k(n + 1)
 *   the next step's (it grows by 0 or 1 per step). Prefill is dense and
 *   seeds S with the rows of its last k(P + 1) queries (P prompt tokens),
 *   added in query order.
 * - h2o (Heavy-Hitter Oracle): per head, an accumulated score A_h[p] =
 *   every weight head h ever gave p (f32, added step by step), and a kept
 *   set (initially every position). The last k positions [n - k, n) are
 *   attended; of the older kept positions, the k with the highest A_h
 *   (ties: smaller position) are attended too, and the other older kept
 *   positions are evicted for good (never attended again).
 *
 * minBudget (default 0): the k floor above; windows (local and the like)
 * longer than the context are an error at the API.
 *
 * @module
 */

/** The policy names, in the order tables and plots list them. */
export const POLICY_NAMES = [
  "dense",
  "local",
  "strided",
  "sinks",
  "h2o",
  "swa",
] as const;

/** One of {@linkcode POLICY_NAMES}. */
export type PolicyName = typeof POLICY_NAMES[number];

/** A policy at a sparsity. */
export interface PolicySpec {
  name: PolicyName;
  /** 1 - caching ratio, in [0, 1). */
  sparsity: number;
  /** Smallest k is ceil(minBudget / 2) (default 0). */
  minBudget?: number;
}

/** Numeric id of each policy in the shaders' Params. */
export const POLICY_ID: Record<PolicyName, number> = {
  dense: 0,
  local: 1,
  strided: 2,
  sinks: 3,
  h2o: 4,
  swa: 5,
};

/** Throws a RangeError unless `s` is in [0, 1). */
export function checkSparsity(s: number): void {
  if (!(typeof s === "number" && s >= 0 && s < 1)) {
    throw new RangeError(`sparsity must be in [0, 1), got ${s}`);
  }
}

/**
 * Checks a policy spec, the one place the rules live: TypeError for an
 * unknown name, RangeError for a sparsity outside [0, 1) or a minBudget
 * that is not an integer in [0, ctx] (any integer >= 0 without `ctx`).
 * Returns it with `minBudget` filled in.
 */
export function checkPolicy(
  spec: PolicySpec,
  ctx = Number.MAX_SAFE_INTEGER,
): Required<PolicySpec> {
  if (!(POLICY_NAMES as readonly string[]).includes(spec?.name)) {
    throw new TypeError(
      `unknown KV policy ${JSON.stringify(spec?.name)} (known: ${
        POLICY_NAMES.join(", ")
      })`,
    );
  }
  checkSparsity(spec.sparsity);
  const minBudget = spec.minBudget ?? 0;
  if (!Number.isSafeInteger(minBudget) || minBudget < 0 || minBudget > ctx) {
    throw new RangeError(
      `minBudget must be an integer in [0, ${
        ctx === Number.MAX_SAFE_INTEGER ? "inf)" : `${ctx}]`
      }, got ${spec.minBudget}`,
    );
  }
  return { name: spec.name, sparsity: spec.sparsity, minBudget };
}

/** Parses "dense,swa,..." into names; TypeError naming an unknown one. */
export function parsePolicies(list: string): PolicyName[] {
  const names = list.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (names.length === 0) throw new TypeError("no policy named");
  for (const n of names) {
    if (!(POLICY_NAMES as readonly string[]).includes(n)) {
      throw new TypeError(
        `unknown policy ${JSON.stringify(n)} (known: ${
          POLICY_NAMES.join(", ")
        })`,
      );
    }
  }
  return names as PolicyName[];
}

/** k for a step with `n` cached tokens (see the module doc), in f32 as the GPU computes it. */
export function budgetK(n: number, sparsity: number, minBudget = 0): number {
  const r = Math.fround(1 - sparsity);
  const half = Math.fround(Math.fround(Math.fround(n) * r) / 2);
  const k = Math.max(
    1,
    Math.floor(Math.fround(half + 0.5)),
    Math.ceil(minBudget / 2),
  );
  return k;
}
