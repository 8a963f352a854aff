/**
 * Text to token ids and back: the {@linkcode Tokenizer} class, made from a
 * {@linkcode Vocabulary} (`vocab.ts`), whatever its source: GGUF metadata
 * (`vocab_gguf.ts`), a Hugging Face directory (`vocab_hf.ts`), or one built
 * in code. It runs in the Wasm core:
 *
 * - SentencePiece BPE (Llama 1/2, TinyLlama, Mistral: GGUF
 *   `tokenizer.ggml.model == "llama"`, or a Hugging Face directory's
 *   `tokenizer.model`), see `sentencepiece.ts`;
 * - byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM: GGUF
 *   `tokenizer.ggml.model == "gpt2"`, or a Hugging Face directory's
 *   `tokenizer.json`), see `bpe.ts`.
 *
 * Control tokens (`<s>`, `<|endoftext|>`) are never made from text unless
 * `parseSpecial`, and decode to nothing. Added tokens with Hugging Face's
 * `lstrip` / `rstrip` (Phi-3's chat tokens) take the whitespace beside them
 * (the vocabulary's `strip`); the text between added tokens is then encoded
 * piece by piece, each as a text that follows a special token.
 *
 * @example Encode and decode
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { Tokenizer } from "./tokenizer.ts";
 * const dir = Deno.env.get("ALISA_SHARED") ?? "../shared";
 * const path = `${dir}/models/austen-5m-hf`;
 * try {
 *   await Deno.stat(path);
 * } catch {
 *   console.log(`skipped: ${path} is absent`);
 *   Deno.exit(0);
 * }
 * const tok = await Tokenizer.fromHfDir(path);
 * const ids = tok.encode("It is a truth"); // BOS first
 * assertEquals(ids, [1, 597, 366, 261, 1818]);
 * assertEquals(tok.pieces(ids), ["<s>", "▁It", "▁is", "▁a", "▁truth"]);
 * assertEquals(tok.decode(ids), "It is a truth");
 * // Streaming: pieces of text as ids arrive, the same text in the end.
 * const d = tok.decoder();
 * assertEquals(ids.map((id) => d.push(id)).join("") + d.flush(), "It is a truth");
 * ```
 *
 * @example From a vocabulary built in code
 * ```ts
 * import { Tokenizer } from "./tokenizer.ts";
 * const tok = new Tokenizer({
 *   kind: "bpe",
 *   pieces: ["a", "b", "ab"],
 *   types: [1, 1, 1],
 *   merges: ["a b"],
 *   pre: "gpt2",
 *   unk: null,
 *   bos: null,
 *   eos: null,
 *   addBos: false,
 *   addEos: false,
 *   addSpacePrefix: false,
 *   ignoreMerges: false,
 *   normalize: null,
 * });
 * console.log(tok.encode("abab")); // [2, 2]
 * ```
 *
 * @module
 */
import { isObject } from "../formats/json.ts";
import type { ModelFile } from "../formats/model_file.ts";
import { bpeCore } from "./bpe.ts";
import type { TokenizerCore } from "./core.ts";
import { spmCore } from "./sentencepiece.ts";
import { checkedDecoder, type StreamDecoder } from "./stream.ts";
import {
  type BpeVocab,
  bpeVocabulary,
  checkVocabulary,
  GGUF_MODEL,
  prefixed,
  type SpmVocab,
  TokenType,
  type Vocabulary,
  withPrefix,
} from "./vocab.ts";
import { type GgufMetadata, vocabFromGguf } from "./vocab_gguf.ts";
import { vocabFromHfDir, vocabFromTokenizerJson } from "./vocab_hf.ts";

/** Options for {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add BOS/EOS as the model says (`add_bos_token`, `add_eos_token`); default true. */
  addSpecial?: boolean;
  /** Turn control pieces written in the text (`<s>`) into their ids; default false (they are text). */
  parseSpecial?: boolean;
}

/** Options for {@linkcode Tokenizer.decode} and {@linkcode Tokenizer.decoder}. */
export interface DecodeOptions {
  /**
   * The ids start a text: drop the dummy-prefix space once (default true).
   * Pass false to decode a continuation, e.g. generated tokens after a prompt.
   * SentencePiece only: byte-level BPE keeps every space.
   */
  stripLeadingSpace?: boolean;
  /** Replace invalid UTF-8 by U+FFFD instead of throwing a TypeError (default false). */
  lossy?: boolean;
}

/** Options for the {@linkcode Tokenizer} constructor. */
export interface TokenizerOptions {
  /** Where the vocabulary came from, for messages (default "vocabulary"). */
  name?: string;
}

/** Metadata source for {@linkcode Tokenizer.fromGguf}: a `GgufFile` or anything with its `metadata`. */
export interface GgufLike {
  /** GGUF metadata (the `tokenizer.ggml.*` keys are read). */
  metadata: GgufMetadata;
  /** Where it came from, for messages. */
  source?: { name: string };
}

/** `f()`, its TypeError or RangeError prefixed "Cannot load tokenizer of NAME: ". */
function loading<T>(name: string, f: () => T): T {
  return prefixed(`Cannot load tokenizer of ${name}`, f);
}

/** A SentencePiece BPE or byte-level BPE tokenizer. */
export class Tokenizer {
  readonly #core: TokenizerCore;
  readonly #pieces: string[];
  readonly #types: Int32Array;
  readonly #normalize: "NFC" | null;
  readonly #stripped: AddedToken[] | null;
  /** The tokenizer model, as GGUF names it: SentencePiece BPE or byte-level BPE. */
  readonly model: "llama" | "gpt2";
  /** The byte-level BPE pre-tokenizer (`gpt2`, `llama-bpe`, ...); null for SentencePiece. */
  readonly pre: string | null;
  /** Where the vocabulary came from (for messages). */
  readonly name: string;
  /** Beginning-of-sequence id, or null. */
  readonly bos: number | null;
  /** End-of-sequence id, or null. */
  readonly eos: number | null;
  /** Unknown-token id, or null. */
  readonly unk: number | null;
  /** Whether `encode` adds BOS by default. */
  readonly addBos: boolean;
  /** Whether `encode` adds EOS by default. */
  readonly addEos: boolean;
  /** Whether texts get a dummy-prefix `▁` (SentencePiece) or a leading space (byte-level `add_prefix_space`). */
  readonly addSpacePrefix: boolean;

  /**
   * A tokenizer from a vocabulary. Throws a TypeError or RangeError starting
   * "Cannot load tokenizer of NAME: " and naming the problem: a field of the
   * wrong type or length, an id out of range (checked before anything is
   * copied), or, from the Wasm core, bad pieces, types, scores or merges.
   */
  constructor(vocab: Vocabulary, options: TokenizerOptions = {}) {
    const name = options.name ?? "vocabulary";
    const v = loading(name, () => checkVocabulary(vocab));
    const { core, pre } = loading(
      name,
      () => v.kind === "spm" ? { core: spmCore(v), pre: null } : bpeCore(v),
    );
    this.#core = core;
    this.#pieces = v.pieces;
    this.#types = Int32Array.from(v.types);
    this.#normalize = v.kind === "bpe" ? v.normalize : null;
    this.#stripped = strippedTokens(v);
    this.model = GGUF_MODEL[v.kind];
    this.pre = pre;
    this.name = name;
    this.bos = v.bos;
    this.eos = v.eos;
    this.unk = v.unk;
    this.addBos = v.addBos;
    this.addEos = v.addEos;
    this.addSpacePrefix = v.addSpacePrefix;
  }

  /** Number of ids. */
  get vocabSize(): number {
    return this.#pieces.length;
  }

  /** A SentencePiece BPE tokenizer: `new Tokenizer({ kind: "spm", ...vocab }, { name })`. */
  static fromVocab(vocab: SpmVocab, name = "vocabulary"): Tokenizer {
    return new Tokenizer({ kind: "spm", ...vocab }, { name });
  }

  /**
   * A byte-level BPE tokenizer: `new Tokenizer(bpeVocabulary(vocab), { name })`
   * (settings absent from `vocab` are off).
   */
  static fromBpeVocab(vocab: BpeVocab, name = "vocabulary"): Tokenizer {
    return new Tokenizer(bpeVocabulary(vocab), { name });
  }

  /**
   * The tokenizer of a GGUF file (`tokenizer.ggml.*` metadata; see
   * `vocabFromGguf` for llama.cpp's defaults it follows).
   */
  static fromGguf(gguf: GgufLike): Tokenizer {
    const name = gguf.source?.name ?? "GGUF metadata";
    const vocab = loading(name, () => {
      const v = vocabFromGguf(gguf.metadata);
      if (v === null) {
        throw new TypeError(
          "it has no tokenizer (tokenizer.ggml.model is absent or none)",
        );
      }
      return v;
    });
    return new Tokenizer(vocab, { name });
  }

  /**
   * A byte-level BPE tokenizer from a parsed Hugging Face `tokenizer.json`
   * and `tokenizer_config.json` (see `vocabFromTokenizerJson`). `decode`
   * gives the exact text (no `clean_up_tokenization_spaces`).
   */
  static fromTokenizerJson(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown> = {},
    name = "tokenizer.json",
  ): Tokenizer {
    const vocab = loading(name, () => {
      if (!isObject(tokenizerJson)) {
        throw new TypeError("tokenizer.json is not a JSON object");
      }
      if (!isObject(tokenizerConfig)) {
        throw new TypeError("tokenizer_config.json is not a JSON object");
      }
      return vocabFromTokenizerJson(
        tokenizerJson,
        tokenizerConfig,
        "tokenizer_config.json",
      );
    });
    return new Tokenizer(vocab, { name });
  }

  /**
   * The tokenizer of a Hugging Face directory: `tokenizer.model`
   * (SentencePiece BPE) or else `tokenizer.json` (byte-level BPE), and
   * `tokenizer_config.json` when present (see `vocabFromHfDir`).
   */
  static async fromHfDir(dir: string): Promise<Tokenizer> {
    let vocab: Vocabulary | null;
    try {
      vocab = await vocabFromHfDir(dir);
    } catch (e) {
      throw withPrefix(`Cannot load tokenizer of ${dir}`, e);
    }
    if (vocab === null) {
      throw new TypeError(
        `Cannot load tokenizer of ${dir}: it has no tokenizer.model or tokenizer.json`,
      );
    }
    return new Tokenizer(vocab, { name: dir });
  }

  /**
   * The tokenizer of an open model file (GGUF or Hugging Face directory),
   * made from the vocabulary read when it was opened, which
   * `model.tokenizer` summarizes.
   */
  static fromModelFile(model: ModelFile): Promise<Tokenizer> {
    // A promise, as when this read the files; errors are rejections.
    return Promise.try(() => {
      if (model.vocabulary === null) {
        throw new TypeError(
          `Cannot load tokenizer of ${model.name}: it has no tokenizer (${
            model.format === "gguf"
              ? "tokenizer.ggml.model is absent or none"
              : "no tokenizer.model or tokenizer.json"
          })`,
        );
      }
      return new Tokenizer(model.vocabulary, { name: model.name });
    });
  }

  /** Token ids of `text`: BOS/EOS as the model says unless `addSpecial` is false. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const { addSpecial = true, parseSpecial = false } = options;
    if (typeof text !== "string") {
      throw new TypeError(`encode expects a string, got ${typeof text}`);
    }
    const normalized = this.#normalize ? text.normalize(this.#normalize) : text;
    const body = this.#stripped
      ? encodeStripped(this.#core, this.#stripped, normalized, parseSpecial)
      : this.#core.encode(normalized, parseSpecial);
    const bos = addSpecial && this.addBos ? 1 : 0;
    const eos = addSpecial && this.addEos ? 1 : 0;
    const ids = new Array<number>(bos + body.length + eos);
    if (bos) ids[0] = this.bos!;
    for (let i = 0; i < body.length; i++) ids[bos + i] = body[i];
    if (eos) ids[ids.length - 1] = this.eos!;
    return ids;
  }

  /** RangeError unless `id` is an id of the vocabulary. */
  #check(id: number, pos?: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.#pieces.length) {
      throw new RangeError(
        `token id ${id}${
          pos === undefined ? "" : ` at position ${pos}`
        } is out of range (the vocabulary has ${this.#pieces.length} tokens)`,
      );
    }
    return id;
  }

  #checkAll(ids: ArrayLike<number>): Uint32Array {
    const u = new Uint32Array(ids.length);
    for (let i = 0; i < ids.length; i++) u[i] = this.#check(ids[i], i);
    return u;
  }

  /**
   * The text of `ids`. Control and unknown pieces give nothing; invalid
   * UTF-8 from byte pieces is a TypeError unless `lossy`.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const { stripLeadingSpace = true, lossy = false } = options;
    return this.#core.decode(this.#checkAll(ids), stripLeadingSpace, lossy);
  }

  /**
   * An incremental decoder: the strings `push` returns, then `flush`,
   * concatenate to `decode` of all the ids pushed.
   */
  decoder(options: DecodeOptions = {}): StreamDecoder {
    const { stripLeadingSpace = true, lossy = false } = options;
    return checkedDecoder(
      this.#core.decoder(stripLeadingSpace, lossy),
      (id, position) => this.#check(id, position),
    );
  }

  /** The piece text of each id (`▁It`, `<0x0A>`, `<s>`; byte-level: `Ġthe`, `Ċ`). */
  pieces(ids: ArrayLike<number>): string[] {
    const out = new Array<string>(ids.length);
    for (let i = 0; i < ids.length; i++) {
      out[i] = this.#pieces[this.#check(ids[i], i)];
    }
    return out;
  }

  /** The {@linkcode TokenType} of `id`. */
  tokenType(id: number): number {
    return this.#types[this.#check(id)];
  }

  /** Whether `id` is a control piece (BOS, EOS, ...), which decodes to nothing. */
  isControl(id: number): boolean {
    return this.tokenType(id) === TokenType.CONTROL;
  }
}

/** An added token, for {@linkcode encodeStripped}. */
interface AddedToken {
  text: string;
  id: number;
  /** Matched only with `parseSpecial` (control and unknown tokens). */
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

/** The added tokens of `v` when some of them strip whitespace, else null. */
function strippedTokens(v: Vocabulary): AddedToken[] | null {
  const left = new Set(v.strip?.left ?? []);
  const right = new Set(v.strip?.right ?? []);
  if (left.size === 0 && right.size === 0) return null;
  const out: AddedToken[] = [];
  for (let id = 0; id < v.pieces.length; id++) {
    const t = v.types[id];
    if (
      v.pieces[id] === "" ||
      (t !== TokenType.USER_DEFINED && t !== TokenType.CONTROL &&
        t !== TokenType.UNKNOWN)
    ) continue;
    out.push({
      text: v.pieces[id],
      id,
      special: t !== TokenType.USER_DEFINED,
      lstrip: left.has(id),
      rstrip: right.has(id),
    });
  }
  return out;
}

/** Unicode White_Space, as Rust's `char::is_whitespace` (Hugging Face's strip). */
const WHITE_SPACE =
  /[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/;

/**
 * `text` encoded as Hugging Face's added-vocabulary splitter does: added
 * tokens (control ones only with `parseSpecial`) found leftmost-longest,
 * each taking the whitespace before it (`lstrip`) or after it (`rstrip`),
 * and the text between them encoded by `core` piece by piece.
 */
function encodeStripped(
  core: TokenizerCore,
  added: AddedToken[],
  text: string,
  parseSpecial: boolean,
): Uint32Array {
  const out: number[] = [];
  const emit = (a: number, b: number) => {
    if (b > a) out.push(...core.encode(text.slice(a, b), false));
  };
  let raw = 0;
  let i = 0;
  while (i < text.length) {
    let best: AddedToken | null = null;
    for (const t of added) {
      if (
        (parseSpecial || !t.special) &&
        (best === null || t.text.length > best.text.length) &&
        text.startsWith(t.text, i)
      ) best = t;
    }
    if (best === null) {
      i++;
      continue;
    }
    let end = i;
    if (best.lstrip) {
      while (end > raw && WHITE_SPACE.test(text[end - 1])) end--;
    }
    emit(raw, end);
    out.push(best.id);
    i += best.text.length;
    if (best.rstrip) {
      while (i < text.length && WHITE_SPACE.test(text[i])) i++;
    }
    raw = i;
  }
  emit(raw, text.length);
  return Uint32Array.from(out);
}
