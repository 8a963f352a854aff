/**
 * alisa runs Llama-family language models with WebGPU and WebAssembly, and
 * is built to keep generating when the KV cache no longer fits in GPU memory
 * (ALISA, ISCA 2024: Sparse Window Attention plus a GPU / host / recompute
 * KV scheduler).
 *
 * - {@linkcode loadModel} loads a GGUF file (F32, F16, BF16, Q8_0, Q4_0,
 *   Q4_1, Q5_0, Q5_1, Q2_K..Q6_K) or a Hugging Face safetensors directory,
 *   from a path, URL, `Blob`, bytes or stream; by default the embedded
 *   Austen 5.8M model, offline.
 * - {@linkcode Model.generate} streams text (greedy, or temperature / top-k
 *   / top-p sampling, seeded, stop strings); `generateBatch` decodes several
 *   sequences per step; `logits` scores token sequences.
 * - KV policies for decoding: Sparse Window Attention (`swa`, ALISA) and
 *   dense, local, strided, sinks and H2O at the same budget, selected on
 *   the GPU; {@linkcode evaluatePolicies} scores them by exact decode
 *   simulation.
 * - The KV store ({@linkcode KvStore}): with `loadModel(..., { kv: {
 *   gpuBytes } })` the K/V live in a pool of token rows under that byte
 *   budget; tokens that do not fit spill to host memory (INT8) and come
 *   back when SWA attends them, or are dropped and recomputed, as ALISA's
 *   three-phase scheduler decides; `generate`'s result and `onStep`
 *   report where the KV lived.
 * - {@linkcode Tokenizer} (SentencePiece BPE and byte-level BPE in Wasm),
 *   {@linkcode openModelFile} for inspecting and reading tensors, INT8 KV
 *   quantization in Wasm.
 *
 * @example Generate text
 * ```ts
 * import { assertEquals, assertNotEquals } from "@std/assert";
 * import { loadModel } from "./mod.ts";
 * if (!(await navigator.gpu?.requestAdapter())) {
 *   console.log("skipped: no WebGPU adapter");
 *   Deno.exit(0);
 * }
 * const model = await loadModel();
 * const gen = model.generate("Mr. Darcy", { maxTokens: 8, stopAtEos: false });
 * let text = "";
 * for await (const piece of gen) text += piece.text;
 * const result = await gen.result;
 * assertEquals(text, result.text); // the streamed pieces make up the text
 * assertEquals(result.ids.length, 8);
 * assertEquals(result.finishReason, "length");
 * assertNotEquals(text.trim(), "");
 * model.dispose();
 * ```
 *
 * @example Generate under a GPU KV budget smaller than the KV
 * ```ts
 * import { assert, assertEquals } from "@std/assert";
 * import { loadModel } from "./mod.ts";
 * if (!(await navigator.gpu?.requestAdapter())) Deno.exit(0);
 * const model = await loadModel(undefined, {
 *   contextLength: 256,
 *   kv: { gpuBytes: 160 * 1024 }, // the dense KV of 210 tokens is 630 KiB
 * });
 * const gen = model.generate("It is a truth universally acknowledged", {
 *   maxTokens: 200,
 *   stopAtEos: false,
 *   policy: { name: "swa", sparsity: 0.8 },
 * });
 * for await (const _ of gen) {} // stream the pieces
 * const { kvStats } = await gen.result;
 * assertEquals(kvStats.phases_entered, [1, 2]); // some KV went to the host
 * assert(kvStats.peak_gpu_kv_bytes <= kvStats.budget_bytes);
 * model.dispose();
 * ```
 *
 * @example Open a model file and read a tensor
 * ```ts
 * import { assertEquals, assertInstanceOf } from "@std/assert";
 * import { openModelFile } from "./mod.ts";
 * const dir = Deno.env.get("ALISA_SHARED") ?? "../shared";
 * const path = `${dir}/models/austen-5m-q8_0.gguf`;
 * try {
 *   await Deno.stat(path);
 * } catch {
 *   console.log(`skipped: ${path} is absent`);
 *   Deno.exit(0);
 * }
 * const model = await openModelFile(path);
 * assertEquals(model.config.dim, 256);
 * const wq = await model.read("blk.0.attn_q.weight", "f16"); // f16 bits
 * assertInstanceOf(wq, Uint16Array);
 * assertEquals(wq.length, 256 * 256);
 * model.close();
 * ```
 *
 * @module
 */
export {
  BlobSource,
  type ByteSource,
  type ByteSourceInput,
  BytesSource,
  FileSource,
  HttpSource,
  openByteSource,
  StreamSource,
} from "./src/formats/byte_source.ts";
export {
  type Arch,
  checkTensors,
  configFromGguf,
  configFromHf,
  expectedTensors,
  type ModelConfig,
  type RopeLayout,
  SUPPORTED_ARCHS,
  type TokenizerInfo,
} from "./src/formats/config.ts";
export { dequantize } from "./src/formats/dequantize.ts";
export {
  GgufFile,
  type GgufOpenOptions,
  type GgufTensorInfo,
  type GgufValue,
} from "./src/formats/gguf.ts";
export {
  HfModelDir,
  type HfOpenOptions,
  type HfTensor,
} from "./src/formats/hf.ts";
export { type InspectReport, inspectReport } from "./src/formats/inspect.ts";
export {
  type ModelFile,
  openModelFile,
  type OpenModelOptions,
} from "./src/formats/model_file.ts";
export { SafetensorsFile } from "./src/formats/safetensors.ts";
export {
  type FloatType,
  GGML_TYPES,
  type GgmlTypeInfo,
  type TensorData,
  type TensorInfo,
} from "./src/formats/tensor.ts";
export { Batcher, TextStream } from "./src/api/batcher.ts";
export {
  CHAT_TEMPLATES,
  type ChatMessage,
  ChatTemplate,
  endOfTurnIds,
  modelChatTemplate,
} from "./src/api/chat_template.ts";
export {
  type ChatOptions,
  type FinishReason,
  type GeneratedPiece,
  type GenerateOptions,
  type Generation,
  type GenerationResult,
  loadModel,
  type LoadOptions,
  Model,
} from "./src/api/model.ts";
export {
  DEFAULT_MODEL_URL,
  defaultModelPath,
} from "./src/api/default_model.ts";
export { Gpu, type GpuOptions, openGpu } from "./src/gpu/device.ts";
export { type LlamaLoadOptions, LlamaModel } from "./src/model/llama.ts";
export {
  checkKvOptions,
  type KvOptions,
  type KvStats,
  type KvStepStats,
  KvStore,
  parseBytes,
} from "./src/kv/store.ts";
export {
  type DeviceProfile,
  planCost,
  type RecomputeMode,
  solvePlan,
  type Workload,
} from "./src/kv/cost_model.ts";
export { TIER, type TierPlan, TierScheduler } from "./src/kv/scheduler.ts";
export { TierReference } from "./src/kv/reference.ts";
export {
  sample,
  type SamplingOptions,
  seededRandom,
} from "./src/api/sampling.ts";
export {
  type DecodeOptions,
  type EncodeOptions,
  type GgufLike,
  Tokenizer,
  type TokenizerOptions,
} from "./src/tokenizer/tokenizer.ts";
export {
  type BpeVocab,
  type BpeVocabulary,
  bpeVocabulary,
  checkVocabulary,
  type SpmVocab,
  type SpmVocabulary,
  TokenType,
  type Vocabulary,
  type VocabularyBase,
} from "./src/tokenizer/vocab.ts";
export {
  type GgufMetadata,
  vocabFromGguf,
} from "./src/tokenizer/vocab_gguf.ts";
export {
  vocabFromHfDir,
  vocabFromTokenizerJson,
} from "./src/tokenizer/vocab_hf.ts";
export { BPE_PRE_TOKENIZERS } from "./src/tokenizer/bpe.ts";
export { type StreamDecoder } from "./src/tokenizer/stream.ts";
export {
  budgetK,
  checkSparsity,
  parsePolicies,
  POLICY_NAMES,
  type PolicyName,
  type PolicySpec,
} from "./src/sparse/spec.ts";
export {
  type ReferenceSelection,
  referenceSelection,
} from "./src/sparse/reference.ts";
export {
  type EvalOptions,
  type EvalResult,
  evaluatePolicies,
} from "./src/eval/perplexity.ts";
export { docWindows, textWindows } from "./src/eval/windows.ts";
export { markdownTable, resultsJson, svgPlot } from "./src/eval/report.ts";
export {
  dequantizeInt8,
  type GroupShape,
  INT8_SIMD,
  type Int8Block,
  int8GroupCount,
  type Int8Layout,
  type Int8Options,
  int8ParamShape,
  Int8Workspace,
  KEY_GROUP,
  quantizeInt8,
  quantizeQ8_0,
  VALUE_GROUP,
} from "./src/kv/int8.ts";
