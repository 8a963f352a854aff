/**
 * WGSL sources, one file per op in `shaders/` (grouped as `model/`, `kv/`,
 * `sparse/`, `eval/`), assembled from:
 * - the shared step table (`common.wgsl`);
 * - for ops that see the KV policy, the policy prelude
 *   (`sparse/policy.wgsl`) with the `POLICY_*` ids generated from
 *   {@linkcode POLICY_ID}, the one table both sides read;
 * - for ops that read or write K/V, the pool access prelude
 *   (`kv/kv_access.wgsl`) generated for the pool's part count;
 * - for ops that read weights, the access helper of the weight's type
 *   (`model/weight_<type>.wgsl`).
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
import weightBlocks from "../../shaders/model/weight_blocks.wgsl" with {
  type: "text",
};
import weightQ4_0 from "../../shaders/model/weight_q4_0.wgsl" with {
  type: "text",
};
import weightQ4_1 from "../../shaders/model/weight_q4_1.wgsl" with {
  type: "text",
};
import weightQ5_0 from "../../shaders/model/weight_q5_0.wgsl" with {
  type: "text",
};
import weightQ5_1 from "../../shaders/model/weight_q5_1.wgsl" with {
  type: "text",
};
import weightQ4_K from "../../shaders/model/weight_q4_k.wgsl" with {
  type: "text",
};
import weightQ5_K from "../../shaders/model/weight_q5_k.wgsl" with {
  type: "text",
};
import weightQ6_K from "../../shaders/model/weight_q6_k.wgsl" with {
  type: "text",
};
import matmul from "../../shaders/model/matmul.wgsl" with { type: "text" };
import embed from "../../shaders/model/embed.wgsl" with { type: "text" };
import rmsnorm from "../../shaders/model/rmsnorm.wgsl" with { type: "text" };
import rope from "../../shaders/model/rope.wgsl" with { type: "text" };
import attention from "../../shaders/model/attention.wgsl" with {
  type: "text",
};
import actMul from "../../shaders/model/act_mul.wgsl" with { type: "text" };
import addBias from "../../shaders/model/add_bias.wgsl" with { type: "text" };
import headNorm from "../../shaders/model/head_norm.wgsl" with {
  type: "text",
};
import softcap from "../../shaders/model/softcap.wgsl" with { type: "text" };
import argmax from "../../shaders/model/argmax.wgsl" with { type: "text" };
import kvAccess from "../../shaders/kv/kv_access.wgsl" with { type: "text" };
import kvStore from "../../shaders/kv/kv_store.wgsl" with { type: "text" };
import selMask from "../../shaders/kv/sel_mask.wgsl" with { type: "text" };
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
import { POLICY_ID } from "../sparse/spec.ts";

/**
 * How a weight matrix is stored on the GPU: f32, f16 pairs, Q8_0 split
 * into quants and scales, or ggml's raw blocks (the rest).
 */
export type GpuWeightType =
  | "f32"
  | "f16"
  | "q8_0"
  | "q4_0"
  | "q4_1"
  | "q5_0"
  | "q5_1"
  | "q4_k"
  | "q5_k"
  | "q6_k";

/** `w_get32` as eight `w_get4`, for types without a block-wise reader. */
const W32_FALLBACK = `
fn w_get32(r: u32, k: u32, cols: u32) -> array<vec4f, 8> {
  var o: array<vec4f, 8>;
  for (var j = 0u; j < 8u; j++) { o[j] = w_get4(r, k + 4u * j, cols); }
  return o;
}
`;

/** Types whose `w_get32` decodes a block's scales once per 32 weights. */
export const W32_TYPES: ReadonlySet<GpuWeightType> = new Set([
  "q4_0",
  "q4_k",
  "q5_k",
  "q6_k",
]);

/** The weight access of each type; raw ggml blocks share weight_blocks.wgsl. */
const WEIGHT: Record<GpuWeightType, string> = {
  f32: weightF32,
  f16: weightF16,
  q8_0: weightQ8_0,
  q4_0: weightBlocks + weightQ4_0,
  q4_1: weightBlocks + weightQ4_1,
  q5_0: weightBlocks + weightQ5_0,
  q5_1: weightBlocks + weightQ5_1,
  q4_k: weightBlocks + weightQ4_K,
  q5_k: weightBlocks + weightQ5_K,
  q6_k: weightBlocks + weightQ6_K,
};

const OPS = {
  matmul,
  embed,
  rmsnorm,
  rope,
  attention,
  act_mul: actMul,
  add_bias: addBias,
  head_norm: headNorm,
  softcap,
  argmax,
  kv_store: kvStore,
  sel_mask: selMask,
  select_swa: selectSwa,
  score_swa: scoreSwa,
  seed_swa: seedSwa,
  select_h2o: selectH2o,
  accum_h2o: accumH2o,
  nll,
};

/** An op name. */
export type OpName = keyof typeof OPS;

/** Ops that see the KV policy (shaders/sparse/policy.wgsl). */
const POLICY_OPS: ReadonlySet<OpName> = new Set<OpName>([
  "attention",
  "select_swa",
  "score_swa",
  "seed_swa",
  "select_h2o",
  "accum_h2o",
]);

/** Ops that read (attention) or write (kv_store) the KV pool. */
const KV_OPS: Partial<Record<OpName, "read" | "read_write">> = {
  attention: "read",
  kv_store: "read_write",
};

/** The `POLICY_*` constants of policy.wgsl, from {@linkcode POLICY_ID}. */
export function policyConstants(): string {
  return Object.entries(POLICY_ID)
    .map(([name, id]) => `const POLICY_${name.toUpperCase()}: u32 = ${id}u;`)
    .join("\n");
}

/**
 * kv_access.wgsl for a pool of `parts` buffers, bound at 16, 17, ...,
 * read-only or writable (then with `kv_set(row, w, value)`).
 */
export function kvAccessSource(
  parts: number,
  access: "read" | "read_write",
): string {
  if (!Number.isInteger(parts) || parts < 1 || parts > 8) {
    throw new RangeError(`a KV pool has 1 to 8 parts, got ${parts}`);
  }
  const decl = Array.from(
    { length: parts },
    (_, i) =>
      `@group(0) @binding(${
        16 + i
      }) var<storage, ${access}> kv_pool${i}: array<u32>; // (rows_per_part, row_words)`,
  ).join("\n");
  const cases = (body: (i: number) => string) =>
    parts === 1 ? body(0) : `switch part {\n${
      Array.from(
        { length: parts },
        (_, i) =>
          `    ${i === parts - 1 ? "default" : `case ${i}u`}: { ${body(i)} }`,
      ).join("\n")
    }\n  }`;
  let src = kvAccess
    .replace("//KV_PART_DECLS", decl)
    .replace("//KV_PART_READ", cases((i) => `return kv_pool${i}[i];`));
  if (access === "read_write") {
    src += `
// Sets word w of pool row \`row\`.
fn kv_set(row: u32, w: u32, value: u32) {
  let part = row / kv.rows_per_part;
  let i = (row - part * kv.rows_per_part) * kv.row_words + w;
  ${cases((i) => `kv_pool${i}[i] = value;`)}
}
`;
  }
  return src;
}

/** Options for {@linkcode shaderSource}. */
export interface ShaderVariant {
  /** Parts of the KV pool (ops that read or write K/V), default 1. */
  kvParts?: number;
}

/** The full source of `op` (for a weight type where the op reads weights) and its cache name. */
export function shaderSource(
  op: OpName,
  weight?: GpuWeightType,
  variant: ShaderVariant = {},
): { name: string; code: string } {
  const parts = [common];
  let name: string = op;
  if (POLICY_OPS.has(op)) parts.push(policyConstants(), policy);
  if (op === "select_swa" || op === "select_h2o") parts.push(topk);
  const kv = KV_OPS[op];
  if (kv) {
    const n = variant.kvParts ?? 1;
    parts.push(kvAccessSource(n, kv));
    name += `_kv${n}`;
  }
  if (weight) {
    parts.push(WEIGHT[weight]);
    // Types without a block-wise reader get eight w_get4 (matmul's W32
    // path is off for them, but the function must exist).
    if (!WEIGHT[weight].includes("fn w_get32(")) parts.push(W32_FALLBACK);
    name += `_${weight}`;
  }
  parts.push(OPS[op]);
  return { name, code: parts.join("\n") };
}
