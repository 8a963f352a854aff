/**
 * A CPU simulator of the tiered KV store's steps (written for an
 * independent review): a fake WebGPU device whose buffers are
 * ArrayBuffers and whose `writeBuffer` copies at call time, and a driver
 * that runs `KvStore.prepareStep`, then each segment in order: its
 * `apply()` (table entries, uploads, recompute inputs) and then what its
 * commands would do (recompute stores, new-token stores, and every
 * attended position read through the table, checking that the row holds
 * that very entry). It finds ordering hazards between the CPU's writes and
 * commands submitted earlier in the same step, which a check after the
 * step cannot see.
 *
 * @module
 */
import { Gpu } from "../src/gpu/device.ts";
const g = globalThis as { GPUBufferUsage?: Record<string, number> };
g.GPUBufferUsage ??= {
  MAP_READ: 1,
  MAP_WRITE: 2,
  COPY_SRC: 4,
  COPY_DST: 8,
  INDEX: 16,
  VERTEX: 32,
  UNIFORM: 64,
  STORAGE: 128,
  INDIRECT: 256,
  QUERY_RESOLVE: 512,
};
export interface FakeBuf {
  size: number;
  label: string;
  data: ArrayBuffer;
  destroyed: boolean;
  destroy(): void;
}
export const created: FakeBuf[] = [];
export const writes: { buf: FakeBuf; off: number; bytes: number }[] = [];
export function fakeGpu(limits: Partial<GPUSupportedLimits> = {}): Gpu {
  const device = {
    limits: {
      maxStorageBufferBindingSize: 1 << 27,
      maxBufferSize: 1 << 28,
      ...limits,
    },
    addEventListener() {},
    lost: new Promise(() => {}),
    createBuffer(d: { size: number; label?: string }) {
      const b: FakeBuf = {
        size: d.size,
        label: d.label ?? "",
        data: new ArrayBuffer(d.size),
        destroyed: false,
        destroy() {
          this.destroyed = true;
        },
      };
      created.push(b);
      return b;
    },
    queue: {
      writeBuffer(
        buf: FakeBuf,
        off: number,
        src: ArrayBufferView | ArrayBuffer,
        srcOffEl = 0,
        sizeEl?: number,
      ) {
        const view = ArrayBuffer.isView(src) ? src : new Uint8Array(src);
        const bpe = (view as unknown as { BYTES_PER_ELEMENT?: number })
          .BYTES_PER_ELEMENT ?? 1;
        const start = view.byteOffset + srcOffEl * bpe;
        const len = sizeEl === undefined
          ? view.byteLength - srcOffEl * bpe
          : sizeEl * bpe;
        if (off + len > buf.size) {
          throw new Error(
            `writeBuffer past end of ${buf.label}: ${off}+${len} > ${buf.size}`,
          );
        }
        new Uint8Array(buf.data, off, len).set(
          new Uint8Array(view.buffer, start, len),
        );
        writes.push({ buf, off, bytes: len });
      },
    },
  };
  return new Gpu(
    device as unknown as GPUDevice,
    { description: "fake", isFallbackAdapter: false } as GPUAdapterInfo,
    false,
  );
}

import { BufferSet } from "../src/gpu/buffers.ts";
import { type KvOptions, KvStore } from "../src/kv/store.ts";
import { NO_ROW } from "../src/kv/pool.ts";
import type { ScheduledToken } from "../src/kv/scheduler.ts";

export interface SimOpts {
  layers?: number;
  slots: number;
  ctx: number;
  kv: KvOptions;
  partLimit?: number;
  kvDim?: number;
  dim?: number;
}
export function makeSim(o: SimOpts) {
  const gpu = fakeGpu(
    o.partLimit ? { maxStorageBufferBindingSize: o.partLimit } : {},
  );
  const kvDim = o.kvDim ?? 8, dim = o.dim ?? 8;
  const dims = {
    nLayers: o.layers ?? 3,
    slots: o.slots,
    ctx: o.ctx,
    kvDim,
    headDim: 4,
    dim,
    maxStepTokens: 64,
  };
  const set = new BufferSet(gpu, "m");
  const kv = new KvStore(gpu, set, dims, o.kv);
  kv.profile = {
    uploadGBs: 1,
    recomputeMsPerToken: 0,
    attendMsPerToken: 0,
    stepMs: 0,
  };
  kv.keepX = o.kv.recompute !== "off";
  const pool = kv.pool;
  const data = (b: GPUBuffer) => (b as unknown as FakeBuf).data;
  const tag = (e: number) => e + 1;
  const readRow = (row: number) => {
    const part = Math.floor(row / pool.rowsPerPart);
    return new Uint32Array(
      data(pool.parts[part]),
    )[(row - part * pool.rowsPerPart) * kvDim];
  };
  const writeRow = (row: number, v: number) => {
    const part = Math.floor(row / pool.rowsPerPart);
    new Uint32Array(
      data(pool.parts[part]),
    )[(row - part * pool.rowsPerPart) * kvDim] = v;
  };
  let problems: string[] = [];
  const recompute = (l: number, count: number, where: string) => {
    const st = new Uint32Array(data(kv.rc!.sb.step));
    const x = new Float32Array(data(kv.rc!.x));
    const n = st[0];
    if (n !== count) {
      problems.push(
        `${where}: rc table has ${n} tokens, segment says ${count}`,
      );
    }
    const table = new Uint32Array(data(pool.table));
    for (let i = 0; i < n; i++) {
      const slot = st[4 + 4 * i], pos = st[5 + 4 * i];
      const e = pool.entry(l, slot, pos);
      if (x[i * dim] !== tag(e)) {
        problems.push(
          `${where}: rc x of (${l},${slot},${pos}) is ${x[i * dim]}, want ${
            tag(e)
          }`,
        );
      }
      const row = table[e];
      if (row === NO_ROW || row >= pool.rows) {
        problems.push(`${where}: rc (${l},${slot},${pos}) table row ${row}`);
        continue;
      }
      writeRow(row, tag(e));
    }
  };
  /** One step; sets(l, slot) for decode (null: dense). Returns problems. */
  const step = (
    tokens: ScheduledToken[],
    sets: (l: number, s: number) => ArrayLike<number> | null,
    decode: boolean,
    label = "",
  ) => {
    problems = [];
    const { segments } = kv.prepareStep(tokens, sets, decode);
    const T = tokens.length, L = dims.nLayers;
    const kvOut = new Uint32Array(L * T * kvDim);
    const xOut = new Float32Array(L * T * dim);
    segments.forEach((seg, si) => {
      seg.apply();
      const where = `${label} seg ${si}`;
      if (!seg.layers.length) recompute(seg.rcLayer, seg.rcCount, where);
      for (const l of seg.layers) {
        if (l === seg.rcLayer) recompute(l, seg.rcCount, where);
        const table = new Uint32Array(data(pool.table));
        tokens.forEach((t, i) => {
          const e = pool.entry(l, t.slot, t.pos);
          const row = table[e];
          if (row === NO_ROW || row >= pool.rows) {
            problems.push(
              `${where} L${l}: new (${t.slot},${t.pos}) table row ${row}`,
            );
            return;
          }
          writeRow(row, tag(e));
          kvOut[(l * T + i) * kvDim] = tag(e);
          xOut[(l * T + i) * dim] = tag(e);
        });
        // attention of every token
        for (const t of tokens) {
          const set = decode ? sets(l, t.slot) : null;
          const ps = set ? Array.from(set) : [...Array(t.kvLen).keys()];
          for (const p of ps) {
            const e = pool.entry(l, t.slot, p);
            const row = table[e];
            const got = row === NO_ROW || row >= pool.rows ? -1 : readRow(row);
            if (got !== tag(e)) {
              problems.push(
                `${where} L${l}: token (${t.slot},${t.pos}) reads pos ${p} via row ${row} holding ${
                  got === -1 ? "nothing" : `entry ${got - 1}`
                }, want entry ${e}`,
              );
            }
          }
        }
      }
    });
    kv.finishStep(tokens, kvOut, kv.keepX ? xOut : null);
    return {
      problems,
      segments: segments.length,
      rounds: segments.filter((x) => !x.layers.length).length,
      rc: segments.reduce((a, x) => a + x.rcCount, 0),
    };
  };
  return { kv, pool, step, dims, gpu, set };
}
