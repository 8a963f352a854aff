/**
 * alisa against llama.cpp (node-llama-cpp 3.21.1, CPU build from npm) on the
 * same GGUF in the same run: greedy decode tokens/s of each and the ratio,
 * plus whether the greedy tokens agree.
 *
 *     deno run -A --node-modules-dir=auto bench/llama_cpp_compare.ts [MODEL.gguf] [--tokens N] [--threads T]
 *
 * MODEL defaults to the embedded Austen q8_0 model. llama.cpp runs with
 * `--threads` CPU threads (default: the machine's cores).
 */
import { parseArgs } from "node:util";
// deno-lint-ignore no-import-prefix
import { getLlama, type Token } from "npm:node-llama-cpp@3.21.1";
import { loadModel } from "../src/api/model.ts";
import { defaultModelPath } from "../src/api/default_model.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    tokens: { type: "string" },
    threads: { type: "string" },
    prompt: { type: "string" },
  },
  allowPositionals: true,
});
const path = positionals[0] ?? defaultModelPath();
const n = Number(values.tokens ?? 64);
const threads = Number(values.threads ?? navigator.hardwareConcurrency);
const promptText = values.prompt ?? "It is a truth universally acknowledged";

// alisa (WebGPU).
const model = await loadModel(path, { contextLength: 512 });
const promptIds = model.tokenizer.encode(promptText);
const warm = model.generate(promptIds, { maxTokens: 4, stopAtEos: false });
for await (const _ of warm) { /* warm-up: compiles the pipelines */ }
const gen = model.generate(promptIds, { maxTokens: n, stopAtEos: false });
for await (const _ of gen) { /* drain */ }
const ours = await gen.result;
const device = model.engine.gpu.adapterInfo.description || "WebGPU";
model.dispose();

// llama.cpp (CPU).
const llama = await getLlama({ gpu: false });
const lm = await llama.loadModel({ modelPath: path });
const ctx = await lm.createContext({ contextSize: 512, threads });
const seq = ctx.getSequence();
const theirs: number[] = [];
const t0 = performance.now();
let tFirst = 0;
for await (
  const t of seq.evaluate(promptIds as unknown as Token[], { temperature: 0 })
) {
  if (theirs.length === 0) tFirst = performance.now();
  theirs.push(t);
  if (theirs.length >= n) break;
}
const t1 = performance.now();
const lcDecode = (theirs.length - 1) / ((t1 - tFirst) / 1000);
const lcPrefill = promptIds.length / ((tFirst - t0) / 1000);
await ctx.dispose();
await lm.dispose();

const agree = ours.ids.findIndex((id, i) => id !== theirs[i]);
console.log(
  `model ${path}, prompt ${promptIds.length} tokens, ${n} generated greedy`,
);
console.log(
  `alisa (${device}): prefill ${ours.prefillTokS.toFixed(1)} tok/s, decode ${
    ours.decodeTokS.toFixed(1)
  } tok/s`,
);
console.log(
  `llama.cpp (CPU, ${threads} threads): prefill ${
    lcPrefill.toFixed(1)
  } tok/s, decode ${lcDecode.toFixed(1)} tok/s`,
);
console.log(
  `decode ratio alisa / llama.cpp: ${(ours.decodeTokS / lcDecode).toFixed(2)}`,
);
console.log(
  agree === -1
    ? `greedy tokens: identical (${n})`
    : `greedy tokens: first difference at token ${agree}`,
);
