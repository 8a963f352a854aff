/**
 * One interface over every model format: a GGUF file or a Hugging Face
 * directory gives the same config, tokenizer summary, tensor list (GGUF
 * names, row-major shapes) and tensor reads.
 *
 * @example Inspect a model
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { openModelFile } from "./model_file.ts";
 * const dir = Deno.env.get("ALISA_SHARED") ?? "../shared";
 * const path = `${dir}/models/austen-5m-hf`;
 * try {
 *   await Deno.stat(path);
 * } catch {
 *   console.log(`skipped: ${path} is absent`);
 *   Deno.exit(0);
 * }
 * const model = await openModelFile(path);
 * assertEquals(model.format, "hf");
 * assertEquals([model.config.dim, model.config.nLayers], [256, 6]);
 * // Q/K rows are permuted to interleaved order as they load (permuteQK).
 * assertEquals(model.config.ropeLayout, "interleaved");
 * const norm = await model.read("output_norm.weight");
 * assertEquals(norm.length, 256);
 * model.close();
 * ```
 *
 * @module
 */
import { hasFileSystem, isDirectory as isDir } from "../platform/fs.ts";
import type { CacheOptions } from "../platform/cache.ts";
import type { ByteSourceInput } from "./byte_source.ts";
import {
  checkTensors,
  configFromGguf,
  type ModelConfig,
  type TokenizerInfo,
} from "./config.ts";
import { dequantize } from "./dequantize.ts";
import { GgufFile, withContext } from "./gguf.ts";
import { HfModelDir, type HfOpenOptions } from "./hf.ts";
import { tokenizerInfo, type Vocabulary } from "../tokenizer/vocab.ts";
import { vocabFromGguf } from "../tokenizer/vocab_gguf.ts";
import type { FloatType, TensorData, TensorInfo } from "./tensor.ts";

/** A model file of any supported format. */
export interface ModelFile {
  /** `gguf` or `hf` (a Hugging Face safetensors directory). */
  readonly format: "gguf" | "hf";
  /** The path or name it was opened from. */
  readonly name: string;
  readonly config: ModelConfig;
  /**
   * The tokenizer's vocabulary, read once when the file is opened (GGUF
   * metadata: `vocabFromGguf`; a directory's tokenizer files:
   * `vocabFromHfDir`), or null when the model has none. `Tokenizer.fromModelFile`
   * is made from it.
   */
  readonly vocabulary: Vocabulary | null;
  /** What the tokenizer is: a summary of {@linkcode ModelFile.vocabulary}, so it agrees with the `Tokenizer`. */
  readonly tokenizer: TokenizerInfo;
  /** Every tensor, GGUF names, in file order. */
  readonly tensors: TensorInfo[];
  /** The underlying GGUF file (format `gguf`). */
  readonly gguf?: GgufFile;
  /** The underlying directory (format `hf`). */
  readonly hf?: HfModelDir;
  /** The tensor called `name`; a `TypeError` naming it if absent. */
  tensor(name: string): TensorInfo;
  /** Stored bytes of a tensor (quantized blocks as they are). */
  readRaw(name: string): Promise<Uint8Array>;
  /** A tensor as f32 values or f16 bits. */
  read(name: string, to?: FloatType): Promise<TensorData>;
  close(): void;
}

/** Options for {@linkcode openModelFile}. */
export interface OpenModelOptions extends HfOpenOptions {
  /** Skip the check that every expected tensor exists with its shape. */
  skipTensorCheck?: boolean;
  /**
   * Download an `http(s)://` or `hf://` model once into the cache and read
   * it from there, instead of range requests on every load: in Deno a
   * directory (`src/platform/cache.ts`; `true` uses the default one), in a
   * browser Cache Storage (`src/platform/browser_cache.ts`).
   */
  cache?: boolean | CacheOptions;
  /** Base URL of `hf://` models (default `$HF_ENDPOINT` or https://huggingface.co). */
  hfEndpoint?: string;
}

class GgufModelFile implements ModelFile {
  readonly format = "gguf";
  readonly name: string;
  readonly tensors: TensorInfo[];
  readonly tokenizer: TokenizerInfo;
  constructor(
    readonly gguf: GgufFile,
    readonly config: ModelConfig,
    readonly vocabulary: Vocabulary | null,
  ) {
    this.name = gguf.source.name;
    this.tensors = gguf.tensors;
    this.tokenizer = tokenizerInfo(vocabulary);
  }
  tensor(name: string) {
    return this.gguf.tensor(name);
  }
  readRaw(name: string) {
    return this.gguf.readRaw(name);
  }
  read(name: string, to: FloatType = "f32") {
    return this.gguf.read(name, to);
  }
  close() {
    this.gguf.close();
  }
}

class HfModelFile implements ModelFile {
  readonly format = "hf";
  readonly name: string;
  readonly config: ModelConfig;
  readonly vocabulary: Vocabulary | null;
  readonly tokenizer: TokenizerInfo;
  readonly tensors: TensorInfo[];
  constructor(readonly hf: HfModelDir) {
    this.name = hf.dir;
    this.config = hf.config;
    this.vocabulary = hf.vocabulary;
    this.tokenizer = hf.tokenizer;
    this.tensors = hf.tensors.map((t) => ({
      name: t.name,
      shape: t.shape,
      type: t.type,
      nElements: t.nElements,
      nBytes: t.nBytes,
      fileOffset: t.fileOffset,
    }));
  }
  tensor(name: string) {
    return this.hf.tensor(name);
  }
  readRaw(name: string) {
    return this.hf.readRaw(name);
  }
  async read(name: string, to: FloatType = "f32"): Promise<TensorData> {
    const t = this.hf.tensor(name);
    try {
      const raw = await this.hf.readRaw(name);
      if (!t.plusOne) return dequantize(t.type, raw, t.nElements, to);
      const v = dequantize(t.type, raw, t.nElements, "f32") as Float32Array;
      for (let i = 0; i < v.length; i++) v[i] += 1;
      if (to === "f32") return v;
      return dequantize("F32", new Uint8Array(v.buffer), v.length, to);
    } catch (e) {
      throw withContext(this.name, e);
    }
  }
  close() {
    this.hf.close();
  }
}

/**
 * `hf://` URLs as download URLs, and, with `options.cache`, URLs as the
 * path of their cached copy (downloaded first if needed).
 */
async function resolveUrl(
  input: ByteSourceInput,
  options: OpenModelOptions,
): Promise<ByteSourceInput> {
  if (typeof input !== "string" && !(input instanceof URL)) return input;
  const s = String(input);
  if (!/^(https?|hf):\/\//.test(s)) return input;
  if (!options.cache && !s.startsWith("hf://")) return input;
  // Deno only (node:crypto, the file system): loaded when asked for.
  const cache = await import("../platform/cache.ts");
  const url = cache.resolveHfUrl(s, options.hfEndpoint);
  if (!options.cache) return url;
  const o = options.cache === true ? {} : options.cache;
  if (!hasFileSystem()) {
    // A browser: Cache Storage.
    const { cachedBlob } = await import("../platform/browser_cache.ts");
    return await cachedBlob(url, o);
  }
  return await cache.cachedDownload(url, o);
}

async function isDirectory(input: ByteSourceInput): Promise<boolean> {
  if (typeof input !== "string" && !(input instanceof URL)) return false;
  if (/^https?:/.test(String(input))) return false;
  return await isDir(input);
}

/**
 * Opens a GGUF file (path, URL, bytes, Blob, stream) or a Hugging Face
 * directory, derives its config and checks its tensors. Errors are
 * `TypeError`/`RangeError` starting "Cannot load model NAME: ".
 */
export async function openModelFile(
  input: ByteSourceInput,
  options: OpenModelOptions = {},
): Promise<ModelFile> {
  input = await resolveUrl(input, options);
  if (await isDirectory(input)) {
    const dir = String(input);
    let hf: HfModelDir;
    try {
      hf = await HfModelDir.open(dir, options);
    } catch (e) {
      throw withContext(dir, e);
    }
    const m = new HfModelFile(hf);
    try {
      if (!options.skipTensorCheck) checkTensors(m.config, m.tensors);
    } catch (e) {
      m.close();
      throw withContext(dir, e);
    }
    return m;
  }
  const gguf = await GgufFile.open(input);
  try {
    const config = configFromGguf(gguf.metadata, gguf.tensors);
    if (!options.skipTensorCheck) checkTensors(config, gguf.tensors);
    return new GgufModelFile(gguf, config, vocabFromGguf(gguf.metadata));
  } catch (e) {
    gguf.close();
    throw withContext(gguf.source.name, e);
  }
}
