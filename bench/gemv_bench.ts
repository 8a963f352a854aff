/**
 * Decode GEMV (one token, y = W x) per GPU weight type, as GB/s of weight
 * bytes read, against the device's copy bandwidth measured in the same run
 * (`copyBufferToBuffer` and a copy shader). Weights are random valid
 * blocks (`tests/_quant.ts`); the matmul is the engine's own
 * (`matmulDispatches`, its default threads per row for this device).
 *
 * Timing: GPU timestamps around a pass of `reps` back-to-back dispatches
 * where the device has `timestamp-query`, else wall time around submit and
 * `onSubmittedWorkDone` of `reps` dispatches. Every measurement (the two
 * copies and each GEMV) runs once per round, in turn, for 5 rounds, and
 * keeps its fastest: on a machine shared with other work (a software
 * rasterizer uses the CPUs) a slow spell then hits every type alike.
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
/** Time with wall clocks even where the device has timestamps (`--wall`). */
let wallOnly = false;
const TRIALS = 5;
/** Aim for about this much GPU time per trial. */
const TRIAL_MS = 150;

/** Something timed: `encode` records one repetition. */
interface Job {
  name: string;
  /** Bytes per repetition (weight bytes, or bytes copied). */
  bytes: number;
  encode: (enc: GPUCommandEncoder, pass: GPUComputePassEncoder | null) => void;
  /** Whether `encode` records into a compute pass (else onto the encoder). */
  inPass: boolean;
  reps: number;
  best: number;
}

function job(
  name: string,
  bytes: number,
  encode: Job["encode"],
  inPass = true,
): Job {
  return { name, bytes, encode, inPass, reps: 1, best: Infinity };
}

/** Ms per repetition of one run of `reps` repetitions of `j`. */
async function timeOnce(g: Gpu, j: Job, reps: number): Promise<number> {
  const qs = g.hasTimestamps && !wallOnly
    ? g.device.createQuerySet({ type: "timestamp", count: 2 })
    : null;
  const res = g.device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  try {
    const enc = g.device.createCommandEncoder();
    const t0 = performance.now();
    if (j.inPass) {
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
      for (let i = 0; i < reps; i++) j.encode(enc, pass);
      pass.end();
    } else {
      if (qs) {
        enc.beginComputePass({
          timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0 },
        }).end();
      }
      for (let i = 0; i < reps; i++) j.encode(enc, null);
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
  } finally {
    qs?.destroy();
    res.destroy();
  }
}

/** Warms each job up, sizes its repetitions, then runs TRIALS rounds over all of them. */
async function timeAll(g: Gpu, jobs: Job[]): Promise<void> {
  for (const j of jobs) {
    await timeOnce(g, j, 1); // compiles, faults the buffers in
    const once = await timeOnce(g, j, 1);
    j.reps = Math.max(1, Math.min(200, Math.round(TRIAL_MS / once)));
  }
  for (let t = 0; t < TRIALS; t++) {
    for (const j of jobs) {
      j.best = Math.min(j.best, await timeOnce(g, j, j.reps));
    }
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

/** The whole run: measures, prints, writes `<out>.json` and `<out>.md`. */
async function main(g: Gpu, argv: string[]): Promise<void> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      out: { type: "string", default: "bench/results/gemv" },
      shapes: { type: "string", default: "2048x2048,5632x2048" },
      /** Time with wall clocks even where the device has timestamps. */
      wall: { type: "boolean", default: false },
    },
  });
  wallOnly = args.wall;
  const shapes = args.shapes.split(",").map((s) =>
    s.split("x").map(Number) as [number, number]
  );

  const started = performance.now();
  const loadBefore = Deno.loadavg()[0];
  const set = new BufferSet(g, "gemv");

  // The copies: copyBufferToBuffer and the copy shader, 64 MiB.
  const COPY_BYTES = 64 << 20;
  const src = set.buffer("copy.src", COPY_BYTES);
  const dst = set.buffer("copy.dst", COPY_BYTES);
  const copyPipeline = g.pipeline("bench_copy", COPY_WGSL);
  const copyBind = g.device.createBindGroup({
    layout: copyPipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: src } },
      { binding: 1, resource: { buffer: dst } },
    ],
  });
  const copyApi = job(
    "copyBufferToBuffer",
    COPY_BYTES,
    (enc) => enc.copyBufferToBuffer(src, 0, dst, 0, COPY_BYTES),
    false,
  );
  const copyShader = job("copy shader", COPY_BYTES, (_, pass) => {
    pass!.setPipeline(copyPipeline);
    pass!.setBindGroup(0, copyBind);
    pass!.dispatchWorkgroups(COPY_BYTES / 16 / 256);
  });

  // The GEMVs: every shape and type, uploaded up front.
  const c: OpContext = {
    gpu: g,
    set,
    sb: {
      step: set.buffer("step", stepTableBytes(8)),
      outRows: set.buffer("outRows", 32),
    },
  };
  writeStep(g, c.sb, [{ slot: 0, pos: 0, id: 0 }], [], { decode: true });
  const gemvs: { type: GpuWeightType; rows: number; cols: number; j: Job }[] =
    [];
  let seed = 1;
  for (const [rows, cols] of shapes) {
    const x = set.buffer(`x${cols}`, cols * 4, rng(seed++).floats(cols));
    const y = set.buffer(`y${rows}`, rows * 4);
    for (const type of TYPES) {
      const w = uploadWeight(
        set,
        `w.${type}.${rows}x${cols}`,
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
      gemvs.push({
        type,
        rows,
        cols,
        j: job(`${type} ${rows}x${cols}`, w.bytes, (_, pass) => {
          for (const d of plan) {
            pass!.setPipeline(d.pipeline);
            pass!.setBindGroup(0, d.bindGroup);
            pass!.dispatchWorkgroups(...d.grid(1, 0));
          }
        }),
      });
    }
  }

  await timeAll(g, [copyApi, copyShader, ...gemvs.map((r) => r.j)]);
  const copy = {
    copy_buffer_to_buffer_gbs: COPY_BYTES / 1e6 / copyApi.best,
    copy_shader_gbs: COPY_BYTES / 1e6 / copyShader.best,
  };
  const timing = g.hasTimestamps && !wallOnly
    ? "GPU timestamps around a pass of reps dispatches"
    : "wall time around submit + onSubmittedWorkDone of reps dispatches";
  console.log(
    `${g.adapterInfo.description || g.adapterInfo.vendor}: copy 64 MiB ${
      copy.copy_buffer_to_buffer_gbs.toFixed(2)
    } GB/s (copyBufferToBuffer), ${
      copy.copy_shader_gbs.toFixed(2)
    } GB/s (shader); ${timing}`,
  );
  const rowsOut: Row[] = gemvs.map(({ type, rows, cols, j }) => {
    const gbs = j.bytes / 1e6 / j.best;
    const b = WEIGHT_BLOCKS[type];
    const row: Row = {
      type,
      rows,
      cols,
      bits_per_weight: b.bytes * 8 / b.block,
      weight_bytes: j.bytes,
      threads_per_row: threadsPerRow(cols, g.isSoftware),
      reps: j.reps,
      ms: j.best,
      gbs,
      of_copy_shader: gbs / copy.copy_shader_gbs,
      of_copy_buffer_to_buffer: gbs / copy.copy_buffer_to_buffer_gbs,
    };
    console.log(
      `${type.padEnd(5)} ${rows}x${cols} ${
        (j.bytes / 2 ** 20).toFixed(2).padStart(6)
      } MiB  ${j.best.toFixed(3).padStart(8)} ms  ${
        gbs.toFixed(2).padStart(7)
      } GB/s  ${row.of_copy_shader.toFixed(2)} of the copy shader`,
    );
    return row;
  });
  const seconds = (performance.now() - started) / 1000;
  /** Other work on the machine slows a software rasterizer: the 1-minute load average, before and after. */
  const load = [loadBefore, Deno.loadavg()[0]];

  const report = {
    adapter: g.adapterInfo.description || g.adapterInfo.vendor,
    software: g.isSoftware,
    timing,
    trials: TRIALS,
    copy_bytes: COPY_BYTES,
    ...copy,
    tokens: 1,
    gemv: rowsOut,
    seconds,
    cpus: navigator.hardwareConcurrency,
    load_average_1min: load,
  };
  await Deno.writeTextFile(`${args.out}.json`, JSON.stringify(report, null, 1));

  const md = [
    `GEMV (decode: 1 token, y = W x), GB/s of weight bytes read, ${report.adapter}; ${report.timing}, the fastest of ${TRIALS} rounds that run every measurement in turn.`,
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
}

/** One weight of `type` and the GEMV plan reading it, for `deno bench`. */
function benchGemv(g: Gpu, type: GpuWeightType, rows: number, cols: number) {
  const set = new BufferSet(g, `gemv.${type}`);
  const c: OpContext = {
    gpu: g,
    set,
    sb: {
      step: set.buffer("step", stepTableBytes(8)),
      outRows: set.buffer("outRows", 32),
    },
  };
  writeStep(g, c.sb, [{ slot: 0, pos: 0, id: 0 }], [], { decode: true });
  const w = uploadWeight(
    set,
    "w",
    type,
    rows,
    cols,
    weightData(type, rows, cols, 1),
  );
  return matmulDispatches(c, {
    weight: w,
    x: set.buffer("x", cols * 4, rng(2).floats(cols)),
    y: set.buffer("y", rows * 4),
    xStride: cols,
    yStride: rows,
    tokensPerGroup: 1,
  });
}

if (import.meta.main) {
  const g = await openGpu();
  try {
    await main(g, Deno.args);
  } finally {
    g.destroy();
  }
} else if (await navigator.gpu?.requestAdapter()) {
  // `deno bench`: wall clock of one decode GEMV (submit and wait) per type.
  const g = await openGpu();
  addEventListener("unload", () => g.destroy()); // lavapipe aborts on a device left open
  for (const type of ["f16", "q8_0", "q4_k", "q6_k"] as GpuWeightType[]) {
    const plan = benchGemv(g, type, 1024, 1024);
    Deno.bench({
      name: `GEMV ${type} 1024x1024, 1 token (wall clock)`,
      group: "gemv",
      n: 20,
      warmup: 2,
      async fn() {
        const enc = g.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        for (const d of plan) {
          pass.setPipeline(d.pipeline);
          pass.setBindGroup(0, d.bindGroup);
          pass.dispatchWorkgroups(...d.grid(1, 0));
        }
        pass.end();
        g.device.queue.submit([enc.finish()]);
        await g.device.queue.onSubmittedWorkDone();
      },
    });
  }
} else {
  console.warn("skipping GEMV benchmark: no WebGPU adapter");
}
