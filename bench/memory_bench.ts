/**
 * Resident memory over a long run: greedy decode steps (generation to the
 * end of the context, again and again) under each KV policy, then scoring
 * of 8 windows at once under each, with RSS, V8 heap and the engine's
 * gpuBytes sampled every N steps. Flat is the goal: before the fixes of
 * this bench's commit, H2O decode grew RSS by ~0.8 MB per step.
 *
 * ```sh
 * deno run -A bench/memory_bench.ts [--steps 2000] [--every 100] [--ctx 256]
 *   [--policies dense,swa,h2o] [--windows 8] [--window 64] [--rounds 2]
 *   [--model PATH] [--json] [--out FILE]
 * ```
 *
 * `--json` writes the samples to `bench/results/memory-<date>.json` (or
 * `--out FILE`). Under `deno bench` this file only
 * registers a short decode benchmark.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadModel, type Model } from "../src/api/model.ts";
import { parsePolicies, type PolicyName } from "../src/sparse/spec.ts";

const MB = 2 ** 20;

/** One sample. */
export interface MemorySample {
  phase: string;
  policy: PolicyName;
  /** Decode (or scoring) steps since the start of the phase. */
  steps: number;
  seconds: number;
  rssMB: number;
  heapMB: number;
  gpuBytes: number;
}

const PROMPT = "It is a truth universally acknowledged";

function sample(
  m: Model,
  phase: string,
  policy: PolicyName,
  steps: number,
  t0: number,
): MemorySample {
  const u = Deno.memoryUsage();
  return {
    phase,
    policy,
    steps,
    seconds: (performance.now() - t0) / 1000,
    rssMB: u.rss / MB,
    heapMB: u.heapUsed / MB,
    gpuBytes: m.gpuBytes,
  };
}

/**
 * Decodes `steps` greedy steps, cycling through `policies` one whole
 * generation (prompt to the end of the context) at a time; samples every
 * `every` steps.
 */
export async function decodeRun(
  m: Model,
  o: { steps: number; every: number; policies: PolicyName[] },
  onSample: (s: MemorySample) => void,
): Promise<void> {
  const t0 = performance.now();
  let steps = 0, g = 0;
  while (steps < o.steps) {
    const policy = o.policies[g++ % o.policies.length];
    const gen = m.generate(PROMPT, {
      maxTokens: Math.min(m.config.contextLength, o.steps - steps + 1),
      stopAtEos: false,
      policy: { name: policy, sparsity: policy === "dense" ? 0 : 0.5 },
    });
    let first = true;
    for await (const _ of gen) {
      if (first) { // from the prefill, not a decode step
        first = false;
        continue;
      }
      if (++steps % o.every === 0) {
        onSample(sample(m, "decode", policy, steps, t0));
      }
    }
    await gen.result;
  }
}

/**
 * Scores `windows` windows of `window` tokens at once, `rounds` times
 * under each policy; samples after every call.
 */
export async function scoreRun(
  m: Model,
  o: {
    windows: number;
    window: number;
    rounds: number;
    policies: PolicyName[];
  },
  onSample: (s: MemorySample) => void,
): Promise<void> {
  const ids = m.tokenizer.encode(
    "Catherine Morland had been reading all morning, and was quite unwilling to stop. "
      .repeat(Math.ceil((o.windows * 7 + o.window) / 10)),
  );
  const win = Array.from(
    { length: o.windows },
    (_, i) => ids.slice(i * 7, i * 7 + o.window),
  );
  const t0 = performance.now();
  let steps = 0;
  for (const policy of o.policies) {
    m.engine.setPolicy({
      name: policy,
      sparsity: policy === "dense" ? 0 : 0.5,
    });
    for (let r = 0; r < o.rounds; r++) {
      await m.engine.scoreWindows(win);
      steps += o.window - 1;
      onSample(sample(m, "score", policy, steps, t0));
    }
  }
}

/** The samples as a table, with the change from the first. */
export function memoryTable(samples: MemorySample[]): string {
  const lines = [
    "phase   policy  steps     s   RSS MB  +first  heap MB  gpuBytes",
  ];
  const base = samples[0]?.rssMB ?? 0;
  for (const s of samples) {
    lines.push(
      `${s.phase.padEnd(7)} ${s.policy.padEnd(7)} ${
        String(s.steps).padStart(5)
      } ${s.seconds.toFixed(0).padStart(5)} ${s.rssMB.toFixed(1).padStart(8)} ${
        (s.rssMB - base).toFixed(1).padStart(7)
      } ${s.heapMB.toFixed(1).padStart(8)}  ${s.gpuBytes}`,
    );
  }
  return lines.join("\n");
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      steps: { type: "string", default: "2000" },
      every: { type: "string", default: "100" },
      ctx: { type: "string", default: "256" },
      policies: { type: "string", default: "dense,swa,h2o" },
      windows: { type: "string", default: "8" },
      window: { type: "string", default: "64" },
      rounds: { type: "string", default: "2" },
      model: { type: "string" },
      json: { type: "boolean" },
      out: { type: "string" },
    },
  });
  const int = (v: string, name: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new RangeError(`--${name} must be an integer >= 1, got "${v}"`);
    }
    return n;
  };
  const policies = parsePolicies(values.policies);
  const windows = int(values.windows, "windows");
  const m = await loadModel(values.model, {
    contextLength: int(values.ctx, "ctx"),
    maxBatch: windows,
  });
  const samples: MemorySample[] = [];
  const onSample = (s: MemorySample) => {
    samples.push(s);
    console.error(
      `${s.phase} ${s.policy} ${s.steps} steps: RSS ${s.rssMB.toFixed(1)} MB`,
    );
  };
  const startMB = Deno.memoryUsage().rss / MB;
  try {
    await decodeRun(m, {
      steps: int(values.steps, "steps"),
      every: int(values.every, "every"),
      policies,
    }, onSample);
    await scoreRun(m, {
      windows,
      window: int(values.window, "window"),
      rounds: int(values.rounds, "rounds"),
      policies,
    }, onSample);
  } finally {
    m.dispose();
  }
  const rss = samples.map((s) => s.rssMB);
  // Growth over the second half of the decode run (the first use of each
  // policy builds its pipelines and state).
  const decode = samples.filter((s) => s.phase === "decode");
  const half = decode.slice(Math.floor(decode.length / 2));
  const perK = half.length > 1
    ? (half[half.length - 1].rssMB - half[0].rssMB) /
      (half[half.length - 1].steps - half[0].steps) * 1000
    : 0;
  console.log(
    `memory: ${
      m.engine.gpu.adapterInfo.description || "WebGPU"
    }, context ${values.ctx}, policies ${policies.join(",")}`,
  );
  console.log(memoryTable(samples));
  console.log(
    `RSS after load ${startMB.toFixed(0)} MB, first sample ${
      rss[0].toFixed(0)
    } MB, max ${Math.max(...rss).toFixed(0)} MB, last ${
      rss[rss.length - 1].toFixed(0)
    } MB; decode, second half: ${perK.toFixed(1)} MB per 1000 steps`,
  );
  if (values.json || values.out !== undefined) {
    const file = values.out ??
      new URL(
        `./results/memory-${new Date().toISOString().slice(0, 10)}.json`,
        import.meta.url,
      ).pathname;
    await Deno.writeTextFile(
      file,
      JSON.stringify(
        {
          adapter: m.engine.gpu.adapterInfo.description,
          args: values,
          startMB,
          samples,
        },
        null,
        1,
      ) + "\n",
    );
    console.log(`wrote ${file}`);
  }
}

if (import.meta.main) {
  await main(Deno.args);
} else if (await navigator.gpu?.requestAdapter()) {
  // `deno bench`: one short decode run, RSS reported by the main mode.
  const m = await loadModel(undefined, { contextLength: 64 });
  // Freed before the process ends (lavapipe aborts on a device left open).
  addEventListener("unload", () => m.dispose());
  Deno.bench({
    name: "greedy decode of 16 steps (memory bench's decode loop)",
    n: 3,
    warmup: 1,
    async fn() {
      await decodeRun(m, { steps: 16, every: 16, policies: ["h2o"] }, () => {});
    },
  });
} else {
  console.warn("skipping memory benchmark: no WebGPU adapter");
}
