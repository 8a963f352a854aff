/**
 * GPU op benchmarks, timed on the GPU with timestamp queries:
 * - a plain buffer copy (the bandwidth yardstick),
 * - each matrix-vector product (decode GEMV) per weight type, as GB/s of
 *   weight bytes and as a fraction of the copy's bandwidth,
 * - decode attention at context 128, 512 and 1024,
 * - one decode step of the embedded model, op by op.
 * `deno bench` additionally times a whole decode step wall-clock.
 *
 * On Mesa's llvmpipe (the CPU rasterizer CI uses) the numbers are real but
 * slow; compare ratios from one run, not absolute times across machines.
 */
import { BufferSet } from "../src/gpu/buffers.ts";
import { type Gpu, openGpu } from "../src/gpu/device.ts";
import {
  type Dispatch,
  type OpContext,
  profilePlan,
} from "../src/gpu/dispatch.ts";
import { stepTableBytes, writeStep } from "../src/gpu/step.ts";
import { KvPool } from "../src/kv/pool.ts";
import { attentionDispatch, matmulDispatches } from "../src/model/ops.ts";
import { uploadWeight } from "../src/gpu/weights.ts";
import type { GpuWeightType } from "../src/gpu/shaders.ts";
import { loadModel } from "../src/api/model.ts";

const gpu: Gpu | null = await openGpu().catch((e) => {
  console.warn(`skipping GPU benchmarks: ${(e as Error).message}`);
  return null;
});

/** Median GPU ms of `plan` over `reps` runs (after one warm-up). */
async function gpuMs(
  g: Gpu,
  plan: Dispatch[],
  n: number,
  nOut: number,
  reps = 5,
): Promise<number> {
  await profilePlan(g, plan, n, nOut); // warm-up: compiles the pipelines
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    t.push((await profilePlan(g, plan, n, nOut)).reduce((a, p) => a + p.ms, 0));
  }
  return t.sort((a, b) => a - b)[Math.floor(reps / 2)];
}

async function copyGBs(g: Gpu, bytes: number): Promise<number> {
  const a = g.buffer("copy.src", bytes), b = g.buffer("copy.dst", bytes);
  const qs = g.device.createQuerySet({ type: "timestamp", count: 2 });
  const res = g.device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const enc = g.device.createCommandEncoder();
    enc.beginComputePass({
      timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0 },
    }).end();
    enc.copyBufferToBuffer(a, 0, b, 0, bytes);
    enc.beginComputePass({
      timestampWrites: { querySet: qs, endOfPassWriteIndex: 1 },
    }).end();
    enc.resolveQuerySet(qs, 0, 2, res, 0);
    g.device.queue.submit([enc.finish()]);
    const t = new BigUint64Array(await g.read(res, 16));
    if (i > 0) times.push(Number(t[1] - t[0]) / 1e6);
  }
  a.destroy();
  b.destroy();
  const ms = times.sort((x, y) => x - y)[Math.floor(times.length / 2)];
  return bytes / 1e6 / ms; // GB/s of bytes copied (each read once and written once)
}

function opContext(g: Gpu): OpContext {
  const set = new BufferSet(g, "bench");
  return {
    gpu: g,
    set,
    sb: {
      step: set.buffer("step", stepTableBytes(64)),
      outRows: set.buffer("out", 256),
    },
  };
}

if (gpu?.hasTimestamps) {
  const g = gpu;
  const c = opContext(g);
  const sb = c.sb;
  const lines: string[] = [];
  const copy = await copyGBs(g, 64 << 20);
  lines.push(
    `buffer copy 64 MiB: ${
      copy.toFixed(2)
    } GB/s  (${g.adapterInfo.description})`,
  );

  const [rows, cols] = [2048, 2048];
  for (const type of ["f32", "f16", "q8_0"] as GpuWeightType[]) {
    const data = type === "f32"
      ? new Float32Array(rows * cols).fill(0.01)
      : type === "f16"
      ? new Uint16Array(rows * cols).fill(0x2000)
      : new Uint8Array(rows * cols / 32 * 34).fill(1);
    const w = uploadWeight(c.set, `bench.${type}`, type, rows, cols, data);
    const x = g.buffer("x", cols * 4), y = g.buffer("y", rows * 4);
    const plan = matmulDispatches(c, {
      weight: w,
      x,
      y,
      xStride: cols,
      yStride: rows,
      tokensPerGroup: 1,
    });
    writeStep(g, sb, [{ slot: 0, pos: 0, id: 0 }], [], { decode: true });
    const ms = await gpuMs(g, plan, 1, 0);
    const gbs = w.bytes / 1e6 / ms;
    lines.push(
      `GEMV ${type} ${rows}x${cols} (${(w.bytes / 2 ** 20).toFixed(1)} MiB): ${
        ms.toFixed(3)
      } ms, ${gbs.toFixed(2)} GB/s = ${(gbs / copy).toFixed(2)} of copy`,
    );
  }

  for (const [nHeads, nKv, hd] of [[8, 4, 32], [32, 8, 128]]) {
    for (const ctx of [128, 512, 1024]) {
      const kvDim = nKv * hd;
      const pool = new KvPool(g, c.set.child("pool"), {
        nLayers: 1,
        slots: 1,
        ctx,
        kvDim,
      }, ctx);
      const q = g.buffer("q", nHeads * hd * 4),
        o = g.buffer("o", nHeads * hd * 4);
      const att = g.buffer("att", nHeads * ctx * 4);
      const plan = [
        attentionDispatch(c, {
          q,
          out: o,
          att,
          kv: pool.bindings(0),
          policy: {
            10: c.set.uniform("policy", new Uint32Array(4)),
            11: c.set.buffer("sel", 16),
            12: c.set.buffer("sel_n", 16),
          },
          nHeads,
          nKvHeads: nKv,
          headDim: hd,
          ctx,
        }),
      ];
      writeStep(g, sb, [{ slot: 0, pos: ctx - 1, id: 0 }], [], {
        decode: true,
      });
      const ms = await gpuMs(g, plan, 1, 0);
      lines.push(
        `attention decode heads ${nHeads}/${nKv} x ${hd}, context ${ctx}: ${
          ms.toFixed(3)
        } ms (${(2 * ctx * kvDim * 2 / 1e6 / ms).toFixed(2)} GB/s of KV)`,
      );
    }
  }

  const model = await loadModel(undefined, { gpu: g, contextLength: 256 });
  const prompt = model.tokenizer.encode(
    "It is a truth universally acknowledged",
  );
  await model.engine.stepArgmax(
    prompt.map((id, pos) => ({ slot: 0, pos, id })),
    [prompt.length - 1],
  );
  const decodeTok = [{ slot: 0, pos: prompt.length, id: 285 }];
  await model.engine.stepArgmax(decodeTok, [0]);
  const prof = await model.engine.profileStep(decodeTok, [0]);
  const byOp = new Map<string, number>();
  for (const p of prof) {
    const k = p.label.split(" ")[0];
    byOp.set(k, (byOp.get(k) ?? 0) + p.ms);
  }
  const total = prof.reduce((a, p) => a + p.ms, 0);
  lines.push(
    `embedded model decode step: ${total.toFixed(2)} ms GPU (${
      [...byOp].sort((a, b) => b[1] - a[1]).map(([k, v]) =>
        `${k} ${v.toFixed(2)}`
      ).join(", ")
    })`,
  );
  console.log(lines.join("\n"));

  Deno.bench({
    name: "decode step, embedded model (wall clock, includes readback)",
    group: "decode",
    n: 20,
    warmup: 2,
    async fn() {
      await model.engine.stepArgmax(decodeTok, [0]);
    },
  });
  Deno.bench({
    name: "generate 32 tokens greedy, embedded model",
    group: "decode",
    n: 3,
    warmup: 1,
    async fn() {
      const gen = model.generate(prompt, { maxTokens: 32, stopAtEos: false });
      for await (const _ of gen) { /* drain */ }
      await gen.result;
    },
  });
}
