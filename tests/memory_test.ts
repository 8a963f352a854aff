/**
 * Memory stays flat over long runs of the embedded model: greedy
 * generation (prefill, SWA seeding, one decode step per token) under
 * dense, SWA and H2O, and scoring of 8 windows at once under each. The
 * engine's GPU-byte accounting must not move after warm-up, and the
 * process's resident memory must stay within a bound of its warm-up value.
 *
 * Before the fixes, H2O decode grew the process by ~0.8 MB per step
 * (Mesa's lavapipe recompiled `accum_h2o` for every dispatch, see
 * shaders/sparse/policy.wgsl), and every scoring call and SWA seeding
 * left its uniform buffers behind.
 *
 * The runs happen in a process of their own (tests/_memory_run.ts): the
 * test runner shares its process among test files. The always-on test
 * makes ~450 decode steps (~17 s on llvmpipe); with `ALISA_SLOW_TESTS=1`
 * a second one makes 2,000+ (~90 s).
 */
import { assert, assertEquals } from "@std/assert";
import { loadModel } from "../src/api/model.ts";
import type { MemoryRun } from "./_memory_run.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const SLOW = Deno.env.get("ALISA_SLOW_TESTS") === "1";

/**
 * RSS may grow this much past warm-up (each sample after a full V8
 * collection). Measured on llvmpipe (2 cores) after the fixes: -2 to +1 MB
 * over ~450 steps, RSS ~200 MB; with the lavapipe leak back, +120 MB
 * during the 118 H2O decode steps alone.
 */
const RSS_BOUND_MB = 64;
/** Without a forced collection, V8's lazy one moves RSS by ~100 MB. */
const RSS_BOUND_NO_GC_MB = 150;

/** Runs tests/_memory_run.ts in its own process and checks its samples. */
async function measure(
  ctx: number,
  rounds: number,
  windowLen: number,
): Promise<MemoryRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./_memory_run.ts", import.meta.url).pathname,
      String(ctx),
      String(rounds),
      String(windowLen),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, err);
  const r: MemoryRun = JSON.parse(new TextDecoder().decode(out.stdout));
  const bound = r.gc ? RSS_BOUND_MB : RSS_BOUND_NO_GC_MB;
  console.log(
    `RSS: after load ${r.loadRss.toFixed(0)} MB, after warm-up ${
      r.warmRss.toFixed(0)
    } MB; gpuBytes ${JSON.stringify(r.gpuBytes)}; bound warm-up + ${bound} MB${
      r.gc ? " (after a full GC)" : ""
    }; ${r.seconds.toFixed(0)} s`,
  );
  console.log("steps   RSS MB   +warm-up  gpuBytes  after");
  for (const s of r.samples) {
    console.log(
      `${String(s.steps).padStart(5)}  ${s.rssMB.toFixed(1).padStart(7)}  ${
        (s.rssMB - r.warmRss).toFixed(1).padStart(8)
      }  ${s.gpuBytes}  ${s.what}`,
    );
  }
  for (const s of r.samples) {
    assertEquals(
      s.gpuBytes,
      r.gpuBytes[s.policy],
      `gpuBytes moved at ${s.what}`,
    );
    assert(
      s.rssMB - r.warmRss <= bound,
      `RSS grew ${(s.rssMB - r.warmRss).toFixed(1)} MB past warm-up (${
        r.warmRss.toFixed(0)
      } MB) by ${s.what}, step ${s.steps}; the bound is ${bound} MB`,
    );
  }
  return r;
}

Deno.test({
  name:
    "memory: generation and scoring under dense, SWA and H2O keep gpuBytes and RSS flat (~450 decode steps)",
  ignore: !HAS_GPU,
  async fn() {
    const r = await measure(128, 1, 32);
    const steps = r.samples[r.samples.length - 1].steps;
    assert(steps >= 400, `only ${steps} steps`);
  },
});

Deno.test({
  name:
    "memory: 2,000+ decode steps and 8-window scoring keep gpuBytes and RSS flat (ALISA_SLOW_TESTS=1)",
  ignore: !HAS_GPU || !SLOW,
  async fn() {
    const r = await measure(320, 2, 64);
    const steps = r.samples[r.samples.length - 1].steps;
    assert(steps >= 2000, `only ${steps} steps`);
  },
});

Deno.test({
  name:
    "memory: scoring, SWA seeding and SWA ring growth free the uniform buffers they make",
  ignore: !HAS_GPU,
  async fn() {
    const gpu = (await testGpu())!;
    const m = await loadModel(undefined, {
      gpu,
      contextLength: 64,
      maxBatch: 2,
    });
    // Every uniform made from here on, and whether it was destroyed.
    const live = new Set<GPUBuffer>();
    const uniform = gpu.uniform;
    gpu.uniform = (label, data) => {
      const b = uniform.call(gpu, label, data);
      live.add(b);
      const destroy = b.destroy.bind(b);
      b.destroy = () => {
        live.delete(b);
        destroy();
      };
      return b;
    };
    try {
      const e = m.engine;
      // Scoring two windows runs steps of 2 and 1 tokens: both decode plans.
      const use = async () => {
        await e.scoreWindows([[1, 2, 3], [4, 5]]);
        await e.seedPolicy([0, 1], [3, 2]);
      };
      e.setPolicy({ name: "swa", sparsity: 0.5 });
      await use();
      const plans = live.size; // the uniforms of the two SWA decode plans
      assert(plans > 0);
      for (let i = 0; i < 20; i++) await use();
      assertEquals(live.size, plans, "scoring or seeding left uniforms");
      // A larger minBudget regrows the ring: the old SWA plans go, with
      // their uniforms, and new ones are built.
      for (let b = 2; b <= 40; b += 2) {
        e.setPolicy({ name: "swa", sparsity: 0.5, minBudget: b });
        await use();
      }
      assertEquals(live.size, plans, "dropped plans left uniforms");
    } finally {
      gpu.uniform = uniform;
      m.dispose();
    }
    assertEquals(live.size, 0, "dispose left uniforms");
  },
});
