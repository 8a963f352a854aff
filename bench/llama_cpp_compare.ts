/**
 * alisa against llama.cpp (node-llama-cpp 3.21.1, prebuilt from npm) on the
 * same GGUF in the same run, one sequence: greedy prefill and decode
 * tokens/s of each, the ratio, and whether the greedy tokens agree.
 * llama.cpp runs twice: its CPU build (`--threads`, default the machine's
 * cores) and its Vulkan build, which runs on the same adapter as our
 * WebGPU (here Mesa's llvmpipe; `GGML_VK_VISIBLE_DEVICES=0` is set for it,
 * since llama.cpp skips CPU-type Vulkan devices otherwise).
 *
 *     deno run -A bench/llama_cpp_compare.ts [MODEL.gguf] [--tokens N]
 *       [--threads T] [--prompt TEXT] [--backends cpu,vulkan]
 *
 * MODEL defaults to the embedded Austen q8_0 model; the quantized fixture
 * is `tests/fixtures/models/llama3q/llama3q-q4_k_m.gguf`. Each side warms up
 * first (pipelines compiled). Batched decoding (several sequences in one
 * llama.cpp context) is in the throughput suite: `deno task
 * bench:throughput --llama-cpp vulkan,cpu`.
 */
import { parseArgs } from "node:util";
import { loadModel } from "../src/api/model.ts";
import { defaultModelPath } from "../src/api/default_model.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import {
  type LlamaCppBackend,
  type LlamaCppRun,
  runLlamaCpp,
} from "./llama_cpp_system.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    tokens: { type: "string" },
    threads: { type: "string" },
    prompt: { type: "string" },
    backends: { type: "string", default: "cpu,vulkan" },
  },
  allowPositionals: true,
});
const path = positionals[0] ?? defaultModelPath();
const n = Number(values.tokens ?? 128);
const threads = Number(values.threads ?? navigator.hardwareConcurrency);
const promptText = values.prompt ?? "It is a truth universally acknowledged";
const backends = values.backends!.split(",") as LlamaCppBackend[];

// alisa (WebGPU), at 512 positions or the model's own context if shorter.
const file = await openModelFile(path);
const contextLength = Math.min(512, file.config.contextLength);
file.close();
const model = await loadModel(path, { contextLength });
const promptIds = model.tokenizer.encode(promptText);
const warm = model.generate(promptIds, { maxTokens: 4, stopAtEos: false });
for await (const _ of warm) { /* warm-up: compiles the pipelines */ }
const gen = model.generate(promptIds, { maxTokens: n, stopAtEos: false });
for await (const _ of gen) { /* drain */ }
const ours = await gen.result;
const device = model.engine.gpu.adapterInfo.description || "WebGPU";
model.dispose();

console.log(
  `model ${path}, prompt ${promptIds.length} tokens, ${n} generated greedy`,
);
console.log("");
console.log(
  "| engine | device | prefill tok/s | decode tok/s | alisa decode / this | greedy tokens vs alisa |",
);
console.log("| --- | --- | ---: | ---: | ---: | --- |");
console.log(
  `| alisa | ${device} (WebGPU) | ${ours.prefillTokS.toFixed(1)} | ${
    ours.decodeTokS.toFixed(1)
  } | 1.00 | - |`,
);
for (const b of backends) {
  let r: LlamaCppRun;
  try {
    r = await runLlamaCpp(b, {
      model: path,
      prompts: [promptIds],
      output: n,
      threads,
      timeoutS: 600,
    });
  } catch (e) {
    console.log(
      `| llama.cpp ${b} | failed: ${
        (e as Error).message.split("\n")[0]
      } | | | | |`,
    );
    continue;
  }
  const theirs = r.ids[0];
  const decode = (theirs.length - 1) / (r.seconds - r.first_token_s);
  const prefill = promptIds.length / r.first_token_s;
  const agree = ours.ids.findIndex((id, i) => id !== theirs[i]);
  console.log(
    `| llama.cpp ${b} | ${r.device}${b === "vulkan" ? " (Vulkan)" : ""} | ${
      prefill.toFixed(1)
    } | ${decode.toFixed(1)} | ${(ours.decodeTokS / decode).toFixed(2)} | ${
      agree === -1 ? `identical (${n})` : `first difference at token ${agree}`
    } |`,
  );
}
