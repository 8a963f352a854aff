/**
 * The GPU side of the KV policies behind one interface: the model's layer
 * loop asks a {@linkcode KvPolicy} for its bindings and its dispatches
 * before and after attention and never names a policy. Each policy owns
 * its state buffers and its uniform (a {@linkcode BufferSet}).
 *
 * - dense, local, strided, sinks ({@linkcode StaticPolicy}): arithmetic in
 *   n inside `shaders/sparse/policy.wgsl`; no state. Their sets are known
 *   on the CPU too (`selectStatic` in reference.ts).
 * - swa ({@linkcode SwaPolicy}, swa_gpu.ts): score rows and the running
 *   score S per layer; the set is chosen one step ahead.
 * - h2o ({@linkcode H2oPolicy}, h2o_gpu.ts): per-head accumulated scores
 *   and kept flags per layer; the set is chosen inside the layer, with
 *   permanent eviction.
 *
 * @module
 */
import type { BufferSet } from "../gpu/buffers.ts";
import type { Dispatch, OpContext } from "../gpu/dispatch.ts";
import type { StepToken } from "../gpu/step.ts";
import { budgetK, POLICY_ID, type PolicySpec } from "./spec.ts";

/** Sizes a policy's state is allocated for. */
export interface PolicyDims {
  nLayers: number;
  nHeads: number;
  /** KV slots (sequences); a decode step has at most this many tokens. */
  slots: number;
  /** Positions per sequence. */
  ctx: number;
}

/**
 * When a policy's decode set is known:
 * - `static`: arithmetic in n, known on the CPU at any time;
 * - `ahead`: chosen on the GPU at the end of the previous step
 *   ({@linkcode KvPolicy.selectNext}), readable before the step runs;
 * - `in-layer`: chosen on the GPU inside the step, just before attention.
 */
export type SelectionTiming = "static" | "ahead" | "in-layer";

/** A KV policy on the GPU (one per spec; owns its buffers). */
export interface KvPolicy {
  readonly spec: Readonly<Required<PolicySpec>>;
  readonly timing: SelectionTiming;
  /** Its buffers (state, uniforms, selections). */
  readonly set: BufferSet;
  /** Bindings 10-12 (uniform, sel, sel_n) of policy.wgsl for layer `l`. */
  bindings(l: number): Record<number, GPUBuffer>;
  /** Dispatches of layer `l` before its attention (decode steps). */
  beforeAttention(c: OpContext, l: number): Dispatch[];
  /** Dispatches of layer `l` after its attention (every step). */
  afterAttention(c: OpContext, l: number, att: GPUBuffer): Dispatch[];
  /**
   * Dispatches that choose every layer's set: for each step token's next
   * step (`next`, n = kv_len + 1) or for the step itself (n = kv_len).
   * Empty unless the timing is `ahead`.
   */
  select(c: OpContext, next: boolean): Dispatch[];
  /** Dispatches after a prefill (one step token per slot, pos = kv_len = P). */
  seed(c: OpContext): Dispatch[];
  /**
   * Whether the sets of a decode step's tokens are ready (`ahead`
   * policies: chosen for exactly these n by a previous `select`).
   */
  ready(tokens: StepToken[]): boolean;
  /** Records that the sets for `tokens` (next: their next steps) were chosen. */
  chosen(tokens: StepToken[], next: boolean): void;
  /** Forgets the chosen sets of `slots` (a prefill starts a new sequence there). */
  forget(slots: Iterable<number>): void;
  /** Slots of `tokens` prefilled but not yet seeded (policies with a seed). */
  needsSeed(tokens: StepToken[]): number[];
  /** Records that `slots` were seeded. */
  seeded(slots: Iterable<number>): void;
  /**
   * Makes room for a prefill of `promptLen` tokens; true when buffers
   * were replaced (plans binding them must be rebuilt).
   */
  reserve(promptLen: number): boolean;
  /** `ahead` policies: layer `l`'s chosen sets, (slots, ctx) and (slots,). */
  selection?(l: number): { sel: GPUBuffer; selN: GPUBuffer };
}

/** The policy uniform (policy.wgsl's `Policy`). */
export function policyUniform(
  set: BufferSet,
  spec: Required<PolicySpec>,
  record: boolean,
): GPUBuffer {
  const a = new ArrayBuffer(16);
  const u = new Uint32Array(a);
  u[0] = POLICY_ID[spec.name];
  new Float32Array(a)[1] = 1 - spec.sparsity;
  u[2] = Math.ceil(spec.minBudget / 2);
  u[3] = record ? 1 : 0;
  return set.uniform("policy", new Uint8Array(a));
}

/** The largest k of any step of a sequence of at most `ctx` positions. */
export function maxK(spec: Required<PolicySpec>, ctx: number): number {
  return budgetK(ctx, spec.sparsity, spec.minBudget);
}

/**
 * What a policy without one-step-ahead selection does by default: no
 * dispatches around attention, nothing to seed or choose ahead, sets
 * always ready, no state to grow. Policies override what they have.
 */
export abstract class PolicyDefaults {
  beforeAttention(_c: OpContext, _l: number): Dispatch[] {
    return [];
  }
  afterAttention(_c: OpContext, _l: number, _att: GPUBuffer): Dispatch[] {
    return [];
  }
  select(_c: OpContext, _next: boolean): Dispatch[] {
    return [];
  }
  seed(_c: OpContext): Dispatch[] {
    return [];
  }
  ready(_tokens: StepToken[]): boolean {
    return true;
  }
  chosen(_tokens: StepToken[], _next: boolean): void {}
  forget(_slots: Iterable<number>): void {}
  needsSeed(_tokens: StepToken[]): number[] {
    return [];
  }
  seeded(_slots: Iterable<number>): void {}
  reserve(_promptLen: number): boolean {
    return false;
  }
}

/**
 * dense, local, strided, sinks: the set is arithmetic in n (policy.wgsl).
 * With `record`, attention writes each decode token's set to `sel` (tests).
 */
export class StaticPolicy extends PolicyDefaults implements KvPolicy {
  readonly timing = "static";
  private readonly uniform: GPUBuffer;
  private readonly sel: GPUBuffer;
  private readonly selN: GPUBuffer;

  constructor(
    readonly set: BufferSet,
    readonly spec: Readonly<Required<PolicySpec>>,
    dims: PolicyDims,
    record: boolean,
  ) {
    super();
    this.uniform = policyUniform(set, spec, record);
    const { slots, nHeads, ctx } = dims;
    this.sel = set.buffer("sel", record ? slots * nHeads * ctx * 4 : 16);
    this.selN = set.buffer("sel_n", record ? slots * nHeads * 4 : 16);
  }

  bindings(): Record<number, GPUBuffer> {
    return { 10: this.uniform, 11: this.sel, 12: this.selN };
  }
}
