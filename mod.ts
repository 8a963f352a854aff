/**
 * alisa runs Llama-family language models with WebGPU and WebAssembly, and
 * keeps generating when the KV cache no longer fits in GPU memory (ALISA,
 * ISCA 2024: Sparse Window Attention plus a GPU / host / recompute KV
 * scheduler).
 *
 * What works today: loading real models. GGUF (v2, v3; F32, F16, BF16, Q8_0,
 * Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K) and Hugging Face safetensors
 * directories are parsed and dequantized in Rust compiled to Wasm, piece by
 * piece from a path, URL, `Blob`, bytes or stream.
 *
 * @example Open a model and read a tensor
 * ```ts
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
 * console.log(model.config); // { arch: "llama", dim: 256, nLayers: 6, ... }
 * const wq = await model.read("blk.0.attn_q.weight", "f16"); // Uint16Array of f16 bits
 * console.log(wq.length); // 65536
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
} from "./src/byte_source.ts";
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
} from "./src/config.ts";
export { dequantize } from "./src/dequantize.ts";
export {
  GgufFile,
  type GgufOpenOptions,
  type GgufTensorInfo,
  type GgufValue,
} from "./src/gguf.ts";
export { HfModelDir, type HfOpenOptions, type HfTensor } from "./src/hf.ts";
export { type InspectReport, inspectReport } from "./src/inspect.ts";
export {
  type ModelFile,
  openModelFile,
  type OpenModelOptions,
} from "./src/model_file.ts";
export { SafetensorsFile } from "./src/safetensors.ts";
export {
  type FloatType,
  GGML_TYPES,
  type GgmlTypeInfo,
  type TensorData,
  type TensorInfo,
} from "./src/tensor.ts";
