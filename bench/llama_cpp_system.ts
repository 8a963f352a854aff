/**
 * llama.cpp as an outside engine beside our own systems: node-llama-cpp
 * 3.21.1 (prebuilt from npm), its CPU build or its Vulkan build. The Vulkan
 * build runs on the same adapter as our WebGPU (here Mesa's llvmpipe, which
 * llama.cpp skips unless `GGML_VK_VISIBLE_DEVICES=0`), so it is the fairest
 * outside comparison on this machine.
 *
 * Each run is its own process (this file as a script), because a second
 * llama.cpp context in one Deno process crashed here (`malloc(): unaligned
 * tcache chunk detected` after disposing a Vulkan context), and so that a
 * crash or a hang costs one row, not the suite:
 *
 *     deno run -A bench/llama_cpp_system.ts --backend cpu|vulkan \
 *       --model FILE.gguf --prompts PROMPTS.json --output N [--threads T]
 *
 * `PROMPTS.json` is `number[][]` (token ids, BOS included); every prompt
 * runs as one sequence of one context (`sequences: batch`), which
 * node-llama-cpp decodes together: one `llama_decode` per step holding the
 * next token of every live sequence. Greedy (temperature 0), a warm-up of
 * 2 tokens on every sequence first (pipelines compiled for this batch's
 * shapes); then the timed run. Prints one JSON line (`LlamaCppRun`).
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The backends of node-llama-cpp measured here. */
export type LlamaCppBackend = "cpu" | "vulkan";

/** One llama.cpp run: the fields of a throughput row, plus what it ran on. */
export interface LlamaCppRun {
  backend: LlamaCppBackend;
  /** The device (Vulkan) or "CPU, T threads". */
  device: string;
  batch: number;
  /** Generated tokens per second of the whole timed run (prefills included). */
  tokens_per_s: number;
  seconds: number;
  /** Seconds to the first generated token of the first sequence. */
  first_token_s: number;
  /** Generated ids per sequence. */
  ids: number[][];
}

/**
 * Runs `prompts` on llama.cpp in a child process; throws with the child's
 * output when it fails or passes `timeoutS`.
 */
export async function runLlamaCpp(
  backend: LlamaCppBackend,
  o: {
    model: string;
    prompts: number[][];
    output: number;
    threads?: number;
    timeoutS?: number;
  },
): Promise<LlamaCppRun> {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify(o.prompts));
    const args = [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--backend",
      backend,
      "--model",
      o.model,
      "--prompts",
      file,
      "--output",
      String(o.output),
      "--threads",
      String(o.threads ?? navigator.hardwareConcurrency),
    ];
    const ac = new AbortController();
    const timer = o.timeoutS
      ? setTimeout(() => ac.abort(), o.timeoutS * 1000)
      : undefined;
    const out = await new Deno.Command(Deno.execPath(), {
      args,
      stdout: "piped",
      stderr: "piped",
      signal: ac.signal,
      env: backend === "vulkan" && !Deno.env.get("GGML_VK_VISIBLE_DEVICES")
        ? { GGML_VK_VISIBLE_DEVICES: "0" }
        : {},
    }).output().finally(() => clearTimeout(timer));
    const text = new TextDecoder().decode(out.stdout);
    // The result line counts even where the process then crashed on its
    // way out (a segfault in llama.cpp's Vulkan teardown, seen here).
    const line = text.split("\n").findLast((l) => l.startsWith("{"));
    if (!line) {
      const err = new TextDecoder().decode(out.stderr).split("\n")
        .filter((l) => l.trim() && !/[│╭╰]/.test(l)).slice(-8).join("\n");
      throw new Error(
        `llama.cpp (${backend}) at batch ${o.prompts.length} ${
          ac.signal.aborted
            ? `passed its ${o.timeoutS} s limit`
            : `exited ${out.code}`
        }: ${err}`,
      );
    }
    return JSON.parse(line) as LlamaCppRun;
  } finally {
    await Deno.remove(file).catch(() => undefined);
  }
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      backend: { type: "string", default: "cpu" },
      model: { type: "string" },
      prompts: { type: "string" },
      output: { type: "string", default: "128" },
      threads: { type: "string" },
    },
  });
  const backend = v.backend as LlamaCppBackend;
  if (backend !== "cpu" && backend !== "vulkan") {
    throw new TypeError(`--backend must be cpu or vulkan, not ${v.backend}`);
  }
  if (!v.model || !v.prompts) {
    throw new TypeError("--model FILE.gguf and --prompts FILE.json are needed");
  }
  const prompts = JSON.parse(Deno.readTextFileSync(v.prompts)) as number[][];
  const output = Number(v.output);
  const threads = Number(v.threads ?? navigator.hardwareConcurrency);
  if (!(output >= 1) || !(prompts.length >= 1)) {
    throw new RangeError(`need prompts and --output >= 1, got ${v.output}`);
  }
  // deno-lint-ignore no-import-prefix
  const lc = await import("npm:node-llama-cpp@3.21.1");
  const llama = await lc.getLlama({
    gpu: backend === "vulkan" ? "vulkan" : false,
    build: "never",
    logLevel: lc.LlamaLogLevel.error,
  });
  if (backend === "vulkan" && llama.gpu !== "vulkan") {
    throw new Error(
      `llama.cpp found no Vulkan device (gpu: ${llama.gpu}); on a CPU Vulkan driver such as llvmpipe set GGML_VK_VISIBLE_DEVICES=0`,
    );
  }
  const device = backend === "vulkan"
    ? (await llama.getGpuDeviceNames()).join(", ")
    : `CPU, ${threads} threads`;
  const lm = await llama.loadModel({
    modelPath: v.model,
    gpuLayers: backend === "vulkan" ? "max" : 0,
  });
  const B = prompts.length;
  const longest = Math.max(...prompts.map((p) => p.length));
  const ctx = await lm.createContext({
    // Per sequence: node-llama-cpp multiplies by `sequences`.
    contextSize: longest + output,
    sequences: B,
    batchSize: Math.max(512, B),
    threads,
  });
  const seqs = Array.from({ length: B }, () => ctx.getSequence());
  const run = async (
    s: (typeof seqs)[number],
    p: number[],
    n: number,
    onFirst?: () => void,
  ) => {
    const ids: number[] = [];
    for await (
      const t of s.evaluate(p as never, { temperature: 0 })
    ) {
      if (ids.length === 0) onFirst?.();
      ids.push(t as number);
      if (ids.length >= n) break;
    }
    return ids;
  };
  // Warm-up: every sequence for 2 tokens, so that llama.cpp's Vulkan
  // pipelines for this batch's shapes (prefill and batched decode) are
  // compiled before the clock starts; our systems compile theirs in a
  // 2-token warm-up of their own (their pipelines do not vary by batch).
  await Promise.all(seqs.map((s, i) => run(s, prompts[i], 2)));
  for (const s of seqs) await s.clearHistory();
  const t0 = performance.now();
  let tFirst = 0;
  const ids = await Promise.all(
    seqs.map((s, i) =>
      run(
        s,
        prompts[i],
        output,
        i === 0 ? () => tFirst = performance.now() : undefined,
      )
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const generated = ids.reduce((a, x) => a + x.length, 0);
  const r: LlamaCppRun = {
    backend,
    device,
    batch: B,
    tokens_per_s: generated / seconds,
    seconds,
    first_token_s: (tFirst - t0) / 1000,
    ids,
  };
  console.log(JSON.stringify(r));
  // Exit without disposing: disposal is where the crash above happened.
  Deno.exit(0);
}
