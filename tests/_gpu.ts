/**
 * GPU test helpers: opens the device once (skipping GPU tests with a clear
 * message where WebGPU has no adapter), runs a plan for a step, reads back.
 *
 * @module
 */
import { type Gpu, openGpu } from "../src/gpu/device.ts";
import { loadModel, type Model } from "../src/api/model.ts";
import { BufferSet } from "../src/gpu/buffers.ts";
import {
  type Dispatch,
  encodePlan,
  type OpContext,
} from "../src/gpu/dispatch.ts";
import { stepTableBytes, type StepToken, writeStep } from "../src/gpu/step.ts";

export { rng } from "./_shared.ts";

let gpuPromise: Promise<Gpu | null> | null = null;

/** The shared test GPU, or null (with a logged reason) when there is none. */
export function testGpu(): Promise<Gpu | null> {
  gpuPromise ??= openGpu().catch((e) => {
    console.warn(`skipping GPU tests: ${(e as Error).message}`);
    return null;
  });
  return gpuPromise;
}

/** Whether a WebGPU adapter exists (checked once, at module load). */
export const HAS_GPU: boolean = await (async () => {
  try {
    return !!(await navigator.gpu?.requestAdapter());
  } catch {
    return false;
  }
})();
if (!HAS_GPU) console.warn("skipping GPU tests: no WebGPU adapter");

/** Policy bindings (10-12 of shaders/sparse/policy.wgsl) for dense attention. */
export function densePolicy(c: OpContext): Record<number, GPUBuffer> {
  return {
    10: c.set.uniform("policy", new Uint32Array(4)),
    11: c.set.buffer("sel", 16),
    12: c.set.buffer("sel_n", 16),
  };
}

/** A dispatch context (its own buffer set and step table for up to `maxTokens` tokens). */
export function opContext(gpu: Gpu, maxTokens = 256): OpContext {
  const set = new BufferSet(gpu, "test");
  return {
    gpu,
    set,
    sb: {
      step: set.buffer("step", stepTableBytes(maxTokens)),
      outRows: set.buffer("outRows", maxTokens * 4),
    },
  };
}

/** Runs `plan` for one step and waits for it. */
export async function runPlan(
  c: OpContext,
  plan: Dispatch[],
  tokens: StepToken[],
  outRows: number[] = [],
): Promise<void> {
  const { gpu, sb } = c;
  writeStep(gpu, sb, tokens, outRows, { decode: false });
  const enc = gpu.device.createCommandEncoder();
  encodePlan(enc, plan, tokens.length, outRows.length);
  gpu.device.queue.submit([enc.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
  gpu.check();
}

/** Reads a buffer back as f32. */
export async function readF32(
  gpu: Gpu,
  b: GPUBuffer,
  n: number,
): Promise<Float32Array> {
  return new Float32Array(await gpu.read(b, n * 4));
}

/** Runs `fn` with the embedded model loaded on the shared test GPU, then disposes it. */
export async function withModel(
  opts: Parameters<typeof loadModel>[1],
  fn: (m: Model) => Promise<void>,
): Promise<void> {
  const m = await loadModel(undefined, { gpu: (await testGpu())!, ...opts });
  try {
    await fn(m);
  } finally {
    m.dispose();
  }
}
