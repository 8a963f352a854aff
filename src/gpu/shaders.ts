/**
 * WGSL sources, one file per op in `shaders/`, assembled with the shared
 * step table (`common.wgsl`) and, for ops that read weights, the weight
 * access helper of the weight's type (`weight_<type>.wgsl`).
 *
 * @module
 */
import common from "../../shaders/common.wgsl" with { type: "text" };
import weightF32 from "../../shaders/model/weight_f32.wgsl" with {
  type: "text",
};
import weightF16 from "../../shaders/model/weight_f16.wgsl" with {
  type: "text",
};
import weightQ8_0 from "../../shaders/model/weight_q8_0.wgsl" with {
  type: "text",
};
import matmul from "../../shaders/model/matmul.wgsl" with { type: "text" };
import embed from "../../shaders/model/embed.wgsl" with { type: "text" };
import rmsnorm from "../../shaders/model/rmsnorm.wgsl" with { type: "text" };
import rope from "../../shaders/model/rope.wgsl" with { type: "text" };
import kvStore from "../../shaders/kv/kv_store.wgsl" with { type: "text" };
import attention from "../../shaders/model/attention.wgsl" with {
  type: "text",
};
import siluMul from "../../shaders/model/silu_mul.wgsl" with { type: "text" };
import argmax from "../../shaders/model/argmax.wgsl" with { type: "text" };
import policy from "../../shaders/sparse/policy.wgsl" with { type: "text" };
import topk from "../../shaders/sparse/topk.wgsl" with { type: "text" };
import selectSwa from "../../shaders/sparse/select_swa.wgsl" with {
  type: "text",
};
import scoreSwa from "../../shaders/sparse/score_swa.wgsl" with {
  type: "text",
};
import seedSwa from "../../shaders/sparse/seed_swa.wgsl" with { type: "text" };
import selectH2o from "../../shaders/sparse/select_h2o.wgsl" with {
  type: "text",
};
import accumH2o from "../../shaders/sparse/accum_h2o.wgsl" with {
  type: "text",
};
import nll from "../../shaders/eval/nll.wgsl" with { type: "text" };

/** How a weight matrix is stored on the GPU. */
export type GpuWeightType = "f32" | "f16" | "q8_0";

const WEIGHT: Record<GpuWeightType, string> = {
  f32: weightF32,
  f16: weightF16,
  q8_0: weightQ8_0,
};

const OPS = {
  matmul,
  embed,
  rmsnorm,
  rope,
  kv_store: kvStore,
  attention,
  silu_mul: siluMul,
  argmax,
  select_swa: selectSwa,
  score_swa: scoreSwa,
  seed_swa: seedSwa,
  select_h2o: selectH2o,
  accum_h2o: accumH2o,
  nll,
};

/** Ops that see the KV policy (shaders/sparse/policy.wgsl). */
const POLICY_OPS: ReadonlySet<OpName> = new Set<OpName>([
  "attention",
  "select_swa",
  "score_swa",
  "seed_swa",
  "select_h2o",
  "accum_h2o",
]);

/** An op name. */
export type OpName = keyof typeof OPS;

/** The full source of `op` (for a weight type where the op reads weights). */
export function shaderSource(op: OpName, weight?: GpuWeightType): {
  name: string;
  code: string;
} {
  const parts = [common];
  if (POLICY_OPS.has(op)) parts.push(policy);
  if (op === "select_swa" || op === "select_h2o") parts.push(topk);
  if (weight) parts.push(WEIGHT[weight]);
  parts.push(OPS[op]);
  return {
    name: weight ? `${op}_${weight}` : op,
    code: parts.join("\n"),
  };
}
