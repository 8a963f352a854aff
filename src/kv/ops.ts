/**
 * Dispatch builders for the KV store's shaders (`shaders/kv/`).
 *
 * @module
 */
import {
  bind,
  type Dispatch,
  type OpContext,
  pipe,
  u32s,
} from "../gpu/dispatch.ts";
import type { KvBindings } from "../model/ops.ts";

/**
 * Stores the step's K and V rows in the pool at each token's row; with
 * `capture`, also into `capture.buffer` from word `capture.base` (the
 * step's new rows, read back for the host tier).
 */
export function kvStoreDispatch(
  c: OpContext,
  o: {
    k: GPUBuffer;
    v: GPUBuffer;
    kv: KvBindings;
    kvDim: number;
    capture?: { buffer: GPUBuffer; base: number };
  },
): Dispatch {
  const pipeline = pipe(c.gpu, "kv_store", undefined, { WG: 64 }, {
    kvParts: o.kv.parts,
  });
  return {
    label: "kv_store",
    pipeline,
    bindGroup: bind(c.gpu, "kv_store", pipeline, {
      0: c.set.uniform(
        "kv_store",
        u32s(o.kvDim, o.capture ? 1 : 0, o.capture?.base ?? 0),
      ),
      1: c.sb.step,
      2: o.k,
      3: o.v,
      6: o.capture?.buffer ?? c.set.buffer("kv_store.no_capture", 16),
      ...o.kv.entries,
    }),
    grid: (n) => [n, 1, 1],
  };
}

/** The chosen sets (sel, sel_n of one layer) as bitmasks from word `base` of `mask`. */
export function selMaskDispatch(
  c: OpContext,
  o: {
    sel: GPUBuffer;
    selN: GPUBuffer;
    mask: GPUBuffer;
    ctx: number;
    base: number;
  },
): Dispatch {
  const pipeline = pipe(c.gpu, "sel_mask", undefined, { WG: 64 });
  return {
    label: "sel_mask",
    pipeline,
    bindGroup: bind(c.gpu, "sel_mask", pipeline, {
      0: c.set.uniform(
        "sel_mask",
        u32s(o.ctx, Math.ceil(o.ctx / 32), o.base),
      ),
      1: c.sb.step,
      2: o.sel,
      3: o.selN,
      4: o.mask,
    }),
    grid: (n) => [n, 1, 1],
  };
}
