/**
 * Every shader against a plain TypeScript reference on random inputs,
 * including odd sizes (widths not multiples of 4, 32 or the workgroup
 * size), head_dim 8 and 128, GQA ratios 1, 2 and 8, several KV slots with
 * different lengths, weights split into several binding parts. Compared by
 * NMSE = sum((gpu - ref)^2) / sum(ref^2).
 */
import { assertEquals, assertLessOrEqual } from "@std/assert";
import { dequantize } from "../src/formats/dequantize.ts";
import { kvStoreDispatch } from "../src/kv/ops.ts";
import { KvPool } from "../src/kv/pool.ts";
import {
  actMulDispatch,
  argmaxDispatch,
  attentionDispatch,
  embedDispatches,
  matmulDispatches,
  rmsnormDispatch,
  ropeDispatch,
  ropeTable,
} from "../src/model/ops.ts";
import type { StepToken } from "../src/gpu/step.ts";
import { type GpuWeight, uploadWeight } from "../src/gpu/weights.ts";
import type { GpuWeightType } from "../src/gpu/shaders.ts";
import type { OpContext } from "../src/gpu/dispatch.ts";
import { compare, f16ToF32 } from "./_shared.ts";
import { toF16 } from "./_quant.ts";
import {
  densePolicy,
  HAS_GPU,
  opContext,
  readF32,
  rng,
  runPlan,
  testGpu,
} from "./_gpu.ts";
import { rmsnorm, rope } from "./_reference.ts";

const ignore = !HAS_GPU;

const roundF16 = (x: Float32Array) => Float32Array.from(toF16(x), f16ToF32);

/** A random weight of `type` and its exact f32 values. */
function randomWeight(
  c: OpContext,
  type: GpuWeightType,
  rows: number,
  cols: number,
  seed: number,
  maxPartBytes?: number,
): { w: GpuWeight; ref: Float32Array } {
  const r = rng(seed);
  if (type === "f32") {
    const v = r.floats(rows * cols, 0.5);
    return {
      w: uploadWeight(c.set, "w", type, rows, cols, v, maxPartBytes),
      ref: v,
    };
  }
  if (type === "f16") {
    const h = toF16(r.floats(rows * cols, 0.5));
    return {
      w: uploadWeight(c.set, "w", type, rows, cols, h, maxPartBytes),
      ref: Float32Array.from(h, f16ToF32),
    };
  }
  const nb = rows * cols / 32;
  const raw = new Uint8Array(nb * 34);
  const d = toF16(
    Float32Array.from({ length: nb }, () => 0.001 + r.u() * 0.02),
  );
  for (let b = 0; b < nb; b++) {
    raw[b * 34] = d[b] & 0xff;
    raw[b * 34 + 1] = d[b] >> 8;
    for (let i = 0; i < 32; i++) raw[b * 34 + 2 + i] = Math.floor(r.u() * 256);
  }
  return {
    w: uploadWeight(c.set, "w", type, rows, cols, raw, maxPartBytes),
    ref: dequantize("Q8_0", raw, rows * cols) as Float32Array,
  };
}

function nmseOk(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  bound: number,
  what: string,
) {
  const { nmse } = compare(got, want);
  assertLessOrEqual(nmse, bound, `${what}: NMSE ${nmse}`);
}

Deno.test({
  name:
    "matmul (f32, f16, q8_0; odd sizes; 1..9 tokens; split parts; accumulate; gather) matches the reference",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    const shapes: [GpuWeightType, number, number][] = [
      ["f32", 5, 172],
      ["f32", 37, 7],
      ["f16", 33, 172],
      ["f16", 3, 9],
      ["f16", 129, 256],
      ["q8_0", 37, 64],
      ["q8_0", 300, 96],
      ["q8_0", 17, 1024],
    ];
    let seed = 1;
    for (const [type, rows, cols] of shapes) {
      for (const n of [1, 3, 9]) {
        for (const split of [false, true]) {
          const r = rng(seed++);
          const rowBytes = type === "f32"
            ? cols * 4
            : type === "f16"
            ? cols * 2
            : cols / 32 * 34;
          const { w, ref } = randomWeight(
            c,
            type,
            rows,
            cols,
            seed,
            split ? rowBytes * 4 : undefined,
          );
          if (split && rows > 4) {
            assertEquals(w.parts.length, Math.ceil(rows / 4));
          }
          const x = r.floats(n * cols);
          const yStride = rows + 3; // Y wider than W's rows: rowOffset 2
          const y0 = r.floats(n * yStride);
          const xb = gpu.buffer("x", x.byteLength, x);
          const yb = gpu.buffer("y", y0.byteLength, y0);
          for (
            const [accumulate, tpr] of [[false, 1], [true, 1], [false, 4], [
              true,
              16,
            ], [false, 64]] as const
          ) {
            gpu.device.queue.writeBuffer(yb, 0, y0);
            const plan = matmulDispatches(c, {
              weight: w,
              x: xb,
              y: yb,
              xStride: cols,
              yStride,
              rowOffset: 2,
              accumulate,
              tokensPerGroup: n === 1 ? 1 : 4,
              threadsPerRow: tpr,
            });
            const toks: StepToken[] = Array.from(
              { length: n },
              (_, i) => ({ slot: 0, pos: i, id: 0 }),
            );
            await runPlan(c, plan, toks);
            const got = await readF32(gpu, yb, n * yStride);
            const want = Float32Array.from(y0);
            for (let t = 0; t < n; t++) {
              for (let rr = 0; rr < rows; rr++) {
                let s = 0;
                for (let k = 0; k < cols; k++) {
                  s += ref[rr * cols + k] * x[t * cols + k];
                }
                want[t * yStride + 2 + rr] =
                  (accumulate ? y0[t * yStride + 2 + rr] : 0) + s;
              }
            }
            nmseOk(
              got,
              want,
              1e-10,
              `${type} ${rows}x${cols} n=${n} split=${split} acc=${accumulate}`,
            );
          }
          // gather: output row i reads x row outRows[i].
          const outRows = n > 1 ? [n - 1, 0] : [0];
          const yg = gpu.buffer("yg", outRows.length * rows * 4);
          await runPlan(
            c,
            matmulDispatches(c, {
              weight: w,
              x: xb,
              y: yg,
              xStride: cols,
              yStride: rows,
              gather: true,
            }),
            Array.from({ length: n }, (_, i) => ({ slot: 0, pos: i, id: 0 })),
            outRows,
          );
          const got = await readF32(gpu, yg, outRows.length * rows);
          const want = new Float32Array(outRows.length * rows);
          outRows.forEach((src, i) => {
            for (let rr = 0; rr < rows; rr++) {
              let s = 0;
              for (let k = 0; k < cols; k++) {
                s += ref[rr * cols + k] * x[src * cols + k];
              }
              want[i * rows + rr] = s;
            }
          });
          nmseOk(got, want, 1e-10, `${type} gather`);
        }
      }
    }
  },
});

Deno.test({
  name: "embed (f32, f16, q8_0, split table) copies the dequantized rows",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    for (const type of ["f32", "f16", "q8_0"] as GpuWeightType[]) {
      const vocab = 50, dim = 64;
      const rowBytes = type === "f32"
        ? dim * 4
        : type === "f16"
        ? dim * 2
        : dim / 32 * 34;
      const { w, ref } = randomWeight(c, type, vocab, dim, 7, rowBytes * 16);
      const x = gpu.buffer("x", 5 * dim * 4);
      const ids = [0, 49, 17, 16, 33];
      await runPlan(
        c,
        embedDispatches(c, { weight: w, x }),
        ids.map((id, i) => ({ slot: 0, pos: i, id })),
      );
      const got = await readF32(gpu, x, 5 * dim);
      const want = new Float32Array(5 * dim);
      ids.forEach((id, i) =>
        want.set(ref.subarray(id * dim, (id + 1) * dim), i * dim)
      );
      assertEquals(got, want, type);
    }
  },
});

Deno.test({
  name: "rmsnorm (dims 7, 256, 1000; gather) matches the reference",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    for (const dim of [7, 256, 1000]) {
      const r = rng(dim);
      const n = 3;
      const x = r.floats(n * dim, 3);
      const wt = r.floats(dim);
      const xb = gpu.buffer("x", x.byteLength, x);
      const yb = gpu.buffer("y", x.byteLength);
      const wb = gpu.buffer("w", wt.byteLength, wt);
      const toks = [0, 1, 2].map((i) => ({ slot: 0, pos: i, id: 0 }));
      await runPlan(c, [
        rmsnormDispatch(c, { x: xb, y: yb, weight: wb, dim, eps: 1e-5 }),
      ], toks);
      const want = new Float32Array(n * dim);
      for (let t = 0; t < n; t++) {
        want.set(
          rmsnorm(x.subarray(t * dim, (t + 1) * dim), wt, 1e-5),
          t * dim,
        );
      }
      nmseOk(await readF32(gpu, yb, n * dim), want, 1e-12, `dim ${dim}`);
      await runPlan(
        c,
        [rmsnormDispatch(c, {
          x: xb,
          y: yb,
          weight: wb,
          dim,
          eps: 1e-5,
          gather: true,
        })],
        toks,
        [2],
      );
      nmseOk(
        await readF32(gpu, yb, dim),
        want.subarray(2 * dim),
        1e-12,
        `gather dim ${dim}`,
      );
    }
  },
});

Deno.test({
  name:
    "rope (head_dim 8 and 128, interleaved and rotate-half) matches the reference",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    for (const [nHeads, headDim] of [[3, 8], [2, 128]]) {
      for (const interleaved of [true, false]) {
        const r = rng(headDim);
        const positions = [0, 1, 5, 511];
        const v = r.floats(positions.length * nHeads * headDim);
        const table = ropeTable(512, headDim, 10000);
        const vb = gpu.buffer("v", v.byteLength, v);
        const tb = gpu.buffer("t", table.byteLength, table);
        await runPlan(c, [ropeDispatch(c, {
          v: vb,
          table: tb,
          nHeads,
          headDim,
          ropeDim: headDim,
          maxPos: 512,
          interleaved,
        })], positions.map((pos) => ({ slot: 0, pos, id: 0 })));
        const want = Float32Array.from(v);
        positions.forEach((pos, t) => {
          const row = want.subarray(
            t * nHeads * headDim,
            (t + 1) * nHeads * headDim,
          );
          rope(
            row,
            nHeads,
            headDim,
            pos,
            10000,
            interleaved ? "interleaved" : "rotate_half",
          );
        });
        nmseOk(
          await readF32(gpu, vb, v.length),
          want,
          1e-11,
          `${nHeads}x${headDim} ${interleaved}`,
        );
      }
    }
  },
});

Deno.test({
  name:
    "kv_store + attention through the pool's row table (shuffled rows, 1, 3 and 8 pool parts; GQA 1, 2, 8; head_dim 8, 128; slots of different lengths) match the reference",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    for (
      const [nHeads, nKvHeads, headDim, partRows] of [
        [4, 4, 8, Infinity],
        [8, 4, 128, 20],
        [8, 1, 8, 8],
        [16, 2, 8, Infinity],
      ]
    ) {
      const r = rng(nHeads * 100 + headDim);
      const ctx = 40, slots = 3, kvDim = nKvHeads * headDim;
      const lens = [37, 1, 12]; // prompt length per slot
      // A pool with fewer rows than (slots, ctx) and tokens in shuffled rows.
      const dims = { nLayers: 1, slots, ctx, kvDim };
      const pool = new KvPool(gpu, c.set.child("pool"), dims, 60, partRows);
      const rows = Array.from({ length: 60 }, (_, i) => i);
      for (let i = rows.length - 1; i > 0; i--) {
        const j = Math.floor(r.u() * (i + 1));
        [rows[i], rows[j]] = [rows[j], rows[i]];
      }
      // Store every slot's K/V with one step of all tokens.
      const toks: StepToken[] = [];
      lens.forEach((len, slot) => {
        for (let pos = 0; pos < len; pos++) {
          pool.assign(pool.entry(0, slot, pos), rows[toks.length]);
          toks.push({ slot, pos, id: 0 });
        }
      });
      pool.flushTable();
      const n = toks.length;
      const k = r.floats(n * kvDim),
        v = r.floats(n * kvDim),
        q = r.floats(n * nHeads * headDim);
      const kb = gpu.buffer("k", k.byteLength, k),
        vb = gpu.buffer("v", v.byteLength, v);
      const qb = gpu.buffer("q", q.byteLength, q),
        ob = gpu.buffer("o", q.byteLength);
      const att = gpu.buffer("att", n * nHeads * ctx * 4);
      await runPlan(c, [
        kvStoreDispatch(c, { k: kb, v: vb, kv: pool.bindings(0), kvDim }),
        attentionDispatch(c, {
          q: qb,
          out: ob,
          att,
          kv: pool.bindings(0),
          policy: densePolicy(c),
          nHeads,
          nKvHeads,
          headDim,
          ctx,
        }),
      ], toks);
      const kr = roundF16(k), vr = roundF16(v);
      const want = new Float32Array(q.length);
      const group = nHeads / nKvHeads;
      toks.forEach((tk, t) => {
        const first = toks.findIndex((o) => o.slot === tk.slot);
        for (let h = 0; h < nHeads; h++) {
          const kvh = Math.floor(h / group);
          const s: number[] = [];
          for (let j = 0; j <= tk.pos; j++) {
            let d = 0;
            for (let e = 0; e < headDim; e++) {
              d += q[(t * nHeads + h) * headDim + e] *
                kr[(first + j) * kvDim + kvh * headDim + e];
            }
            s.push(d / Math.sqrt(headDim));
          }
          const m = Math.max(...s);
          const ex = s.map((x) => Math.exp(x - m));
          const sum = ex.reduce((a, b) => a + b, 0);
          for (let e = 0; e < headDim; e++) {
            let acc = 0;
            for (let j = 0; j <= tk.pos; j++) {
              acc += ex[j] / sum * vr[(first + j) * kvDim + kvh * headDim + e];
            }
            want[(t * nHeads + h) * headDim + e] = acc;
          }
        }
      });
      nmseOk(
        await readF32(gpu, ob, q.length),
        want,
        1e-10,
        `${nHeads}/${nKvHeads}x${headDim}`,
      );
    }
  },
});

Deno.test({
  name:
    "act_mul (SiLU) and argmax (ties pick the lowest index) match the reference",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    const r = rng(3);
    const width = 173, n = 5;
    const g = r.floats(n * width, 3), u = r.floats(n * width);
    const gb = gpu.buffer("g", g.byteLength, g),
      ub = gpu.buffer("u", u.byteLength, u);
    const toks = Array.from(
      { length: n },
      (_, i) => ({ slot: 0, pos: i, id: 0 }),
    );
    await runPlan(c, [
      actMulDispatch(c, { gate: gb, up: ub, width }),
    ], toks);
    nmseOk(
      await readF32(gpu, ub, g.length),
      g.map((x, i) => x / (1 + Math.exp(-x)) * u[i]),
      1e-12,
      "silu",
    );

    const vocab = 1001;
    const logits = r.floats(3 * vocab);
    logits[vocab + 500] = 99;
    logits[vocab + 700] = 99; // tie: 500 wins
    const lb = gpu.buffer("l", logits.byteLength, logits),
      ib = gpu.buffer("ids", 16);
    await runPlan(
      c,
      [argmaxDispatch(c, { logits: lb, ids: ib, vocab })],
      toks,
      [0, 1, 2],
    );
    const ids = new Uint32Array(await gpu.read(ib, 12));
    const want = [0, 1, 2].map((row) => {
      let best = 0;
      for (let j = 1; j < vocab; j++) {
        if (logits[row * vocab + j] > logits[row * vocab + best]) best = j;
      }
      return best;
    });
    assertEquals(Array.from(ids), want);
    assertEquals(ids[1], 500);
  },
});
