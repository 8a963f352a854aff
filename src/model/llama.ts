/**
 * The Llama-family forward pass on WebGPU. Config, weights and run state
 * are kept apart, as in llama2.c: the weights are uploaded once in their
 * stored type (`weights.ts`), the run state is a fixed set of activation
 * buffers sized for one step, and a step (any mix of prefill and decode
 * tokens of several sequences) runs one plan of dispatches. K/V go through
 * the KV store (`src/kv/store.ts`) and the attended positions come from
 * the KV policy (`src/sparse/policy.ts`): the layer loop names neither a
 * policy nor a storage scheme (candle's pattern: the cache is passed in).
 *
 * For the step's n tokens (shapes in elements), x = embedding (times
 * sqrt(dim) for Gemma), then per layer:
 *
 *     xn   = RMSNorm(x) * attn_norm               (n, dim)
 *     q    = Wq xn (+ bq), k = Wk xn (+ bk),       (n, q_dim), (n, kv_dim) x2
 *     v    = Wv xn (+ bv)                          (biases: Qwen2)
 *     q, k = RMSNorm per head * q_norm, k_norm     (Qwen3, Gemma 3)
 *     q, k = RoPE(q, k) at each token's position   (the layer's own table)
 *     kv[layer, slot, pos] = k, v                  (f16, a pool row)
 *     o    = softmax(cap(q K^T * scale)) V         (n, q_dim), causal, GQA,
 *                                                  over the policy's positions
 *                                                  within the layer's window
 *     x   += Wo o                 (Gemma: x += RMSNorm(Wo o) * post_attn_norm)
 *     xn   = RMSNorm(x) * ffn_norm
 *     h    = act(Wgate xn) * (Wup xn)              (n, ffn_dim); SiLU or GELU-tanh
 *     x   += Wdown h              (Gemma: x += RMSNorm(Wdown h) * post_ffw_norm)
 *
 * then logits = Wout RMSNorm(x) for the output rows only (soft-capped for
 * Gemma 2), and argmax. What differs per architecture is in the config
 * (`src/formats/config.ts`: `ARCH_TRAITS` and the per-model numbers).
 *
 * @module
 */
import {
  type ModelConfig,
  ropeFreqDivisors,
  traitsOf,
} from "../formats/config.ts";
import type { ModelFile } from "../formats/model_file.ts";
import { BufferSet } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import {
  type Dispatch,
  encodePlan,
  type OpContext,
  profilePlan,
  withLabel,
} from "../gpu/dispatch.ts";
import {
  type StepBuffers,
  stepTableBytes,
  type StepToken,
  writeStep,
} from "../gpu/step.ts";
import type { GpuWeight } from "../gpu/weights.ts";
import { kvStoreDispatch, selMaskDispatch } from "../kv/ops.ts";
import { checkKvOptions, type KvOptions, KvStore } from "../kv/store.ts";
import { nllDispatch } from "../eval/ops.ts";
import { createPolicy } from "../sparse/create_policy.ts";
import type { KvPolicy } from "../sparse/policy.ts";
import { checkPolicy, type PolicySpec } from "../sparse/spec.ts";
import {
  actMulDispatch,
  addBiasDispatch,
  argmaxDispatch,
  attentionDispatch,
  embedDispatches,
  headNormDispatch,
  matmulDispatches,
  rmsnormDispatch,
  ropeDispatch,
  ropeTable,
  softcapDispatch,
} from "./ops.ts";
import {
  checkWeightTypes,
  type LayerWeights,
  type UploadProgress,
  uploadWeights,
  type Weights,
} from "./weights.ts";
import { checkEngineOptions, checkPolicyState } from "./limits.ts";
import { scheduled, TieredSteps } from "./tiered_step.ts";

/** Activation buffers for one step of up to `maxTokens` tokens. */
interface RunState {
  x: GPUBuffer; // (maxTokens, dim) residual stream
  xn: GPUBuffer; // (maxTokens, dim) normalized
  q: GPUBuffer; // (maxTokens, q_dim)
  k: GPUBuffer; // (maxTokens, kv_dim)
  v: GPUBuffer; // (maxTokens, kv_dim)
  o: GPUBuffer; // (maxTokens, q_dim) attention output
  gate: GPUBuffer; // (maxTokens, ffn_dim)
  up: GPUBuffer; // (maxTokens, ffn_dim), becomes silu(gate) * up
  att: GPUBuffer; // (maxTokens, n_heads, ctx) attention weights
  xo: GPUBuffer; // (maxOut, dim) normalized output rows
  logits: GPUBuffer; // (maxOut, vocab)
  ids: GPUBuffer; // (maxOut,) argmax
  idsRead: GPUBuffer; // (maxOut,) staging for the readback
  ropeTable: GPUBuffer; // (ctx, rope_dim / 2) of (cos, sin)
  ropeTableLocal: GPUBuffer; // the same for sliding-window layers (Gemma 3's own base), else ropeTable
}

/** A step's dispatches, by stage: the layer loop is `layers[l]`. */
interface Plan {
  /** Owns the plan's uniforms (freed when the plan is dropped). */
  set: BufferSet;
  embed: Dispatch[];
  layers: Dispatch[][];
  out: Dispatch[];
}

/** Options for {@linkcode LlamaModel.load}. */
export interface LlamaLoadOptions {
  /** Sequences decoded at once (KV slots), default 1. */
  maxBatch?: number;
  /** Positions per sequence, default the model's context length. */
  contextLength?: number;
  /** Tokens per step (prefill chunk), default 512 (fewer when the attention weights of a step would not fit one binding). */
  maxStepTokens?: number;
  /** The KV store: its GPU byte budget and tiers. */
  kv?: KvOptions;
  /** Called after each tensor is uploaded. */
  onProgress?: UploadProgress;
}

const DENSE: Required<PolicySpec> = {
  name: "dense",
  sparsity: 0,
  minBudget: 0,
};

/** A Llama-family model on the GPU. */
export class LlamaModel {
  private readonly sb: StepBuffers;
  private readonly plans = new Map<string, Plan>();
  private pol: KvPolicy;
  /** Tests: attention records the static policies' sets (set before setPolicy). */
  recordSelections = false;
  /** Steps on a tiered store (null: the store is static). */
  private readonly tiered: TieredSteps | null;

  private constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    /** Every GPU buffer of the model (weights, run state, KV, policy, plans). */
    readonly set: BufferSet,
    private readonly w: Weights,
    private readonly s: RunState,
    readonly kv: KvStore,
    /** Most tokens in one step. */
    readonly maxStepTokens: number,
    /** Most output (logit) rows in one step. */
    readonly maxOut: number,
  ) {
    this.sb = {
      step: set.buffer("step", stepTableBytes(maxStepTokens)),
      outRows: set.buffer("out_rows", maxStepTokens * 4),
    };
    this.pol = this.makePolicy(DENSE);
    this.tiered = kv.dynamic
      ? new TieredSteps({
        gpu,
        config,
        kv,
        sb: this.sb,
        maxOut,
        set,
        run: s,
        policy: () => this.pol,
        plan: (decode, n) => this.plan(decode, n),
        selectPlan: (next) => this.selectPlan(next),
        masksPlan: () => this.masksPlan(),
        rcPlan: (l) => this.rcPlan(l),
        checkStep: (t, o) => this.checkStep(t, o),
        dropPlans: () => this.dropPlans(),
      })
      : null;
  }

  /** The KV policy of decode steps. */
  get policy(): Readonly<Required<PolicySpec>> {
    return this.pol.spec;
  }

  private makePolicy(spec: Required<PolicySpec>): KvPolicy {
    const c = this.config;
    return createPolicy(this.gpu, this.set, spec, {
      nLayers: c.nLayers,
      nHeads: c.nHeads,
      slots: this.kv.slots,
      ctx: this.kv.ctx,
    }, this.recordSelections);
  }

  /**
   * The policy `spec` with its defaults, checked against this model and
   * KV store (the checks of {@linkcode setPolicy}, without switching).
   */
  checkPolicy(spec: PolicySpec): Required<PolicySpec> {
    const s = checkPolicy(spec, this.kv.ctx);
    checkPolicyState(this.config, this.kv, s, this.gpu.limits);
    if (this.kv.tiered && s.name === "h2o") {
      throw new TypeError(
        "h2o chooses its tokens inside each layer and evicts them for good, so the KV store cannot fetch them ahead: run it without a GPU KV budget (kv.gpuBytes)",
      );
    }
    return s;
  }

  /**
   * Selects the KV policy for decode steps (prefill is always dense).
   * RangeError for a sparsity outside [0, 1) or a bad minBudget,
   * TypeError for an unknown name.
   */
  setPolicy(spec: PolicySpec): void {
    const s = this.checkPolicy(spec);
    const cur = this.pol.spec;
    if (
      s.name === cur.name && s.sparsity === cur.sparsity &&
      s.minBudget === cur.minBudget && !this.recordSelections
    ) return;
    this.dropPlans();
    this.pol.set.destroy();
    this.pol = this.makePolicy(s);
  }

  private dropPlans(): void {
    for (const p of this.plans.values()) p.set.destroy();
    this.plans.clear();
  }

  /** Uploads `file`'s weights and allocates the KV store and run state. */
  static async load(
    gpu: Gpu,
    file: ModelFile,
    o: LlamaLoadOptions = {},
  ): Promise<LlamaModel> {
    checkKvOptions(o.kv);
    checkWeightTypes(file);
    checkEngineOptions(file.config, {
      contextLength: o.contextLength,
      maxBatch: o.maxBatch,
      maxStepTokens: o.maxStepTokens,
      kvGpuBytes: o.kv?.gpuBytes,
    }, gpu.limits);
    const c = file.config;
    if (c.headDim > 256 || c.headDim % 2) {
      throw new TypeError(
        `Cannot load model ${file.name}: head dimension ${c.headDim} is not supported (even, at most 256)`,
      );
    }
    const ctx = o.contextLength ?? c.contextLength;
    const maxBatch = o.maxBatch ?? 1;
    const limit = gpu.limits.maxStorageBufferBindingSize;
    // The attention weights (tokens, heads, ctx) bound the step size.
    const maxStepTokens = Math.max(
      1,
      Math.min(
        o.maxStepTokens ?? 512,
        Math.floor(limit / (c.nHeads * ctx * 4)),
      ),
    );
    const maxOut = Math.max(
      1,
      Math.min(maxStepTokens, Math.floor(limit / (c.vocabSize * 4))),
    );
    if (maxOut < maxBatch) {
      throw new RangeError(
        `A batch of ${maxBatch} needs ${maxBatch} logit rows; this GPU binds at most ${maxOut}`,
      );
    }
    // RoPE frequency divisors (a file's rope_freqs.weight is checked here,
    // before anything is allocated: a zero or NaN would silently give NaN
    // angles).
    const divisors = c.ropeFreqsTensor
      ? await file.read("rope_freqs.weight", "f32") as Float32Array
      : ropeFreqDivisors(c.ropeScaling, c.ropeDim, c.ropeTheta);
    const bad = Array.from(divisors).findIndex((d) =>
      !(Number.isFinite(d) && d > 0)
    );
    if (bad >= 0) {
      throw new RangeError(
        `Cannot load model ${file.name}: RoPE frequency divisor ${bad} is ${
          divisors[bad]
        }${
          c.ropeFreqsTensor ? " (tensor rope_freqs.weight)" : ""
        }; each must be a finite number > 0`,
      );
    }
    const set = new BufferSet(gpu, "model");
    try {
      const qDim = c.nHeads * c.headDim;
      const kvDim = c.nKvHeads * c.headDim;
      // The KV store first: a budget too small for it fails before any
      // weight is uploaded.
      const kv = new KvStore(gpu, set.child("kv"), {
        nLayers: c.nLayers,
        slots: maxBatch,
        ctx,
        kvDim,
        headDim: c.headDim,
        dim: c.dim,
        maxStepTokens,
      }, o.kv);
      const w = await uploadWeights(set.child("weights"), file, o.onProgress);
      const rs = set.child("run");
      const f = (name: string, elems: number) => rs.buffer(name, elems * 4);
      const T = maxStepTokens;
      const table = ropeTable(ctx, c.ropeDim, c.ropeTheta, divisors);
      const localTable = c.ropeThetaLocal === null
        ? null
        : ropeTable(ctx, c.ropeDim, c.ropeThetaLocal);
      const ropeBuf = rs.buffer("rope_table", table.byteLength, table);
      const s: RunState = {
        x: f("x", T * c.dim),
        xn: f("xn", T * c.dim),
        q: f("q", T * qDim),
        k: f("k", T * kvDim),
        v: f("v", T * kvDim),
        o: f("o", T * qDim),
        gate: f("gate", T * c.ffnDim),
        up: f("up", T * c.ffnDim),
        att: f("att", T * c.nHeads * ctx),
        xo: f("xo", maxOut * c.dim),
        logits: f("logits", maxOut * c.vocabSize),
        ids: f("ids", maxOut),
        idsRead: rs.raw(
          "ids_read",
          maxOut * 4,
          GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        ),
        ropeTable: ropeBuf,
        ropeTableLocal: localTable
          ? rs.buffer("rope_table_local", localTable.byteLength, localTable)
          : ropeBuf,
      };
      await gpu.device.queue.onSubmittedWorkDone();
      gpu.check();
      const model = new LlamaModel(
        gpu,
        { ...c, contextLength: ctx },
        set,
        w,
        s,
        kv,
        maxStepTokens,
        maxOut,
      );
      if (kv.tiered) {
        kv.profile = await model.tiered!.profile();
        const { row, x } = kv.transferSizes;
        const perRowMs = row / (kv.profile.uploadGBs * 1e6);
        const perRcMs = kv.profile.recomputeMsPerToken +
          x / (kv.profile.uploadGBs * 1e6);
        // x is kept (and read back every step) only where recomputing can
        // be chosen: forced on, or cheaper than an upload on this device.
        kv.keepX = kv.recompute === "on" ||
          (kv.recompute === "auto" &&
            (perRcMs < perRowMs || (o.kv?.plan?.beta ?? 0) > 0));
      }
      return model;
    } catch (e) {
      set.destroy();
      throw e;
    }
  }

  /** The plan for a step: decode (policy applies) or prefill, `tt` tokens per weight read. */
  private plan(decode: boolean, nTokens: number): Plan {
    const tt = nTokens > 1 ? 4 : 1;
    const key = `${decode}|${tt}`;
    let p = this.plans.get(key);
    if (!p) {
      p = this.buildPlan(tt, decode, this.set.child(`plan.${key}`));
      this.plans.set(key, p);
    }
    return p;
  }

  /** The dispatches of one step; `tt` tokens share each weight read. */
  private buildPlan(tt: number, decode: boolean, set: BufferSet): Plan {
    const { gpu, sb, config: c, w, s, kv, pol } = this;
    const ctx: OpContext = { gpu, set, sb };
    const mm = (
      weight: GpuWeight,
      x: GPUBuffer,
      y: GPUBuffer,
      accumulate = false,
    ) =>
      matmulDispatches(ctx, {
        weight,
        x,
        y,
        xStride: weight.cols,
        yStride: weight.rows,
        accumulate,
        tokensPerGroup: tt,
      });
    const t = traitsOf(c);
    const norm = (
      x: GPUBuffer,
      y: GPUBuffer,
      weight: GPUBuffer,
      accumulate = false,
    ) =>
      rmsnormDispatch(ctx, {
        x,
        y,
        weight,
        dim: c.dim,
        eps: c.normEps,
        accumulate,
      });
    const layers = w.layers.map((L, l) => [
      norm(s.x, s.xn, L.attnNorm),
      ...this.qkvDispatches(ctx, l, s.xn, { q: s.q, k: s.k, v: s.v }, tt),
      kvStoreDispatch(ctx, {
        k: s.k,
        v: s.v,
        kv: kv.bindings(l),
        kvDim: c.nKvHeads * c.headDim,
        capture: kv.capture ? { buffer: kv.capture, base: 0 } : undefined,
      }),
      ...(decode ? pol.beforeAttention(ctx, l) : []),
      withLabel(
        `attention.${l}`,
        attentionDispatch(ctx, {
          q: s.q,
          out: s.o,
          att: s.att,
          kv: kv.bindings(l),
          policy: pol.bindings(l),
          nHeads: c.nHeads,
          nKvHeads: c.nKvHeads,
          headDim: c.headDim,
          ctx: kv.ctx,
          scale: c.attnScale,
          softcap: c.attnSoftcap,
          window: c.layerWindows[l],
        }),
      ),
      ...pol.afterAttention(ctx, l, s.att),
      // x += Wo o, or with a post-norm x += RMSNorm(Wo o) (xn is free here).
      ...(L.postAttnNorm
        ? [...mm(L.wo, s.o, s.xn), norm(s.xn, s.x, L.postAttnNorm, true)]
        : mm(L.wo, s.o, s.x, true)),
      norm(s.x, s.xn, L.ffnNorm),
      ...mm(L.wGate, s.xn, s.gate),
      ...mm(L.wUp, s.xn, s.up),
      actMulDispatch(ctx, {
        gate: s.gate,
        up: s.up,
        width: c.ffnDim,
        act: t.act,
      }),
      ...(L.postFfwNorm
        ? [...mm(L.wDown, s.up, s.xn), norm(s.xn, s.x, L.postFfwNorm, true)]
        : mm(L.wDown, s.up, s.x, true)),
    ]);
    return {
      set,
      embed: embedDispatches(ctx, {
        weight: w.tokenEmbd,
        x: s.x,
        scale: t.embedScale ? Math.sqrt(c.dim) : 1,
      }),
      layers,
      out: [
        rmsnormDispatch(ctx, {
          x: s.x,
          y: s.xo,
          weight: w.outputNorm,
          dim: c.dim,
          eps: c.normEps,
          gather: true,
        }),
        ...matmulDispatches(ctx, {
          weight: w.output,
          x: s.xo,
          y: s.logits,
          xStride: c.dim,
          yStride: c.vocabSize,
          outRowsOnly: true,
          tokensPerGroup: tt,
        }),
        ...(c.finalSoftcap > 0
          ? [softcapDispatch(ctx, {
            v: s.logits,
            width: c.vocabSize,
            cap: c.finalSoftcap,
          })]
          : []),
        argmaxDispatch(ctx, {
          logits: s.logits,
          ids: s.ids,
          vocab: c.vocabSize,
        }),
      ],
    };
  }

  /**
   * Layer `l`'s Q (when `out.q` is given), K and V from the normalized
   * input `xn`, shared by the forward pass and the recompute tier:
   * projections, biases, per-head norms and RoPE with the layer's table.
   */
  private qkvDispatches(
    ctx: OpContext,
    l: number,
    xn: GPUBuffer,
    out: { q?: GPUBuffer; k: GPUBuffer; v: GPUBuffer },
    tt: number,
  ): Dispatch[] {
    const c = this.config, L: LayerWeights = this.w.layers[l];
    const table = c.layerWindows[l] > 0
      ? this.s.ropeTableLocal
      : this.s.ropeTable;
    const one = (
      weight: GpuWeight,
      y: GPUBuffer,
      bias: GPUBuffer | null,
      norm: GPUBuffer | null,
      nHeads: number,
      rope: boolean,
    ): Dispatch[] => [
      ...matmulDispatches(ctx, {
        weight,
        x: xn,
        y,
        xStride: weight.cols,
        yStride: weight.rows,
        tokensPerGroup: tt,
      }),
      ...(bias ? [addBiasDispatch(ctx, { y, bias, width: weight.rows })] : []),
      ...(norm
        ? [headNormDispatch(ctx, {
          v: y,
          weight: norm,
          nHeads,
          headDim: c.headDim,
          eps: c.normEps,
        })]
        : []),
      ...(rope
        ? [ropeDispatch(ctx, {
          v: y,
          table,
          nHeads,
          headDim: c.headDim,
          ropeDim: c.ropeDim,
          maxPos: this.kv.ctx,
          interleaved: c.ropeLayout === "interleaved",
        })]
        : []),
    ];
    return [
      ...(out.q ? one(L.wq, out.q, L.bq, L.qNorm, c.nHeads, true) : []),
      ...one(L.wk, out.k, L.bk, L.kNorm, c.nKvHeads, true),
      ...one(L.wv, out.v, L.bv, null, c.nKvHeads, false),
    ];
  }

  /** The policy's selection dispatches (`next`: for each token's next step). */
  private selectPlan(next: boolean): Dispatch[] {
    const key = `select|${next}`;
    let p = this.plans.get(key);
    if (!p) {
      const set = this.set.child(`plan.${key}`);
      const layers = [
        this.pol.select({ gpu: this.gpu, set, sb: this.sb }, next),
      ];
      p = { set, embed: [], layers, out: [] };
      this.plans.set(key, p);
    }
    return p.layers[0];
  }

  /** Checks a step's tokens against the vocabulary and the store. */
  private checkStep(tokens: StepToken[], outRows: number[]): void {
    const most = this.kv.stepTokens;
    if (tokens.length === 0 || tokens.length > most) {
      throw new RangeError(
        `A step takes 1 to ${most} tokens, got ${tokens.length}`,
      );
    }
    if (outRows.length > this.maxOut) {
      throw new RangeError(
        `A step produces at most ${this.maxOut} logit rows, got ${outRows.length}`,
      );
    }
    for (const t of tokens) {
      if (
        !Number.isInteger(t.id) || t.id < 0 || t.id >= this.config.vocabSize
      ) {
        throw new RangeError(
          `Token id ${t.id} is outside the vocabulary (0 to ${
            this.config.vocabSize - 1
          })`,
        );
      }
      if (!Number.isInteger(t.slot) || t.slot < 0 || t.slot >= this.kv.slots) {
        throw new RangeError(
          `KV slot ${t.slot} does not exist (the store has ${this.kv.slots})`,
        );
      }
      if (!Number.isInteger(t.pos) || t.pos < 0 || t.pos >= this.kv.ctx) {
        throw new RangeError(
          `Position ${t.pos} is past the context length ${this.kv.ctx}`,
        );
      }
    }
    for (const r of outRows) {
      if (r < 0 || r >= tokens.length) {
        throw new RangeError(`Output row ${r} is not a token of the step`);
      }
    }
  }

  /**
   * Prepares a step: checks it, grows policy state for a prefill, writes
   * the step table, and returns the dispatches to run in order: the
   * policy's selection for this step where it was not chosen ahead, the
   * forward pass, and on decode steps the selection for the next step.
   */
  private prepare(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean,
    outOffset = 0,
  ): Dispatch[] {
    this.gpu.check();
    this.checkStep(tokens, outRows);
    if (!decode) {
      const longest = Math.max(...tokens.map((t) => t.kvLen ?? t.pos + 1));
      if (this.pol.reserve(longest)) this.dropPlans();
      this.pol.forget(tokens.map((t) => t.slot));
    }
    writeStep(this.gpu, this.sb, tokens, outRows, { decode, outOffset });
    const p = this.plan(decode, tokens.length);
    const run: Dispatch[] = [];
    if (decode && !this.pol.ready(tokens)) {
      run.push(...this.selectPlan(false));
      this.pol.chosen(tokens, false);
    }
    run.push(...p.embed, ...p.layers.flat(), ...p.out);
    if (decode && this.pol.timing === "ahead") {
      run.push(...this.selectPlan(true));
      this.pol.chosen(tokens, true);
    }
    return run;
  }

  /**
   * Encodes and submits one step of a static store; the caller reads
   * results. `decode`: every token is its sequence's next token and the KV
   * policy applies; otherwise the step is (part of) a dense prefill.
   */
  private submit(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean,
    extra?: (enc: GPUCommandEncoder) => void,
    outOffset = 0,
  ): void {
    const run = this.prepare(tokens, outRows, decode, outOffset);
    const enc = this.gpu.device.createCommandEncoder();
    encodePlan(enc, run, tokens.length, outRows.length);
    extra?.(enc);
    this.gpu.device.queue.submit([enc.finish()]);
    this.kv.finishStep(scheduled(tokens), null, null);
  }

  /**
   * Runs one step and reads back what is asked: the argmax of each output
   * row (`ids`) or the logits rows. A tiered store's step runs in
   * segments and reads back its new K/V too.
   */
  private async run(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean,
    want: { ids?: boolean; logits?: boolean },
    extra?: (enc: GPUCommandEncoder) => void,
    outOffset = 0,
  ): Promise<{ ids: Uint32Array | null; logits: Float32Array | null }> {
    // A decode step right after a prefill that was not seeded (the API
    // always seeds; direct engine users may not): seed from the prompt
    // the decode token follows.
    if (decode) {
      const slots = this.pol.needsSeed(tokens);
      if (slots.length) {
        const at = new Map(tokens.map((t) => [t.slot, t.pos]));
        await this.seedPolicy(slots, slots.map((s) => at.get(s)!));
      }
    }
    if (this.tiered) {
      return await this.tiered.step(
        tokens,
        outRows,
        decode,
        want,
        extra,
        outOffset,
      );
    }
    const n = outRows.length;
    this.submit(tokens, outRows, decode, (enc) => {
      extra?.(enc);
      if (want.ids && n) {
        enc.copyBufferToBuffer(
          this.s.ids,
          0,
          this.s.idsRead,
          0,
          Math.ceil(n / 4) * 16,
        );
      }
    }, outOffset);
    let ids: Uint32Array | null = null, logits: Float32Array | null = null;
    if (want.ids && n) {
      await this.gpu.mapOrLost(this.s.idsRead);
      ids = new Uint32Array(this.s.idsRead.getMappedRange().slice(0, n * 4));
      this.s.idsRead.unmap();
    }
    if (want.logits) {
      logits = new Float32Array(
        await this.gpu.read(this.s.logits, n * this.config.vocabSize * 4),
      );
    }
    if (!ids && !logits) await this.gpu.device.queue.onSubmittedWorkDone();
    this.gpu.check();
    return { ids: ids ?? new Uint32Array(0), logits };
  }

  /** The dispatches writing every layer's chosen sets as bitmasks (tiered, ahead policies). */
  private masksPlan(): Dispatch[] {
    const sel = this.pol.selection;
    if (!this.kv.masks || !sel) return [];
    const key = "masks";
    let p = this.plans.get(key);
    if (!p) {
      const set = this.set.child(`plan.${key}`);
      const c: OpContext = { gpu: this.gpu, set, sb: this.sb };
      const words = Math.ceil(this.kv.ctx / 32);
      const layers = [
        Array.from(
          { length: this.config.nLayers },
          (_, l) =>
            selMaskDispatch(c, {
              ...sel.call(this.pol, l),
              mask: this.kv.masks!,
              ctx: this.kv.ctx,
              base: l * this.kv.slots * words,
            }),
        ),
      ];
      p = { set, embed: [], layers, out: [] };
      this.plans.set(key, p);
    }
    return p.layers[0];
  }

  /**
   * The dispatches rebuilding K and V of the recompute scratch's tokens at
   * layer `l` with the forward pass's own kernels (`qkvDispatches`):
   * K = RoPE(norm(Wk RMSNorm(x) + bk)), V = Wv RMSNorm(x) + bv, stored
   * into their rows.
   */
  private rcPlan(l: number): Dispatch[] {
    const key = `rc.${l}`;
    let p = this.plans.get(key);
    if (!p) {
      const rc = this.kv.rc!, c = this.config, L = this.w.layers[l];
      const set = this.set.child(`plan.${key}`);
      const ctx: OpContext = { gpu: this.gpu, set, sb: rc.sb };
      const layers = [[
        rmsnormDispatch(ctx, {
          x: rc.x,
          y: rc.xn,
          weight: L.attnNorm,
          dim: c.dim,
          eps: c.normEps,
        }),
        ...this.qkvDispatches(ctx, l, rc.xn, { k: rc.k, v: rc.v }, 4),
        kvStoreDispatch(ctx, {
          k: rc.k,
          v: rc.v,
          kv: this.kv.bindings(l),
          kvDim: c.nKvHeads * c.headDim,
        }),
      ]];
      p = { set, embed: [], layers, out: [] };
      this.plans.set(key, p);
    }
    return p.layers[0];
  }

  /**
   * After prefilling slots (`lengths[i]` prompt tokens in slot `slots[i]`),
   * seeds the policy from the prompt's last attention rows (SWA) and
   * chooses the first decode step's sets (read back by a tiered store). A
   * no-op for the other policies.
   */
  async seedPolicy(slots: number[], lengths: number[]): Promise<void> {
    if (this.pol.timing !== "ahead" || slots.length === 0) return;
    const toks = slots.map((slot, i) => ({
      slot,
      pos: lengths[i],
      id: 0,
      kvLen: lengths[i],
    }));
    writeStep(this.gpu, this.sb, toks, [], { decode: false });
    const key = "seed";
    let p = this.plans.get(key);
    if (!p) {
      const set = this.set.child(`plan.${key}`);
      p = {
        set,
        embed: [],
        layers: [this.pol.seed({ gpu: this.gpu, set, sb: this.sb })],
        out: [],
      };
      this.plans.set(key, p);
    }
    const enc = this.gpu.device.createCommandEncoder();
    encodePlan(
      enc,
      [...p.layers[0], ...this.selectPlan(true), ...this.masksPlan()],
      toks.length,
      0,
    );
    this.pol.chosen(toks, true);
    this.pol.seeded(slots);
    if (this.tiered) {
      await this.tiered.readMasks(enc);
    } else {
      this.gpu.device.queue.submit([enc.finish()]);
      await this.gpu.device.queue.onSubmittedWorkDone();
    }
    this.gpu.check();
  }

  /**
   * Runs a step and returns the argmax token of each output row: one u32
   * per row comes back, not the logits.
   */
  async stepArgmax(
    tokens: StepToken[],
    outRows: number[],
    /** Decode step (KV policy applies); default: a single token. */
    decode: boolean = tokens.length === 1,
  ): Promise<Uint32Array> {
    return (await this.run(tokens, outRows, decode, { ids: true })).ids!;
  }

  /** Runs a step and returns the logits of the output rows, (n_out, vocab). */
  async stepLogits(
    tokens: StepToken[],
    outRows: number[],
    /** Decode step (KV policy applies); default: a single token. */
    decode: boolean = tokens.length === 1,
  ): Promise<Float32Array> {
    return (await this.run(tokens, outRows, decode, { logits: true })).logits!;
  }

  /**
   * GPU time of every dispatch of one step (timestamp queries), for
   * benchmarks.
   */
  async profileStep(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean = tokens.length === 1,
  ): Promise<{ label: string; ms: number }[]> {
    const run = this.prepare(tokens, outRows, decode);
    return await profilePlan(this.gpu, run, tokens.length, outRows.length);
  }

  /**
   * Teacher-forced scoring: each window decodes in its own KV slot, one
   * position per step, under the current KV policy, exactly as generation
   * would (position i attends the set decoding picks with n = i + 1). All
   * steps are queued without waiting; per position the negative log
   * likelihood of the next token and the argmax come back at the end.
   */
  async scoreWindows(
    windows: number[][],
  ): Promise<{ nll: Float32Array[]; top: Uint32Array[] }> {
    const B = windows.length;
    if (B === 0) return { nll: [], top: [] };
    if (B > this.kv.slots || B > this.maxOut) {
      throw new RangeError(
        `scoring ${B} windows at once needs maxBatch >= ${B} (it is ${this.kv.slots})`,
      );
    }
    for (const w of windows) {
      if (w.length < 2 || w.length > this.kv.ctx) {
        throw new RangeError(
          `a window must have 2 to ${this.kv.ctx} tokens, got ${w.length}`,
        );
      }
    }
    // Fresh sequences in slots 0 .. B-1, under a KV budget checked and
    // planned like a run of B one-token prompts decoding to their ends.
    const maxLen = Math.max(...windows.map((w) => w.length));
    this.kv.planRun(this.pol.spec, windows.map(() => 1), maxLen - 1);
    const total = windows.reduce((a, w) => a + w.length - 1, 0);
    const set = this.set.child("score");
    const nllBuf = set.buffer("nll", total * 4);
    const topBuf = set.buffer("top", total * 4);
    const targets = set.buffer("targets", B * 4);
    const nll = nllDispatch({ gpu: this.gpu, set, sb: this.sb }, {
      logits: this.s.logits,
      targets,
      nll: nllBuf,
      top: topBuf,
      vocab: this.config.vocabSize,
    });
    // Run row of (window i, position t): steps in order, live windows in order.
    const where: [number, number][] = [];
    try {
      for (let t = 0; t < maxLen - 1; t++) {
        const live = windows.flatMap((w, i) => (t < w.length - 1 ? [i] : []));
        const toks = live.map((i) => ({ slot: i, pos: t, id: windows[i][t] }));
        this.gpu.device.queue.writeBuffer(
          targets,
          0,
          new Uint32Array(live.map((i) => windows[i][t + 1])),
        );
        const score = (enc: GPUCommandEncoder) =>
          encodePlan(enc, [nll], toks.length, toks.length);
        const rows = toks.map((_, r) => r);
        if (this.kv.tiered) {
          await this.run(toks, rows, true, {}, score, where.length);
        } else {
          this.submit(toks, rows, true, score, where.length);
        }
        for (const i of live) where.push([i, t]);
        // Let the queue drain now and then, so pending work stays bounded.
        if (t % 64 === 63) await this.gpu.device.queue.onSubmittedWorkDone();
      }
      const nllAll = new Float32Array(await this.gpu.read(nllBuf, total * 4));
      const topAll = new Uint32Array(await this.gpu.read(topBuf, total * 4));
      this.gpu.check();
      const outN = windows.map((w) => new Float32Array(w.length - 1));
      const outT = windows.map((w) => new Uint32Array(w.length - 1));
      where.forEach(([i, t], r) => {
        outN[i][t] = nllAll[r];
        outT[i][t] = topAll[r];
      });
      return { nll: outN, top: outT };
    } finally {
      set.destroy();
    }
  }

  /**
   * For tests: runs a step like `stepArgmax` and copies, right after layer
   * `layer`'s attention (and the policy's update that follows it), the
   * positions each token attended (`sel`, `selN`: for swa (tokens, ctx)
   * and (tokens,), shared by the heads; for h2o and recorded static sets
   * (tokens, heads, ctx) and (tokens, heads)) and the attention weights
   * `att` (tokens, heads, ctx), entry j of a token's set at index j.
   */
  async stepCapture(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean,
    layer: number,
  ): Promise<
    { ids: Uint32Array; sel: Uint32Array; selN: Uint32Array; att: Float32Array }
  > {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.config.nLayers) {
      throw new RangeError(`no layer ${layer}`);
    }
    if (this.kv.tiered) {
      throw new TypeError(
        "stepCapture runs on a store without a GPU KV budget",
      );
    }
    const run = this.prepare(tokens, outRows, decode);
    const at = run.findIndex((d) => d.label === `attention.${layer}`);
    const after = run.findIndex((d, i) =>
      i > at && !/^(score_swa|accum_h2o)/.test(d.label)
    );
    const cut = after < 0 ? run.length : after;
    const pb = this.pol.bindings(layer);
    const src = [pb[11], pb[12], this.s.att];
    const set = this.set.child("capture");
    try {
      const copies = src.map((b, i) =>
        set.raw(
          `copy${i}`,
          b.size,
          GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        )
      );
      const enc = this.gpu.device.createCommandEncoder();
      encodePlan(enc, run.slice(0, cut), tokens.length, outRows.length);
      src.forEach((b, i) => enc.copyBufferToBuffer(b, 0, copies[i], 0, b.size));
      encodePlan(enc, run.slice(cut), tokens.length, outRows.length);
      enc.copyBufferToBuffer(
        this.s.ids,
        0,
        this.s.idsRead,
        0,
        Math.max(16, Math.ceil(outRows.length / 4) * 16),
      );
      this.gpu.device.queue.submit([enc.finish()]);
      const [sel, selN, att] = await Promise.all(
        copies.map((b) => this.gpu.read(b)),
      );
      await this.gpu.mapOrLost(this.s.idsRead);
      const ids = new Uint32Array(
        this.s.idsRead.getMappedRange().slice(0, outRows.length * 4),
      );
      this.s.idsRead.unmap();
      let selU = new Uint32Array(sel), selNU = new Uint32Array(selN);
      if (this.pol.timing === "ahead") {
        // swa keeps one set per slot: list them per token.
        const ctx = this.kv.ctx;
        const bySlot = selU, nBySlot = selNU;
        selU = new Uint32Array(tokens.length * ctx);
        selNU = new Uint32Array(tokens.length);
        tokens.forEach((t, i) => {
          selU.set(bySlot.subarray(t.slot * ctx, (t.slot + 1) * ctx), i * ctx);
          selNU[i] = nBySlot[t.slot];
        });
      }
      return { ids, sel: selU, selN: selNU, att: new Float32Array(att) };
    } finally {
      set.destroy();
    }
  }

  /** GPU bytes held: weights, KV store, policy state, run state and plans. */
  get gpuBytes(): number {
    return this.set.bytes;
  }

  /** Frees every GPU buffer of the model. */
  dispose(): void {
    this.plans.clear();
    this.set.destroy();
  }
}
