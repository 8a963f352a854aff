/**
 * The {@linkcode Vocabulary} of a Hugging Face directory:
 *
 * - `tokenizer.model` (SentencePiece BPE), with `tokenizer_config.json`'s
 *   `bos_token`, `eos_token`, `unk_token` (else the model's own ids),
 *   `add_bos_token` (default true), `add_eos_token` (default false) and
 *   `added_tokens_decoder` (tokens past the end of the model);
 * - or else `tokenizer.json`: byte-level BPE (model BPE; pre-tokenizer
 *   ByteLevel, or Split with the Llama 3, Qwen2 or GPT-2 pattern then
 *   ByteLevel, or Digits then ByteLevel; decoder ByteLevel; normalizer none
 *   or NFC), or SentencePiece-style BPE with byte fallback (model BPE with
 *   `byte_fallback`; normalizer Replace " " by "▁", after a Prepend "▁" or
 *   not; pre-tokenizer none or Gemma's Split on " "; decoder Replace "▁" by
 *   " ", ByteFallback, Fuse, and Strip one leading space exactly when the
 *   normalizer prepends: Gemma, Llama 2, Phi-3), with `tokenizer_config.json`'s
 *   BOS/EOS tokens and whether to add them (without them, the
 *   post-processor's template decides). Added tokens keep their `lstrip` and
 *   `rstrip`.
 *
 * Anything else in a `tokenizer.json` pipeline (another normalizer,
 * pre-tokenizer, decoder or post-processor, `single_word` added tokens,
 * dropout) is refused with an error naming the key, never tokenized
 * differently.
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

/** The id of `text` in a `model.vocab` object, or undefined. */
function idOfVocab(vocab: Json, text: string): number | undefined {
  return Object.hasOwn(vocab, text) ? vocab[text] as number : undefined;
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
        `pre_tokenizer.pretokenizers[0].pattern: the Split pattern ${
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

const SPACE = "\u2581";

/** Whether `x` is `{ type: "Replace", pattern: { String: from }, content: to }`. */
function isReplace(x: unknown, from: string, to: string): boolean {
  return isObject(x) && x.type === "Replace" && isObject(x.pattern) &&
    x.pattern.String === from && x.content === to &&
    Object.keys(x.pattern).length === 1;
}

/**
 * Whether the SentencePiece-style pipeline (`model.byte_fallback`) prepends
 * "▁": its normalizer, pre-tokenizer and decoder checked to be Gemma's or
 * Llama 2's (see the module doc); a TypeError naming the key otherwise.
 */
function metaspacePipeline(tj: Record<string, unknown>): boolean {
  const norm = tj.normalizer ?? null;
  const replace = (x: unknown) => isReplace(x, " ", SPACE);
  let prepend: boolean;
  if (replace(norm)) prepend = false;
  else if (
    isObject(norm) && norm.type === "Sequence" &&
    Array.isArray(norm.normalizers) && norm.normalizers.length === 2 &&
    isObject(norm.normalizers[0]) && norm.normalizers[0].type === "Prepend" &&
    norm.normalizers[0].prepend === SPACE && replace(norm.normalizers[1])
  ) prepend = true;
  else {
    throw new TypeError(
      `tokenizer.json normalizer ${
        brief(norm)
      } is not supported with byte_fallback (supported: Replace " " by "▁", after Prepend "▁" or not)`,
    );
  }
  const pre = tj.pre_tokenizer ?? null;
  // Gemma's Split on " " finds nothing once the normalizer replaced spaces.
  const gemmaSplit = isObject(pre) && pre.type === "Split" &&
    isObject(pre.pattern) && pre.pattern.String === " " &&
    Object.keys(pre.pattern).length === 1 && pre.invert !== true;
  if (pre !== null && !gemmaSplit) {
    throw new TypeError(
      `tokenizer.json pre_tokenizer ${
        brief(pre)
      } is not supported with byte_fallback (supported: none, or Split on " ")`,
    );
  }
  const dec = tj.decoder;
  const ds = isObject(dec) && dec.type === "Sequence" &&
      Array.isArray(dec.decoders)
    ? dec.decoders as unknown[]
    : [];
  const is = (i: number, type: string) =>
    isObject(ds[i]) && ds[i].type === type;
  const strip = ds.length === 4 && is(3, "Strip") &&
    (ds[3] as Json).content === " " && (ds[3] as Json).start === 1 &&
    (ds[3] as Json).stop === 0;
  if (
    ds.length !== (prepend ? 4 : 3) || !isReplace(ds[0], SPACE, " ") ||
    !is(1, "ByteFallback") || !is(2, "Fuse") || (prepend && !strip)
  ) {
    throw new TypeError(
      `tokenizer.json decoder ${
        brief(dec)
      } is not supported with byte_fallback (supported: Replace "▁" by " ", ByteFallback, Fuse${
        prepend ? ", Strip one leading space" : ""
      })`,
    );
  }
  return prepend;
}

/** A TypeError naming the post-processor unless it is none, ByteLevel, TemplateProcessing of [special] A [special], or a Sequence of those. */
function checkPostProcessor(
  pp: unknown,
  key = "tokenizer.json post_processor",
): void {
  if (pp === null || pp === undefined) return;
  if (isObject(pp) && pp.type === "Sequence" && Array.isArray(pp.processors)) {
    pp.processors.forEach((q, i) =>
      checkPostProcessor(q, `${key}.processors[${i}]`)
    );
    return;
  }
  if (isObject(pp) && pp.type === "ByteLevel") return;
  if (
    isObject(pp) && pp.type === "TemplateProcessing" && Array.isArray(pp.single)
  ) {
    const items = pp.single as unknown[];
    const seq = items.findIndex((x) => isObject(x) && isObject(x.Sequence));
    const special = (x: unknown) => isObject(x) && isObject(x.SpecialToken);
    const ok = seq >= 0 && seq <= 1 && items.length - seq <= 2 &&
      items.every((x, i) => i === seq || special(x));
    if (ok) return;
    throw new TypeError(
      `${key}.single ${
        brief(items)
      } is not supported (supported: [special] A [special])`,
    );
  }
  throw new TypeError(
    `${key} ${
      brief(pp)
    } is not supported (supported: none, ByteLevel, TemplateProcessing)`,
  );
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
  const metaspace = model.byte_fallback === true;
  if (metaspace && model.ignore_merges === true) {
    throw new TypeError(
      "tokenizer.json model.ignore_merges is not supported with byte_fallback",
    );
  }
  if (
    model.dropout !== undefined && model.dropout !== null && model.dropout !== 0
  ) {
    throw new TypeError(
      `tokenizer.json model.dropout ${
        brief(model.dropout)
      } is not supported (BPE dropout is random)`,
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
  const strip = { left: [] as number[], right: [] as number[] };
  const normalizes = (tj.normalizer ?? null) !== null;
  for (const [k, a] of (added as Json[]).entries()) {
    const i = a.id as number, content = a.content as string;
    if (a.single_word === true) {
      throw new TypeError(
        `tokenizer.json added_tokens[${k}].single_word (${
          JSON.stringify(content)
        }) is not supported`,
      );
    }
    if (
      a.normalized === true && normalizes &&
      !(isObject(tj.normalizer) && tj.normalizer.type === "NFC" &&
        content.normalize("NFC") === content)
    ) {
      throw new TypeError(
        `tokenizer.json added_tokens[${k}].normalized (${
          JSON.stringify(content)
        }): matching added tokens after the normalizer is not supported`,
      );
    }
    if (a.lstrip === true) strip.left.push(i);
    if (a.rstrip === true) strip.right.push(i);
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
  let pre: string, addPrefixSpace: boolean;
  let normalize: "NFC" | null = null;
  if (metaspace) {
    pre = "metaspace";
    addPrefixSpace = metaspacePipeline(tj);
    // The byte tokens decode to their bytes.
    for (let b = 0; b < 256; b++) {
      const id = idOfVocab(
        vocab,
        `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
      );
      if (id !== undefined && types[id] === TokenType.NORMAL) {
        types[id] = TokenType.BYTE;
      }
    }
  } else {
    ({ pre, addPrefixSpace } = hfPreTokenizer(tj.pre_tokenizer));
    const dec = tj.decoder;
    if (!isObject(dec) || dec.type !== "ByteLevel") {
      throw new TypeError(
        `tokenizer.json decoder ${
          brief(dec)
        } is not supported (only ByteLevel)`,
      );
    }
    const norm = tj.normalizer ?? null;
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
  }
  checkPostProcessor(tj.post_processor);
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
    ...(strip.left.length + strip.right.length > 0 ? { strip } : {}),
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
  strip: { left: number[]; right: number[] },
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
    if (isObject(v) && v.single_word === true) {
      throw new TypeError(
        `${cfgPath}: added_tokens_decoder[${id}].single_word is not supported`,
      );
    }
    if (isObject(v) && v.lstrip === true) strip.left.push(id);
    if (isObject(v) && v.rstrip === true) strip.right.push(id);
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
  const strip = { left: [] as number[], right: [] as number[] };
  const added = addedTokens(cfg, cfgPath, m.pieces, strip);
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
    ...(strip.left.length + strip.right.length > 0 ? { strip } : {}),
  };
}
