/**
 * The plans (dispatch lists) a model has built, by key, with the uniform
 * buffers their builders made: every dispatch builder in `gpu/ops.ts`
 * creates its own uniform and nothing else holds it, so a plan that is
 * dropped (e.g. when the SWA ring is reallocated) must free them, and so
 * must dispatches built for one use (scoring's NLL, SWA seeding).
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/ops.ts";

/** Plans by key; each owns the uniform buffers made while building it. */
export class PlanCache {
  private readonly plans = new Map<
    string,
    { plan: Dispatch[]; uniforms: GPUBuffer[] }
  >();

  /** The plan under `key`, built (once) by `build`. */
  get(gpu: Gpu, key: string, build: () => Dispatch[]): Dispatch[] {
    let p = this.plans.get(key);
    if (!p) {
      const { value, uniforms } = gpu.collectUniforms(build);
      p = { plan: value, uniforms };
      this.plans.set(key, p);
    }
    return p.plan;
  }

  /** Drops the plans whose key starts with `prefix` (all by default), freeing their uniforms. */
  drop(prefix = ""): void {
    for (const [key, p] of [...this.plans]) {
      if (!key.startsWith(prefix)) continue;
      for (const b of p.uniforms) b.destroy();
      this.plans.delete(key);
    }
  }

  /** Plans held. */
  get size(): number {
    return this.plans.size;
  }

  /** Uniform buffers held by the plans. */
  get uniforms(): number {
    let n = 0;
    for (const p of this.plans.values()) n += p.uniforms.length;
    return n;
  }
}

/**
 * Builds dispatches for one use, runs `use` with them, then frees their
 * uniforms (after `use` settles: it must wait for the GPU work it submits
 * or submit none after returning).
 */
export async function withTransientDispatches<D, T>(
  gpu: Gpu,
  build: () => D,
  use: (dispatches: D) => Promise<T>,
): Promise<T> {
  const { value, uniforms } = gpu.collectUniforms(build);
  try {
    return await use(value);
  } finally {
    for (const b of uniforms) b.destroy();
  }
}
