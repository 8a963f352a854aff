/**
 * The {@linkcode Vocabulary} of a Hugging Face directory:
 *
 * - `tokenizer.model` (SentencePiece BPE), with `tokenizer_config.json`'s
 *   `bos_token`, `eos_token`, `unk_token` (else the model's own ids),
 *   `add_bos_token` (default true), `add_eos_token` (default false) and
 *   `added_tokens_decoder` (tokens past the end of the model);
 * - or else `tokenizer.json` (byte-level BPE: model BPE; pre-tokenizer
 *   ByteLevel, or Split with the Llama 3, Qwen2 or GPT-2 pattern then
 *   ByteLevel, or Digits then ByteLevel; decoder ByteLevel; normalizer none
 *   or NFC), with `tokenizer_config.json`'s BOS/EOS tokens and whether to add
 *   them (without them, the post-processor's template decides).
 *
 * `config.json`'s `bos_token_id` / `eos_token_id` are not read: the
 * tokenizer files decide, as they do for Hugging Face `tokenizers`.
 *
 * @module
 */
import { joinPath as join, readFile } from "../platform/fs.ts";
import {
  brief,
  exists,
  isObject,
  type Json,
  readOptionalJson,
} from "../formats/json.ts";
import { BPE_PRE_TOKENIZERS } from "./bpe.ts";
import { parseSentencePieceModel } from "./sentencepiece.ts";
import {
  bool,
  type BpeVocabulary,
  checkVocabulary,
  type SpmVocabulary,
  TokenType,
  type Vocabulary,
  withPrefix,
} from "./vocab.ts";

/** The text of a `tokenizer_config.json` token entry: `"<s>"` or `{ content: "<s>" }`. */
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  return isObject(v) && typeof v.content === "string" ? v.content : null;
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
 * A byte-level BPE vocabulary from a parsed `tokenizer.json` and
 * `tokenizer_config.json` (`{}` when there is none; `cfgName` names it in
 * messages). Added tokens match literally: their `lstrip`, `rstrip` and
 * `single_word` flags are not applied.
 */
export function vocabFromTokenizerJson(
  tj: Record<string, unknown>,
  cfg: Record<string, unknown>,
  cfgName: string,
): BpeVocabulary {
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
    kind: "bpe",
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
    addSpacePrefix: addPrefixSpace,
    normalize,
  };
}

/**
 * The vocabulary of a Hugging Face directory (see the module doc), or null
 * when it has neither `tokenizer.model` nor `tokenizer.json`. A TypeError or
 * RangeError naming the file and the field at fault otherwise.
 */
export async function vocabFromHfDir(dir: string): Promise<Vocabulary | null> {
  const spmPath = join(dir, "tokenizer.model");
  const tjPath = join(dir, "tokenizer.json");
  const cfgPath = join(dir, "tokenizer_config.json");
  if (await exists(spmPath)) {
    const cfg = await readOptionalJson(cfgPath) ?? {};
    return checkVocabulary(
      spmVocabFromModel(await readFile(spmPath), spmPath, cfg, cfgPath),
    );
  }
  if (!await exists(tjPath)) return null;
  const tj = await readOptionalJson(tjPath) ?? {};
  const cfg = await readOptionalJson(cfgPath) ?? {};
  try {
    return checkVocabulary(vocabFromTokenizerJson(tj, cfg, cfgPath));
  } catch (e) {
    throw withPrefix(tjPath, e);
  }
}

/**
 * The tokens `tokenizer_config.json`'s `added_tokens_decoder` adds past the
 * end of `tokenizer.model` (those within it must be its pieces), in id order.
 */
function addedTokens(
  cfg: Json,
  cfgPath: string,
  pieces: readonly string[],
): { content: string; type: number }[] {
  const added = cfg.added_tokens_decoder;
  if (added === undefined) return [];
  if (!isObject(added)) {
    throw new TypeError(`${cfgPath}: added_tokens_decoder is not an object`);
  }
  const entries = Object.entries(added)
    .map(([k, v]) => [Number(k), v] as const)
    .sort((a, b) => a[0] - b[0]);
  const out: { content: string; type: number }[] = [];
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
    const next = pieces.length + out.length;
    if (id !== next) {
      throw new RangeError(
        `${cfgPath}: added token id ${id} leaves a gap after the ${next} tokens`,
      );
    }
    const special = isObject(v) && v.special === true;
    out.push({
      content,
      type: special ? TokenType.CONTROL : TokenType.USER_DEFINED,
    });
  }
  return out;
}

/**
 * A SentencePiece BPE vocabulary from the bytes of `tokenizer.model` (read
 * from `spmPath`) and a parsed `tokenizer_config.json` (from `cfgPath`).
 */
function spmVocabFromModel(
  bytes: Uint8Array,
  spmPath: string,
  cfg: Json,
  cfgPath: string,
): SpmVocabulary {
  let m;
  try {
    m = parseSentencePieceModel(bytes);
  } catch (e) {
    throw withPrefix(spmPath, e);
  }
  const added = addedTokens(cfg, cfgPath, m.pieces);
  const pieces = [...m.pieces, ...added.map((a) => a.content)];
  const scores = new Float32Array(pieces.length);
  scores.set(m.scores);
  const types = new Int32Array(pieces.length);
  types.set(m.types);
  types.set(added.map((a) => a.type), m.types.length);
  const n = pieces.length;
  // tokenizer_config.json names the token; else the model's trainer spec.
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
  return {
    kind: "spm",
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
}
