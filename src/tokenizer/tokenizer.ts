/**
 * Text to token ids and back, in the Wasm core:
 *
 * - SentencePiece BPE (Llama 1/2, TinyLlama, Mistral: GGUF
 *   `tokenizer.ggml.model == "llama"`, or a Hugging Face directory's
 *   `tokenizer.model`), in `wasm/src/tokenizer.rs`, following llama.cpp's
 *   `llm_tokenizer_spm`: spaces become `▁`, a dummy-prefix `▁` starts the
 *   text, the highest-scoring adjacent pair is merged until none is a piece,
 *   characters without a piece become `<0xNN>` byte pieces.
 * - Byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM: GGUF
 *   `tokenizer.ggml.model == "gpt2"`, or a Hugging Face directory's
 *   `tokenizer.json`), in `wasm/src/bpe.rs`: the text is split by the
 *   model's pre-tokenizer pattern (`tokenizer.ggml.pre`, see
 *   {@linkcode BPE_PRE_TOKENIZERS}), each piece's UTF-8 bytes become GPT-2's
 *   byte-level characters, and the merge of lowest rank is applied until
 *   none is left.
 *
 * Control tokens (`<s>`, `<|endoftext|>`) are never made from text unless
 * `parseSpecial`, and decode to nothing.
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
 * @module
 */
import {
  BpeTokenizer,
  sentencepieceParse,
  SpmTokenizer,
} from "../../wasm/pkg/alisa_wasm.js";
import type { GgufValue } from "../formats/gguf.ts";
import type { ModelFile } from "../formats/model_file.ts";
import { join } from "node:path";

/** Piece types, as SentencePiece and GGUF `tokenizer.ggml.token_type` number them. */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** A SentencePiece BPE vocabulary and its settings. */
export interface SpmVocab {
  /** Piece text by id (`▁` for spaces, `<0xNN>` for byte pieces). */
  pieces: string[];
  /** Merge priority by id (higher merges first). */
  scores: ArrayLike<number>;
  /** {@linkcode TokenType} by id. */
  types: ArrayLike<number>;
  unk: number | null;
  bos: number | null;
  eos: number | null;
  /** Whether `encode` adds BOS by default. */
  addBos: boolean;
  /** Whether `encode` adds EOS by default. */
  addEos: boolean;
  /** Whether a `▁` is put before the text (SentencePiece `add_dummy_prefix`). */
  addSpacePrefix: boolean;
}

/**
 * Byte-level BPE pre-tokenizers by `tokenizer.ggml.pre` name, with the
 * regular expression each one's splitting equals (`default` is llama.cpp's:
 * four patterns applied in turn).
 */
export const BPE_PRE_TOKENIZERS: Readonly<Record<string, readonly string[]>> = {
  gpt2: [
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  ],
  "llama-bpe": [
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ],
  qwen2: [
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ],
  smollm: [
    "\\p{N}",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  ],
  default: [
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
  ],
};

/** A byte-level BPE vocabulary and its settings. */
export interface BpeVocab {
  /** Token text by id, in GPT-2's byte-level alphabet (`Ġthe`); added tokens as they are. */
  pieces: string[];
  /** {@linkcode TokenType} by id (added tokens: CONTROL or USER_DEFINED). */
  types: ArrayLike<number>;
  /** Merges by rank: `"Ġ t"` strings or `["Ġ", "t"]` pairs. */
  merges: readonly string[] | readonly (readonly [string, string])[];
  /** Pre-tokenizer name, a key of {@linkcode BPE_PRE_TOKENIZERS} (or a llama.cpp alias). */
  pre: string;
  bos: number | null;
  eos: number | null;
  unk?: number | null;
  /** Whether `encode` adds BOS by default. */
  addBos: boolean;
  /** Whether `encode` adds EOS by default. */
  addEos: boolean;
  /** A piece that is a whole token skips merging (Hugging Face `ignore_merges`; Llama 3). */
  ignoreMerges?: boolean;
  /** A space is put before text that does not start with one (ByteLevel `add_prefix_space`). */
  addPrefixSpace?: boolean;
  /** Unicode normalization applied before encoding (`tokenizer.json` normalizer NFC: Qwen2). */
  normalize?: "NFC" | null;
}

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

/** Decodes one id at a time; never returns part of a character. */
export interface StreamDecoder {
  /** The text that `id` completes (possibly ""). */
  push(id: number): string;
  /** The rest: "" unless the ids ended inside a character (then U+FFFD when lossy, else a TypeError). */
  flush(): string;
}

/** Metadata source for {@linkcode Tokenizer.fromGguf}: a `GgufFile` or anything with its `metadata`. */
export interface GgufLike {
  metadata: Map<string, GgufValue>;
  source?: { name: string };
}

function prefixed(name: string, e: unknown): Error {
  const msg = `Cannot load tokenizer of ${name}: ${
    e instanceof Error ? e.message : String(e)
  }`;
  if (e instanceof RangeError) return new RangeError(msg);
  if (e instanceof TypeError) return new TypeError(msg);
  return e instanceof Error ? e : new Error(msg);
}

/** `e` with `path: ` before its message, of the same class. */
function located(path: string, e: unknown): Error {
  const msg = `${path}: ${e instanceof Error ? e.message : String(e)}`;
  if (e instanceof RangeError) return new RangeError(msg);
  if (e instanceof TypeError) return new TypeError(msg);
  return e instanceof Error ? e : new Error(msg);
}

function isNumericArray(v: unknown): v is ArrayLike<number> {
  return (ArrayBuffer.isView(v) && !(v instanceof DataView) &&
    !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)) ||
    (Array.isArray(v) && v.every((x) => typeof x === "number"));
}

/** A token id setting: null when absent; RangeError when not an id of the vocabulary. */
function tokenId(
  v: unknown,
  what: string,
  n: number,
): number | null {
  if (v === undefined || v === null) return null;
  const id = typeof v === "bigint" ? Number(v) : v;
  if (typeof id !== "number" || !Number.isInteger(id)) {
    throw new TypeError(`${what} must be an integer, got ${String(v)}`);
  }
  // -1 is how SentencePiece and some converters say "none".
  if (id === -1) return null;
  if (id < 0 || id >= n) {
    throw new RangeError(
      `${what} ${id} is out of range (the vocabulary has ${n} tokens)`,
    );
  }
  return id;
}

function bool(v: unknown, what: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") {
    throw new TypeError(`${what} must be a boolean, got ${String(v)}`);
  }
  return v;
}

async function readOptionalJson(
  path: string,
): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new TypeError(`${path} is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The text of a `tokenizer_config.json` token entry: `"<s>"` or `{ content: "<s>" }`. */
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && "content" in v) {
    const c = (v as { content: unknown }).content;
    if (typeof c === "string") return c;
  }
  return null;
}

/** What the Wasm SentencePiece and byte-level BPE tokenizers have in common. */
interface Core {
  encode(text: string, parseSpecial: boolean): Uint32Array;
  decode(ids: Uint32Array, stripLeadingSpace: boolean, lossy: boolean): string;
  decoder(stripLeadingSpace: boolean, lossy: boolean): StreamDecoder;
}

function bpeCore(b: BpeTokenizer): Core {
  return {
    encode: (text, parseSpecial) => b.encode(text, parseSpecial),
    decode: (ids, _strip, lossy) => b.decode(ids, lossy),
    decoder: (_strip, lossy) => b.decoder(lossy),
  };
}

/** llama.cpp's `tokenizer.ggml.pre` names that mean Llama 3's tokenizer (add BOS, ignore merges). */
const LLAMA3_PRE = new Set(["llama-bpe", "llama3", "llama-v3"]);

/** TypeError naming `pre` unless the Wasm core knows that pre-tokenizer. */
function checkPre(pre: string, what: string): void {
  try {
    BpeTokenizer.preSplit(pre, "");
  } catch (e) {
    throw new TypeError(`${what}: ${(e as Error).message}`);
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A short JSON rendering of `v` for messages. */
function brief(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

/** The pre-tokenizer name and `add_prefix_space` of a `tokenizer.json` `pre_tokenizer`. */
function hfPreTokenizer(p: unknown): { pre: string; addPrefixSpace: boolean } {
  const unsupported = () =>
    new TypeError(
      `pre_tokenizer ${
        brief(p)
      } is not supported (supported: ByteLevel; Split with the GPT-2, Llama 3 or Qwen2 pattern then ByteLevel; Digits then ByteLevel)`,
    );
  if (!isObject(p)) throw unsupported();
  const byteLevel = (x: unknown, regex: boolean) =>
    isObject(x) && x.type === "ByteLevel" && (x.use_regex ?? true) === regex;
  if (byteLevel(p, true)) {
    return { pre: "gpt2", addPrefixSpace: p.add_prefix_space === true };
  }
  const seq = p.type === "Sequence" && Array.isArray(p.pretokenizers)
    ? p.pretokenizers as unknown[]
    : null;
  if (seq?.length === 2 && isObject(seq[0]) && isObject(seq[1])) {
    const [a, b] = seq;
    if (b.add_prefix_space === true) {
      throw new TypeError(
        `pre_tokenizer ${
          brief(p)
        }: add_prefix_space after ${a.type} is not supported`,
      );
    }
    if (
      a.type === "Split" && byteLevel(b, false) && a.invert !== true &&
      a.behavior === "Isolated" && isObject(a.pattern)
    ) {
      const re = a.pattern.Regex;
      for (const pre of ["gpt2", "llama-bpe", "qwen2"]) {
        if (re === BPE_PRE_TOKENIZERS[pre][0]) {
          return { pre, addPrefixSpace: false };
        }
      }
      throw new TypeError(
        `the Split pattern ${
          brief(re ?? a.pattern)
        } is not a supported pre-tokenizer (supported: the GPT-2, Llama 3 and Qwen2 patterns)`,
      );
    }
    if (
      a.type === "Digits" && a.individual_digits === true && byteLevel(b, true)
    ) {
      return { pre: "smollm", addPrefixSpace: false };
    }
  }
  throw unsupported();
}

/** `[first, last]` special token of a `TemplateProcessing` post-processor's single template. */
function templateEnds(pp: unknown): [string | null, string | null] {
  if (!isObject(pp)) return [null, null];
  if (pp.type === "Sequence" && Array.isArray(pp.processors)) {
    for (const q of pp.processors) {
      const r = templateEnds(q);
      if (r[0] !== null || r[1] !== null) return r;
    }
    return [null, null];
  }
  if (pp.type !== "TemplateProcessing" || !Array.isArray(pp.single)) {
    return [null, null];
  }
  const special = (x: unknown) => {
    const t = isObject(x) && isObject(x.SpecialToken)
      ? x.SpecialToken.id
      : null;
    return typeof t === "string" ? t : null;
  };
  return [special(pp.single[0]), special(pp.single.at(-1))];
}

/**
 * A byte-level BPE vocabulary from a parsed `tokenizer.json` and, optionally,
 * `tokenizer_config.json`.
 */
function bpeVocabFromJson(tj: Json, cfg: Json, cfgName: string): BpeVocab {
  const model = tj.model;
  if (!isObject(model)) throw new TypeError("tokenizer.json has no model");
  // Old serializations have no type; their merges say BPE.
  if (
    model.type !== "BPE" && !(model.type === undefined && "merges" in model)
  ) {
    throw new TypeError(
      `tokenizer.json model type ${
        JSON.stringify(model.type)
      } is not supported (only BPE)`,
    );
  }
  if (model.byte_fallback === true) {
    throw new TypeError(
      "tokenizer.json is a SentencePiece-style BPE (byte_fallback), not byte-level BPE: it is not supported without tokenizer.model",
    );
  }
  for (const k of ["continuing_subword_prefix", "end_of_word_suffix"]) {
    if (typeof model[k] === "string" && model[k] !== "") {
      throw new TypeError(`tokenizer.json model.${k} is not supported`);
    }
  }
  const vocab = model.vocab;
  if (!isObject(vocab)) {
    throw new TypeError("tokenizer.json model.vocab is not an object");
  }
  const merges = model.merges;
  if (merges === undefined) {
    throw new TypeError("tokenizer.json has no model.merges");
  }
  if (!Array.isArray(merges)) {
    throw new TypeError("tokenizer.json model.merges is not an array");
  }
  const added = tj.added_tokens ?? [];
  if (!Array.isArray(added)) {
    throw new TypeError("tokenizer.json added_tokens is not an array");
  }
  const MAX_ID = 1 << 24;
  const checkId = (id: unknown, what: string): number => {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      throw new TypeError(`${what} has an invalid id ${String(id)}`);
    }
    if (id >= MAX_ID) throw new RangeError(`${what} has id ${id}, too large`);
    return id;
  };
  let n = 0;
  const entries = Object.entries(vocab);
  for (const [t, id] of entries) {
    n = Math.max(n, checkId(id, `token ${JSON.stringify(t)}`) + 1);
  }
  for (const a of added) {
    if (!isObject(a) || typeof a.content !== "string") {
      throw new TypeError(`tokenizer.json added token ${brief(a)} is invalid`);
    }
    n = Math.max(
      n,
      checkId(a.id, `added token ${JSON.stringify(a.content)}`) + 1,
    );
  }
  const pieces = new Array<string | undefined>(n);
  const types = new Int32Array(n);
  for (const [t, id] of entries) {
    const i = id as number;
    if (pieces[i] !== undefined) {
      throw new TypeError(
        `tokens ${JSON.stringify(pieces[i])} and ${
          JSON.stringify(t)
        } have the same id ${i}`,
      );
    }
    pieces[i] = t;
    types[i] = TokenType.NORMAL;
  }
  const ids = new Map<string, number>();
  for (const a of added as Json[]) {
    const i = a.id as number, content = a.content as string;
    if (pieces[i] !== undefined && pieces[i] !== content) {
      throw new TypeError(
        `added token ${i} is ${
          JSON.stringify(content)
        } but the vocabulary has ${JSON.stringify(pieces[i])}`,
      );
    }
    pieces[i] = content;
    types[i] = a.special === true ? TokenType.CONTROL : TokenType.USER_DEFINED;
    ids.set(content, i);
  }
  // Ids no token has, as llama.cpp's converter fills them.
  for (let i = 0; i < n; i++) {
    if (pieces[i] === undefined) {
      pieces[i] = `[PAD${i}]`;
      types[i] = TokenType.UNUSED;
    }
  }
  const idOf = (text: string): number | undefined =>
    ids.get(text) ??
      (Object.hasOwn(vocab, text) ? vocab[text] as number : undefined);
  const { pre, addPrefixSpace } = hfPreTokenizer(tj.pre_tokenizer);
  const dec = tj.decoder;
  if (!isObject(dec) || dec.type !== "ByteLevel") {
    throw new TypeError(
      `tokenizer.json decoder ${brief(dec)} is not supported (only ByteLevel)`,
    );
  }
  const norm = tj.normalizer ?? null;
  let normalize: "NFC" | null = null;
  if (isObject(norm) && norm.type === "NFC") normalize = "NFC";
  else if (
    norm !== null &&
    !(isObject(norm) && norm.type === "Sequence" &&
      Array.isArray(norm.normalizers) && norm.normalizers.length === 0)
  ) {
    throw new TypeError(
      `tokenizer.json normalizer ${brief(norm)} is not supported (only NFC)`,
    );
  }
  const [first, last] = templateEnds(tj.post_processor);
  const named = (key: string, fallback: string | null): number | null => {
    const v = cfg[key];
    const text = v === undefined ? fallback : tokenContent(v);
    if (text === null) return null;
    const id = idOf(text);
    if (id === undefined) {
      throw new TypeError(
        `${cfgName}: ${key} ${JSON.stringify(text)} is not in the vocabulary`,
      );
    }
    return id;
  };
  const unkText = typeof model.unk_token === "string" ? model.unk_token : null;
  return {
    pieces: pieces as string[],
    types,
    merges: merges as string[],
    pre,
    bos: named("bos_token", first),
    eos: named("eos_token", last),
    unk: unkText === null ? null : idOf(unkText) ?? null,
    addBos: bool(
      cfg.add_bos_token,
      `${cfgName}: add_bos_token`,
      first !== null,
    ),
    addEos: bool(cfg.add_eos_token, `${cfgName}: add_eos_token`, last !== null),
    ignoreMerges: model.ignore_merges === true,
    addPrefixSpace,
    normalize,
  };
}

/** A byte-level BPE vocabulary from GGUF `tokenizer.ggml.*` metadata. */
function ggufBpeVocab(md: Map<string, GgufValue>): BpeVocab {
  const pieces = md.get("tokenizer.ggml.tokens");
  if (pieces === undefined) {
    throw new TypeError("tokenizer.ggml.tokens is absent");
  }
  if (!Array.isArray(pieces) || pieces.some((p) => typeof p !== "string")) {
    throw new TypeError("tokenizer.ggml.tokens must be an array of strings");
  }
  const n = pieces.length;
  const merges = md.get("tokenizer.ggml.merges");
  if (merges === undefined) {
    throw new TypeError(
      "tokenizer.ggml.merges is absent (byte-level BPE needs its merges)",
    );
  }
  if (!Array.isArray(merges) || merges.some((m) => typeof m !== "string")) {
    throw new TypeError("tokenizer.ggml.merges must be an array of strings");
  }
  let types: ArrayLike<number> = new Int32Array(n).fill(TokenType.NORMAL);
  const t = md.get("tokenizer.ggml.token_type");
  if (t !== undefined) {
    if (!isNumericArray(t)) {
      throw new TypeError(
        "tokenizer.ggml.token_type must be an array of numbers",
      );
    }
    if (t.length !== n) {
      throw new RangeError(
        `tokenizer.ggml.token_type has ${t.length} entries but tokenizer.ggml.tokens has ${n}`,
      );
    }
    types = t;
  }
  const preValue = md.get("tokenizer.ggml.pre") ?? "default";
  if (typeof preValue !== "string") {
    throw new TypeError("tokenizer.ggml.pre must be a string");
  }
  checkPre(preValue, "tokenizer.ggml.pre");
  const llama3 = LLAMA3_PRE.has(preValue);
  const id = (key: string) => tokenId(md.get(key), key, n);
  return {
    pieces: pieces as string[],
    types,
    merges: merges as string[],
    pre: preValue,
    bos: id("tokenizer.ggml.bos_token_id"),
    eos: id("tokenizer.ggml.eos_token_id"),
    unk: id("tokenizer.ggml.unknown_token_id"),
    addBos: bool(
      md.get("tokenizer.ggml.add_bos_token"),
      "tokenizer.ggml.add_bos_token",
      llama3,
    ),
    addEos: bool(
      md.get("tokenizer.ggml.add_eos_token"),
      "tokenizer.ggml.add_eos_token",
      false,
    ),
    ignoreMerges: llama3,
  };
}

/** A SentencePiece BPE or byte-level BPE tokenizer. */
export class Tokenizer {
  readonly #core: Core;
  readonly #pieces: string[];
  readonly #types: Int32Array;
  readonly #normalize: "NFC" | null;

  private constructor(
    core: Core,
    pieces: string[],
    types: Int32Array,
    /** The tokenizer model, as GGUF names it: SentencePiece BPE or byte-level BPE. */
    readonly model: "llama" | "gpt2",
    /** The byte-level BPE pre-tokenizer (`gpt2`, `llama-bpe`, ...); null for SentencePiece. */
    readonly pre: string | null,
    normalize: "NFC" | null,
    /** Where the vocabulary came from (for messages). */
    readonly name: string,
    /** Beginning-of-sequence id, or null. */
    readonly bos: number | null,
    /** End-of-sequence id, or null. */
    readonly eos: number | null,
    /** Unknown-token id, or null. */
    readonly unk: number | null,
    /** Whether `encode` adds BOS by default. */
    readonly addBos: boolean,
    /** Whether `encode` adds EOS by default. */
    readonly addEos: boolean,
    /** Whether texts get a dummy-prefix `▁` (SentencePiece) or a leading space (byte-level `add_prefix_space`). */
    readonly addSpacePrefix: boolean,
  ) {
    this.#core = core;
    this.#pieces = pieces;
    this.#types = types;
    this.#normalize = normalize;
  }

  /** Number of ids. */
  get vocabSize(): number {
    return this.#pieces.length;
  }

  /**
   * A tokenizer from a vocabulary. Throws a TypeError or RangeError naming
   * the problem (lengths that differ, ids out of range, bad byte pieces).
   */
  static fromVocab(vocab: SpmVocab, name = "vocabulary"): Tokenizer {
    try {
      const { pieces } = vocab;
      if (!Array.isArray(pieces) || pieces.some((p) => typeof p !== "string")) {
        throw new TypeError("the pieces must be an array of strings");
      }
      const n = pieces.length;
      if (n === 0) throw new TypeError("the vocabulary has no tokens");
      if (!isNumericArray(vocab.scores)) {
        throw new TypeError("the scores must be an array of numbers");
      }
      if (!isNumericArray(vocab.types)) {
        throw new TypeError("the token types must be an array of numbers");
      }
      if (vocab.scores.length !== n) {
        throw new RangeError(
          `the vocabulary has ${n} tokens but ${vocab.scores.length} scores`,
        );
      }
      if (vocab.types.length !== n) {
        throw new RangeError(
          `the vocabulary has ${n} tokens but ${vocab.types.length} token types`,
        );
      }
      const bos = tokenId(vocab.bos, "BOS id", n);
      const eos = tokenId(vocab.eos, "EOS id", n);
      const unk = tokenId(vocab.unk, "unknown token id", n);
      if (vocab.addBos && bos === null) {
        throw new TypeError("the model adds BOS but has no BOS id");
      }
      if (vocab.addEos && eos === null) {
        throw new TypeError("the model adds EOS but has no EOS id");
      }
      const types = Int32Array.from(vocab.types);
      const spm = SpmTokenizer.fromVocab(
        pieces,
        Float32Array.from(vocab.scores),
        types,
        unk ?? -1,
        vocab.addSpacePrefix,
      );
      return new Tokenizer(
        spm,
        pieces,
        types,
        "llama",
        null,
        null,
        name,
        bos,
        eos,
        unk,
        vocab.addBos,
        vocab.addEos,
        vocab.addSpacePrefix,
      );
    } catch (e) {
      throw prefixed(name, e);
    }
  }

  /**
   * A byte-level BPE tokenizer from a vocabulary. Throws a TypeError or
   * RangeError naming the problem (lengths that differ, merges of tokens
   * that are not in the vocabulary, an unknown pre-tokenizer, ids out of
   * range).
   */
  static fromBpeVocab(vocab: BpeVocab, name = "vocabulary"): Tokenizer {
    try {
      const { pieces, merges } = vocab;
      if (!Array.isArray(pieces) || pieces.some((p) => typeof p !== "string")) {
        throw new TypeError("the pieces must be an array of strings");
      }
      const n = pieces.length;
      if (n === 0) throw new TypeError("the vocabulary has no tokens");
      if (!isNumericArray(vocab.types)) {
        throw new TypeError("the token types must be an array of numbers");
      }
      if (vocab.types.length !== n) {
        throw new RangeError(
          `the vocabulary has ${n} tokens but ${vocab.types.length} token types`,
        );
      }
      if (!Array.isArray(merges)) {
        throw new TypeError("the merges must be an array");
      }
      let flat: string[];
      const pairs = merges.length > 0 && typeof merges[0] !== "string";
      if (pairs) {
        flat = new Array<string>(merges.length * 2);
        for (let i = 0; i < merges.length; i++) {
          const m = merges[i];
          if (
            !Array.isArray(m) || m.length !== 2 || typeof m[0] !== "string" ||
            typeof m[1] !== "string"
          ) {
            throw new TypeError(
              `merge ${i} (${brief(m)}) is not a pair of strings`,
            );
          }
          flat[2 * i] = m[0];
          flat[2 * i + 1] = m[1];
        }
      } else {
        flat = merges as string[];
        const bad = flat.findIndex((m) => typeof m !== "string");
        if (bad >= 0) {
          throw new TypeError(
            `merge ${bad} (${brief(flat[bad])}) is not a string`,
          );
        }
      }
      if (typeof vocab.pre !== "string") {
        throw new TypeError("the pre-tokenizer name must be a string");
      }
      const bos = tokenId(vocab.bos, "BOS id", n);
      const eos = tokenId(vocab.eos, "EOS id", n);
      const unk = tokenId(vocab.unk, "unknown token id", n);
      if (vocab.addBos && bos === null) {
        throw new TypeError("the model adds BOS but has no BOS id");
      }
      if (vocab.addEos && eos === null) {
        throw new TypeError("the model adds EOS but has no EOS id");
      }
      const normalize = vocab.normalize ?? null;
      if (normalize !== null && normalize !== "NFC") {
        throw new TypeError(
          `normalization ${
            JSON.stringify(normalize)
          } is not supported (only NFC)`,
        );
      }
      const types = Int32Array.from(vocab.types);
      const addPrefixSpace = vocab.addPrefixSpace ?? false;
      const bpe = BpeTokenizer.fromVocab(
        pieces,
        types,
        flat,
        pairs,
        vocab.pre,
        vocab.ignoreMerges ?? false,
        addPrefixSpace,
      );
      return new Tokenizer(
        bpeCore(bpe),
        pieces,
        types,
        "gpt2",
        bpe.pre,
        normalize,
        name,
        bos,
        eos,
        unk,
        vocab.addBos,
        vocab.addEos,
        addPrefixSpace,
      );
    } catch (e) {
      throw prefixed(name, e);
    }
  }

  /**
   * The tokenizer of a GGUF file (`tokenizer.ggml.*` metadata). SentencePiece
   * (`llama`) defaults are llama.cpp's: BOS 1, EOS 2, unknown 0, add BOS, add
   * space prefix. Byte-level BPE (`gpt2`) needs `tokenizer.ggml.merges`;
   * `tokenizer.ggml.pre` names the pre-tokenizer (absent: llama.cpp's
   * "default"), and Llama 3's (`llama-bpe`) adds BOS unless
   * `tokenizer.ggml.add_bos_token` says otherwise.
   */
  static fromGguf(gguf: GgufLike): Tokenizer {
    const name = gguf.source?.name ?? "GGUF metadata";
    const md = gguf.metadata;
    if (md.get("tokenizer.ggml.model") === "gpt2") {
      let bpe: BpeVocab;
      try {
        bpe = ggufBpeVocab(md);
      } catch (e) {
        throw prefixed(name, e);
      }
      return Tokenizer.fromBpeVocab(bpe, name);
    }
    let vocab: SpmVocab;
    try {
      const model = md.get("tokenizer.ggml.model");
      if (model === undefined || model === "none" || model === "no_vocab") {
        throw new TypeError(
          "it has no tokenizer (tokenizer.ggml.model is absent or none)",
        );
      }
      if (model !== "llama") {
        throw new TypeError(
          `tokenizer.ggml.model ${
            JSON.stringify(model)
          } is not supported (only "llama", SentencePiece BPE, and "gpt2", byte-level BPE)`,
        );
      }
      const pieces = md.get("tokenizer.ggml.tokens");
      if (pieces === undefined) {
        throw new TypeError("tokenizer.ggml.tokens is absent");
      }
      if (!Array.isArray(pieces) || pieces.some((p) => typeof p !== "string")) {
        throw new TypeError(
          "tokenizer.ggml.tokens must be an array of strings",
        );
      }
      const n = pieces.length;
      const arr = (key: string) => {
        const v = md.get(key);
        if (v === undefined) throw new TypeError(`${key} is absent`);
        if (!isNumericArray(v)) {
          throw new TypeError(`${key} must be an array of numbers`);
        }
        if (v.length !== n) {
          throw new RangeError(
            `${key} has ${v.length} entries but tokenizer.ggml.tokens has ${n}`,
          );
        }
        return v;
      };
      const scores = arr("tokenizer.ggml.scores");
      const types = arr("tokenizer.ggml.token_type");
      const id = (key: string, dflt: number) => {
        const v = md.get(key);
        return v === undefined ? (dflt < n ? dflt : null) : tokenId(v, key, n);
      };
      vocab = {
        pieces: pieces as string[],
        scores,
        types,
        unk: id("tokenizer.ggml.unknown_token_id", 0),
        bos: id("tokenizer.ggml.bos_token_id", 1),
        eos: id("tokenizer.ggml.eos_token_id", 2),
        addBos: bool(
          md.get("tokenizer.ggml.add_bos_token"),
          "tokenizer.ggml.add_bos_token",
          true,
        ),
        addEos: bool(
          md.get("tokenizer.ggml.add_eos_token"),
          "tokenizer.ggml.add_eos_token",
          false,
        ),
        addSpacePrefix: bool(
          md.get("tokenizer.ggml.add_space_prefix"),
          "tokenizer.ggml.add_space_prefix",
          true,
        ),
      };
    } catch (e) {
      throw prefixed(name, e);
    }
    return Tokenizer.fromVocab(vocab, name);
  }

  /**
   * A byte-level BPE tokenizer from a parsed Hugging Face `tokenizer.json`
   * (model BPE; pre-tokenizer ByteLevel, or Split with the Llama 3, Qwen2 or
   * GPT-2 pattern then ByteLevel, or Digits then ByteLevel; decoder
   * ByteLevel; normalizer none or NFC) and `tokenizer_config.json` (BOS/EOS
   * tokens and whether to add them; without them, the post-processor's
   * template decides). Added tokens match literally: their `lstrip`,
   * `rstrip` and `single_word` flags are not applied. `decode` gives the
   * exact text (no `clean_up_tokenization_spaces`).
   */
  static fromTokenizerJson(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown> = {},
    name = "tokenizer.json",
  ): Tokenizer {
    let vocab: BpeVocab;
    try {
      if (!isObject(tokenizerJson)) {
        throw new TypeError("tokenizer.json is not a JSON object");
      }
      if (!isObject(tokenizerConfig)) {
        throw new TypeError("tokenizer_config.json is not a JSON object");
      }
      vocab = bpeVocabFromJson(
        tokenizerJson,
        tokenizerConfig,
        "tokenizer_config.json",
      );
    } catch (e) {
      throw prefixed(name, e);
    }
    return Tokenizer.fromBpeVocab(vocab, name);
  }

  /**
   * The tokenizer of a Hugging Face directory: `tokenizer.model`
   * (SentencePiece BPE) or else `tokenizer.json` (byte-level BPE, see
   * {@linkcode Tokenizer.fromTokenizerJson}), and, when present,
   * `tokenizer_config.json` (`add_bos_token`, `add_eos_token`, `bos_token`,
   * `eos_token`, `unk_token`, `added_tokens_decoder`).
   */
  static async fromHfDir(dir: string): Promise<Tokenizer> {
    const spmPath = join(dir, "tokenizer.model");
    const tjPath = join(dir, "tokenizer.json");
    if (!await exists(spmPath) && await exists(tjPath)) {
      let bpe: BpeVocab;
      try {
        const tj = await readOptionalJson(tjPath) ?? {};
        const cfgPath = join(dir, "tokenizer_config.json");
        const cfg = await readOptionalJson(cfgPath) ?? {};
        try {
          bpe = bpeVocabFromJson(tj, cfg, cfgPath);
        } catch (e) {
          throw located(tjPath, e);
        }
      } catch (e) {
        throw prefixed(dir, e);
      }
      return Tokenizer.fromBpeVocab(bpe, dir);
    }
    let vocab: SpmVocab;
    try {
      if (!await exists(spmPath)) {
        throw new TypeError("it has no tokenizer.model or tokenizer.json");
      }
      let m;
      try {
        m = sentencepieceParse(await Deno.readFile(spmPath));
      } catch (e) {
        throw new TypeError(`${spmPath}: ${(e as Error).message}`);
      }
      if (m.modelType !== 2) {
        throw new TypeError(
          m.modelType === 1
            ? "SentencePiece unigram models are not supported yet (only BPE)"
            : `SentencePiece model type ${m.modelType} is not supported (only BPE)`,
        );
      }
      const pieces: string[] = m.pieces;
      const scores = Array.from(m.scores as Float32Array);
      const types = Array.from(m.types as Int32Array);
      const cfgPath = join(dir, "tokenizer_config.json");
      const cfg = await readOptionalJson(cfgPath) ?? {};
      // Tokens added on top of tokenizer.model (ids past its end).
      const added = cfg.added_tokens_decoder;
      if (added !== undefined) {
        if (typeof added !== "object" || added === null) {
          throw new TypeError(
            `${cfgPath}: added_tokens_decoder is not an object`,
          );
        }
        const entries = Object.entries(added as Record<string, unknown>)
          .map(([k, v]) => [Number(k), v] as const)
          .sort((a, b) => a[0] - b[0]);
        for (const [id, v] of entries) {
          const content = tokenContent(v);
          if (!Number.isInteger(id) || id < 0 || content === null) {
            throw new TypeError(
              `${cfgPath}: added_tokens_decoder has an invalid entry for ${id}`,
            );
          }
          if (id < pieces.length) {
            if (pieces[id] !== content) {
              throw new TypeError(
                `${cfgPath}: added token ${id} is ${
                  JSON.stringify(content)
                } but tokenizer.model has ${JSON.stringify(pieces[id])}`,
              );
            }
            continue;
          }
          if (id !== pieces.length) {
            throw new RangeError(
              `${cfgPath}: added token id ${id} leaves a gap after the ${pieces.length} tokens`,
            );
          }
          const special = (v as { special?: unknown }).special === true;
          pieces.push(content);
          scores.push(0);
          types.push(special ? TokenType.CONTROL : TokenType.USER_DEFINED);
        }
      }
      const n = pieces.length;
      const named = (key: string, fallback: number): number | null => {
        const v = cfg[key];
        if (v === undefined || v === null) {
          return fallback >= 0 && fallback < n ? fallback : null;
        }
        const text = tokenContent(v);
        const id = text === null ? -1 : pieces.indexOf(text);
        if (id < 0) {
          throw new TypeError(
            `${cfgPath}: ${key} ${JSON.stringify(v)} is not in the vocabulary`,
          );
        }
        return id;
      };
      vocab = {
        pieces,
        scores,
        types,
        unk: named("unk_token", m.unkId),
        bos: named("bos_token", m.bosId),
        eos: named("eos_token", m.eosId),
        addBos: bool(cfg.add_bos_token, `${cfgPath}: add_bos_token`, true),
        addEos: bool(cfg.add_eos_token, `${cfgPath}: add_eos_token`, false),
        addSpacePrefix: m.addDummyPrefix,
      };
    } catch (e) {
      throw prefixed(dir, e);
    }
    return Tokenizer.fromVocab(vocab, dir);
  }

  /** The tokenizer of an open model file (GGUF or Hugging Face directory). */
  static async fromModelFile(model: ModelFile): Promise<Tokenizer> {
    if (model.gguf) return Tokenizer.fromGguf(model.gguf);
    if (model.hf) return await Tokenizer.fromHfDir(model.hf.dir);
    throw new TypeError(
      `Cannot load tokenizer of ${model.name}: unknown format`,
    );
  }

  /** Token ids of `text`: BOS/EOS as the model says unless `addSpecial` is false. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const { addSpecial = true, parseSpecial = false } = options;
    if (typeof text !== "string") {
      throw new TypeError(`encode expects a string, got ${typeof text}`);
    }
    const body = this.#core.encode(
      this.#normalize ? text.normalize(this.#normalize) : text,
      parseSpecial,
    );
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
    const d = this.#core.decoder(stripLeadingSpace, lossy);
    let pos = 0;
    return {
      push: (id: number) => d.push(this.#check(id, pos++)),
      flush: () => d.flush(),
    };
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
