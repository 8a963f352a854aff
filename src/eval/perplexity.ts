/**
 * Perplexity and top-1 agreement of KV policies by exact decode simulation
 * (ALISA.md section 6): every window is decoded position by position with
 * teacher forcing under the policy, so the numbers are what generation
 * would see, batched across windows (one KV slot each).
 *
 * @module
 */
import type { Model } from "../api/model.ts";
import type { LlamaModel } from "../model/llama.ts";
import { checkSparsity, type PolicyName } from "../sparse/spec.ts";

/** One row of an evaluation. */
export interface EvalResult {
  policy: PolicyName;
  sparsity: number;
  /** exp(mean NLL) over all scored tokens. */
  ppl: number;
  /** Fraction of positions whose argmax equals dense attention's. */
  top1_agree: number;
  /** Tokens scored. */
  tokens: number;
}

/** Options for {@linkcode evaluatePolicies}. */
export interface EvalOptions {
  minBudget?: number;
  /** Called as each (policy, sparsity) finishes. */
  onResult?: (r: EvalResult) => void;
}

async function scoreAll(engine: LlamaModel, windows: number[][]) {
  const B = engine.kv.slots;
  const nll: Float32Array[] = [], top: Uint32Array[] = [];
  for (let i = 0; i < windows.length; i += B) {
    const r = await engine.scoreWindows(windows.slice(i, i + B));
    nll.push(...r.nll);
    top.push(...r.top);
  }
  return { nll, top };
}

/**
 * Scores `windows` (token ids, each from BOS) under every policy at every
 * sparsity; dense is scored once (it has no sparsity) and reported at
 * each. The model's maxBatch sets how many windows decode at once. Holds
 * the model's busy lock throughout (a concurrent `generate` throws).
 */
export async function evaluatePolicies(
  model: Model,
  windows: number[][],
  policies: PolicyName[],
  sparsities: number[],
  o: EvalOptions = {},
): Promise<EvalResult[]> {
  sparsities.forEach(checkSparsity);
  if (windows.length === 0) {
    throw new RangeError("nothing to evaluate: no windows");
  }
  return await model.exclusive((engine) =>
    evaluate(engine, windows, policies, sparsities, o)
  );
}

async function evaluate(
  engine: LlamaModel,
  windows: number[][],
  policies: PolicyName[],
  sparsities: number[],
  o: EvalOptions,
): Promise<EvalResult[]> {
  const before = engine.policy;
  const results: EvalResult[] = [];
  try {
    engine.setPolicy({ name: "dense", sparsity: 0, minBudget: o.minBudget });
    const dense = await scoreAll(engine, windows);
    const summarize = (
      policy: PolicyName,
      sparsity: number,
      r: typeof dense,
    ): EvalResult => {
      let sum = 0, n = 0, agree = 0;
      r.nll.forEach((row, i) => {
        for (let t = 0; t < row.length; t++) {
          sum += row[t];
          n++;
          if (r.top[i][t] === dense.top[i][t]) agree++;
        }
      });
      return {
        policy,
        sparsity,
        ppl: Math.exp(sum / n),
        top1_agree: agree / n,
        tokens: n,
      };
    };
    for (const policy of policies) {
      for (const sparsity of sparsities) {
        let r = dense;
        if (policy !== "dense") {
          engine.setPolicy({ name: policy, sparsity, minBudget: o.minBudget });
          r = await scoreAll(engine, windows);
        }
        const res = summarize(policy, sparsity, r);
        results.push(res);
        o.onResult?.(res);
      }
    }
    return results;
  } finally {
    engine.setPolicy(before);
  }
}
