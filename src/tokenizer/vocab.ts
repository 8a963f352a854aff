/**
 * The vocabulary every tokenizer source is reduced to: {@linkcode Vocabulary},
 * a SentencePiece BPE or byte-level BPE vocabulary with its special ids and
 * settings. `vocab_gguf.ts` builds one from GGUF metadata, `vocab_hf.ts`
 * from a Hugging Face directory's files; `Tokenizer` is made from one, and
 * `ModelFile.tokenizer` summarizes the same one, so the two cannot disagree.
 *
 * {@linkcode checkVocabulary} checks the structure (types, lengths, id
 * ranges, flags) before any of it is copied, and names the field at fault.
 *
 * @module
 */
import type { TokenizerInfo } from "../formats/config.ts";
import { brief, isObject } from "../formats/json.ts";
import { checkPre } from "./bpe.ts";

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

/** What SentencePiece BPE and byte-level BPE vocabularies have in common. */
export interface VocabularyBase {
  /**
   * Token text by id; the id is the index. SentencePiece: `▁` for spaces,
   * `<0xNN>` for byte pieces. Byte-level BPE: GPT-2's byte-level alphabet
   * (`Ġthe`), added tokens as they are written (`<|endoftext|>`).
   */
  pieces: string[];
  /** {@linkcode TokenType} by id, as many as `pieces`. */
  types: ArrayLike<number>;
  /** Unknown-token id, or null (byte-level BPE has none). */
  unk: number | null;
  /** Beginning-of-sequence id, or null. */
  bos: number | null;
  /** End-of-sequence id, or null. */
  eos: number | null;
  /** Whether `encode` adds BOS by default (then `bos` is not null). */
  addBos: boolean;
  /** Whether `encode` adds EOS by default (then `eos` is not null). */
  addEos: boolean;
  /**
   * Whether a space starts every text: SentencePiece's dummy-prefix `▁`
   * (`add_dummy_prefix`), byte-level BPE's `add_prefix_space` (a space
   * before text that does not start with one).
   */
  addSpacePrefix: boolean;
  /**
   * Added tokens that take the whitespace before them (Hugging Face
   * `lstrip`) and after them (`rstrip`; Phi-3's chat tokens), by id:
   * `encode` drops that whitespace. Absent: none.
   */
  strip?: { left: readonly number[]; right: readonly number[] };
}

/** A SentencePiece BPE vocabulary (Llama 1/2, TinyLlama, Mistral; GGUF `llama`). */
export interface SpmVocabulary extends VocabularyBase {
  /** SentencePiece BPE. */
  kind: "spm";
  /** Merge priority by id (higher merges first), as many as `pieces`. */
  scores: ArrayLike<number>;
}

/** A byte-level BPE vocabulary (GPT-2, Llama 3, Qwen2, SmolLM; GGUF `gpt2`). */
export interface BpeVocabulary extends VocabularyBase {
  /** Byte-level BPE. */
  kind: "bpe";
  /** Merges by rank (first merges first): `"Ġ t"` strings or `["Ġ", "t"]` pairs. */
  merges: readonly string[] | readonly (readonly [string, string])[];
  /**
   * Pre-tokenizer name: a key of `BPE_PRE_TOKENIZERS` or one of llama.cpp's
   * aliases for it (`tokenizer.ggml.pre`); or `metaspace`, which is not
   * byte-level: Hugging Face's SentencePiece-style BPE with byte fallback
   * (Gemma's, Llama 2's and Phi-3's `tokenizer.json`: spaces as `▁`, a
   * character without a token as its `<0xNN>` tokens, merges by rank;
   * `addSpacePrefix`: a `▁` before every fragment, the first space dropped
   * when decoding).
   */
  pre: string;
  /** A piece that is a whole token skips merging (Hugging Face `ignore_merges`; Llama 3). */
  ignoreMerges: boolean;
  /** Unicode normalization applied before encoding (`tokenizer.json` normalizer NFC: Qwen2), or null. */
  normalize: "NFC" | null;
}

/** A tokenizer's vocabulary and settings, whatever file it came from. */
export type Vocabulary = SpmVocabulary | BpeVocabulary;

/** A SentencePiece BPE vocabulary without its `kind` (for `Tokenizer.fromVocab`). */
export type SpmVocab = Omit<SpmVocabulary, "kind">;

/**
 * A byte-level BPE vocabulary without its `kind`, settings optional (for
 * `Tokenizer.fromBpeVocab`): `unk` null, `ignoreMerges` and
 * `addPrefixSpace` false, `normalize` null unless given.
 */
export interface BpeVocab extends
  Omit<
    BpeVocabulary,
    "kind" | "unk" | "ignoreMerges" | "addSpacePrefix" | "normalize"
  > {
  /** Unknown-token id (default null). */
  unk?: number | null;
  /** {@linkcode BpeVocabulary}'s `ignoreMerges` (default false). */
  ignoreMerges?: boolean;
  /** {@linkcode BpeVocabulary}'s `addSpacePrefix` (default false). */
  addPrefixSpace?: boolean;
  /** {@linkcode BpeVocabulary}'s `normalize` (default null). */
  normalize?: "NFC" | null;
}

/** The {@linkcode Vocabulary} of a {@linkcode BpeVocab}. */
export function bpeVocabulary(v: BpeVocab): BpeVocabulary {
  const { addPrefixSpace, ...rest } = v;
  return {
    ...rest,
    kind: "bpe",
    unk: v.unk ?? null,
    ignoreMerges: v.ignoreMerges ?? false,
    addSpacePrefix: addPrefixSpace ?? false,
    normalize: v.normalize ?? null,
  };
}

/** The tokenizer model of each kind, as GGUF `tokenizer.ggml.model` names it. */
export const GGUF_MODEL = { spm: "llama", bpe: "gpt2" } as const;

/**
 * What `ModelFile.tokenizer` says of a vocabulary (`null`: the model has no
 * tokenizer).
 */
export function tokenizerInfo(v: Vocabulary | null): TokenizerInfo {
  if (v === null) {
    return { model: "none", vocabSize: 0, bosId: null, eosId: null };
  }
  return {
    model: GGUF_MODEL[v.kind],
    vocabSize: v.pieces.length,
    bosId: v.bos,
    eosId: v.eos,
  };
}

/** `e` with `prefix: ` before its message, of the same class (TypeError, RangeError). */
export function withPrefix(prefix: string, e: unknown): Error {
  const msg = `${prefix}: ${e instanceof Error ? e.message : String(e)}`;
  if (e instanceof RangeError) return new RangeError(msg);
  if (e instanceof TypeError) return new TypeError(msg);
  return e instanceof Error ? e : new Error(msg);
}

/** `f()`, its TypeError or RangeError prefixed with `prefix: `. */
export function prefixed<T>(prefix: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw withPrefix(prefix, e);
  }
}

/** A token id setting: null when absent or -1; RangeError when not an id of the vocabulary. */
export function tokenId(v: unknown, what: string, n: number): number | null {
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

/** A boolean setting: `dflt` when absent; TypeError when not a boolean. */
export function bool(v: unknown, what: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") {
    throw new TypeError(`${what} must be a boolean, got ${String(v)}`);
  }
  return v;
}

/** Whether `v` is an array or a typed array of numbers, without looking at its entries. */
function isNumericContainer(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) ||
    (ArrayBuffer.isView(v) && !(v instanceof DataView) &&
      !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array));
}

/** The index of the first entry of `v` that is not a number, or -1. */
function firstNonNumber(v: ArrayLike<unknown>): number {
  if (!Array.isArray(v)) return -1;
  return v.findIndex((x) => typeof x !== "number");
}

/** Whether `v` is an array of numbers or a typed array of numbers. */
export function isNumericArray(v: unknown): v is ArrayLike<number> {
  return isNumericContainer(v) && firstNonNumber(v) < 0;
}

/** TypeError/RangeError naming `field` unless `v` holds `n` numbers; looks at no entry. */
function checkPerToken(
  v: unknown,
  field: string,
  what: string,
  n: number,
): asserts v is ArrayLike<unknown> {
  if (!isNumericContainer(v)) {
    throw new TypeError(`${field} must be an array of numbers`);
  }
  if (v.length !== n) {
    throw new RangeError(
      `${field}: the vocabulary has ${n} tokens but ${v.length} ${what}`,
    );
  }
}

/**
 * `v`, checked to be a {@linkcode Vocabulary}; a TypeError or RangeError
 * naming the field otherwise (`types: the vocabulary has 3 tokens but 2
 * token types`, `bos: BOS id 9 is out of range ...`). The checks that look
 * at one value or a length (kind, array lengths, ids, flags, the
 * pre-tokenizer name) come first, then those that look at every entry;
 * nothing is copied.
 */
export function checkVocabulary(v: unknown): Vocabulary {
  if (!isObject(v)) throw new TypeError("the vocabulary must be an object");
  if (v.kind !== "spm" && v.kind !== "bpe") {
    throw new TypeError(`kind must be "spm" or "bpe", got ${brief(v.kind)}`);
  }
  const { pieces } = v;
  if (!Array.isArray(pieces)) {
    throw new TypeError("pieces must be an array of strings");
  }
  const n = pieces.length;
  if (n === 0) throw new TypeError("pieces: the vocabulary has no tokens");
  checkPerToken(v.types, "types", "token types", n);
  if (v.kind === "spm") checkPerToken(v.scores, "scores", "scores", n);
  else {
    if (!Array.isArray(v.merges)) {
      throw new TypeError("merges must be an array");
    }
    if (typeof v.pre !== "string") {
      throw new TypeError("pre must be a string (a pre-tokenizer name)");
    }
    prefixed("pre", () => checkPre(v.pre as string));
    if (typeof v.ignoreMerges !== "boolean") {
      throw new TypeError("ignoreMerges must be a boolean");
    }
    if (v.normalize !== null && v.normalize !== "NFC") {
      throw new TypeError(
        `normalize: normalization ${
          brief(v.normalize)
        } is not supported (only NFC)`,
      );
    }
  }
  const unk = prefixed("unk", () => tokenId(v.unk, "unknown token id", n));
  const bos = prefixed("bos", () => tokenId(v.bos, "BOS id", n));
  const eos = prefixed("eos", () => tokenId(v.eos, "EOS id", n));
  for (const k of ["addBos", "addEos", "addSpacePrefix"]) {
    if (typeof v[k] !== "boolean") {
      throw new TypeError(`${k} must be a boolean`);
    }
  }
  if (v.addBos && bos === null) {
    throw new TypeError("addBos: the model adds BOS but has no BOS id");
  }
  if (v.addEos && eos === null) {
    throw new TypeError("addEos: the model adds EOS but has no EOS id");
  }
  if (v.strip !== undefined) {
    const s = v.strip;
    if (!isObject(s) || !Array.isArray(s.left) || !Array.isArray(s.right)) {
      throw new TypeError("strip must be { left: number[], right: number[] }");
    }
    for (const side of ["left", "right"] as const) {
      (s[side] as unknown[]).forEach((id, i) =>
        prefixed(`strip.${side}[${i}]`, () => {
          if (tokenId(id, "token id", n) === null) {
            throw new RangeError(`token id ${id} is out of range`);
          }
        })
      );
    }
  }
  // Every entry.
  const badPiece = pieces.findIndex((p) => typeof p !== "string");
  if (badPiece >= 0) {
    throw new TypeError(
      `pieces must be an array of strings: pieces[${badPiece}] is ${
        brief(pieces[badPiece])
      }`,
    );
  }
  const perToken = v.kind === "spm" ? ["types", "scores"] : ["types"];
  for (const k of perToken) {
    const i = firstNonNumber(v[k] as ArrayLike<unknown>);
    if (i >= 0) {
      throw new TypeError(
        `${k} must be an array of numbers: ${k}[${i}] is ${
          brief((v[k] as unknown[])[i])
        }`,
      );
    }
  }
  if (v.kind === "bpe") checkMerges(v.merges as unknown[]);
  return { ...v, unk, bos, eos } as Vocabulary;
}

/** TypeError naming the first merge that is not a string (or, when the first is a pair, not a pair of strings). */
function checkMerges(merges: unknown[]): void {
  const pairs = merges.length > 0 && typeof merges[0] !== "string";
  const ok = pairs
    ? (m: unknown) =>
      Array.isArray(m) && m.length === 2 && typeof m[0] === "string" &&
      typeof m[1] === "string"
    : (m: unknown) => typeof m === "string";
  const bad = merges.findIndex((m) => !ok(m));
  if (bad >= 0) {
    throw new TypeError(
      `merges: merge ${bad} (${brief(merges[bad])}) is not ${
        pairs ? "a pair of strings" : "a string"
      }`,
    );
  }
}
