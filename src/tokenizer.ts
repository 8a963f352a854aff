/**
 * Text to token ids and back for SentencePiece BPE vocabularies (Llama 1/2,
 * TinyLlama, Mistral: GGUF `tokenizer.ggml.model == "llama"`, or a Hugging
 * Face directory's `tokenizer.model`). Encoding and decoding run in the Wasm
 * core (`wasm/src/tokenizer.rs`) and follow llama.cpp's `llm_tokenizer_spm`:
 * spaces become `▁`, a dummy-prefix `▁` starts the text, the highest-scoring
 * adjacent pair is merged until none is a piece, characters without a piece
 * become `<0xNN>` byte pieces. Control pieces (`<s>`, `</s>`) are never made
 * from text, and decode to nothing.
 *
 * @example Encode and decode
 * ```ts
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
 * const ids = tok.encode("It is a truth"); // [1, 597, 366, 261, 1818]
 * console.log(tok.pieces(ids)); // ["<s>", "▁It", "▁is", "▁a", "▁truth"]
 * console.log(tok.decode(ids)); // "It is a truth"
 * const d = tok.decoder();
 * console.log(ids.map((id) => d.push(id)).join("") + d.flush());
 * ```
 *
 * @module
 */
import {
  sentencepieceParse,
  type SpmDecoder,
  SpmTokenizer,
} from "../wasm/pkg/alisa_wasm.js";
import type { GgufValue } from "./gguf.ts";
import type { ModelFile } from "./model_file.ts";
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

/** A SentencePiece BPE tokenizer. */
export class Tokenizer {
  readonly #spm: SpmTokenizer;
  readonly #pieces: string[];
  readonly #types: Int32Array;

  private constructor(
    spm: SpmTokenizer,
    pieces: string[],
    types: Int32Array,
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
    /** Whether texts get a dummy-prefix `▁`. */
    readonly addSpacePrefix: boolean,
  ) {
    this.#spm = spm;
    this.#pieces = pieces;
    this.#types = types;
  }

  /** The tokenizer model, as GGUF names it. */
  get model(): "llama" {
    return "llama";
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
   * The tokenizer of a GGUF file (`tokenizer.ggml.*` metadata; defaults as
   * llama.cpp's: BOS 1, EOS 2, unknown 0, add BOS, add space prefix).
   */
  static fromGguf(gguf: GgufLike): Tokenizer {
    const name = gguf.source?.name ?? "GGUF metadata";
    const md = gguf.metadata;
    let vocab: SpmVocab;
    try {
      const model = md.get("tokenizer.ggml.model");
      if (model === undefined || model === "none" || model === "no_vocab") {
        throw new TypeError(
          "it has no tokenizer (tokenizer.ggml.model is absent or none)",
        );
      }
      if (model === "gpt2") {
        throw new TypeError(
          'byte-level BPE tokenizers (tokenizer.ggml.model "gpt2") are not supported yet',
        );
      }
      if (model !== "llama") {
        throw new TypeError(
          `tokenizer.ggml.model ${
            JSON.stringify(model)
          } is not supported (only "llama", SentencePiece BPE)`,
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
   * The tokenizer of a Hugging Face directory: `tokenizer.model`
   * (SentencePiece BPE) and, when present, `tokenizer_config.json`
   * (`add_bos_token`, `add_eos_token`, `bos_token`, `eos_token`,
   * `unk_token`, `added_tokens_decoder`).
   */
  static async fromHfDir(dir: string): Promise<Tokenizer> {
    let vocab: SpmVocab;
    try {
      const spmPath = join(dir, "tokenizer.model");
      if (!await exists(spmPath)) {
        if (await exists(join(dir, "tokenizer.json"))) {
          throw new TypeError(
            'it has no tokenizer.model, and tokenizers from tokenizer.json (byte-level BPE, "gpt2") are not supported yet',
          );
        }
        throw new TypeError("it has no tokenizer.model");
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
    const body = this.#spm.encode(text, parseSpecial);
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
    return this.#spm.decode(this.#checkAll(ids), stripLeadingSpace, lossy);
  }

  /**
   * An incremental decoder: the strings `push` returns, then `flush`,
   * concatenate to `decode` of all the ids pushed.
   */
  decoder(options: DecodeOptions = {}): StreamDecoder {
    const { stripLeadingSpace = true, lossy = false } = options;
    const d: SpmDecoder = this.#spm.decoder(stripLeadingSpace, lossy);
    let pos = 0;
    return {
      push: (id: number) => d.push(this.#check(id, pos++)),
      flush: () => d.flush(),
    };
  }

  /** The piece text of each id (`▁It`, `<0x0A>`, `<s>`). */
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
