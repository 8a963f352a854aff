/**
 * The {@linkcode Vocabulary} of a GGUF file, from its `tokenizer.ggml.*`
 * metadata, with llama.cpp's defaults:
 *
 * - `llama` (SentencePiece BPE): tokens, scores and token types; BOS 1,
 *   EOS 2, unknown 0 unless the ids are given (and the vocabulary has them);
 *   BOS added, EOS not, dummy-prefix space on, unless
 *   `add_bos_token` / `add_eos_token` / `add_space_prefix` say otherwise;
 *   for Phi-3 (`general.name` containing `phi-3` or `phi3`), every control,
 *   user-defined and unknown token but `<unk>`, `<s>` and `<|endoftext|>`
 *   takes the whitespace after it (rstrip), as llama.cpp sets it and Phi-3's
 *   `tokenizer.json` has it.
 * - `gpt2` (byte-level BPE): tokens, merges, token types (all NORMAL when
 *   absent); `pre` names the pre-tokenizer (absent: llama.cpp's
 *   `default`); Llama 3's (`llama-bpe`) adds BOS and ignores merges for
 *   whole-token pieces; Qwen2's (`qwen2`) normalizes text to NFC first, as
 *   its `tokenizer.json` does (llama.cpp does not); no ids unless given.
 *
 * @module
 */
import type { GgufValue } from "../formats/gguf.ts";
import { checkPre, LLAMA3_PRE } from "./bpe.ts";
import {
  bool,
  checkVocabulary,
  isNumericArray,
  prefixed,
  tokenId,
  TokenType,
  type Vocabulary,
} from "./vocab.ts";

/** GGUF metadata, as `GgufFile.metadata` has it. */
export type GgufMetadata = ReadonlyMap<string, GgufValue>;

/** `tokenizer.ggml.tokens`: a TypeError unless an array of strings. */
function tokens(md: GgufMetadata): string[] {
  const pieces = md.get("tokenizer.ggml.tokens");
  if (pieces === undefined) {
    throw new TypeError("tokenizer.ggml.tokens is absent");
  }
  if (!Array.isArray(pieces) || pieces.some((p) => typeof p !== "string")) {
    throw new TypeError("tokenizer.ggml.tokens must be an array of strings");
  }
  return pieces as string[];
}

/** A per-token array (`scores`, `token_type`): `n` numbers, or undefined when absent. */
function perToken(
  md: GgufMetadata,
  key: string,
  n: number,
): ArrayLike<number> | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  if (!isNumericArray(v)) {
    throw new TypeError(`${key} must be an array of numbers`);
  }
  if (v.length !== n) {
    throw new RangeError(
      `${key} has ${v.length} entries but tokenizer.ggml.tokens has ${n}`,
    );
  }
  return v;
}

/** {@linkcode perToken}, a TypeError when absent. */
function requiredPerToken(
  md: GgufMetadata,
  key: string,
  n: number,
): ArrayLike<number> {
  const v = perToken(md, key, n);
  if (v === undefined) throw new TypeError(`${key} is absent`);
  return v;
}

/** The `tokenizer.ggml.${name}` flag, `dflt` when absent. */
function flag(md: GgufMetadata, name: string, dflt: boolean): boolean {
  const key = `tokenizer.ggml.${name}`;
  return bool(md.get(key), key, dflt);
}

/**
 * The vocabulary in GGUF metadata, or null when the file has no tokenizer
 * (`tokenizer.ggml.model` absent, `none` or `no_vocab`). A TypeError or
 * RangeError naming the metadata key at fault otherwise.
 */
export function vocabFromGguf(md: GgufMetadata): Vocabulary | null {
  const model = md.get("tokenizer.ggml.model");
  if (model === undefined || model === "none" || model === "no_vocab") {
    return null;
  }
  if (model === "gpt2") return checkVocabulary(bpeVocab(md));
  if (model === "llama") return checkVocabulary(spmVocab(md));
  throw new TypeError(
    `tokenizer.ggml.model ${
      JSON.stringify(model)
    } is not supported (only "llama", SentencePiece BPE, and "gpt2", byte-level BPE)`,
  );
}

/** A SentencePiece BPE vocabulary (`tokenizer.ggml.model` `llama`). */
function spmVocab(md: GgufMetadata): Vocabulary {
  const pieces = tokens(md);
  const n = pieces.length;
  const scores = requiredPerToken(md, "tokenizer.ggml.scores", n);
  const types = requiredPerToken(md, "tokenizer.ggml.token_type", n);
  // llama.cpp's defaults, where the vocabulary has those ids.
  const id = (name: string, dflt: number) => {
    const key = `tokenizer.ggml.${name}`;
    const v = md.get(key);
    return v === undefined ? (dflt < n ? dflt : null) : tokenId(v, key, n);
  };
  return {
    kind: "spm",
    pieces,
    scores,
    types,
    ...phi3Strip(md, pieces, types),
    unk: id("unknown_token_id", 0),
    bos: id("bos_token_id", 1),
    eos: id("eos_token_id", 2),
    addBos: flag(md, "add_bos_token", true),
    addEos: flag(md, "add_eos_token", false),
    addSpacePrefix: flag(md, "add_space_prefix", true),
  };
}

/** llama.cpp's `tokenizer.ggml.pre` names of Qwen2's pre-tokenizer (NFC first, as its tokenizer.json). */
const QWEN2_PRE: ReadonlySet<string> = new Set(["qwen2", "deepseek-r1-qwen"]);

/** llama.cpp's token attributes for Phi-3 (`llama-vocab.cpp`): rstrip on its special tokens. */
function phi3Strip(
  md: GgufMetadata,
  pieces: string[],
  types: ArrayLike<number>,
): { strip?: { left: number[]; right: number[] } } {
  const name = md.get("general.name");
  if (typeof name !== "string" || !/phi-?3/.test(name.toLowerCase())) return {};
  const right: number[] = [];
  const keep = new Set(["<unk>", "<s>", "<|endoftext|>"]);
  for (let i = 0; i < pieces.length; i++) {
    const t = types[i];
    const special = t === TokenType.CONTROL || t === TokenType.USER_DEFINED ||
      t === TokenType.UNKNOWN;
    if ((special || pieces[i] === "</s>") && !keep.has(pieces[i])) {
      right.push(i);
    }
  }
  return { strip: { left: [], right } };
}

/** A byte-level BPE vocabulary (`tokenizer.ggml.model` `gpt2`). */
function bpeVocab(md: GgufMetadata): Vocabulary {
  const pieces = tokens(md);
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
  const types = perToken(md, "tokenizer.ggml.token_type", n);
  const pre = md.get("tokenizer.ggml.pre") ?? "default";
  if (typeof pre !== "string") {
    throw new TypeError("tokenizer.ggml.pre must be a string");
  }
  prefixed("tokenizer.ggml.pre", () => {
    // Not one of llama.cpp's: Hugging Face's SentencePiece-style BPE.
    if (pre === "metaspace") {
      throw new TypeError(`unknown pre-tokenizer "metaspace"`);
    }
    checkPre(pre);
  });
  const llama3 = LLAMA3_PRE.has(pre);
  const id = (name: string) => {
    const key = `tokenizer.ggml.${name}`;
    return tokenId(md.get(key), key, n);
  };
  return {
    kind: "bpe",
    pieces,
    merges: merges as string[],
    pre,
    unk: id("unknown_token_id"),
    bos: id("bos_token_id"),
    eos: id("eos_token_id"),
    addBos: flag(md, "add_bos_token", llama3),
    addEos: flag(md, "add_eos_token", false),
    addSpacePrefix: false,
    ignoreMerges: llama3,
    // Qwen2's tokenizer.json normalizes to NFC; llama.cpp does not, and then
    // differs from transformers on text not in NFC. The model's own does.
    normalize: QWEN2_PRE.has(pre) ? "NFC" : null,
    // Allocated last, once everything else is known good.
    types: types ?? new Int32Array(n).fill(TokenType.NORMAL),
  };
}
