/**
 * Decode GEMV (one token, y = W x) per GPU weight type, as GB/s of weight
 * bytes read, against the device's copy bandwidth measured in the same run
 * (`copyBufferToBuffer` and a copy shader). Weights are random valid
 * blocks (`tests/_quant.ts`); the matmul is the engine's own
 * (`matmulDispatches`, its default threads per row for this device).
 *
 * Timing: GPU timestamps around a pass of `reps` back-to-back dispatches
 * where the device has `timestamp-query`, else wall time around submit and
 * `onSubmittedWorkDone` of `reps` dispatches; the fastest of 5 trials.
 *
 * ```sh
 * deno run -A bench/gemv_bench.ts [--out bench/results/gemv] [--shapes 2048x2048,5632x2048] [--wall]
 * ```
 *
 * Writes `<out>.json` and `<out>.md`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BufferSet } from "../src/gpu/buffers.ts";
import { type Gpu, openGpu } from "../src/gpu/device.ts";
import type { Dispatch, OpContext } from "../src/gpu/dispatch.ts";
import type { GpuWeightType } from "../src/gpu/shaders.ts";
import { stepTableBytes, writeStep } from "../src/gpu/step.ts";
import { uploadWeight, WEIGHT_BLOCKS } from "../src/gpu/weights.ts";
import { matmulDispatches, threadsPerRow } from "../src/model/ops.ts";
import { rng } from "../tests/_shared.ts";
import { randomBlocks, toF16 } from "../tests/_quant.ts";

const TYPES: GpuWeightType[] = [
  "f32",
  "f16",
  "q8_0",
  "q4_0",
  "q4_1",
  "q5_0",
  "q5_1",
  "q4_k",
  "q5_k",
  "q6_k",
];
const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string", default: "bench/results/gemv" },
    shapes: { type: "string", default: "2048x2048,5632x2048" },
    /** Time with wall clocks even where the device has timestamps. */
    wall: { type: "boolean", default: false },
  },
});
const TRIALS = 5;
/** Aim for about this much GPU time per trial. */
const TRIAL_MS = 150;

/**
 * Ms of one `encode`: the fastest of TRIALS trials of `reps` each (the
 * least disturbed by other work on the machine).
 */
async function timeIt(
  g: Gpu,
  encode: (enc: GPUCommandEncoder, pass: GPUComputePassEncoder | null) => void,
  /** Whether `encode` records into a compute pass (else onto the encoder). */
  inPass: boolean,
): Promise<{ ms: number; reps: number }> {
  const qs = g.hasTimestamps && !args.wall
    ? g.device.createQuerySet({ type: "timestamp", count: 2 })
    : null;
  const res = g.device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const run = async (reps: number): Promise<number> => {
    const enc = g.device.createCommandEncoder();
    const t0 = performance.now();
    if (inPass) {
      const pass = enc.beginComputePass(
        qs
          ? {
            timestampWrites: {
              querySet: qs,
              beginningOfPassWriteIndex: 0,
              endOfPassWriteIndex: 1,
            },
          }
          : {},
      );
      for (let i = 0; i < reps; i++) encode(enc, pass);
      pass.end();
    } else {
      if (qs) {
        enc.beginComputePass({
          timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0 },
        }).end();
      }
      for (let i = 0; i < reps; i++) encode(enc, null);
      if (qs) {
        enc.beginComputePass({
          timestampWrites: { querySet: qs, endOfPassWriteIndex: 1 },
        }).end();
      }
    }
    if (qs) enc.resolveQuerySet(qs, 0, 2, res, 0);
    g.device.queue.submit([enc.finish()]);
    await g.device.queue.onSubmittedWorkDone();
    const wall = performance.now() - t0;
    g.check();
    if (!qs) return wall / reps;
    const t = new BigUint64Array(await g.read(res, 16));
    return Number(t[1] - t[0]) / 1e6 / reps;
  };
  try {
    await run(1); // warm-up: compiles, faults the buffers in
    const once = await run(1);
    const reps = Math.max(1, Math.min(200, Math.round(TRIAL_MS / once)));
    const t: number[] = [];
    for (let i = 0; i < TRIALS; i++) t.push(await run(reps));
    return { ms: Math.min(...t), reps };
  } finally {
    qs?.destroy();
    res.destroy();
  }
}

const COPY_WGSL = `
@group(0) @binding(0) var<storage, read> src: array<vec4u>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4u>;
// One vec4 per thread (of the simple copies tried on llvmpipe, the fastest:
// 1.5 GB/s against 0.4 for a grid-stride loop and 1.0 for a chunk per thread).
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&src)) {
    dst[id.x] = src[id.x];
  }
}`;

/** Copy bandwidth: bytes copied per second (each byte read once, written once). */
async function copyGBs(g: Gpu, bytes: number) {
  const a = g.buffer("copy.src", bytes), b = g.buffer("copy.dst", bytes);
  try {
    const api = await timeIt(
      g,
      (enc) => enc.copyBufferToBuffer(a, 0, b, 0, bytes),
      false,
    );
    const pipeline = g.pipeline("bench_copy", COPY_WGSL);
    const bg = g.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: a } },
        { binding: 1, resource: { buffer: b } },
      ],
    });
    const groups = Math.ceil(bytes / 16 / 256); // 16384 for 64 MiB
    const shader = await timeIt(g, (_, pass) => {
      pass!.setPipeline(pipeline);
      pass!.setBindGroup(0, bg);
      pass!.dispatchWorkgroups(groups);
    }, true);
    return {
      copy_buffer_to_buffer_gbs: bytes / 1e6 / api.ms,
      copy_shader_gbs: bytes / 1e6 / shader.ms,
    };
  } finally {
    a.destroy();
    b.destroy();
  }
}

/** Random weights of `type`, as uploadWeight takes them. */
function weightData(
  type: GpuWeightType,
  rows: number,
  cols: number,
  seed: number,
): Float32Array | Uint16Array | Uint8Array {
  if (type === "f32") return rng(seed).floats(rows * cols, 0.02);
  if (type === "f16") return toF16(rng(seed).floats(rows * cols, 0.02));
  return randomBlocks(type.toUpperCase(), rows * cols, seed);
}

interface Row {
  type: GpuWeightType;
  rows: number;
  cols: number;
  bits_per_weight: number;
  weight_bytes: number;
  threads_per_row: number;
  reps: number;
  ms: number;
  gbs: number;
  of_copy_shader: number;
  of_copy_buffer_to_buffer: number;
}

const shapes = args.shapes.split(",").map((s) =>
  s.split("x").map(Number) as [number, number]
);

const g = await openGpu();
const started = performance.now();
const loadBefore = Deno.loadavg()[0];
const copy = await copyGBs(g, 64 << 20);
console.log(
  `${g.adapterInfo.description || g.adapterInfo.vendor}: copy 64 MiB ${
    copy.copy_buffer_to_buffer_gbs.toFixed(2)
  } GB/s (copyBufferToBuffer), ${
    copy.copy_shader_gbs.toFixed(2)
  } GB/s (shader); timing: ${
    g.hasTimestamps && !args.wall ? "GPU timestamps" : "wall"
  }`,
);

const set = new BufferSet(g, "gemv");
const c: OpContext = {
  gpu: g,
  set,
  sb: {
    step: set.buffer("step", stepTableBytes(8)),
    outRows: set.buffer("outRows", 32),
  },
};
writeStep(g, c.sb, [{ slot: 0, pos: 0, id: 0 }], [], { decode: true });

const rowsOut: Row[] = [];
let seed = 1;
for (const [rows, cols] of shapes) {
  const x = set.buffer("x", cols * 4, rng(seed++).floats(cols));
  const y = set.buffer("y", rows * 4);
  for (const type of TYPES) {
    const w = uploadWeight(
      set,
      `w.${type}`,
      type,
      rows,
      cols,
      weightData(type, rows, cols, seed++),
    );
    const plan: Dispatch[] = matmulDispatches(c, {
      weight: w,
      x,
      y,
      xStride: cols,
      yStride: rows,
      tokensPerGroup: 1,
    });
    const { ms, reps } = await timeIt(g, (_, pass) => {
      for (const d of plan) {
        pass!.setPipeline(d.pipeline);
        pass!.setBindGroup(0, d.bindGroup);
        pass!.dispatchWorkgroups(...d.grid(1, 0));
      }
    }, true);
    const gbs = w.bytes / 1e6 / ms;
    const b = WEIGHT_BLOCKS[type];
    const row: Row = {
      type,
      rows,
      cols,
      bits_per_weight: b.bytes * 8 / b.block,
      weight_bytes: w.bytes,
      threads_per_row: threadsPerRow(cols, g.isSoftware),
      reps,
      ms,
      gbs,
      of_copy_shader: gbs / copy.copy_shader_gbs,
      of_copy_buffer_to_buffer: gbs / copy.copy_buffer_to_buffer_gbs,
    };
    rowsOut.push(row);
    console.log(
      `${type.padEnd(5)} ${rows}x${cols} ${
        (w.bytes / 2 ** 20).toFixed(2).padStart(6)
      } MiB  ${ms.toFixed(3).padStart(8)} ms  ${
        gbs.toFixed(2).padStart(7)
      } GB/s  ${row.of_copy_shader.toFixed(2)} of the copy shader`,
    );
    for (const p of w.parts) {
      set.free(p.w);
      if (p.ws) set.free(p.ws);
    }
  }
}
const seconds = (performance.now() - started) / 1000;
/** Other work on the machine slows a software rasterizer: the 1-minute load average, before and after. */
const load = [loadBefore, Deno.loadavg()[0]];

const report = {
  adapter: g.adapterInfo.description || g.adapterInfo.vendor,
  software: g.isSoftware,
  timing: g.hasTimestamps && !args.wall
    ? "GPU timestamps around a pass of reps dispatches"
    : "wall time around submit + onSubmittedWorkDone of reps dispatches",
  trials: TRIALS,
  copy_bytes: 64 << 20,
  ...copy,
  tokens: 1,
  rows: rowsOut,
  seconds,
  cpus: navigator.hardwareConcurrency,
  load_average_1min: load,
};
await Deno.writeTextFile(`${args.out}.json`, JSON.stringify(report, null, 1));

const md = [
  `GEMV (decode: 1 token, y = W x), GB/s of weight bytes read, ${report.adapter}; ${report.timing}, fastest of ${TRIALS} trials.`,
  "",
  `Copy of 64 MiB in the same run: copyBufferToBuffer ${
    copy.copy_buffer_to_buffer_gbs.toFixed(2)
  } GB/s, copy shader ${
    copy.copy_shader_gbs.toFixed(2)
  } GB/s (bytes copied per second).`,
  "",
  `| type | bits/weight | shape | MiB | threads/row | ms | GB/s | of copy shader | of copyBufferToBuffer |`,
  `|---|---:|---|---:|---:|---:|---:|---:|---:|`,
  ...rowsOut.map((r) =>
    `| ${r.type} | ${r.bits_per_weight.toFixed(2)} | ${r.rows}x${r.cols} | ${
      (r.weight_bytes / 2 ** 20).toFixed(2)
    } | ${r.threads_per_row} | ${r.ms.toFixed(3)} | ${r.gbs.toFixed(2)} | ${
      r.of_copy_shader.toFixed(2)
    } | ${r.of_copy_buffer_to_buffer.toFixed(2)} |`
  ),
  "",
  `Whole run: ${
    seconds.toFixed(0)
  } s on ${navigator.hardwareConcurrency} CPUs; 1-minute load average ${
    load[0].toFixed(1)
  } before, ${
    load[1].toFixed(1)
  } after (other processes share a software rasterizer's cores). Command: \`deno run -A bench/gemv_bench.ts\`.`,
  "",
].join("\n");
await Deno.writeTextFile(`${args.out}.md`, md);
console.log(
  `wrote ${args.out}.json and ${args.out}.md (${seconds.toFixed(0)} s)`,
);
set.destroy();
g.destroy();
