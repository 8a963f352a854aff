/**
 * Builders for single GPU dispatches. Each returns a {@linkcode Dispatch}:
 * a pipeline, a bind group and a grid that depends only on the step's token
 * counts, so a model builds its whole plan once and a step only writes the
 * step table and encodes the plan.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { type GpuWeightType, type OpName, shaderSource } from "./shaders.ts";
import type { GpuWeight } from "./weights.ts";

/** One compute dispatch of a plan. */
export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** Workgroups for a step of `nTokens` tokens with `nOut` output rows. */
  grid(nTokens: number, nOut: number): [number, number, number];
}

/** The buffers every dispatch of a model shares. */
export interface StepBuffers {
  /** Step header + (n_tokens,) TokInfo; see shaders/common.wgsl. */
  step: GPUBuffer;
  /** (n_out,) row index of each output token. */
  outRows: GPUBuffer;
}

/** The KV policy's shared buffers (shaders/sparse/policy.wgsl). */
export interface PolicyBuffers {
  /** Policy uniform: id, r, min_k, ring. */
  policy: GPUBuffer;
  /** Selected positions: (tokens, heads, ctx) for h2o, (tokens, ctx) for swa. */
  sel: GPUBuffer;
  /** Their counts: (tokens, heads) or (tokens,). */
  selN: GPUBuffer;
}

const MAX_WG_PER_DIM = 65535;

function pipe(
  gpu: Gpu,
  op: OpName,
  weight: GpuWeightType | undefined,
  overrides: Record<string, number>,
) {
  const { name, code } = shaderSource(op, weight);
  return gpu.pipeline(name, code, overrides);
}

function bind(
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

function u32s(...v: number[]): Uint32Array {
  const a = new Uint32Array(Math.max(4, Math.ceil(v.length / 4) * 4));
  a.set(v);
  return a;
}

/**
 * Threads per output row for a matmul with `cols` inputs. A software
 * rasterizer (Mesa's llvmpipe) runs workgroup barriers as coroutine
 * switches, so there one thread per row is fastest (measured: 7x on the
 * Austen decode step); GPUs want many threads sharing a row's reads.
 */
export function threadsPerRow(cols: number, software = false): number {
  if (software) return 1;
  let t = 4;
  while (t < 64 && t * 16 <= cols) t *= 2;
  return t;
}

/**
 * y[t, rowOffset + r] (+)= W x[t] for every part of W. `gather`: token t
 * reads x row outRows[t] and only n_out tokens run. `tokensPerGroup`
 * trades weight re-reads against registers (1 for decode).
 */
export function matmulDispatches(
  gpu: Gpu,
  sb: StepBuffers,
  o: {
    weight: GpuWeight;
    x: GPUBuffer;
    y: GPUBuffer;
    xStride: number;
    yStride: number;
    rowOffset?: number;
    accumulate?: boolean;
    gather?: boolean;
    /** Run only the first n_out rows (X holds already-gathered rows). */
    outRowsOnly?: boolean;
    tokensPerGroup?: number;
    /** Threads per output row (default: {@linkcode threadsPerRow}). */
    threadsPerRow?: number;
  },
): Dispatch[] {
  const WG = 64;
  const TPR = o.threadsPerRow ?? threadsPerRow(o.weight.cols, gpu.isSoftware);
  if (!(TPR >= 1 && TPR <= WG && (TPR & (TPR - 1)) === 0)) {
    throw new RangeError(
      `threadsPerRow must be a power of two from 1 to ${WG}, got ${TPR}`,
    );
  }
  const TT = o.tokensPerGroup ?? 4;
  if (TT < 1 || TT > 8 || WG * TT > 512) {
    throw new RangeError(`tokensPerGroup ${TT}`);
  }
  const pipeline = pipe(gpu, "matmul", o.weight.type, { WG, TPR, TT });
  const rowsPerWg = WG / TPR;
  return o.weight.parts.map((part) => {
    const params = gpu.uniform(
      `${o.weight.name}.matmul.params`,
      u32s(
        part.rows,
        o.weight.cols,
        (o.rowOffset ?? 0) + part.rowStart,
        o.yStride,
        o.xStride,
        o.accumulate ? 1 : 0,
        o.gather ? 1 : o.outRowsOnly ? 2 : 0,
      ),
    );
    return {
      label: `matmul ${o.weight.name}[${part.rowStart}]`,
      pipeline,
      bindGroup: bind(gpu, o.weight.name, pipeline, {
        0: params,
        1: sb.step,
        2: o.x,
        3: o.y,
        4: sb.outRows,
        8: part.w,
        9: part.ws,
      }),
      grid: (n, nOut) => [
        Math.ceil(part.rows / rowsPerWg),
        Math.ceil((o.gather || o.outRowsOnly ? nOut : n) / TT),
        1,
      ],
    };
  });
}

/** x[t] = embedding row of token t's id. */
export function embedDispatches(
  gpu: Gpu,
  sb: StepBuffers,
  o: { weight: GpuWeight; x: GPUBuffer },
): Dispatch[] {
  const pipeline = pipe(gpu, "embed", o.weight.type, { WG: 64 });
  return o.weight.parts.map((part) => ({
    label: `embed ${o.weight.name}[${part.rowStart}]`,
    pipeline,
    bindGroup: bind(gpu, "embed", pipeline, {
      0: gpu.uniform(
        "embed.params",
        u32s(o.weight.cols, o.weight.rows, part.rowStart, part.rows),
      ),
      1: sb.step,
      3: o.x,
      8: part.w,
      9: part.ws,
    }),
    grid: (n) => [n, 1, 1],
  }));
}

/** y[t] = RMSNorm(x[t]) * weight (rows out_rows[t] with `gather`). */
export function rmsnormDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  o: {
    x: GPUBuffer;
    y: GPUBuffer;
    weight: GPUBuffer;
    dim: number;
    eps: number;
    gather?: boolean;
  },
): Dispatch {
  const pipeline = pipe(gpu, "rmsnorm", undefined, { WG: 64 });
  const params = new ArrayBuffer(16);
  new Uint32Array(params).set([o.dim, 0, o.gather ? 1 : 0, 0]);
  new Float32Array(params)[1] = o.eps;
  return {
    label: "rmsnorm",
    pipeline,
    bindGroup: bind(gpu, "rmsnorm", pipeline, {
      0: gpu.uniform("rmsnorm.params", new Uint8Array(params)),
      1: sb.step,
      2: o.x,
      3: o.y,
      4: sb.outRows,
      5: o.weight,
    }),
    grid: (n, nOut) => [o.gather ? nOut : n, 1, 1],
  };
}

/** RoPE in place on (n_tokens, nHeads, headDim) from a (maxPos, ropeDim/2) cos/sin table. */
export function ropeDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  o: {
    v: GPUBuffer;
    table: GPUBuffer;
    nHeads: number;
    headDim: number;
    ropeDim: number;
    maxPos: number;
    interleaved: boolean;
  },
): Dispatch {
  const pipeline = pipe(gpu, "rope", undefined, {
    WG: 64,
    INTERLEAVED: o.interleaved ? 1 : 0,
  });
  return {
    label: "rope",
    pipeline,
    bindGroup: bind(gpu, "rope", pipeline, {
      0: gpu.uniform(
        "rope.params",
        u32s(o.nHeads, o.headDim, o.ropeDim, o.maxPos),
      ),
      1: sb.step,
      3: o.v,
      5: o.table,
    }),
    grid: (n) => [n, 1, 1],
  };
}

/** The (maxPos, ropeDim / 2) table of (cos, sin) of pos * theta^(-2i/ropeDim), computed in f64. */
export function ropeTable(
  maxPos: number,
  ropeDim: number,
  theta: number,
): Float32Array {
  const half = ropeDim / 2;
  const t = new Float32Array(maxPos * half * 2);
  for (let pos = 0; pos < maxPos; pos++) {
    for (let i = 0; i < half; i++) {
      const a = pos * Math.pow(theta, (-2 * i) / ropeDim);
      t[(pos * half + i) * 2] = Math.cos(a);
      t[(pos * half + i) * 2 + 1] = Math.sin(a);
    }
  }
  return t;
}

/** Stores the step's K and V rows in the cache at (slot, pos). */
export function kvStoreDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  o: {
    k: GPUBuffer;
    v: GPUBuffer;
    kCache: GPUBuffer;
    vCache: GPUBuffer;
    kvDim: number;
    ctx: number;
  },
): Dispatch {
  const pipeline = pipe(gpu, "kv_store", undefined, { WG: 64 });
  return {
    label: "kv_store",
    pipeline,
    bindGroup: bind(gpu, "kv_store", pipeline, {
      0: gpu.uniform("kv_store.params", u32s(o.kvDim, o.ctx)),
      1: sb.step,
      2: o.k,
      3: o.kCache,
      4: o.v,
      5: o.vCache,
    }),
    grid: (n) => [n, 1, 1],
  };
}

/** Causal GQA attention of each token over its slot's cache, over the positions the KV policy selects. */
export function attentionDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  pb: PolicyBuffers,
  o: {
    q: GPUBuffer;
    out: GPUBuffer;
    kCache: GPUBuffer;
    vCache: GPUBuffer;
    att: GPUBuffer;
    nHeads: number;
    nKvHeads: number;
    headDim: number;
    ctx: number;
  },
): Dispatch {
  const pipeline = pipe(gpu, "attention", undefined, { WG: 64 });
  const params = new ArrayBuffer(32);
  new Uint32Array(params).set([o.nHeads, o.nKvHeads, o.headDim, o.ctx]);
  new Float32Array(params)[4] = 1 / Math.sqrt(o.headDim);
  return {
    label: "attention",
    pipeline,
    bindGroup: bind(gpu, "attention", pipeline, {
      0: gpu.uniform("attention.params", new Uint8Array(params)),
      1: sb.step,
      2: o.q,
      3: o.out,
      4: o.kCache,
      5: o.vCache,
      6: o.att,
      10: pb.policy,
      11: pb.sel,
      12: pb.selN,
    }),
    grid: (n) => [n, o.nHeads, 1],
  };
}

/** SWA: select each decode token's positions from the score S. */
export function selectSwaDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  pb: PolicyBuffers,
  o: { score: GPUBuffer; ctx: number },
): Dispatch {
  const pipeline = pipe(gpu, "select_swa", undefined, { WG: 256 });
  return {
    label: "select_swa",
    pipeline,
    bindGroup: bind(gpu, "select_swa", pipeline, {
      0: gpu.uniform("select_swa.params", u32s(o.ctx)),
      1: sb.step,
      2: o.score,
      10: pb.policy,
      11: pb.sel,
      12: pb.selN,
    }),
    grid: (n) => [n, 1, 1],
  };
}

/** SWA: store each token's score row; on decode steps update S. */
export function scoreSwaDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  pb: PolicyBuffers,
  o: {
    att: GPUBuffer;
    score: GPUBuffer;
    rows: GPUBuffer;
    ctx: number;
    nHeads: number;
  },
): Dispatch {
  const pipeline = pipe(gpu, "score_swa", undefined, { WG: 64 });
  return {
    label: "score_swa",
    pipeline,
    bindGroup: bind(gpu, "score_swa", pipeline, {
      0: gpu.uniform("score_swa.params", u32s(o.ctx, o.nHeads)),
      1: sb.step,
      2: o.att,
      3: o.score,
      4: o.rows,
      10: pb.policy,
      11: pb.sel,
      12: pb.selN,
    }),
    grid: (n) => [n, 1, 1],
  };
}

/** SWA: seed S from the prefill's last score rows (one step token per slot). */
export function seedSwaDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  pb: PolicyBuffers,
  o: { score: GPUBuffer; rows: GPUBuffer; ctx: number },
): Dispatch {
  const pipeline = pipe(gpu, "seed_swa", undefined, { WG: 64 });
  return {
    label: "seed_swa",
    pipeline,
    bindGroup: bind(gpu, "seed_swa", pipeline, {
      0: gpu.uniform("seed_swa.params", u32s(o.ctx)),
      1: sb.step,
      3: o.score,
      4: o.rows,
      10: pb.policy,
    }),
    grid: (n) => [n, 1, 1],
  };
}

/** H2O: select each decode token's positions per head, evicting for good. */
export function selectH2oDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  pb: PolicyBuffers,
  o: { acc: GPUBuffer; kept: GPUBuffer; ctx: number; nHeads: number },
): Dispatch {
  const pipeline = pipe(gpu, "select_h2o", undefined, { WG: 256 });
  return {
    label: "select_h2o",
    pipeline,
    bindGroup: bind(gpu, "select_h2o", pipeline, {
      0: gpu.uniform("select_h2o.params", u32s(o.ctx, o.nHeads)),
      1: sb.step,
      2: o.acc,
      3: o.kept,
      10: pb.policy,
      11: pb.sel,
      12: pb.selN,
    }),
    grid: (n) => [n, o.nHeads, 1],
  };
}

/** H2O: accumulate the step's attention weights into A. */
export function accumH2oDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  pb: PolicyBuffers,
  o: {
    att: GPUBuffer;
    acc: GPUBuffer;
    kept: GPUBuffer;
    ctx: number;
    nHeads: number;
  },
): Dispatch {
  const pipeline = pipe(gpu, "accum_h2o", undefined, { WG: 64 });
  return {
    label: "accum_h2o",
    pipeline,
    bindGroup: bind(gpu, "accum_h2o", pipeline, {
      0: gpu.uniform("accum_h2o.params", u32s(o.ctx, o.nHeads)),
      1: sb.step,
      2: o.att,
      3: o.acc,
      4: o.kept,
      10: pb.policy,
      11: pb.sel,
      12: pb.selN,
    }),
    grid: () => [o.nHeads, 1, 1],
  };
}

/** Scoring: NLL of each output row's target and its argmax, at row offset step._pad1. */
export function nllDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  o: {
    logits: GPUBuffer;
    targets: GPUBuffer;
    nll: GPUBuffer;
    top: GPUBuffer;
    vocab: number;
  },
): Dispatch {
  const pipeline = pipe(gpu, "nll", undefined, { WG: 256 });
  return {
    label: "nll",
    pipeline,
    bindGroup: bind(gpu, "nll", pipeline, {
      0: gpu.uniform("nll.params", u32s(o.vocab)),
      1: sb.step,
      2: o.logits,
      3: o.targets,
      4: o.nll,
      5: o.top,
    }),
    grid: (_n, nOut) => [nOut, 1, 1],
  };
}

/** up = silu(gate) * up over (n_tokens, width). */
export function siluMulDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  o: { gate: GPUBuffer; up: GPUBuffer; width: number },
): Dispatch {
  const WG = 64;
  const pipeline = pipe(gpu, "silu_mul", undefined, { WG });
  return {
    label: "silu_mul",
    pipeline,
    bindGroup: bind(gpu, "silu_mul", pipeline, {
      0: gpu.uniform("silu_mul.params", u32s(o.width)),
      1: sb.step,
      2: o.gate,
      3: o.up,
    }),
    grid: (n) => {
      const groups = Math.ceil((n * o.width) / WG);
      const x = Math.min(groups, MAX_WG_PER_DIM);
      return [x, Math.ceil(groups / x), 1];
    },
  };
}

/** ids[r] = argmax of logits row r, for the n_out rows. */
export function argmaxDispatch(
  gpu: Gpu,
  sb: StepBuffers,
  o: { logits: GPUBuffer; ids: GPUBuffer; vocab: number },
): Dispatch {
  const pipeline = pipe(gpu, "argmax", undefined, { WG: 256 });
  return {
    label: "argmax",
    pipeline,
    bindGroup: bind(gpu, "argmax", pipeline, {
      0: gpu.uniform("argmax.params", u32s(o.vocab)),
      1: sb.step,
      2: o.logits,
      3: o.ids,
    }),
    grid: (_n, nOut) => [nOut, 1, 1],
  };
}

/** One step's token: its KV slot, position and id. */
export interface StepToken {
  slot: number;
  pos: number;
  id: number;
  /** Cached positions attended; default pos + 1 (dense causal). */
  kvLen?: number;
}

/** Writes the step table and output rows for a step. */
export function writeStep(
  gpu: Gpu,
  sb: StepBuffers,
  tokens: StepToken[],
  outRows: number[],
  /** A decode step, where the KV policy applies (else dense prefill). */
  decode = false,
  /** Scoring: the run row of output row 0 (nll.wgsl). */
  outOffset = 0,
): void {
  const a = new Uint32Array(4 + tokens.length * 4);
  a[0] = tokens.length;
  a[1] = outRows.length;
  a[2] = decode ? 1 : 0;
  a[3] = outOffset;
  tokens.forEach((t, i) =>
    a.set([t.slot, t.pos, t.id, t.kvLen ?? t.pos + 1], 4 + i * 4)
  );
  gpu.device.queue.writeBuffer(sb.step, 0, a);
  if (outRows.length) {
    gpu.device.queue.writeBuffer(sb.outRows, 0, new Uint32Array(outRows));
  }
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
  qs.destroy();
  resolve.destroy();
  return plan.map((d, i) => ({
    label: d.label,
    ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6,
  }));
}
