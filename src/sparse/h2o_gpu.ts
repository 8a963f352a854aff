/**
 * H2O (Heavy-Hitter Oracle) on the GPU, per layer (spec.ts has the rules):
 *
 *     acc   A     (slots, heads, ctx) f32  every weight head h gave p
 *     kept        (slots, heads, ctx) u32  1 kept, 0 evicted for good
 *     sel, sel_n  (decode tokens, heads, ctx), (decode tokens, heads)
 *
 * The set is chosen inside the layer (select_h2o before attention, which
 * evicts), and A grows after attention on every step (prefill rows too).
 *
 * @module
 */
import type { BufferSet } from "../gpu/buffers.ts";
import {
  bind,
  type Dispatch,
  type OpContext,
  pipe,
  u32s,
} from "../gpu/dispatch.ts";
import type { Gpu } from "../gpu/device.ts";
import {
  type KvPolicy,
  PolicyDefaults,
  type PolicyDims,
  policyUniform,
} from "./policy.ts";
import type { PolicySpec } from "./spec.ts";

/** H2O's buffers and dispatches. */
export class H2oPolicy extends PolicyDefaults implements KvPolicy {
  readonly timing = "in-layer";
  private readonly uniform: GPUBuffer;
  private readonly acc: GPUBuffer[];
  private readonly kept: GPUBuffer[];
  private readonly sel: GPUBuffer;
  private readonly selN: GPUBuffer;

  constructor(
    _gpu: Gpu,
    readonly set: BufferSet,
    readonly spec: Readonly<Required<PolicySpec>>,
    private readonly dims: PolicyDims,
  ) {
    super();
    const { nLayers, slots, nHeads, ctx } = dims;
    this.uniform = policyUniform(set, spec, false);
    const per = (name: string, bytes: number) =>
      Array.from(
        { length: nLayers },
        (_, l) => set.buffer(`${name}.${l}`, bytes),
      );
    this.acc = per("acc", slots * nHeads * ctx * 4);
    this.kept = per("kept", slots * nHeads * ctx * 4);
    this.sel = set.buffer("sel", slots * nHeads * ctx * 4);
    this.selN = set.buffer("sel_n", slots * nHeads * 4);
  }

  bindings(): Record<number, GPUBuffer> {
    return { 10: this.uniform, 11: this.sel, 12: this.selN };
  }

  override beforeAttention(c: OpContext, l: number): Dispatch[] {
    const pipeline = pipe(c.gpu, "select_h2o", undefined, { WG: 256 });
    return [{
      label: `select_h2o.${l}`,
      pipeline,
      bindGroup: bind(c.gpu, "select_h2o", pipeline, {
        0: c.set.uniform("select_h2o", u32s(this.dims.ctx, this.dims.nHeads)),
        1: c.sb.step,
        2: this.acc[l],
        3: this.kept[l],
        ...this.bindings(),
      }),
      grid: (n) => [n, this.dims.nHeads, 1],
    }];
  }

  override afterAttention(c: OpContext, l: number, att: GPUBuffer): Dispatch[] {
    const pipeline = pipe(c.gpu, "accum_h2o", undefined, { WG: 64 });
    return [{
      label: `accum_h2o.${l}`,
      pipeline,
      bindGroup: bind(c.gpu, "accum_h2o", pipeline, {
        0: c.set.uniform("accum_h2o", u32s(this.dims.ctx, this.dims.nHeads)),
        1: c.sb.step,
        2: att,
        3: this.acc[l],
        4: this.kept[l],
        ...this.bindings(),
      }),
      grid: () => [this.dims.nHeads, 1, 1],
    }];
  }
}
