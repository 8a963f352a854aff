/**
 * INT8 KV compression throughput on a 1M-element block (8192 tokens x 128
 * channels), per group shape, SIMD and scalar kernels, through the
 * zero-copy workspace (kernel time only) and the copying one-call API.
 *
 * `deno bench -A bench/int8_bench.ts` for Deno's report;
 * `deno run -A bench/int8_bench.ts` prints GB/s (of f32 input bytes, i.e.
 * 4 bytes per element whatever the direction or input type).
 *
 * @module
 */
import {
  dequantizeInt8,
  INT8_SIMD,
  type Int8Layout,
  Int8Workspace,
  quantizeInt8,
} from "../src/kv/int8.ts";

const TOKENS = 8192, CHANNELS = 128, N = TOKENS * CHANNELS;

function keyLike(seed: number): Float32Array {
  let s = seed;
  const r = () => (s = (s * 1103515245 + 12345) >>> 0) / 4294967296;
  const x = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    const c = i % CHANNELS;
    x[i] = (r() + r() + r() - 1.5) * (c % 16 === 3 ? 20 : 1) + (c % 7) * 0.1;
  }
  return x;
}

const X = keyLike(1);
const X16 = new Uint16Array(Float16Array.from(X).buffer);

const SHAPES: [string, Int8Layout][] = [
  ["perChannel G=32", { groupShape: "perChannel", groupTokens: 32 }],
  ["perToken D=32", { groupShape: "perToken", headDim: 32 }],
  ["perToken D=128", { groupShape: "perToken", headDim: 128 }],
  ["contiguous N=32", { groupShape: "contiguous", groupSize: 32 }],
  ["contiguous N=1M", { groupShape: "contiguous", groupSize: N }],
];
const MODES = INT8_SIMD ? [true, false] : [false];

interface Case {
  name: string;
  group: string;
  fn: () => void;
}

/** Every case, each with its own ready workspace. */
function cases(): Case[] {
  const out: Case[] = [];
  for (const [label, shape] of SHAPES) {
    const layout = { ...shape, tokens: TOKENS, channels: CHANNELS };
    for (const simd of MODES) {
      const kind = simd ? "simd" : "scalar";
      const ws = new Int8Workspace();
      ws.configure(layout);
      ws.input.set(X);
      ws.quantize();
      out.push({
        name: `quantize ${label} f32 ${kind}`,
        group: `quantize ${label}`,
        fn: () => ws.quantize(simd),
      });
      out.push({
        name: `dequantize ${label} f32 ${kind}`,
        group: `dequantize ${label}`,
        fn: () => ws.dequantize(simd),
      });
      if (label === "perChannel G=32" || label === "perToken D=32") {
        const w16 = new Int8Workspace();
        w16.configure({ ...layout, input: "f16", output: "f16" });
        w16.input.set(X16);
        w16.quantize();
        out.push({
          name: `quantize ${label} f16-in ${kind}`,
          group: `quantize ${label}`,
          fn: () => w16.quantize(simd),
        });
        out.push({
          name: `dequantize ${label} f16-out ${kind}`,
          group: `dequantize ${label}`,
          fn: () => w16.dequantize(simd),
        });
      }
    }
  }
  const qw = new Int8Workspace();
  qw.configureQ8_0(N);
  qw.input.set(X);
  for (const simd of MODES) {
    out.push({
      name: `quantize Q8_0 ${simd ? "simd" : "scalar"}`,
      group: "quantize Q8_0",
      fn: () => qw.quantizeQ8_0(simd),
    });
  }
  const layout = { ...SHAPES[0][1], tokens: TOKENS, channels: CHANNELS };
  const block = quantizeInt8(X, layout);
  out.push({
    name: "quantizeInt8 (copying API) perChannel G=32 simd",
    group: "quantize perChannel G=32",
    fn: () => quantizeInt8(X, layout),
  });
  out.push({
    name: "dequantizeInt8 (copying API) perChannel G=32 simd",
    group: "dequantize perChannel G=32",
    fn: () => dequantizeInt8(block, layout),
  });
  return out;
}

if (import.meta.main) {
  // GB/s table: best of 5 runs of enough iterations for ~0.2 s each.
  console.log(`1M elements (${TOKENS} x ${CHANNELS}), GB/s of f32 bytes`);
  for (const c of cases()) {
    c.fn();
    let iters = 1;
    for (let t = 0; t < 0.05;) {
      const t0 = performance.now();
      for (let i = 0; i < iters; i++) c.fn();
      t = (performance.now() - t0) / 1000;
      if (t < 0.05) iters *= 2;
    }
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let i = 0; i < iters; i++) c.fn();
      best = Math.min(best, (performance.now() - t0) / 1000 / iters);
    }
    console.log(
      `${c.name.padEnd(52)} ${
        (N * 4 / best / 1e9).toFixed(2).padStart(7)
      } GB/s ${(best * 1e3).toFixed(3).padStart(8)} ms`,
    );
  }
} else {
  for (const c of cases()) {
    Deno.bench({ name: c.name, group: c.group, n: 50, warmup: 5, fn: c.fn });
  }
}
