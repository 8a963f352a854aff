/**
 * SWA (ALISA) on the GPU, per layer and sequence (spec.ts has the rules):
 *
 *     score  S          (slots, ctx) f32      running window sum
 *     ring   rows       (slots, ring, 1 + cap) positions (u32: count, then
 *                       positions) and weights (f32), the score rows of
 *                       the last `ring` queries, stored sparsely
 *     sel, sel_n        (slots, ctx), (slots,) the chosen set
 *
 * with ring = k(ctx) + 1 (the window of k rows plus the row being
 * written) and cap = the longest row: min(ctx, 2 k(ctx)) for decode rows,
 * or the longest prompt seen (a prefill row q holds q + 1 positions). The
 * state therefore grows with n x budget rather than with ctx^2: per slot
 * and layer, (k(ctx) + 1) (cap + 1) x 8 bytes plus 8 bytes per position.
 *
 * The set of a decode step depends only on S after the previous step, so
 * it is chosen one step ahead: `select(next = true)` runs at the end of a
 * decode step and after the prefill's seed, and a tiered KV store reads
 * the chosen sets back with the step's ids to fetch what is missing.
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
import type { StepToken } from "../gpu/step.ts";
import {
  type KvPolicy,
  maxK,
  type PolicyDims,
  policyUniform,
} from "./policy.ts";
import type { PolicySpec } from "./spec.ts";

/** Bytes of SWA state per slot and layer for a context and row capacity. */
export function swaStateBytes(
  spec: Required<PolicySpec>,
  ctx: number,
  cap = Math.min(ctx, 2 * maxK(spec, ctx)),
): number {
  const ring = maxK(spec, ctx) + 1;
  return ring * (cap + 1) * 8 + ctx * 8 + 4;
}

/** SWA's buffers and dispatches. */
export class SwaPolicy implements KvPolicy {
  readonly timing = "ahead";
  readonly ring: number;
  /** Entries per score row. */
  cap: number;
  private readonly uniform: GPUBuffer;
  private readonly score: GPUBuffer[];
  private ringPos: GPUBuffer[];
  private ringW: GPUBuffer[];
  private readonly sel: GPUBuffer[];
  private readonly selN: GPUBuffer[];
  /** n each slot's current set was chosen for (-1: none). */
  private readonly prepared: Int32Array;
  /** Slots prefilled since their last seed (their S and rows are not seeded yet). */
  private readonly unseeded = new Set<number>();

  constructor(
    private readonly gpu: Gpu,
    readonly set: BufferSet,
    readonly spec: Readonly<Required<PolicySpec>>,
    private readonly dims: PolicyDims,
  ) {
    const { nLayers, slots, ctx } = dims;
    this.ring = maxK(spec, ctx) + 1;
    this.cap = Math.min(ctx, 2 * maxK(spec, ctx));
    this.uniform = policyUniform(set, spec, false);
    const per = (name: string, bytes: number) =>
      Array.from(
        { length: nLayers },
        (_, l) => set.buffer(`${name}.${l}`, bytes),
      );
    this.score = per("score", slots * ctx * 4);
    this.sel = per("sel", slots * ctx * 4);
    this.selN = per("sel_n", slots * 4);
    const rowBytes = slots * this.ring * (this.cap + 1) * 4;
    this.ringPos = per("ring_pos", rowBytes);
    this.ringW = per("ring_w", rowBytes);
    this.prepared = new Int32Array(slots).fill(-1);
  }

  bindings(l: number): Record<number, GPUBuffer> {
    return { 10: this.uniform, 11: this.sel[l], 12: this.selN[l] };
  }

  selection(l: number): { sel: GPUBuffer; selN: GPUBuffer } {
    return { sel: this.sel[l], selN: this.selN[l] };
  }

  beforeAttention(): Dispatch[] {
    return [];
  }

  afterAttention(c: OpContext, l: number, att: GPUBuffer): Dispatch[] {
    const pipeline = pipe(c.gpu, "score_swa", undefined, {
      WG: 64,
      N_HEADS: this.dims.nHeads,
    });
    return [{
      label: `score_swa.${l}`,
      pipeline,
      bindGroup: bind(c.gpu, "score_swa", pipeline, {
        0: c.set.uniform(
          "score_swa",
          u32s(this.dims.ctx, 0, this.ring, this.cap),
        ),
        1: c.sb.step,
        2: att,
        3: this.score[l],
        4: this.ringPos[l],
        5: this.ringW[l],
        ...this.bindings(l),
      }),
      grid: (n) => [n, 1, 1],
    }];
  }

  select(c: OpContext, next: boolean): Dispatch[] {
    const pipeline = pipe(c.gpu, "select_swa", undefined, { WG: 256 });
    const params = c.set.uniform(
      "select_swa",
      u32s(this.dims.ctx, next ? 1 : 0),
    );
    return this.score.map((score, l) => ({
      label: `select_swa.${l}`,
      pipeline,
      bindGroup: bind(c.gpu, "select_swa", pipeline, {
        0: params,
        1: c.sb.step,
        2: score,
        ...this.bindings(l),
      }),
      grid: (n) => [n, 1, 1],
    }));
  }

  seed(c: OpContext): Dispatch[] {
    const pipeline = pipe(c.gpu, "seed_swa", undefined, { WG: 64 });
    const params = c.set.uniform(
      "seed_swa",
      u32s(this.dims.ctx, this.ring, this.cap),
    );
    return this.score.map((score, l) => ({
      label: `seed_swa.${l}`,
      pipeline,
      bindGroup: bind(c.gpu, "seed_swa", pipeline, {
        0: params,
        1: c.sb.step,
        3: score,
        4: this.ringPos[l],
        5: this.ringW[l],
        10: this.uniform,
      }),
      grid: (n) => [n, 1, 1],
    }));
  }

  ready(tokens: StepToken[]): boolean {
    return tokens.every((t) =>
      this.prepared[t.slot] === (t.kvLen ?? t.pos + 1)
    );
  }

  chosen(tokens: StepToken[], next: boolean): void {
    for (const t of tokens) {
      this.prepared[t.slot] = (t.kvLen ?? t.pos + 1) + (next ? 1 : 0);
    }
  }

  forget(slots: Iterable<number>): void {
    for (const s of slots) {
      this.prepared[s] = -1;
      this.unseeded.add(s);
    }
  }

  /** Slots of `tokens` prefilled but not yet seeded. */
  needsSeed(tokens: StepToken[]): number[] {
    return [...new Set(tokens.map((t) => t.slot))].filter((s) =>
      this.unseeded.has(s)
    );
  }

  /** Records that `slots` were seeded. */
  seeded(slots: Iterable<number>): void {
    for (const s of slots) this.unseeded.delete(s);
  }

  /**
   * Prefill rows hold up to `promptLen` entries: grows the rows (keeping
   * every slot's rows) when they are shorter. True when buffers changed.
   */
  reserve(promptLen: number): boolean {
    if (promptLen <= this.cap) return false;
    const { slots } = this.dims;
    const cap = Math.min(this.dims.ctx, Math.ceil(promptLen / 64) * 64);
    const oldStride = (this.cap + 1) * 4, newStride = (cap + 1) * 4;
    const limits = this.gpu.limits;
    const bind = Math.min(
      limits.maxStorageBufferBindingSize,
      limits.maxBufferSize,
    );
    if (slots * this.ring * newStride > bind) {
      throw new RangeError(
        `a prompt of ${promptLen} tokens needs SWA score rows of ${
          slots * this.ring * newStride
        } bytes per layer (${slots} slots x ${this.ring} rows x ${
          cap + 1
        } entries), over this GPU's binding limit of ${bind} bytes: use a shorter prompt, fewer sequences or more sparsity`,
      );
    }
    const enc = this.gpu.device.createCommandEncoder();
    const grow = (old: GPUBuffer[], name: string) =>
      old.map((b, l) => {
        const nb = this.set.buffer(
          `${name}.${l}.cap${cap}`,
          slots * this.ring * newStride,
        );
        for (let r = 0; r < slots * this.ring; r++) {
          enc.copyBufferToBuffer(
            b,
            r * oldStride,
            nb,
            r * newStride,
            oldStride,
          );
        }
        return nb;
      });
    const pos = grow(this.ringPos, "ring_pos");
    const w = grow(this.ringW, "ring_w");
    this.gpu.device.queue.submit([enc.finish()]);
    // Old rows are freed once the copies are done (destroy waits for the queue).
    for (const b of [...this.ringPos, ...this.ringW]) this.set.free(b);
    this.ringPos = pos;
    this.ringW = w;
    this.cap = cap;
    return true;
  }
}
