/**
 * SWA's per-layer state grows with n x budget (sparse score rows), not
 * with ctx^2: bytes per slot and layer at contexts 1k, 4k, 32k, and the
 * buffers the GPU policy actually allocates.
 */
import { assertEquals, assertLess } from "@std/assert";
import { BufferSet } from "../src/gpu/buffers.ts";
import { SwaPolicy, swaStateBytes } from "../src/sparse/swa_gpu.ts";
import { budgetK } from "../src/sparse/spec.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const swa = (sparsity: number) => ({
  name: "swa" as const,
  sparsity,
  minBudget: 0,
});

Deno.test("SWA state bytes per slot and layer: ring (k + 1) x (2k + 1) entries of 8 bytes, plus S and sel (8 bytes a position)", () => {
  for (const ctx of [1024, 4096, 32768]) {
    for (const s of [0.5, 0.8, 0.9]) {
      const k = budgetK(ctx, s);
      const want = (k + 1) * (Math.min(ctx, 2 * k) + 1) * 8 + ctx * 8 + 4;
      assertEquals(swaStateBytes(swa(s), ctx), want, `ctx ${ctx} s ${s}`);
    }
  }
  // At sparsity 0.8: 667 bytes per position at 4k, 5254 at 32k, about 12x
  // below the dense (ctx / 2 + 2) x ctx x 4 ring rows they replace.
  assertEquals(Math.round(swaStateBytes(swa(0.8), 4096) / 4096), 667);
  assertEquals(Math.round(swaStateBytes(swa(0.8), 32768) / 32768), 5254);
  const dense = (ctx: number) => (ctx / 2 + 2) * ctx * 4 + ctx * 4;
  for (const ctx of [4096, 32768]) {
    assertLess(swaStateBytes(swa(0.8), ctx) * 12, dense(ctx));
  }
});

Deno.test({
  name: "the SWA policy allocates exactly its state per slot and layer",
  ignore: !HAS_GPU,
  async fn() {
    const gpu = (await testGpu())!;
    const set = new BufferSet(gpu, "swa");
    const dims = { nLayers: 3, nHeads: 4, slots: 5, ctx: 1000 };
    const p = new SwaPolicy(gpu, set, swa(0.8), dims);
    // One 16-byte uniform besides the state (buffers pad to 16 bytes).
    const per = swaStateBytes(swa(0.8), dims.ctx);
    const pad = (n: number) => Math.ceil(n / 16) * 16;
    const k = budgetK(dims.ctx, 0.8);
    const ring = dims.slots * (k + 1) * (Math.min(dims.ctx, 2 * k) + 1) * 4;
    const want = 16 + dims.nLayers * (2 * pad(ring) +
          2 * pad(dims.slots * dims.ctx * 4) + pad(dims.slots * 4));
    assertEquals(p.set.bytes, want);
    assertLess(Math.abs(want - 16 - per * dims.slots * dims.nLayers), 200);
    set.destroy();
  },
});
