/**
 * Concurrent generate calls on one model share decode steps
 * (`src/api/batcher.ts`): each request's tokens equal its solo run (greedy,
 * and seeded sampling), requests beyond the slots wait and then run, a
 * request with another KV policy waits for the running ones, and a
 * cancelled request (break, AbortSignal) leaves and frees its slot.
 */
import { assert, assertEquals } from "@std/assert";
import type { GenerateOptions, Model } from "../src/api/model.ts";
import { HAS_GPU, withModel } from "./_gpu.ts";

const ignore = !HAS_GPU;

async function run(m: Model, prompt: string, o: GenerateOptions) {
  const g = m.generate(prompt, o);
  let text = "";
  for await (const p of g) text += p.text;
  const r = await g.result;
  assertEquals(text, r.text);
  return r;
}

const PROMPTS = [
  "It is a truth universally acknowledged",
  "Mr. Darcy",
  '"My dear Mr. Bennet," said his lady to him one day, "have you heard',
  "Emma",
  "Elizabeth",
  "The family of Dashwood had long been settled in Sussex.",
];

Deno.test({
  name:
    "6 concurrent generate calls on 4 slots: each equals its solo run (greedy and seeded sampling), the extra 2 wait and run",
  ignore,
  async fn() {
    await withModel({ maxBatch: 4, contextLength: 256 }, async (m) => {
      const opts = (i: number): GenerateOptions =>
        i === 2
          ? { maxTokens: 20, stopAtEos: false, temperature: 0.9, seed: 7 }
          : { maxTokens: 8 + 3 * i, stopAtEos: false };
      const solo = [];
      for (let i = 0; i < PROMPTS.length; i++) {
        solo.push(await run(m, PROMPTS[i], opts(i)));
      }
      let peak = 0;
      const all = await Promise.all(PROMPTS.map((p, i) =>
        run(m, p, {
          ...opts(i),
          onStep: () => (peak = Math.max(peak, m.batcher.load.running)),
        })
      ));
      assertEquals(peak, 4, "4 requests shared decode steps");
      for (let i = 0; i < PROMPTS.length; i++) {
        assertEquals(all[i].ids, solo[i].ids, `request ${i}`);
        assertEquals(all[i].text, solo[i].text, `request ${i}`);
        assertEquals(all[i].finishReason, "length");
      }
      // The two beyond the slots waited for one to leave.
      assert(all[4].queuedMs > 0 && all[5].queuedMs > 0);
      assertEquals(m.batcher.busy, false);
    });
  },
});

Deno.test({
  name:
    "a request with another KV policy waits for the running ones, then runs as it does alone",
  ignore,
  async fn() {
    await withModel({ maxBatch: 2, contextLength: 256 }, async (m) => {
      const swa: GenerateOptions = {
        maxTokens: 24,
        stopAtEos: false,
        policy: { name: "swa", sparsity: 0.5 },
      };
      const soloSwa = await run(m, PROMPTS[0], swa);
      const dense = run(m, PROMPTS[1], { maxTokens: 16, stopAtEos: false });
      const sparse = run(m, PROMPTS[0], swa);
      const [d, s] = await Promise.all([dense, sparse]);
      assertEquals(s.ids, soloSwa.ids);
      assert(s.queuedMs >= d.prefillMs, "it waited for the dense run");
      assertEquals(m.engine.policy.name, "swa");
    });
  },
});

Deno.test({
  name:
    "cancelling: break out of the stream, abort a signal (queued or running), end-of-turn ids; the slot goes to the next request",
  ignore,
  async fn() {
    await withModel({ maxBatch: 1, contextLength: 256 }, async (m) => {
      const ref = await run(m, PROMPTS[0], { maxTokens: 12, stopAtEos: false });
      // A consumer that stops after 3 pieces frees the only slot.
      const g = m.generate(PROMPTS[0], { maxTokens: 200, stopAtEos: false });
      const next = m.generate(PROMPTS[1], { maxTokens: 5, stopAtEos: false });
      let n = 0;
      for await (const _ of g) if (++n === 3) break;
      const r = await g.result;
      assertEquals(r.finishReason, "cancelled");
      // The batcher runs ahead of a slow consumer; it stopped at a step.
      assert(r.ids.length >= 3 && r.ids.length < 200, `${r.ids.length}`);
      const k0 = Math.min(r.ids.length, ref.ids.length);
      assertEquals(r.ids.slice(0, k0), ref.ids.slice(0, k0));
      for await (const _ of next) { /* drain */ }
      assertEquals((await next.result).ids.length, 5);
      // Aborted while queued: it never runs.
      const busy = m.generate(PROMPTS[0], { maxTokens: 6, stopAtEos: false });
      const ac = new AbortController();
      const queued = m.generate(PROMPTS[1], {
        maxTokens: 6,
        signal: ac.signal,
      });
      ac.abort();
      const q = await queued.result;
      assertEquals([q.finishReason, q.ids.length], ["cancelled", 0]);
      for await (const _ of busy) { /* drain */ }
      assertEquals((await busy.result).ids, ref.ids.slice(0, 6));
      // Aborted while running: it ends at the next step.
      const ac2 = new AbortController();
      const running = m.generate(PROMPTS[0], {
        maxTokens: 200,
        stopAtEos: false,
        signal: ac2.signal,
      });
      let k = 0;
      for await (const _ of running) if (++k === 2) ac2.abort();
      const rr = await running.result;
      assertEquals(rr.finishReason, "cancelled");
      assert(rr.ids.length >= 2 && rr.ids.length < 200, `${rr.ids.length}`);
      // An end-of-turn id ends it before that token, as EOS does.
      const eot = await run(m, PROMPTS[0], {
        maxTokens: 12,
        stopAtEos: false,
        stopIds: [ref.ids[4]],
      });
      assertEquals(eot.finishReason, "eos");
      assertEquals(eot.ids, ref.ids.slice(0, ref.ids.indexOf(ref.ids[4])));
      assertEquals(m.batcher.busy, false);
    });
  },
});

Deno.test({
  name:
    "an already-aborted signal never runs; a request whose onStep throws fails alone",
  ignore,
  async fn() {
    await withModel({ maxBatch: 2, contextLength: 256 }, async (m) => {
      const pre = m.generate(PROMPTS[0], {
        maxTokens: 40,
        signal: AbortSignal.abort(),
      });
      const p = await pre.result;
      assertEquals([p.finishReason, p.ids.length], ["cancelled", 0]);
      const solo = await run(m, PROMPTS[1], {
        maxTokens: 12,
        stopAtEos: false,
      });
      let calls = 0;
      const bad = m.generate(PROMPTS[0], {
        maxTokens: 40,
        stopAtEos: false,
        onStep: () => {
          if (++calls === 3) throw new Error("a callback bug");
        },
      });
      const good = run(m, PROMPTS[1], { maxTokens: 12, stopAtEos: false });
      let failed = "";
      try {
        for await (const _ of bad) { /* drain */ }
      } catch (e) {
        failed = (e as Error).message;
      }
      assertEquals(failed, "a callback bug");
      assertEquals((await good).ids, solo.ids);
      assertEquals(m.batcher.busy, false);
      // The engine is free for exclusive calls as soon as the last result
      // is in (the loop may still be winding down).
      const rows = await m.logits([1, 2, 3]);
      assertEquals(rows.length, 3 * m.config.vocabSize);
    });
  },
});

Deno.test({
  name:
    "under a GPU KV budget, a request that would overflow the pool beside the running ones waits for them instead of failing them",
  ignore,
  async fn() {
    await withModel({
      maxBatch: 2,
      contextLength: 256,
      kv: { gpuBytes: 120_000 },
    }, async (m) => {
      const a: GenerateOptions = { maxTokens: 60, stopAtEos: false };
      const b: GenerateOptions = { maxTokens: 117, stopAtEos: false };
      const soloA = await run(m, PROMPTS[0], a);
      const soloB = await run(m, PROMPTS[1], b);
      const [ra, rb] = await Promise.all([
        run(m, PROMPTS[0], a),
        run(m, PROMPTS[1], b),
      ]);
      assertEquals(ra.ids, soloA.ids);
      assertEquals(rb.ids, soloB.ids);
      assert(rb.queuedMs >= ra.prefillMs, "the second waited");
    });
  },
});
