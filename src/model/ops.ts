/**
 * Dispatch builders for the forward pass's ops (`shaders/model/`): each
 * returns a {@linkcode Dispatch} whose uniforms belong to the context's
 * buffer set (the plan's), so a dropped plan frees them.
 *
 * @module
 */
import {
  bind,
  type Dispatch,
  MAX_WG_PER_DIM,
  type OpContext,
  pipe,
  u32s,
} from "../gpu/dispatch.ts";
import type { GpuWeight } from "../gpu/weights.ts";
import { W32_TYPES } from "../gpu/shaders.ts";
import type { Activation } from "../formats/config.ts";

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
 * trades weight re-reads against registers (1 for decode). A token's sum
 * does not depend on `tokensPerGroup` (same lanes, same order), so K and V
 * recomputed in a batch equal those computed one token at a time.
 */
export function matmulDispatches(
  c: OpContext,
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
  const { gpu, set, sb } = c;
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
  // Block-wise reads where the type decodes its scales once per 32 weights.
  const W32 = W32_TYPES.has(o.weight.type) && o.weight.cols % 32 === 0 ? 1 : 0;
  const pipeline = pipe(gpu, "matmul", o.weight.type, { WG, TPR, TT, W32 });
  const rowsPerWg = WG / TPR;
  return o.weight.parts.map((part) => {
    const params = set.uniform(
      `${o.weight.name}.matmul`,
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

/** x[t] = embedding row of token t's id, times `scale` (default 1). */
export function embedDispatches(
  c: OpContext,
  o: { weight: GpuWeight; x: GPUBuffer; scale?: number },
): Dispatch[] {
  const pipeline = pipe(c.gpu, "embed", o.weight.type, { WG: 64 });
  return o.weight.parts.map((part) => {
    const params = new ArrayBuffer(32);
    new Uint32Array(params).set([
      o.weight.cols,
      o.weight.rows,
      part.rowStart,
      part.rows,
    ]);
    new Float32Array(params)[4] = o.scale ?? 1;
    return {
      label: `embed ${o.weight.name}[${part.rowStart}]`,
      pipeline,
      bindGroup: bind(c.gpu, "embed", pipeline, {
        0: c.set.uniform("embed", new Uint8Array(params)),
        1: c.sb.step,
        3: o.x,
        8: part.w,
        9: part.ws,
      }),
      grid: (n) => [n, 1, 1],
    };
  });
}

/**
 * y[t] = RMSNorm(x[t]) * weight (rows out_rows[t] with `gather`; added to
 * y with `accumulate`).
 */
export function rmsnormDispatch(
  c: OpContext,
  o: {
    x: GPUBuffer;
    y: GPUBuffer;
    weight: GPUBuffer;
    dim: number;
    eps: number;
    gather?: boolean;
    accumulate?: boolean;
  },
): Dispatch {
  const pipeline = pipe(c.gpu, "rmsnorm", undefined, {
    WG: 64,
    ACCUMULATE: o.accumulate ? 1 : 0,
  });
  const params = new ArrayBuffer(16);
  new Uint32Array(params).set([o.dim, 0, o.gather ? 1 : 0, 0]);
  new Float32Array(params)[1] = o.eps;
  return {
    label: "rmsnorm",
    pipeline,
    bindGroup: bind(c.gpu, "rmsnorm", pipeline, {
      0: c.set.uniform("rmsnorm", new Uint8Array(params)),
      1: c.sb.step,
      2: o.x,
      3: o.y,
      4: c.sb.outRows,
      5: o.weight,
    }),
    grid: (n, nOut) => [o.gather ? nOut : n, 1, 1],
  };
}

/** RoPE in place on (n_tokens, nHeads, headDim) from a (maxPos, ropeDim/2) cos/sin table. */
export function ropeDispatch(
  c: OpContext,
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
  const pipeline = pipe(c.gpu, "rope", undefined, {
    WG: 64,
    INTERLEAVED: o.interleaved ? 1 : 0,
  });
  return {
    label: "rope",
    pipeline,
    bindGroup: bind(c.gpu, "rope", pipeline, {
      0: c.set.uniform(
        "rope",
        u32s(o.nHeads, o.headDim, o.ropeDim, o.maxPos),
      ),
      1: c.sb.step,
      3: o.v,
      5: o.table,
    }),
    grid: (n) => [n, 1, 1],
  };
}

/**
 * The (maxPos, ropeDim / 2) table of (cos, sin) of
 * pos * theta^(-2i/ropeDim) / divisors[i], computed in f64. `divisors`
 * (default all 1) scales each frequency: Llama 3.1's scaling, GGUF's
 * `rope_freqs.weight`, linear scaling.
 */
export function ropeTable(
  maxPos: number,
  ropeDim: number,
  theta: number,
  divisors?: ArrayLike<number>,
): Float32Array {
  const half = ropeDim / 2;
  if (divisors && divisors.length !== half) {
    throw new RangeError(
      `RoPE needs ${half} frequency divisors, got ${divisors.length}`,
    );
  }
  const t = new Float32Array(maxPos * half * 2);
  for (let pos = 0; pos < maxPos; pos++) {
    for (let i = 0; i < half; i++) {
      const a = pos * Math.pow(theta, (-2 * i) / ropeDim) /
        (divisors ? divisors[i] : 1);
      t[(pos * half + i) * 2] = Math.cos(a);
      t[(pos * half + i) * 2 + 1] = Math.sin(a);
    }
  }
  return t;
}

/** The bindings through which an op reads the KV pool (src/kv/pool.ts). */
export interface KvBindings {
  /** Binding number -> buffer (14: row table, 15: layer uniform, 16..: pool parts). */
  entries: Record<number, GPUBuffer>;
  /** Pool parts (selects the shader variant). */
  parts: number;
}

/**
 * Causal GQA attention of each token over its sequence's K/V, read from
 * the KV pool through the layer's row table, over the positions the KV
 * policy selects (`policy`: bindings 10-12 of shaders/sparse/policy.wgsl).
 */
export function attentionDispatch(
  c: OpContext,
  o: {
    q: GPUBuffer;
    out: GPUBuffer;
    att: GPUBuffer;
    kv: KvBindings;
    policy: Record<number, GPUBuffer>;
    nHeads: number;
    nKvHeads: number;
    headDim: number;
    ctx: number;
    /** Score scale (default 1/sqrt(headDim)). */
    scale?: number;
    /** > 0: scores soft-capped at it (Gemma 2). */
    softcap?: number;
    /** > 0: the layer's sliding window in positions. */
    window?: number;
  },
): Dispatch {
  const pipeline = pipe(c.gpu, "attention", undefined, {
    WG: 64,
    SOFTCAP: o.softcap ?? 0,
  }, { kvParts: o.kv.parts });
  const params = new ArrayBuffer(32);
  new Uint32Array(params).set([o.nHeads, o.nKvHeads, o.headDim, o.ctx]);
  new Float32Array(params)[4] = o.scale ?? 1 / Math.sqrt(o.headDim);
  new Uint32Array(params)[5] = o.window ?? 0;
  return {
    label: "attention",
    pipeline,
    bindGroup: bind(c.gpu, "attention", pipeline, {
      0: c.set.uniform("attention", new Uint8Array(params)),
      1: c.sb.step,
      2: o.q,
      3: o.out,
      6: o.att,
      ...o.policy,
      ...o.kv.entries,
    }),
    grid: (n) => [n, o.nHeads, 1],
  };
}

/** A grid of 64-thread workgroups covering `count` elements. */
function flatGrid(count: number, WG: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(count / WG));
  const x = Math.min(groups, MAX_WG_PER_DIM);
  return [x, Math.ceil(groups / x), 1];
}

/** up = act(gate) * up over (n_tokens, width); act SiLU (default) or GELU-tanh. */
export function actMulDispatch(
  c: OpContext,
  o: { gate: GPUBuffer; up: GPUBuffer; width: number; act?: Activation },
): Dispatch {
  const WG = 64;
  const pipeline = pipe(c.gpu, "act_mul", undefined, {
    WG,
    ACT: o.act === "gelu_tanh" ? 1 : 0,
  });
  return {
    label: "act_mul",
    pipeline,
    bindGroup: bind(c.gpu, "act_mul", pipeline, {
      0: c.set.uniform("act_mul", u32s(o.width)),
      1: c.sb.step,
      2: o.gate,
      3: o.up,
    }),
    grid: (n) => flatGrid(n * o.width, WG),
  };
}

/** y[t] += bias over (n_tokens, width). */
export function addBiasDispatch(
  c: OpContext,
  o: { y: GPUBuffer; bias: GPUBuffer; width: number },
): Dispatch {
  const WG = 64;
  const pipeline = pipe(c.gpu, "add_bias", undefined, { WG });
  return {
    label: "add_bias",
    pipeline,
    bindGroup: bind(c.gpu, "add_bias", pipeline, {
      0: c.set.uniform("add_bias", u32s(o.width)),
      1: c.sb.step,
      3: o.y,
      5: o.bias,
    }),
    grid: (n) => flatGrid(n * o.width, WG),
  };
}

/** Per-head RMSNorm in place on (n_tokens, nHeads, headDim). */
export function headNormDispatch(
  c: OpContext,
  o: {
    v: GPUBuffer;
    weight: GPUBuffer;
    nHeads: number;
    headDim: number;
    eps: number;
  },
): Dispatch {
  const pipeline = pipe(c.gpu, "head_norm", undefined, { WG: 64 });
  const params = new ArrayBuffer(16);
  new Uint32Array(params).set([o.headDim, 0, o.nHeads, 0]);
  new Float32Array(params)[1] = o.eps;
  return {
    label: "head_norm",
    pipeline,
    bindGroup: bind(c.gpu, "head_norm", pipeline, {
      0: c.set.uniform("head_norm", new Uint8Array(params)),
      1: c.sb.step,
      3: o.v,
      5: o.weight,
    }),
    grid: (n) => [n, o.nHeads, 1],
  };
}

/** v = cap * tanh(v / cap) over the output rows (n_out, width). */
export function softcapDispatch(
  c: OpContext,
  o: { v: GPUBuffer; width: number; cap: number },
): Dispatch {
  const WG = 64;
  const pipeline = pipe(c.gpu, "softcap", undefined, { WG });
  const params = new ArrayBuffer(16);
  new Uint32Array(params)[0] = o.width;
  new Float32Array(params)[1] = o.cap;
  return {
    label: "softcap",
    pipeline,
    bindGroup: bind(c.gpu, "softcap", pipeline, {
      0: c.set.uniform("softcap", new Uint8Array(params)),
      1: c.sb.step,
      3: o.v,
    }),
    grid: (_n, nOut) => flatGrid(nOut * o.width, WG),
  };
}

/** ids[r] = argmax of logits row r, for the n_out rows. */
export function argmaxDispatch(
  c: OpContext,
  o: { logits: GPUBuffer; ids: GPUBuffer; vocab: number },
): Dispatch {
  const pipeline = pipe(c.gpu, "argmax", undefined, { WG: 256 });
  return {
    label: "argmax",
    pipeline,
    bindGroup: bind(c.gpu, "argmax", pipeline, {
      0: c.set.uniform("argmax", u32s(o.vocab)),
      1: c.sb.step,
      2: o.logits,
      3: o.ids,
    }),
    grid: (_n, nOut) => [nOut, 1, 1],
  };
}
