/**
 * SWA's one-step-ahead selection at the end of the context: the last
 * decode step (pos ctx - 1) has no next step, and its selection must stay
 * within its own slot's row (it used to write ctx + 1 entries, the last
 * into the next slot's list, which that slot then attended).
 */
import { assertEquals } from "@std/assert";
import { SwaPolicy } from "../src/sparse/swa_gpu.ts";
import { HAS_GPU, opContext, runPlan, testGpu } from "./_gpu.ts";

Deno.test({
  name:
    "select_swa at the last position stays in its slot (sparsity 0 and a minBudget as large as the context)",
  ignore: !HAS_GPU,
  async fn() {
    const gpu = (await testGpu())!;
    const c = opContext(gpu, 4);
    const ctx = 64, slots = 2;
    for (
      const spec of [
        { name: "swa" as const, sparsity: 0, minBudget: 0 },
        { name: "swa" as const, sparsity: 0.5, minBudget: 64 },
      ]
    ) {
      const pol = new SwaPolicy(gpu, c.set.child("swa"), spec, {
        nLayers: 1,
        nHeads: 1,
        slots,
        ctx,
      });
      const { sel, selN } = pol.selection(0);
      // Slot 1 holds a set chosen earlier: positions 0..9.
      const init = new Uint32Array(slots * ctx).fill(0xdead);
      for (let j = 0; j < 10; j++) init[ctx + j] = j;
      gpu.device.queue.writeBuffer(sel, 0, init);
      gpu.device.queue.writeBuffer(selN, 0, new Uint32Array([0, 10, 0, 0]));
      // The last decode step of slot 0; slot 1 is not in this step.
      await runPlan(c, pol.select(c, true), [
        { slot: 0, pos: ctx - 1, id: 0, kvLen: ctx },
      ]);
      const s = new Uint32Array(await gpu.read(sel));
      const n = new Uint32Array(await gpu.read(selN));
      assertEquals(n[0], ctx, "slot 0 attends at most the whole context");
      assertEquals(Array.from(s.subarray(0, ctx)), [...Array(ctx).keys()]);
      assertEquals(
        Array.from(s.subarray(ctx, ctx + 10)),
        [...Array(10).keys()],
        "slot 1's list must be untouched",
      );
      assertEquals(n[1], 10);
    }
  },
});
