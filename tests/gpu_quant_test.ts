/**
 * Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K weights kept as ggml's raw
 * blocks on the GPU and dequantized in the shader: random valid blocks on
 * odd shapes, split into several binding parts, through matmul (decode and
 * prefill, 1 and 16 threads per row, gather) and embed, against the Wasm
 * dequantizer (itself checked against llama.cpp's) and a CPU product.
 * Compared by NMSE = sum((gpu - ref)^2) / sum(ref^2); the sums are f32 on
 * the GPU and f64 here, the dequantized weights exact. Then whole models:
 * a Q4_K_M-style copy of the Austen model, and one mixing every type, give
 * the logits of their F32 twins holding the same values; a tensor of a type
 * alisa cannot use is refused at load, naming tensor and type.
 */
import {
  assert,
  assertEquals,
  assertLessOrEqual,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { dequantize } from "../src/formats/dequantize.ts";
import { GgufFile } from "../src/formats/gguf.ts";
import { ggmlType } from "../src/formats/tensor.ts";
import { embedDispatches, matmulDispatches } from "../src/model/ops.ts";
import { BufferSet } from "../src/gpu/buffers.ts";
import { inspectReport } from "../src/formats/inspect.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import { uploadWeights } from "../src/model/weights.ts";
import type { GpuWeightType } from "../src/gpu/shaders.ts";
import {
  GPU_WEIGHT_TYPES,
  uploadWeight,
  WEIGHT_BLOCKS,
  weightRowBytes,
} from "../src/gpu/weights.ts";
import { loadModel } from "../src/api/model.ts";
import { compare, FIXTURES_DIR, hasShared, sharedPath } from "./_shared.ts";
import { HAS_GPU, opContext, readF32, rng, runPlan, testGpu } from "./_gpu.ts";
import {
  BLOCK_TYPES,
  q4kmType,
  randomBlocks,
  requantizedGguf,
} from "./_quant.ts";

const ignore = !HAS_GPU;
const gpuType = (t: string) => t.toLowerCase() as GpuWeightType;

/** Y[t, r] = sum_k W[r, k] X[xRow(t), k], in f64. */
function cpuMatmul(
  w: Float32Array,
  x: Float32Array,
  rows: number,
  cols: number,
  xRows: number[],
): Float32Array {
  const y = new Float32Array(xRows.length * rows);
  xRows.forEach((src, t) => {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += w[r * cols + k] * x[src * cols + k];
      y[t * rows + r] = s;
    }
  });
  return y;
}

Deno.test("the GPU's block table agrees with the Wasm core's ggml types", () => {
  for (const [stored, how] of Object.entries(GPU_WEIGHT_TYPES)) {
    const t = ggmlType(stored);
    assertEquals(
      WEIGHT_BLOCKS[how.type],
      { block: t.blockSize, bytes: t.typeSize },
      stored,
    );
    assertEquals(how.read, t.blockSize > 1 ? "raw" : how.read, stored);
  }
  for (const t of BLOCK_TYPES) {
    assertEquals(GPU_WEIGHT_TYPES[t].type, gpuType(t));
  }
  assertEquals(weightRowBytes("q4_k", 512), 288);
  assertEquals(weightRowBytes("q6_k", 768), 630);
  assertEquals(weightRowBytes("q5_0", 96), 66);
});

Deno.test("uploadWeight refuses rows of part blocks (naming tensor, type and cols) and data of the wrong size", () => {
  const noGpu = {} as BufferSet; // both checks come before any GPU call
  for (
    const [type, cols] of [["q4_k", 96], ["q5_k", 384], ["q6_k", 32], [
      "q4_0",
      48,
    ], ["q5_1", 20]] as const
  ) {
    const e = assertThrows(
      () =>
        uploadWeight(
          noGpu,
          "blk.3.ffn_up.weight",
          type,
          2,
          cols,
          new Uint8Array(0),
          1 << 20,
        ),
      TypeError,
    );
    assertStringIncludes(e.message, "blk.3.ffn_up.weight");
    assertStringIncludes(e.message, type.toUpperCase());
    assertStringIncludes(e.message, String(cols));
  }
  assertThrows(
    () =>
      uploadWeight(noGpu, "w", "q4_k", 2, 256, new Uint8Array(287), 1 << 20),
    RangeError,
    "288 bytes, got 287",
  );
});

Deno.test({
  name:
    "matmul on Q4_0 ... Q6_K blocks (odd shapes; split parts; decode and prefill; 1 and 16 threads per row; gather) equals the Wasm dequantization's product",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    const report: string[] = [];
    let seed = 100;
    for (const stored of BLOCK_TYPES) {
      const type = gpuType(stored);
      const k = WEIGHT_BLOCKS[type].block === 256;
      const shapes = k
        ? [[37, 256], [61, 512], [129, 768]]
        : [[37, 96], [61, 160], [129, 224]];
      let worst = 0;
      for (const [rows, cols] of shapes) {
        const raw = randomBlocks(stored, rows * cols, seed++);
        const ref = dequantize(stored, raw, rows * cols) as Float32Array;
        const rowBytes = weightRowBytes(type, cols);
        assertEquals(raw.byteLength, rows * rowBytes);
        for (const split of [false, true]) {
          const w = uploadWeight(
            c.set,
            `w.${type}`,
            type,
            rows,
            cols,
            raw,
            split ? rowBytes * 7 : undefined,
          );
          assertEquals(w.parts.length, split ? Math.ceil(rows / 7) : 1);
          // GPU bytes = tensor bytes, each part padded to 16 at most.
          assert(
            w.bytes >= raw.byteLength &&
              w.bytes < raw.byteLength + 16 * w.parts.length,
          );
          const r = rng(seed++);
          const nMax = 6;
          const x = r.floats(nMax * cols);
          const xb = gpu.buffer("x", x.byteLength, x);
          for (const n of [1, nMax]) {
            for (const tpr of [1, 16]) {
              const yb = gpu.buffer("y", n * rows * 4);
              await runPlan(
                c,
                matmulDispatches(c, {
                  weight: w,
                  x: xb,
                  y: yb,
                  xStride: cols,
                  yStride: rows,
                  tokensPerGroup: n === 1 ? 1 : 4,
                  threadsPerRow: tpr,
                }),
                Array.from(
                  { length: n },
                  (_, i) => ({ slot: 0, pos: i, id: 0 }),
                ),
              );
              const got = await readF32(gpu, yb, n * rows);
              const want = cpuMatmul(
                ref,
                x,
                rows,
                cols,
                Array.from({ length: n }, (_, i) => i),
              );
              const { nmse } = compare(got, want);
              worst = Math.max(worst, nmse);
              assertLessOrEqual(
                nmse,
                1e-10,
                `${stored} ${rows}x${cols} split=${split} n=${n} tpr=${tpr}: NMSE ${nmse}`,
              );
              yb.destroy();
            }
          }
          // gather: output row i reads x row outRows[i].
          const outRows = [nMax - 1, 2, 0];
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
              threadsPerRow: 16,
            }),
            Array.from(
              { length: nMax },
              (_, i) => ({ slot: 0, pos: i, id: 0 }),
            ),
            outRows,
          );
          const got = await readF32(gpu, yg, outRows.length * rows);
          const { nmse } = compare(got, cpuMatmul(ref, x, rows, cols, outRows));
          worst = Math.max(worst, nmse);
          assertLessOrEqual(nmse, 1e-10, `${stored} gather: NMSE ${nmse}`);
          xb.destroy();
          yg.destroy();
        }
      }
      report.push(`${stored} ${worst.toExponential(2)}`);
    }
    console.log(`largest matmul NMSE per type: ${report.join(", ")}`);
  },
});

Deno.test({
  name:
    "embed on Q4_0 ... Q6_K blocks (split table) gives the Wasm dequantization of every row",
  ignore,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    const report: string[] = [];
    let seed = 500;
    for (const stored of BLOCK_TYPES) {
      const type = gpuType(stored);
      const vocab = 45;
      const dim = WEIGHT_BLOCKS[type].block === 256 ? 512 : 160;
      const raw = randomBlocks(stored, vocab * dim, seed++);
      const ref = dequantize(stored, raw, vocab * dim) as Float32Array;
      const w = uploadWeight(
        c.set,
        `e.${type}`,
        type,
        vocab,
        dim,
        raw,
        weightRowBytes(type, dim) * 16,
      );
      assertEquals(w.parts.length, 3);
      const ids = Array.from({ length: vocab }, (_, i) => (i * 7) % vocab);
      const x = gpu.buffer("x", ids.length * dim * 4);
      await runPlan(
        c,
        embedDispatches(c, { weight: w, x }),
        ids.map((id, i) => ({ slot: 0, pos: i, id })),
      );
      const got = await readF32(gpu, x, ids.length * dim);
      const want = new Float32Array(ids.length * dim);
      ids.forEach((id, i) =>
        want.set(ref.subarray(id * dim, (id + 1) * dim), i * dim)
      );
      let differ = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) differ++;
      const { nmse } = compare(got, want);
      report.push(
        `${stored} ${nmse.toExponential(2)} (${differ} not bit-equal)`,
      );
      assertLessOrEqual(nmse, 1e-12, `${stored} embed: NMSE ${nmse}`);
      x.destroy();
    }
    console.log(`embed NMSE per type: ${report.join(", ")}`);
  },
});

Deno.test({
  name:
    "embed of quant-types.gguf's tensors (written by gguf-py) gives gguf-py's dequantization, for every type the GPU keeps",
  ignore,
  async fn() {
    const dir = `${FIXTURES_DIR}/quant`;
    const manifest = JSON.parse(
      await Deno.readTextFile(`${dir}/quant-ref.json`),
    );
    const refBin = await Deno.readFile(`${dir}/quant-ref.bin`);
    const gpu = (await testGpu())!;
    const c = opContext(gpu);
    const g = await GgufFile.open(`${dir}/quant-types.gguf`);
    const seen: string[] = [], report: string[] = [];
    try {
      for (
        const t of manifest.files[0].tensors as {
          name: string;
          ggml_type: string;
          ref_offset: number;
          ref_count: number;
        }[]
      ) {
        const how = GPU_WEIGHT_TYPES[t.ggml_type];
        if (!how) continue;
        const [rows, cols] = g.tensor(t.name).shape;
        const data = how.read === "raw"
          ? await g.readRaw(t.name)
          : await g.read(t.name, how.read);
        const w = uploadWeight(c.set, t.name, how.type, rows, cols, data);
        const x = gpu.buffer("x", rows * cols * 4);
        await runPlan(
          c,
          embedDispatches(c, { weight: w, x }),
          Array.from({ length: rows }, (_, i) => ({ slot: 0, pos: i, id: i })),
        );
        const got = await readF32(gpu, x, rows * cols);
        const want = new Float32Array(
          refBin.buffer.slice(t.ref_offset, t.ref_offset + t.ref_count * 4),
        );
        // Bit for bit on llvmpipe; a GPU that fuses d * q + m may round
        // the last bit differently.
        const { nmse } = compare(got, want);
        assertLessOrEqual(nmse, 1e-12, `${t.ggml_type}: NMSE ${nmse}`);
        const differ = got.filter((v, i) => v !== want[i]).length;
        seen.push(t.ggml_type);
        report.push(`${t.ggml_type} ${differ}`);
        x.destroy();
      }
    } finally {
      g.close();
    }
    console.log(`elements not bit-equal to gguf-py's: ${report.join(", ")}`);
    assertEquals(seen.sort(), Object.keys(GPU_WEIGHT_TYPES).sort());
  },
});

const AUSTEN = "models/austen-5m-f32.gguf";
const PROMPT = [1, 739, 338, 263, 876, 2987, 318, 1474, 1844, 3192];

/** NMSE of the logits of two GGUFs over PROMPT. */
async function logitsNmse(a: Uint8Array, b: Uint8Array): Promise<number> {
  const gpu = (await testGpu())!;
  const ma = await loadModel(a, { gpu, contextLength: 64 });
  try {
    const mb = await loadModel(b, { gpu, contextLength: 64 });
    try {
      const la = await ma.logits(PROMPT), lb = await mb.logits(PROMPT);
      return compare(la, lb).nmse;
    } finally {
      mb.dispose();
    }
  } finally {
    ma.dispose();
  }
}

Deno.test({
  name:
    "a Q4_K_M-style model, and one mixing every weight type, give the logits of their F32 twins",
  ignore: ignore || !hasShared(AUSTEN),
  async fn() {
    const q4km = await requantizedGguf(sharedPath(AUSTEN), q4kmType, 1);
    assertEquals(q4km.types.get("token_embd.weight"), "Q4_K");
    assertEquals(q4km.types.get("blk.5.ffn_down.weight"), "Q6_K");
    const a = await logitsNmse(q4km.quant, q4km.f32);
    // What the upload holds is what inspect estimates, up to each
    // buffer's padding to 16 bytes.
    const file = await openModelFile(q4km.quant);
    const set = new BufferSet((await testGpu())!, "q4km");
    try {
      await uploadWeights(set, file);
      const estimate = inspectReport(file).gpu.weight_bytes;
      assert(
        set.bytes >= estimate && set.bytes < estimate + 16 * 56,
        `uploaded ${set.bytes}, inspect says ${estimate}`,
      );
    } finally {
      set.destroy();
      file.close();
    }
    // Every type in turn, matrix by matrix: kept (the block types, Q8_0,
    // F16) and dequantized to f16 at upload (Q2_K, Q3_K).
    const all = [...BLOCK_TYPES, "Q8_0", "F16", "Q2_K", "Q3_K"];
    let i = 0;
    const mixed = await requantizedGguf(
      sharedPath(AUSTEN),
      () => all[i++ % all.length],
      2,
    );
    const b = await logitsNmse(mixed.quant, mixed.f32);
    console.log(`logits NMSE vs F32 twin: Q4_K_M-style ${a}, mixed ${b}`);
    assertLessOrEqual(a, 1e-10);
    assertLessOrEqual(b, 1e-10);
  },
});

Deno.test({
  name:
    "a model with a tensor of a type alisa cannot use is refused at load, naming tensor and type",
  ignore: ignore || !hasShared(AUSTEN),
  async fn() {
    const m = await requantizedGguf(
      sharedPath(AUSTEN),
      (name) => name === "blk.2.ffn_up.weight" ? "IQ2_XXS" : "Q4_0",
    );
    const gpu = (await testGpu())!;
    const e = await assertRejects(
      () => loadModel(m.quant, { gpu }),
      TypeError,
    );
    assertStringIncludes(e.message, "blk.2.ffn_up.weight");
    assertStringIncludes(e.message, "IQ2_XXS");
  },
});
