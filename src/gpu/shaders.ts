/**
 * WGSL sources, one file per op in `shaders/`, assembled with the shared
 * step table (`common.wgsl`) and, for ops that read weights, the weight
 * access helper of the weight's type (`weight_<type>.wgsl`).
 *
 * @module
 */
import common from "../../shaders/common.wgsl" with { type: "text" };
import weightF32 from "../../shaders/weight_f32.wgsl" with { type: "text" };
import weightF16 from "../../shaders/weight_f16.wgsl" with { type: "text" };
import weightQ8_0 from "../../shaders/weight_q8_0.wgsl" with { type: "text" };
import matmul from "../../shaders/matmul.wgsl" with { type: "text" };
import embed from "../../shaders/embed.wgsl" with { type: "text" };
import rmsnorm from "../../shaders/rmsnorm.wgsl" with { type: "text" };
import rope from "../../shaders/rope.wgsl" with { type: "text" };
import kvStore from "../../shaders/kv_store.wgsl" with { type: "text" };
import attention from "../../shaders/attention.wgsl" with { type: "text" };
import siluMul from "../../shaders/silu_mul.wgsl" with { type: "text" };
import argmax from "../../shaders/argmax.wgsl" with { type: "text" };

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
};

/** An op name. */
export type OpName = keyof typeof OPS;

/** The full source of `op` (for a weight type where the op reads weights). */
export function shaderSource(op: OpName, weight?: GpuWeightType): {
  name: string;
  code: string;
} {
  const parts = [common];
  if (weight) parts.push(WEIGHT[weight]);
  parts.push(OPS[op]);
  return {
    name: weight ? `${op}_${weight}` : op,
    code: parts.join("\n"),
  };
}
