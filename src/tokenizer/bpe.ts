/**
 * Byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM) in the Wasm core
 * (`wasm/src/bpe.rs`): the text is split by the model's pre-tokenizer
 * pattern (`tokenizer.ggml.pre`, see {@linkcode BPE_PRE_TOKENIZERS}), each
 * piece's UTF-8 bytes become GPT-2's byte-level characters, and the merge of
 * lowest rank is applied until none is left. The same core runs Hugging
 * Face's SentencePiece-style BPE with byte fallback (pre-tokenizer
 * `metaspace`: Gemma's, Llama 2's and Phi-3's `tokenizer.json`).
 *
 * @module
 */
import { BpeTokenizer } from "../../wasm/pkg/alisa_wasm.js";
import type { TokenizerCore } from "./core.ts";
import type { BpeVocabulary } from "./vocab.ts";

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

/** llama.cpp's `tokenizer.ggml.pre` names that mean Llama 3's tokenizer (add BOS, ignore merges). */
export const LLAMA3_PRE: ReadonlySet<string> = new Set([
  "llama-bpe",
  "llama3",
  "llama-v3",
]);

/** A TypeError unless the Wasm core knows the pre-tokenizer `pre` (a name or an alias). */
export function checkPre(pre: string): void {
  BpeTokenizer.preSplit(pre, "");
}

/** A byte-level BPE tokenizer and its pre-tokenizer's canonical name. */
export interface BpeCore {
  core: TokenizerCore;
  /** The canonical pre-tokenizer name (`llama3` gives `llama-bpe`). */
  pre: string;
}

/** The byte-level BPE tokenizer of a checked vocabulary. */
export function bpeCore(v: BpeVocabulary): BpeCore {
  const pairs = v.merges.length > 0 && typeof v.merges[0] !== "string";
  // The Wasm side takes "a b" strings, or the pairs flattened.
  const merges = pairs
    ? (v.merges as readonly (readonly [string, string])[]).flat()
    : v.merges as string[];
  const bpe = BpeTokenizer.fromVocab(
    v.pieces,
    Int32Array.from(v.types),
    merges,
    pairs,
    v.pre,
    v.ignoreMerges,
    v.addSpacePrefix,
  );
  return {
    core: {
      encode: (text, parseSpecial) => bpe.encode(text, parseSpecial),
      decode: (ids, strip, lossy) => bpe.decode(ids, strip, lossy),
      decoder: (strip, lossy) => bpe.decoder(strip, lossy),
    },
    pre: bpe.pre,
  };
}
