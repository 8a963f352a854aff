/**
 * Running a step on a tiered KV store (`src/kv/store.ts`): the selection
 * of a decode step is known before the step (chosen one step ahead on the
 * GPU and read back with the previous step's ids, or now, or arithmetic
 * on the CPU), the store places every entry the layers touch, and the
 * layers run in segments, each submitted after its table entries, uploads
 * and recompute inputs are written. The step's ids (and logits), the next
 * step's chosen sets and its new K/V rows (and x) come back in one
 * readback: the forward pass never waits on a per-layer round trip.
 *
 * Also the device profile the scheduler's cost model needs.
 *
 * @module
 */
import type { ModelConfig } from "../formats/config.ts";
import type { BufferSet } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import {
  type Dispatch,
  encodePlan,
  type OpContext,
  profilePlan,
} from "../gpu/dispatch.ts";
import {
  type StepBuffers,
  stepTableBytes,
  type StepToken,
  writeStep,
} from "../gpu/step.ts";
import type { DeviceProfile } from "../kv/cost_model.ts";
import { KvPool } from "../kv/pool.ts";
import type { ScheduledToken } from "../kv/scheduler.ts";
import type { KvStore } from "../kv/store.ts";
import type { KvPolicy } from "../sparse/policy.ts";
import { selectStatic } from "../sparse/reference.ts";
import { attentionDispatch } from "./ops.ts";

/** A step's dispatches by stage (the model's plan). */
export interface StagedPlan {
  embed: Dispatch[];
  layers: Dispatch[][];
  out: Dispatch[];
}

/** What a tiered step needs from the model. */
export interface TieredHost {
  gpu: Gpu;
  config: ModelConfig;
  kv: KvStore;
  sb: StepBuffers;
  maxOut: number;
  /** The model's buffer set (the profile's scratch goes into a child). */
  set: BufferSet;
  /** Activations read or copied: x (layer input), ids, logits, and q/o/att for the profile. */
  run: {
    x: GPUBuffer;
    ids: GPUBuffer;
    logits: GPUBuffer;
    q: GPUBuffer;
    o: GPUBuffer;
    att: GPUBuffer;
  };
  policy(): KvPolicy;
  plan(decode: boolean, nTokens: number): StagedPlan;
  selectPlan(next: boolean): Dispatch[];
  masksPlan(): Dispatch[];
  rcPlan(l: number): Dispatch[];
  checkStep(tokens: StepToken[], outRows: number[]): void;
  dropPlans(): void;
}

/** The step's tokens as the KV store sees them. */
export function scheduled(tokens: StepToken[]): ScheduledToken[] {
  return tokens.map((t) => ({
    slot: t.slot,
    pos: t.pos,
    kvLen: t.kvLen ?? t.pos + 1,
  }));
}

/** Runs steps on a tiered store. */
export class TieredSteps {
  constructor(private readonly h: TieredHost) {}

  /**
   * Runs the policy's selection for `tokens`' current step where it was
   * not chosen ahead, and reads the chosen sets back.
   */
  async selectNow(tokens: StepToken[]): Promise<void> {
    const h = this.h;
    writeStep(h.gpu, h.sb, tokens, [], { decode: true });
    const enc = h.gpu.device.createCommandEncoder();
    encodePlan(
      enc,
      [...h.selectPlan(false), ...h.masksPlan()],
      tokens.length,
      0,
    );
    h.policy().chosen(tokens, false);
    await this.readMasks(enc);
  }

  /** Submits `enc` with a copy of the chosen sets' masks, and reads them back into the store. */
  async readMasks(enc: GPUCommandEncoder): Promise<void> {
    const h = this.h, st = this.staging();
    enc.copyBufferToBuffer(h.kv.masks!, 0, st.buffer, st.masks, st.masksBytes);
    h.gpu.device.queue.submit([enc.finish()]);
    await h.gpu.mapOrLost(st.buffer);
    h.kv.absorbMasks(
      new Uint32Array(st.buffer.getMappedRange(st.masks, st.masksBytes)),
    );
    st.buffer.unmap();
  }

  /** The sets of a tiered decode step's tokens at each layer (null: all positions). */
  setsFor(
    tokens: StepToken[],
  ): (l: number, slot: number) => ArrayLike<number> | null {
    const spec = this.h.policy().spec;
    if (spec.name === "dense") return () => null;
    if (this.h.policy().timing === "ahead") {
      return (l, slot) => this.h.kv.chosenSet(l, slot);
    }
    const n = new Map(tokens.map((t) => [t.slot, t.kvLen ?? t.pos + 1]));
    const cache = new Map<number, Int32Array>();
    return (_l, slot) => {
      const len = n.get(slot)!;
      let set = cache.get(len);
      if (!set) cache.set(len, set = selectStatic(spec, len));
      return set;
    };
  }

  /** The tiered readback buffer and its layout (bytes). */
  private staging() {
    if (this.stagingLayout) return this.stagingLayout;
    const c = this.h.config, kv = this.h.kv;
    const T = kv.stepTokens, L = c.nLayers;
    const pad = (n: number) => Math.ceil(n / 16) * 16;
    const outRows = Math.min(this.h.maxOut, T);
    const idsBytes = pad(outRows * 4);
    const logitsBytes = pad(outRows * c.vocabSize * 4);
    const masksBytes = kv.masks ? pad(kv.masks.size) : 0;
    const kvBytes = kv.tiered ? pad(L * T * kv.dims.kvDim * 4) : 0;
    const xBytes = !kv.tiered || kv.recompute === "off"
      ? 0
      : pad(L * T * c.dim * 4);
    const logits = idsBytes, masks = logits + logitsBytes;
    const kvOff = masks + masksBytes, x = kvOff + kvBytes;
    const buffer = kv.stagingSet.raw(
      "readback",
      x + xBytes,
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    );
    this.stagingLayout = {
      buffer,
      ids: 0,
      logits,
      masks,
      masksBytes,
      kv: kvOff,
      x,
    };
    return this.stagingLayout;
  }
  private stagingLayout: {
    buffer: GPUBuffer;
    ids: number;
    logits: number;
    masks: number;
    masksBytes: number;
    kv: number;
    x: number;
  } | null = null;

  /**
   * One step of a tiered store: the selection is known before the step
   * (chosen ahead and read back with the previous step, or now), the
   * store places every entry the layers touch, and the layers run in
   * segments, each after its uploads and recompute inputs are written.
   * The ids, logits, the next step's chosen sets and the new K/V rows
   * (and x) come back in one readback.
   */
  async step(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean,
    want: { ids?: boolean; logits?: boolean },
    extra?: (enc: GPUCommandEncoder) => void,
    outOffset = 0,
  ): Promise<{ ids: Uint32Array | null; logits: Float32Array | null }> {
    this.h.gpu.check();
    this.h.checkStep(tokens, outRows);
    const kv = this.h.kv, c = this.h.config, T = tokens.length;
    // Paged KV stays on the GPU: no sets to fetch, no rows to read back.
    const ahead = this.h.policy().timing === "ahead" && kv.tiered;
    if (!decode) {
      const longest = Math.max(...tokens.map((t) => t.kvLen ?? t.pos + 1));
      if (this.h.policy().reserve(longest)) this.h.dropPlans();
      this.h.policy().forget(tokens.map((t) => t.slot));
    }
    const st = this.staging();
    if (decode && ahead && !this.h.policy().ready(tokens)) {
      await this.selectNow(tokens);
    }
    const sched = scheduled(tokens);
    const { segments } = kv.prepareStep(
      sched,
      decode ? this.setsFor(tokens) : () => null,
      decode,
    );
    writeStep(this.h.gpu, this.h.sb, tokens, outRows, { decode, outOffset });
    const p = this.h.plan(decode, T);
    const nOut = outRows.length;
    const kvDim = kv.dims.kvDim;
    segments.forEach((seg, si) => {
      seg.apply();
      const enc = this.h.gpu.device.createCommandEncoder();
      if (si === 0) encodePlan(enc, p.embed, T, nOut);
      if (!seg.layers.length) {
        encodePlan(enc, this.h.rcPlan(seg.rcLayer), seg.rcCount, 0);
      }
      for (const l of seg.layers) {
        if (kv.keepX) {
          enc.copyBufferToBuffer(
            this.h.run.x,
            0,
            st.buffer,
            st.x + l * T * c.dim * 4,
            T * c.dim * 4,
          );
        }
        if (l === seg.rcLayer) {
          encodePlan(enc, this.h.rcPlan(l), seg.rcCount, 0);
        }
        encodePlan(enc, p.layers[l], T, nOut);
        if (kv.tiered) {
          enc.copyBufferToBuffer(
            kv.capture!,
            0,
            st.buffer,
            st.kv + l * T * kvDim * 4,
            T * kvDim * 4,
          );
        }
      }
      if (si === segments.length - 1) {
        const tail = [...p.out];
        if (decode && ahead) tail.push(...this.h.selectPlan(true));
        if (ahead) tail.push(...this.h.masksPlan());
        encodePlan(enc, tail, T, nOut);
        extra?.(enc);
        if (nOut) {
          enc.copyBufferToBuffer(
            this.h.run.ids,
            0,
            st.buffer,
            st.ids,
            Math.ceil(nOut / 4) * 16,
          );
          if (want.logits) {
            enc.copyBufferToBuffer(
              this.h.run.logits,
              0,
              st.buffer,
              st.logits,
              nOut * c.vocabSize * 4,
            );
          }
        }
        if (ahead) {
          enc.copyBufferToBuffer(
            kv.masks!,
            0,
            st.buffer,
            st.masks,
            st.masksBytes,
          );
        }
      }
      this.h.gpu.device.queue.submit([enc.finish()]);
    });
    if (decode && ahead) this.h.policy().chosen(tokens, true);
    const end = !kv.tiered
      ? st.logits + (want.logits ? nOut * c.vocabSize * 4 : 0)
      : kv.keepX
      ? st.x + c.nLayers * T * c.dim * 4
      : st.kv + c.nLayers * T * kvDim * 4;
    await this.h.gpu.mapOrLost(st.buffer);
    try {
      const all = st.buffer.getMappedRange(0, Math.ceil(end / 8) * 8);
      const ids = new Uint32Array(all.slice(st.ids, st.ids + nOut * 4));
      const logits = want.logits
        ? new Float32Array(
          all.slice(st.logits, st.logits + nOut * c.vocabSize * 4),
        )
        : null;
      if (ahead) {
        kv.absorbMasks(new Uint32Array(all, st.masks, st.masksBytes / 4));
      }
      const rows = kv.tiered
        ? new Uint32Array(
          all.slice(st.kv, st.kv + c.nLayers * T * kvDim * 4),
        )
        : null;
      const xs = kv.keepX
        ? new Float32Array(all.slice(st.x, st.x + c.nLayers * T * c.dim * 4))
        : null;
      kv.finishStep(sched, rows, xs);
      this.h.gpu.check();
      return { ids, logits };
    } finally {
      st.buffer.unmap();
    }
  }

  /**
   * Measures what the tiered store's plan depends on (ALISA section 3):
   * host -> GPU upload bandwidth, GPU time to rebuild one token's K/V at a
   * layer, and attention time per attended token.
   */
  async profile(): Promise<DeviceProfile> {
    const gpu = this.h.gpu,
      q = gpu.device.queue,
      kv = this.h.kv,
      c = this.h.config;
    const timeMs = async (fn: () => void, reps: number) => {
      let best = Infinity;
      for (let i = 0; i < reps; i++) {
        await q.onSubmittedWorkDone();
        const t0 = performance.now();
        fn();
        await q.onSubmittedWorkDone();
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    };
    // The fixed cost of a submit and its completion, subtracted below.
    const idle = await timeMs(() => q.submit([]), 5);
    const set = this.h.set.child("profile");
    let uploadGBs = 0, recomputeMsPerToken = Infinity, attendMsPerToken = 0;
    try {
      // Upload: queue.writeBuffer of 4 MiB.
      const bytes = 4 << 20;
      const dst = set.buffer("upload", bytes);
      const data = new Uint8Array(bytes);
      const upMs = await timeMs(() => q.writeBuffer(dst, 0, data), 4);
      uploadGBs = bytes / 1e6 / Math.max(upMs - idle, 1e-3);
      // Recompute: the rebuild dispatches (not the row store) for R tokens.
      if (kv.rc) {
        const R = kv.rc.tokens;
        const table = new Uint32Array(4 + 4 * R);
        table[0] = R;
        for (let i = 0; i < R; i++) table.set([0, i % kv.ctx, 0, 1], 4 + 4 * i);
        q.writeBuffer(kv.rc.sb.step, 0, table);
        const plan = this.h.rcPlan(0).slice(0, -1);
        const run = () => {
          const enc = gpu.device.createCommandEncoder();
          encodePlan(enc, plan, R, 0);
          q.submit([enc.finish()]);
        };
        if (gpu.hasTimestamps) {
          // GPU time of the rebuild dispatches (the best of three), per token.
          let best = Infinity;
          for (let i = 0; i < 3; i++) {
            const t = await profilePlan(gpu, plan, R, 0);
            best = Math.min(best, t.reduce((a, d) => a + d.ms, 0));
          }
          recomputeMsPerToken = best / R;
        } else {
          recomputeMsPerToken = Math.max(0, (await timeMs(run, 3)) - idle) / R;
        }
      }
      // Attention: a one-layer pool of N positions, dense, n = N and N / 2.
      const N = Math.min(kv.ctx, 256);
      const pool = new KvPool(gpu, set, {
        nLayers: 1,
        slots: 1,
        ctx: N,
        kvDim: kv.dims.kvDim,
      }, N);
      const sb = {
        step: set.buffer("step", stepTableBytes(1)),
        outRows: set.buffer("out", 16),
      };
      const ctx: OpContext = { gpu, set, sb };
      const att = attentionDispatch(ctx, {
        q: this.h.run.q,
        out: this.h.run.o,
        att: this.h.run.att,
        kv: pool.bindings(0),
        policy: {
          10: set.uniform("policy", new Uint32Array(4)),
          11: set.buffer("sel", 16),
          12: set.buffer("sel_n", 16),
        },
        nHeads: c.nHeads,
        nKvHeads: c.nKvHeads,
        headDim: c.headDim,
        ctx: kv.ctx,
      });
      const at = async (n: number) => {
        writeStep(gpu, sb, [{ slot: 0, pos: n - 1, id: 0 }], [], {
          decode: false,
        });
        if (gpu.hasTimestamps) {
          // GPU time of the dispatch alone (the best of three).
          let best = Infinity;
          for (let i = 0; i < 3; i++) {
            const [t] = await profilePlan(gpu, [att], 1, 0);
            best = Math.min(best, t.ms);
          }
          return best;
        }
        return await timeMs(() => {
          const enc = gpu.device.createCommandEncoder();
          encodePlan(enc, [att], 1, 0);
          q.submit([enc.finish()]);
        }, 3);
      };
      const small = await at(Math.max(1, N / 2)), big = await at(N);
      attendMsPerToken = Math.max(0, (big - small) / (N - Math.max(1, N / 2)));
    } finally {
      set.destroy();
    }
    gpu.check();
    return { uploadGBs, recomputeMsPerToken, attendMsPerToken, stepMs: 0 };
  }
}
