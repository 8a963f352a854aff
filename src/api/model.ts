/**
 * The user-facing model: load, generate (streaming), score, dispose.
 *
 * @example Generate from the embedded default model
 * ```ts
 * import { assertEquals, assertGreater } from "@std/assert";
 * import { loadModel } from "./model.ts";
 * if (!(await navigator.gpu?.requestAdapter())) {
 *   console.log("skipped: no WebGPU adapter");
 *   Deno.exit(0);
 * }
 * const model = await loadModel(); // the embedded Austen 5.8M model
 * const gen = model.generate("It is a truth universally acknowledged", {
 *   maxTokens: 16,
 *   stopAtEos: false,
 * });
 * const pieces: string[] = [];
 * for await (const piece of gen) pieces.push(piece.text);
 * const { ids, text, decodeTokS } = await gen.result;
 * assertEquals(ids.length, 16);
 * assertEquals(pieces.join(""), text);
 * assertGreater(decodeTokS, 0);
 * // Greedy (the default) is deterministic: the same prompt, the same ids.
 * const again = model.generate("It is a truth universally acknowledged", {
 *   maxTokens: 16,
 *   stopAtEos: false,
 * });
 * for await (const _ of again) continue; // drain
 * assertEquals((await again.result).ids, ids);
 * model.dispose();
 * ```
 *
 * @module
 */
import type { ByteSourceInput } from "../formats/byte_source.ts";
import type { ModelConfig } from "../formats/config.ts";
import { defaultModelPath } from "./default_model.ts";
import { type Gpu, openGpu } from "../gpu/device.ts";
import { type LlamaLoadOptions, LlamaModel } from "../model/llama.ts";
import {
  type ModelFile,
  openModelFile,
  type OpenModelOptions,
} from "../formats/model_file.ts";
import { checkSampling, type SamplingOptions } from "./sampling.ts";
import { Batcher } from "./batcher.ts";
import { prefill } from "./prefill.ts";
import {
  type ChatMessage,
  ChatTemplate,
  checkMessages,
  endOfTurnIds,
} from "./chat_template.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { PolicySpec } from "../sparse/spec.ts";
import type { KvStats, KvStepStats } from "../kv/store.ts";
import {
  type ContinuousOptions,
  type ContinuousResult,
  runContinuous,
} from "./continuous.ts";

/** Options for {@linkcode loadModel}. */
export interface LoadOptions extends OpenModelOptions, LlamaLoadOptions {
  /** A GPU to use (default: a new device). */
  gpu?: Gpu;
}

/** Options for {@linkcode Model.generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate (default 256). */
  maxTokens?: number;
  /** Stop when the text contains any of these; the stop string is not returned. */
  stop?: string[];
  /** Stop at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
  /**
   * KV policy for the decode steps (default dense): e.g.
   * `{ name: "swa", sparsity: 0.8 }` attends 20% of the cached tokens.
   */
  policy?: PolicySpec;
  /** Called after every step with where the KV lives (tiers, bytes moved). */
  onStep?: (s: KvStepStats) => void;
  /** More token ids that end generation, not returned (a chat template's end of turn). */
  stopIds?: number[];
  /** Aborting it ends the generation at the next step (finish reason `cancelled`). */
  signal?: AbortSignal;
}

/** Options for {@linkcode Model.chat}. */
export interface ChatOptions extends GenerateOptions {
  /**
   * A Jinja chat template, or the name of a built-in one (`"plain"`),
   * instead of the model's own (required for a model without one).
   */
  template?: string;
  /** Open the assistant's turn after the messages (default true). */
  addGenerationPrompt?: boolean;
  /** More template variables (e.g. `date_string`). */
  templateVariables?: Record<string, unknown>;
}

/** One streamed piece of generated text. */
export interface GeneratedPiece {
  /** New text (may be "" while a character or a possible stop string is incomplete). */
  text: string;
  /** The token id. */
  id: number;
  /** 0 for the first generated token. */
  index: number;
}

/** Why generation ended. */
export type FinishReason =
  | "length"
  | "eos"
  | "stop"
  | "context"
  | "cancelled";

/** What a finished generation produced. */
export interface GenerationResult {
  promptIds: number[];
  ids: number[];
  text: string;
  finishReason: FinishReason;
  /** Prompt tokens per second (prefill, up to the first generated token). */
  prefillTokS: number;
  /** Generated tokens per second after the first. */
  decodeTokS: number;
  prefillMs: number;
  decodeMs: number;
  /** Time spent waiting for a slot behind other requests. */
  queuedMs: number;
  /** Where the KV lived: tiers, phases, bytes moved, the plan. */
  kvStats: KvStats;
}

/** A running generation: iterate it for pieces; `result` settles at the end. */
export interface Generation extends AsyncIterable<GeneratedPiece> {
  result: Promise<GenerationResult>;
}

/** A loaded model. */
export class Model {
  /** An exclusive caller (scoring, logits, a static batch) holds the engine. */
  private busy = false;
  /** Concurrent generate and chat calls share its decode steps. */
  readonly batcher: Batcher;

  constructor(
    readonly file: ModelFile,
    readonly tokenizer: Tokenizer,
    readonly engine: LlamaModel,
    private readonly ownsGpu: boolean,
  ) {
    this.batcher = new Batcher(engine, tokenizer, () => this.busy);
  }

  /** The model's configuration (context length as loaded). */
  get config(): ModelConfig {
    return this.engine.config;
  }

  /** GPU bytes held by weights, KV cache and activations. */
  get gpuBytes(): number {
    return this.engine.gpuBytes;
  }

  private promptIds(prompt: string | number[]): number[] {
    const ids = typeof prompt === "string"
      ? this.tokenizer.encode(prompt)
      : [...prompt];
    if (ids.length === 0) {
      throw new RangeError(
        "The prompt is empty (it needs at least one token, e.g. BOS)",
      );
    }
    const ctx = this.engine.kv.ctx;
    if (ids.length >= ctx) {
      throw new RangeError(
        `The prompt has ${ids.length} tokens but the context holds ${ctx} (one more is needed to generate)`,
      );
    }
    return ids;
  }

  private acquire(): void {
    if (this.busy || this.batcher.busy) {
      throw new Error(
        "The model is already generating; this call needs the engine to itself: wait for the running generations",
      );
    }
    this.busy = true;
  }

  private releaseLock(): void {
    this.busy = false;
    this.batcher.kick();
  }

  /**
   * Runs `fn` with the engine to itself (the model's busy lock held), as
   * scoring does: it throws while generations run, and a `generate`
   * started meanwhile waits for it instead of changing the engine's policy
   * or KV under it.
   */
  async exclusive<T>(fn: (engine: LlamaModel) => Promise<T>): Promise<T> {
    this.acquire();
    try {
      return await fn(this.engine);
    } finally {
      this.releaseLock();
    }
  }

  /**
   * Generates a continuation of `prompt` (text, encoded with BOS as the
   * model says, or token ids), streaming pieces of text. Calls made while
   * others run are batched with them (`src/api/batcher.ts`): each takes a
   * KV slot (`maxBatch` at load) and waits in a queue when none is free.
   * Breaking out of the iteration, or aborting `signal`, stops it.
   */
  generate(
    prompt: string | number[],
    options: GenerateOptions = {},
  ): Generation {
    checkSampling(options);
    const maxTokens = options.maxTokens ?? 256;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new RangeError(
        `maxTokens must be a positive integer, got ${options.maxTokens}`,
      );
    }
    for (const id of options.stopIds ?? []) {
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
        throw new RangeError(
          `stopIds: ${id} is not a token id (the vocabulary has ${this.config.vocabSize})`,
        );
      }
    }
    return this.batcher.submit(this.promptIds(prompt), maxTokens, options);
  }

  /**
   * Replies to `messages` in the model's chat format: the messages are
   * rendered with the model's chat template (or `options.template`),
   * encoded with its special tokens, and generated like
   * {@linkcode generate} (batched with other calls), stopping at the
   * template's end-of-turn tokens as well as EOS.
   */
  async chat(
    messages: ChatMessage[],
    options: ChatOptions = {},
  ): Promise<Generation> {
    checkMessages(messages);
    const t = await this.chatTemplate(options.template);
    const text = t.render(
      messages,
      options.addGenerationPrompt ?? true,
      options.templateVariables,
    );
    const ids = this.tokenizer.encode(text, {
      addSpecial: false,
      parseSpecial: true,
    });
    this.endOfTurn ??= endOfTurnIds(this.file, this.tokenizer);
    return this.generate(ids, {
      ...options,
      stopIds: [...(options.stopIds ?? []), ...this.endOfTurn],
    });
  }

  /**
   * The compiled chat template `chat` uses: `template` (a source or a
   * built-in name), else the model's own (TypeError when it has none).
   */
  async chatTemplate(template?: string): Promise<ChatTemplate> {
    const key = template ?? "";
    let t = this.templates.get(key);
    if (!t) {
      t = await ChatTemplate.forModel(this.file, this.tokenizer, template);
      this.templates.set(key, t);
    }
    return t;
  }

  /** Compiled chat templates by source ("" for the model's own). */
  private readonly templates = new Map<string, ChatTemplate>();
  /** The tokens that end a chat turn (found once). */
  private endOfTurn: number[] | null = null;

  /**
   * Greedy generation of several sequences at once, each in its own KV
   * slot: one step decodes one token of every unfinished sequence.
   * Needs `maxBatch` >= prompts.length at load.
   */
  async generateBatch(
    prompts: (string | number[])[],
    options: {
      maxTokens?: number;
      stopAtEos?: boolean;
      policy?: PolicySpec;
      onStep?: (s: KvStepStats) => void;
    } = {},
  ): Promise<{ promptIds: number[]; ids: number[] }[]> {
    const maxTokens = options.maxTokens ?? 256;
    if (prompts.length > this.engine.kv.slots) {
      throw new RangeError(
        `A batch of ${prompts.length} needs maxBatch >= ${prompts.length} at load (it is ${this.engine.kv.slots})`,
      );
    }
    const seqs = prompts.map((p) => this.promptIds(p));
    this.acquire();
    try {
      this.engine.setPolicy(options.policy ?? { name: "dense", sparsity: 0 });
      this.engine.kv.planRun(
        this.engine.policy,
        seqs.map((s) => s.length),
        maxTokens,
      );
      this.engine.kv.onStep = options.onStep ?? null;
      const first: number[] = new Array(seqs.length);
      await prefill(
        this.engine,
        seqs.map((ids, slot) => ({ slot, ids })),
        true,
        (i, x) => (first[i] = x as number),
      );
      const out = seqs.map((p, i) => ({ promptIds: p, ids: [first[i]] }));
      const eos = this.tokenizer.eos;
      const live = (i: number) =>
        out[i].ids.length < maxTokens &&
        !((options.stopAtEos ?? true) &&
          out[i].ids[out[i].ids.length - 1] === eos) &&
        seqs[i].length + out[i].ids.length <= this.engine.kv.ctx;
      for (;;) {
        const active = out.map((_, i) => i).filter(live);
        if (!active.length) break;
        const toks = active.map((i) => ({
          slot: i,
          pos: seqs[i].length + out[i].ids.length - 1,
          id: out[i].ids[out[i].ids.length - 1],
        }));
        const next = await this.engine.stepArgmax(
          toks,
          toks.map((_, r) => r),
          true,
        );
        active.forEach((i, r) => out[i].ids.push(next[r]));
      }
      for (const o of out) {
        if ((options.stopAtEos ?? true) && o.ids[o.ids.length - 1] === eos) {
          o.ids.pop();
        }
      }
      return out;
    } finally {
      this.engine.kv.onStep = null;
      this.releaseLock();
    }
  }

  /**
   * Greedy generation of many prompts with continuous batching
   * (`src/api/continuous.ts`): sequences are admitted into free slots as
   * earlier ones finish; with paged KV (`kv: { gpuBytes, paged: true }`)
   * admission waits for free blocks and the newest sequence is preempted
   * (and later recomputed) when a step runs out of them.
   */
  async generateContinuous(
    prompts: (string | number[])[],
    options: ContinuousOptions = {},
  ): Promise<ContinuousResult> {
    const ids = prompts.map((p) => this.promptIds(p));
    return await this.exclusive((engine) =>
      runContinuous(engine, ids, this.tokenizer.eos, options)
    );
  }

  /**
   * Logits of every position of `ids` (a fresh sequence, BOS included if
   * wanted): a (ids.length, vocab) array, row i predicting token i + 1.
   */
  async logits(ids: number[]): Promise<Float32Array> {
    this.promptIds(ids);
    this.acquire();
    try {
      const V = this.config.vocabSize;
      const out = new Float32Array(ids.length * V);
      const T = Math.min(this.engine.kv.stepTokens, this.engine.maxOut);
      // A fresh sequence: checks that its prefill fits a KV budget.
      this.engine.kv.planRun(this.engine.policy, [ids.length], 0);
      for (let i = 0; i < ids.length; i += T) {
        const chunk = ids.slice(i, i + T).map((id, j) => ({
          slot: 0,
          pos: i + j,
          id,
        }));
        out.set(
          await this.engine.stepLogits(chunk, chunk.map((_, r) => r), false),
          i * V,
        );
      }
      return out;
    } finally {
      this.releaseLock();
    }
  }

  /** Frees the GPU buffers and closes the file. */
  dispose(): void {
    this.engine.dispose();
    this.file.close();
    if (this.ownsGpu) this.engine.gpu.destroy();
  }

  /** Disposes the model (`using model = await loadModel()`). */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Loads a model: a `.gguf` path, URL, bytes, `Blob` or stream, or a
 * Hugging Face directory; by default the embedded Austen model.
 */
export async function loadModel(
  source: ByteSourceInput = defaultModelPath(),
  options: LoadOptions = {},
): Promise<Model> {
  const file = await openModelFile(source, options);
  try {
    const tokenizer = await Tokenizer.fromModelFile(file);
    const gpu = options.gpu ?? (await openGpu());
    try {
      const engine = await LlamaModel.load(gpu, file, options);
      return new Model(file, tokenizer, engine, !options.gpu);
    } catch (e) {
      if (!options.gpu) gpu.destroy();
      throw e;
    }
  } catch (e) {
    file.close();
    throw e;
  }
}
