/**
 * Dispatches and plans. A {@linkcode Dispatch} is a pipeline, a bind group
 * and a grid that depends only on the step's token counts, so a model
 * builds a plan (a list of dispatches) once and a step only writes the
 * step table and encodes the plan. Builders of single dispatches live
 * beside the shaders they run (`src/model/ops.ts`, `src/kv/ops.ts`,
 * `src/sparse/*_gpu.ts`, `src/eval/ops.ts`); this file has what they share.
 *
 * @module
 */
import type { BufferSet } from "./buffers.ts";
import type { Gpu } from "./device.ts";
import {
  type GpuWeightType,
  type OpName,
  shaderSource,
  type ShaderVariant,
} from "./shaders.ts";
import type { StepBuffers } from "./step.ts";

/** One compute dispatch of a plan. */
export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** Workgroups for a step of `nTokens` tokens with `nOut` output rows. */
  grid(nTokens: number, nOut: number): [number, number, number];
}

/** What every dispatch builder needs: the GPU, the set that owns the dispatch's uniforms, the step table. */
export interface OpContext {
  gpu: Gpu;
  /** Owns the uniforms the builder creates (a plan's set: freed with the plan). */
  set: BufferSet;
  sb: StepBuffers;
}

/** Most workgroups along one grid dimension (WebGPU's default limit). */
export const MAX_WG_PER_DIM = 65535;

/** The pipeline of `op` (for a weight type) with `overrides`, cached by the GPU. */
export function pipe(
  gpu: Gpu,
  op: OpName,
  weight: GpuWeightType | undefined,
  overrides: Record<string, number>,
  variant?: ShaderVariant,
): GPUComputePipeline {
  const { name, code } = shaderSource(op, weight, variant);
  return gpu.pipeline(name, code, overrides);
}

/** A bind group of storage/uniform buffers by binding number (undefined entries skipped). */
export function bind(
  gpu: Gpu,
  label: string,
  pipeline: GPUComputePipeline,
  entries: Record<number, GPUBuffer | undefined>,
): GPUBindGroup {
  return gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: Object.entries(entries)
      .filter(([, b]) => b !== undefined)
      .map(([binding, buffer]) => ({
        binding: Number(binding),
        resource: { buffer: buffer! },
      })),
  });
}

/** u32 values padded to a multiple of 4 (a uniform's 16-byte rows). */
export function u32s(...v: number[]): Uint32Array {
  const a = new Uint32Array(Math.max(4, Math.ceil(v.length / 4) * 4));
  a.set(v);
  return a;
}

/** A labelled copy of a dispatch. */
export function withLabel(label: string, d: Dispatch): Dispatch {
  return { ...d, label };
}

/** Encodes `plan` for a step in one compute pass. */
export function encodePlan(
  enc: GPUCommandEncoder,
  plan: Dispatch[],
  nTokens: number,
  nOut: number,
): void {
  const pass = enc.beginComputePass();
  for (const d of plan) {
    const [x, y, z] = d.grid(nTokens, nOut);
    if (x === 0 || y === 0) continue;
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(x, y, z);
  }
  pass.end();
}

/**
 * Runs `plan` once with a GPU timestamp around every dispatch and returns
 * each dispatch's GPU time in milliseconds (needs `timestamp-query`).
 */
export async function profilePlan(
  gpu: Gpu,
  plan: Dispatch[],
  nTokens: number,
  nOut: number,
): Promise<{ label: string; ms: number }[]> {
  if (!gpu.hasTimestamps) {
    throw new TypeError("This GPU has no timestamp-query feature");
  }
  const n = plan.length;
  const qs = gpu.device.createQuerySet({ type: "timestamp", count: 2 * n });
  const resolve = gpu.device.createBuffer({
    size: 16 * n,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  try {
    const enc = gpu.device.createCommandEncoder();
    plan.forEach((d, i) => {
      const pass = enc.beginComputePass({
        timestampWrites: {
          querySet: qs,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
      const [x, y, z] = d.grid(nTokens, nOut);
      if (x && y) {
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, d.bindGroup);
        pass.dispatchWorkgroups(x, y, z);
      }
      pass.end();
    });
    enc.resolveQuerySet(qs, 0, 2 * n, resolve, 0);
    gpu.device.queue.submit([enc.finish()]);
    const t = new BigUint64Array(await gpu.read(resolve, 16 * n));
    return plan.map((d, i) => ({
      label: d.label,
      ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6,
    }));
  } finally {
    qs.destroy();
    resolve.destroy();
  }
}
