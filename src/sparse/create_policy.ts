/**
 * Creates the GPU side of a KV policy from its spec.
 *
 * @module
 */
import type { BufferSet } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { H2oPolicy } from "./h2o_gpu.ts";
import { type KvPolicy, type PolicyDims, StaticPolicy } from "./policy.ts";
import type { PolicySpec } from "./spec.ts";
import { SwaPolicy } from "./swa_gpu.ts";

/** The GPU policy for `spec`, owning a child set of `parent`. */
export function createPolicy(
  gpu: Gpu,
  parent: BufferSet,
  spec: Required<PolicySpec>,
  dims: PolicyDims,
  /** Tests: attention records the static policies' sets. */
  record = false,
): KvPolicy {
  const set = parent.child(`policy.${spec.name}`);
  switch (spec.name) {
    case "swa":
      return new SwaPolicy(gpu, set, spec, dims);
    case "h2o":
      return new H2oPolicy(gpu, set, spec, dims);
    default:
      return new StaticPolicy(set, spec, dims, record);
  }
}
