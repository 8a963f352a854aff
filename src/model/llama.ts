/**
 * The Llama-family forward pass on WebGPU. Config, weights and run state
 * are kept apart, as in llama2.c: the weights are uploaded once in their
 * stored type, the run state is a fixed set of activation buffers sized for
 * one step, and a step (any mix of prefill and decode tokens of several
 * sequences) is one command buffer running the same plan of dispatches.
 *
 * Per layer, for the step's n tokens (shapes in elements):
 *
 *     xn   = RMSNorm(x) * attn_norm               (n, dim)
 *     q    = Wq xn, k = Wk xn, v = Wv xn           (n, q_dim), (n, kv_dim) x2
 *     q, k = RoPE(q, k) at each token's position
 *     cache[slot, pos] = k, v                      (f16)
 *     o    = softmax(q K^T / sqrt(hd)) V           (n, q_dim), causal, GQA
 *     x   += Wo o
 *     xn   = RMSNorm(x) * ffn_norm
 *     h    = silu(Wgate xn) * (Wup xn)             (n, ffn_dim)
 *     x   += Wdown h
 *
 * then logits = Wout RMSNorm(x) for the output rows only, and argmax.
 *
 * @module
 */
import type { ModelConfig } from "../formats/config.ts";
import type { Gpu } from "../gpu/device.ts";
import {
  accumH2oDispatch,
  argmaxDispatch,
  attentionDispatch,
  type Dispatch,
  embedDispatches,
  encodePlan,
  kvStoreDispatch,
  matmulDispatches,
  nllDispatch,
  type PolicyBuffers,
  profilePlan,
  rmsnormDispatch,
  ropeDispatch,
  ropeTable,
  scoreSwaDispatch,
  seedSwaDispatch,
  selectH2oDispatch,
  selectSwaDispatch,
  siluMulDispatch,
  type StepBuffers,
  type StepToken,
  writeStep,
} from "../gpu/ops.ts";
import type { GpuWeightType } from "../gpu/shaders.ts";
import { destroyWeight, type GpuWeight, uploadWeight } from "../gpu/weights.ts";
import type { ModelFile } from "../formats/model_file.ts";
import { KvCache } from "../kv/kv_cache.ts";
import { PlanCache, withTransientDispatches } from "./plan_cache.ts";
import { checkEngineOptions, checkPolicyState } from "./limits.ts";
import {
  checkSparsity,
  POLICY_ID,
  POLICY_NAMES,
  type PolicySpec,
} from "../sparse/spec.ts";

/** Per-layer state of the sparse policies (allocated when first used). */
interface PolicyState {
  /** SWA: running window score S, (slots, ctx) f32 per layer. */
  swaScore?: GPUBuffer[];
  /** SWA: ring of score rows, (slots, ring, ctx) f32 per layer. */
  swaRows?: GPUBuffer[];
  /** H2O: accumulated scores A, (slots, heads, ctx) f32 per layer. */
  h2oAcc?: GPUBuffer[];
  /** H2O: kept flags, (slots, heads, ctx) u32 per layer. */
  h2oKept?: GPUBuffer[];
}

function withLabel(label: string, d: Dispatch): Dispatch {
  return { ...d, label };
}

/** One layer's weights. */
interface LayerWeights {
  attnNorm: GPUBuffer; // (dim,) f32
  wq: GpuWeight; // (q_dim, dim)
  wk: GpuWeight; // (kv_dim, dim)
  wv: GpuWeight; // (kv_dim, dim)
  wo: GpuWeight; // (dim, q_dim)
  ffnNorm: GPUBuffer; // (dim,) f32
  wGate: GpuWeight; // (ffn_dim, dim)
  wUp: GpuWeight; // (ffn_dim, dim)
  wDown: GpuWeight; // (dim, ffn_dim)
}

/** All weights on the GPU. */
interface Weights {
  tokenEmbd: GpuWeight; // (vocab, dim)
  layers: LayerWeights[];
  outputNorm: GPUBuffer; // (dim,) f32
  output: GpuWeight; // (vocab, dim); the embedding when tied
  ropeTable: GPUBuffer; // (ctx, rope_dim / 2) of (cos, sin)
}

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
}

/** Options for {@linkcode LlamaModel.load}. */
export interface LlamaLoadOptions {
  /** Sequences decoded at once (KV slots), default 1. */
  maxBatch?: number;
  /** Positions per sequence, default the model's context length. */
  contextLength?: number;
  /** Tokens per step (prefill chunk), default 512 (fewer when the attention weights of a step would not fit one binding). */
  maxStepTokens?: number;
  /** Called after each tensor is uploaded. */
  onProgress?: (p: { loaded: number; total: number; tensor: string }) => void;
}

function gpuTypeOf(stored: string): GpuWeightType | null {
  return stored === "F32"
    ? "f32"
    : stored === "F16"
    ? "f16"
    : stored === "Q8_0"
    ? "q8_0"
    : null;
}

/** A Llama-family model on the GPU. */
export class LlamaModel {
  private readonly sb: StepBuffers;
  private readonly pb: PolicyBuffers;
  private readonly plans = new PlanCache();
  private readonly ps: PolicyState = {};
  /** The KV policy decode steps use (default dense). */
  private spec: Required<PolicySpec> = {
    name: "dense",
    sparsity: 0,
    minBudget: 0,
  };
  /** SWA score rows kept per slot: at least the largest window k + 1. */
  private ring = 0;

  private constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    private readonly w: Weights,
    private readonly s: RunState,
    readonly kv: KvCache,
    /** Most tokens in one step. */
    readonly maxStepTokens: number,
    /** Most output (logit) rows in one step. */
    readonly maxOut: number,
  ) {
    this.sb = {
      step: gpu.buffer("step", 16 + maxStepTokens * 16),
      outRows: gpu.buffer("out_rows", maxStepTokens * 4),
    };
    this.pb = {
      policy: gpu.uniform("policy", new Uint32Array(8)),
      sel: gpu.buffer("sel", maxStepTokens * config.nHeads * kv.ctx * 4),
      selN: gpu.buffer("sel_n", maxStepTokens * config.nHeads * 4),
    };
    this.writePolicy();
  }

  /** The KV policy of decode steps. */
  get policy(): Readonly<Required<PolicySpec>> {
    return this.spec;
  }

  /**
   * Selects the KV policy for decode steps (prefill is always dense).
   * RangeError for a sparsity outside [0, 1) or a negative minBudget,
   * TypeError for an unknown name.
   */
  setPolicy(spec: PolicySpec): void {
    if (!(POLICY_NAMES as readonly string[]).includes(spec.name)) {
      throw new TypeError(
        `unknown KV policy ${JSON.stringify(spec.name)} (known: ${
          POLICY_NAMES.join(", ")
        })`,
      );
    }
    checkSparsity(spec.sparsity);
    const minBudget = spec.minBudget ?? 0;
    if (
      !Number.isInteger(minBudget) || minBudget < 0 || minBudget > this.kv.ctx
    ) {
      throw new RangeError(
        `minBudget must be an integer in [0, ${this.kv.ctx}], got ${spec.minBudget}`,
      );
    }
    checkPolicyState(
      this.config,
      this.kv,
      { ...spec, minBudget },
      this.gpu.limits,
    );
    this.spec = { name: spec.name, sparsity: spec.sparsity, minBudget };
    this.ensurePolicyState();
    this.writePolicy();
  }

  /** Tests: make attention record the arithmetic policies' sets in `sel`. */
  recordSelections = false;

  private writePolicy(): void {
    const a = new ArrayBuffer(32);
    const u = new Uint32Array(a);
    u[4] = this.recordSelections ? 1 : 0;
    u[0] = POLICY_ID[this.spec.name];
    new Float32Array(a)[1] = 1 - this.spec.sparsity;
    u[2] = Math.ceil(this.spec.minBudget / 2);
    u[3] = this.ring;
    this.gpu.device.queue.writeBuffer(this.pb.policy, 0, a);
  }

  private ensurePolicyState(): void {
    const { gpu, config: c, kv } = this;
    const perLayer = (name: string, bytes: number) =>
      Array.from(
        { length: c.nLayers },
        (_, l) => gpu.buffer(`${name}.${l}`, bytes),
      );
    // k <= ceil(ctx / 2) + ceil(minBudget / 2); the ring holds k + 1 rows.
    const ring = Math.ceil(kv.ctx / 2) + Math.ceil(this.spec.minBudget / 2) + 2;
    if (this.spec.name === "swa" && (!this.ps.swaScore || ring > this.ring)) {
      for (
        const b of [...(this.ps.swaScore ?? []), ...(this.ps.swaRows ?? [])]
      ) b.destroy();
      this.plans.drop("swa|");
      this.ring = ring;
      this.ps.swaScore = perLayer("swa_score", kv.slots * kv.ctx * 4);
      this.ps.swaRows = perLayer("swa_rows", kv.slots * ring * kv.ctx * 4);
    }
    if (this.spec.name === "h2o" && !this.ps.h2oAcc) {
      this.ps.h2oAcc = perLayer("h2o_acc", kv.slots * c.nHeads * kv.ctx * 4);
      this.ps.h2oKept = perLayer("h2o_kept", kv.slots * c.nHeads * kv.ctx * 4);
    }
  }

  /** The plan for a step: decode (policy applies) or prefill, `tt` tokens per weight read. */
  private plan(decode: boolean, nTokens: number): Dispatch[] {
    const tt = nTokens > 1 ? 4 : 1;
    const key = `${this.spec.name}|${decode}|${tt}`;
    return this.plans.get(this.gpu, key, () => this.buildPlan(tt, decode));
  }

  /** Uploads `file`'s weights and allocates the KV cache and run state. */
  static async load(
    gpu: Gpu,
    file: ModelFile,
    o: LlamaLoadOptions = {},
  ): Promise<LlamaModel> {
    checkEngineOptions(file.config, o, gpu.limits);
    const c = file.config;
    if (c.attnBias) {
      throw new TypeError(
        `Cannot load model ${file.name}: Q/K/V biases (${c.arch}) are not supported by the GPU engine yet`,
      );
    }
    if (c.ropeDim !== c.headDim) {
      throw new TypeError(
        `Cannot load model ${file.name}: partial RoPE is not supported yet`,
      );
    }
    if (c.headDim > 256 || c.headDim % 2) {
      throw new TypeError(
        `Cannot load model ${file.name}: head dimension ${c.headDim} is not supported (even, at most 256)`,
      );
    }
    const ctx = o.contextLength ?? c.contextLength;
    const maxBatch = o.maxBatch ?? 1;
    const total = file.tensors.length;
    let loaded = 0;
    const progress = (tensor: string) =>
      o.onProgress?.({ loaded: ++loaded, total, tensor });

    const matrix = async (name: string): Promise<GpuWeight> => {
      const t = file.tensor(name);
      const [rows, cols] = t.shape;
      const type = gpuTypeOf(t.type);
      let w: GpuWeight;
      if (type === "f32") {
        w = uploadWeight(
          gpu,
          name,
          "f32",
          rows,
          cols,
          await file.read(name, "f32") as Float32Array,
        );
      } else if (type === "f16") {
        w = uploadWeight(
          gpu,
          name,
          "f16",
          rows,
          cols,
          await file.read(name, "f16") as Uint16Array,
        );
      } else if (type === "q8_0") {
        w = uploadWeight(
          gpu,
          name,
          "q8_0",
          rows,
          cols,
          await file.readRaw(name),
        );
      } else {
        // Types without a shader yet are dequantized to f16 at upload.
        w = uploadWeight(
          gpu,
          name,
          "f16",
          rows,
          cols,
          await file.read(name, "f16") as Uint16Array,
        );
      }
      progress(name);
      return w;
    };
    const vector = async (name: string): Promise<GPUBuffer> => {
      const v = await file.read(name, "f32") as Float32Array;
      progress(name);
      return gpu.buffer(name, v.byteLength, v);
    };

    const tokenEmbd = await matrix("token_embd.weight");
    const layers: LayerWeights[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const b = `blk.${l}.`;
      layers.push({
        attnNorm: await vector(`${b}attn_norm.weight`),
        wq: await matrix(`${b}attn_q.weight`),
        wk: await matrix(`${b}attn_k.weight`),
        wv: await matrix(`${b}attn_v.weight`),
        wo: await matrix(`${b}attn_output.weight`),
        ffnNorm: await vector(`${b}ffn_norm.weight`),
        wGate: await matrix(`${b}ffn_gate.weight`),
        wUp: await matrix(`${b}ffn_up.weight`),
        wDown: await matrix(`${b}ffn_down.weight`),
      });
    }
    const outputNorm = await vector("output_norm.weight");
    const output = c.tiedEmbeddings ? tokenEmbd : await matrix("output.weight");
    const table = ropeTable(ctx, c.ropeDim, c.ropeTheta);
    const w: Weights = {
      tokenEmbd,
      layers,
      outputNorm,
      output,
      ropeTable: gpu.buffer("rope_table", table.byteLength, table),
    };

    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
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
    const f = (name: string, elems: number) => gpu.buffer(name, elems * 4);
    const T = maxStepTokens;
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
      idsRead: gpu.device.createBuffer({
        label: "ids_read",
        size: Math.max(16, maxOut * 4),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
    };
    const kv = new KvCache(gpu, c.nLayers, maxBatch, ctx, kvDim);
    await gpu.device.queue.onSubmittedWorkDone();
    gpu.check();
    return new LlamaModel(
      gpu,
      { ...c, contextLength: ctx },
      w,
      s,
      kv,
      maxStepTokens,
      maxOut,
    );
  }

  /** The dispatches of one step; `tt` tokens share each weight read. */
  private buildPlan(tt: number, decode: boolean): Dispatch[] {
    const { gpu, sb, pb, config: c, w, s, kv, ps } = this;
    const policy = this.spec.name;
    const kvDim = c.nKvHeads * c.headDim;
    const mm = (
      weight: GpuWeight,
      x: GPUBuffer,
      y: GPUBuffer,
      accumulate = false,
    ) =>
      matmulDispatches(gpu, sb, {
        weight,
        x,
        y,
        xStride: weight.cols,
        yStride: weight.rows,
        accumulate,
        tokensPerGroup: tt,
      });
    const rope = (v: GPUBuffer, nHeads: number) =>
      ropeDispatch(gpu, sb, {
        v,
        table: w.ropeTable,
        nHeads,
        headDim: c.headDim,
        ropeDim: c.ropeDim,
        maxPos: kv.ctx,
        interleaved: c.ropeLayout === "interleaved",
      });
    const plan: Dispatch[] = [
      ...embedDispatches(gpu, sb, { weight: w.tokenEmbd, x: s.x }),
    ];
    w.layers.forEach((L, l) => {
      plan.push(
        rmsnormDispatch(gpu, sb, {
          x: s.x,
          y: s.xn,
          weight: L.attnNorm,
          dim: c.dim,
          eps: c.normEps,
        }),
        ...mm(L.wq, s.xn, s.q),
        ...mm(L.wk, s.xn, s.k),
        ...mm(L.wv, s.xn, s.v),
        rope(s.q, c.nHeads),
        rope(s.k, c.nKvHeads),
        kvStoreDispatch(gpu, sb, {
          k: s.k,
          v: s.v,
          kCache: kv.layers[l].k,
          vCache: kv.layers[l].v,
          kvDim,
          ctx: kv.ctx,
        }),
      );
      if (decode && policy === "swa") {
        plan.push(
          selectSwaDispatch(gpu, sb, pb, {
            score: ps.swaScore![l],
            ctx: kv.ctx,
          }),
        );
      }
      if (decode && policy === "h2o") {
        plan.push(
          selectH2oDispatch(gpu, sb, pb, {
            acc: ps.h2oAcc![l],
            kept: ps.h2oKept![l],
            ctx: kv.ctx,
            nHeads: c.nHeads,
          }),
        );
      }
      plan.push(
        withLabel(
          `attention.${l}`,
          attentionDispatch(gpu, sb, pb, {
            q: s.q,
            out: s.o,
            kCache: kv.layers[l].k,
            vCache: kv.layers[l].v,
            att: s.att,
            nHeads: c.nHeads,
            nKvHeads: c.nKvHeads,
            headDim: c.headDim,
            ctx: kv.ctx,
          }),
        ),
      );
      if (policy === "swa") {
        plan.push(
          scoreSwaDispatch(gpu, sb, pb, {
            att: s.att,
            score: ps.swaScore![l],
            rows: ps.swaRows![l],
            ctx: kv.ctx,
            nHeads: c.nHeads,
          }),
        );
      }
      if (policy === "h2o") {
        plan.push(
          accumH2oDispatch(gpu, sb, pb, {
            att: s.att,
            acc: ps.h2oAcc![l],
            kept: ps.h2oKept![l],
            ctx: kv.ctx,
            nHeads: c.nHeads,
          }),
        );
      }
      plan.push(
        ...mm(L.wo, s.o, s.x, true),
        rmsnormDispatch(gpu, sb, {
          x: s.x,
          y: s.xn,
          weight: L.ffnNorm,
          dim: c.dim,
          eps: c.normEps,
        }),
        ...mm(L.wGate, s.xn, s.gate),
        ...mm(L.wUp, s.xn, s.up),
        siluMulDispatch(gpu, sb, { gate: s.gate, up: s.up, width: c.ffnDim }),
        ...mm(L.wDown, s.up, s.x, true),
      );
    });
    plan.push(
      rmsnormDispatch(gpu, sb, {
        x: s.x,
        y: s.xo,
        weight: w.outputNorm,
        dim: c.dim,
        eps: c.normEps,
        gather: true,
      }),
      ...matmulDispatches(gpu, sb, {
        weight: w.output,
        x: s.xo,
        y: s.logits,
        xStride: c.dim,
        yStride: c.vocabSize,
        outRowsOnly: true,
        tokensPerGroup: tt,
      }),
      argmaxDispatch(gpu, sb, {
        logits: s.logits,
        ids: s.ids,
        vocab: c.vocabSize,
      }),
    );
    return plan;
  }

  /** Checks a step's tokens against the vocabulary and the cache. */
  private checkStep(tokens: StepToken[], outRows: number[]): void {
    if (tokens.length === 0 || tokens.length > this.maxStepTokens) {
      throw new RangeError(
        `A step takes 1 to ${this.maxStepTokens} tokens, got ${tokens.length}`,
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
      if (t.pos >= this.kv.ctx) {
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
   * Encodes and submits one step; the caller reads results. `decode`:
   * every token is its sequence's next token and the KV policy applies;
   * otherwise the step is (part of) a dense prefill.
   */
  private submit(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean,
    extra?: (enc: GPUCommandEncoder) => void,
    outOffset = 0,
  ): void {
    this.gpu.check();
    this.checkStep(tokens, outRows);
    writeStep(this.gpu, this.sb, tokens, outRows, decode, outOffset);
    const enc = this.gpu.device.createCommandEncoder();
    encodePlan(
      enc,
      this.plan(decode, tokens.length),
      tokens.length,
      outRows.length,
    );
    extra?.(enc);
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /**
   * After prefilling slots (`lengths[i]` prompt tokens in slot `slots[i]`),
   * seeds the SWA scores from the prompt's last attention rows. A no-op
   * for the other policies.
   */
  async seedPolicy(slots: number[], lengths: number[]): Promise<void> {
    if (this.spec.name !== "swa" || slots.length === 0) return;
    const toks = slots.map((slot, i) => ({
      slot,
      pos: lengths[i],
      id: 0,
      kvLen: lengths[i],
    }));
    writeStep(this.gpu, this.sb, toks, [], false);
    await withTransientDispatches(
      this.gpu,
      () =>
        this.ps.swaScore!.map((score, l) =>
          seedSwaDispatch(this.gpu, this.sb, this.pb, {
            score,
            rows: this.ps.swaRows![l],
            ctx: this.kv.ctx,
          })
        ),
      async (plan) => {
        const enc = this.gpu.device.createCommandEncoder();
        encodePlan(enc, plan, toks.length, 0);
        this.gpu.device.queue.submit([enc.finish()]);
        await this.gpu.device.queue.onSubmittedWorkDone();
      },
    );
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
    const n = outRows.length;
    this.submit(tokens, outRows, decode, (enc) => {
      if (n) {
        enc.copyBufferToBuffer(
          this.s.ids,
          0,
          this.s.idsRead,
          0,
          Math.ceil(n / 4) * 16,
        );
      }
    });
    if (!n) {
      await this.gpu.device.queue.onSubmittedWorkDone();
      this.gpu.check();
      return new Uint32Array(0);
    }
    await this.gpu.mapOrLost(this.s.idsRead);
    const ids = new Uint32Array(
      this.s.idsRead.getMappedRange().slice(0, n * 4),
    );
    this.s.idsRead.unmap();
    this.gpu.check();
    return ids;
  }

  /** Runs a step and returns the logits of the output rows, (n_out, vocab). */
  async stepLogits(
    tokens: StepToken[],
    outRows: number[],
    /** Decode step (KV policy applies); default: a single token. */
    decode: boolean = tokens.length === 1,
  ): Promise<Float32Array> {
    this.submit(tokens, outRows, decode);
    const out = new Float32Array(
      await this.gpu.read(
        this.s.logits,
        outRows.length * this.config.vocabSize * 4,
      ),
    );
    this.gpu.check();
    return out;
  }

  /**
   * GPU time of every dispatch of one step (timestamp queries), for
   * benchmarks: the step's table must have been written by a previous step
   * or `prepare`.
   */
  async profileStep(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean = tokens.length === 1,
  ): Promise<{ label: string; ms: number }[]> {
    this.checkStep(tokens, outRows);
    writeStep(this.gpu, this.sb, tokens, outRows, decode);
    return await profilePlan(
      this.gpu,
      this.plan(decode, tokens.length),
      tokens.length,
      outRows.length,
    );
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
    const total = windows.reduce((a, w) => a + w.length - 1, 0);
    const nllBuf = this.gpu.buffer("score.nll", total * 4);
    const topBuf = this.gpu.buffer("score.top", total * 4);
    const targets = this.gpu.buffer("score.targets", B * 4);
    const { value: nll, uniforms } = this.gpu.collectUniforms(() =>
      nllDispatch(this.gpu, this.sb, {
        logits: this.s.logits,
        targets,
        nll: nllBuf,
        top: topBuf,
        vocab: this.config.vocabSize,
      })
    );
    // Run row of (window i, position t): steps in order, live windows in order.
    const where: [number, number][] = [];
    const maxLen = Math.max(...windows.map((w) => w.length));
    try {
      for (let t = 0; t < maxLen - 1; t++) {
        const live = windows.flatMap((w, i) => (t < w.length - 1 ? [i] : []));
        const toks = live.map((i) => ({ slot: i, pos: t, id: windows[i][t] }));
        this.gpu.device.queue.writeBuffer(
          targets,
          0,
          new Uint32Array(live.map((i) => windows[i][t + 1])),
        );
        this.submit(
          toks,
          toks.map((_, r) => r),
          true,
          (enc) => encodePlan(enc, [nll], toks.length, toks.length),
          where.length,
        );
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
      nllBuf.destroy();
      topBuf.destroy();
      targets.destroy();
      for (const b of uniforms) b.destroy();
    }
  }

  /**
   * For tests: runs a step like `stepArgmax` and copies, right after layer
   * `layer`'s attention, the positions each token attended (`sel`, `selN`,
   * meaningful for swa/h2o decode steps) and the attention weights `att`
   * (tokens, heads, ctx), entry j of a token's set at index j.
   */
  async stepCapture(
    tokens: StepToken[],
    outRows: number[],
    decode: boolean,
    layer: number,
  ): Promise<
    { ids: Uint32Array; sel: Uint32Array; selN: Uint32Array; att: Float32Array }
  > {
    const plan = this.plan(decode, tokens.length);
    const at = plan.findIndex((d) => d.label === `attention.${layer}`);
    if (at < 0) throw new RangeError(`no layer ${layer}`);
    // The policy's own update for that layer runs before the copy too.
    const cut = plan[at + 1]?.label.startsWith("score_swa") ||
        plan[at + 1]?.label.startsWith("accum_h2o")
      ? at + 2
      : at + 1;
    const copies = [this.pb.sel, this.pb.selN, this.s.att].map((b) =>
      this.gpu.device.createBuffer({
        size: b.size,
        usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      })
    );
    this.gpu.check();
    this.checkStep(tokens, outRows);
    writeStep(this.gpu, this.sb, tokens, outRows, decode);
    const enc = this.gpu.device.createCommandEncoder();
    encodePlan(enc, plan.slice(0, cut), tokens.length, outRows.length);
    [this.pb.sel, this.pb.selN, this.s.att].forEach((b, i) =>
      enc.copyBufferToBuffer(b, 0, copies[i], 0, b.size)
    );
    encodePlan(enc, plan.slice(cut), tokens.length, outRows.length);
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
    for (const b of copies) b.destroy();
    return {
      ids,
      sel: new Uint32Array(sel),
      selN: new Uint32Array(selN),
      att: new Float32Array(att),
    };
  }

  /** GPU bytes held: weights, KV cache and run state. */
  get gpuBytes(): number {
    const ws = [
      this.w.tokenEmbd,
      ...(this.w.output !== this.w.tokenEmbd ? [this.w.output] : []),
    ];
    let n = ws.reduce((a, w) => a + w.bytes, 0) + this.w.outputNorm.size +
      this.w.ropeTable.size;
    for (const L of this.w.layers) {
      n += L.attnNorm.size + L.ffnNorm.size;
      for (const m of [L.wq, L.wk, L.wv, L.wo, L.wGate, L.wUp, L.wDown]) {
        n += m.bytes;
      }
    }
    for (const b of Object.values(this.s)) n += (b as GPUBuffer).size;
    for (const b of [this.pb.policy, this.pb.sel, this.pb.selN]) n += b.size;
    for (const list of Object.values(this.ps)) {
      for (const b of list as GPUBuffer[]) {
        n += b.size;
      }
    }
    return n + this.kv.bytes + this.sb.step.size + this.sb.outRows.size;
  }

  /** Frees every GPU buffer of the model. */
  dispose(): void {
    destroyWeight(this.w.tokenEmbd);
    if (this.w.output !== this.w.tokenEmbd) destroyWeight(this.w.output);
    for (const L of this.w.layers) {
      L.attnNorm.destroy();
      L.ffnNorm.destroy();
      for (const m of [L.wq, L.wk, L.wv, L.wo, L.wGate, L.wUp, L.wDown]) {
        destroyWeight(m);
      }
    }
    this.w.outputNorm.destroy();
    this.w.ropeTable.destroy();
    for (const b of Object.values(this.s)) (b as GPUBuffer).destroy();
    this.kv.destroy();
    this.sb.step.destroy();
    this.sb.outRows.destroy();
    for (const b of [this.pb.policy, this.pb.sel, this.pb.selN]) b.destroy();
    for (const list of Object.values(this.ps)) {
      for (const b of list as GPUBuffer[]) {
        b.destroy();
      }
    }
    this.plans.drop();
  }
}
