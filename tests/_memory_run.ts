/**
 * The measured run of tests/memory_test.ts, in a process of its own (the
 * test runner shares one process among test files, so its RSS is not this
 * run's): loads the embedded model, warms up, then runs rounds of greedy
 * generation to the end of the context and scoring of 8 windows at once
 * under dense, SWA and H2O, sampling RSS and gpuBytes after each call.
 * With `--v8-flags=--expose-gc` each sample follows a full collection, so
 * that RSS is what is retained, not what V8 has yet to collect.
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc tests/_memory_run.ts CTX ROUNDS WINDOW
 * ```
 *
 * Prints one JSON object: {warmRss, loadRss, gpuBytes, samples: [...]}.
 *
 * @module
 */
import { assertEquals } from "@std/assert";
import { loadModel, type Model } from "../src/api/model.ts";
import type { PolicySpec } from "../src/sparse/spec.ts";

/** One sample of the run. */
export interface MemorySample {
  what: string;
  policy: string;
  steps: number;
  rssMB: number;
  gpuBytes: number;
}

/** What the run prints. */
export interface MemoryRun {
  loadRss: number;
  warmRss: number;
  /** gpuBytes after warm-up, per "policy:call" (an engine holds the active policy's state and plans). */
  gpuBytes: Record<string, number>;
  gc: boolean;
  samples: MemorySample[];
  seconds: number;
}

const MB = 2 ** 20;

/** The policies of every round. */
export const POLICIES: PolicySpec[] = [
  { name: "dense", sparsity: 0 },
  { name: "swa", sparsity: 0.5 },
  { name: "h2o", sparsity: 0.5 },
];

const PROMPT = "It is a truth universally acknowledged";

/**
 * Generates `maxTokens` tokens (default: until the context is full);
 * returns the decode steps made.
 */
async function generate(
  m: Model,
  policy: PolicySpec,
  maxTokens?: number,
): Promise<number> {
  const g = m.generate(PROMPT, {
    maxTokens: maxTokens ?? m.config.contextLength,
    stopAtEos: false,
    policy,
  });
  for await (const _ of g) { /* drain */ }
  const r = await g.result;
  if (maxTokens === undefined) assertEquals(r.finishReason, "context");
  return r.ids.length - 1; // the first token comes from the prefill
}

/** 8 windows of `len` tokens. */
function windows(m: Model, len: number): number[][] {
  const ids = m.tokenizer.encode(
    "Catherine Morland had been reading all morning, and was quite unwilling to stop. "
      .repeat(20),
  );
  return Array.from({ length: 8 }, (_, i) => ids.slice(i * 7, i * 7 + len));
}

const gc = (globalThis as { gc?: () => void }).gc;

function rss(): number {
  gc?.();
  return Deno.memoryUsage().rss / MB;
}

/** The run; see the module doc. */
export async function memoryRun(
  ctx: number,
  rounds: number,
  windowLen: number,
): Promise<MemoryRun> {
  const t0 = performance.now();
  const m = await loadModel(undefined, { contextLength: ctx, maxBatch: 8 });
  try {
    const win = windows(m, windowLen);
    const loadRss = rss();
    // Warm-up, short, twice: every plan and pipeline built, policy state
    // allocated; gpuBytes after each kind of call under each policy taken
    // the second time (an engine holds the active policy's state and the
    // plans built since it was set).
    const gpuBytes: Record<string, number> = {};
    for (let pass = 0; pass < 2; pass++) {
      for (const p of POLICIES) {
        await generate(m, p, 4);
        gpuBytes[`${p.name}:generate`] = m.gpuBytes;
        await m.engine.scoreWindows(win.map((w) => w.slice(0, 4)));
        gpuBytes[`${p.name}:score`] = m.gpuBytes;
      }
    }
    const warmRss = rss();
    const samples: MemorySample[] = [];
    let steps = 0;
    const at = (what: string, policy: string) =>
      samples.push({
        what,
        policy,
        steps,
        rssMB: rss(),
        gpuBytes: m.gpuBytes,
      });
    for (let r = 0; r < rounds; r++) {
      for (const p of POLICIES) {
        steps += await generate(m, p);
        at(`${r}: generate ${p.name}`, `${p.name}:generate`);
        m.engine.setPolicy(p);
        await m.engine.scoreWindows(win);
        steps += windowLen - 1;
        at(`${r}: score ${p.name}`, `${p.name}:score`);
      }
    }
    return {
      loadRss,
      warmRss,
      gpuBytes,
      gc: gc !== undefined,
      samples,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    m.dispose();
  }
}

if (import.meta.main) {
  const [ctx, rounds, win] = Deno.args.map(Number);
  console.log(JSON.stringify(await memoryRun(ctx, rounds, win)));
}
