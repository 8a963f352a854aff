/**
 * Tokenizer sources for tests, built from a `tokenizer.json`: GGUF
 * `tokenizer.ggml.*` metadata as llama.cpp's converter writes it, a whole
 * GGUF file around that metadata (a tiny Llama config, one tensor), and a
 * Hugging Face directory (the Austen weights with other tokenizer files),
 * so that `openModelFile` opens byte-level BPE models too.
 *
 * @module
 */
import type { GgufValue } from "../src/formats/gguf.ts";
import { TokenType } from "../src/tokenizer/vocab.ts";
import { buildGguf, GGML, type GgufKv, GT } from "./_gguf_writer.ts";

type Json = Record<string, unknown>;

/**
 * GGUF `tokenizer.ggml.*` metadata of a tokenizer.json, as llama.cpp's
 * converter writes it, with `bos_token_id` / `eos_token_id` when `ids` gives
 * them.
 */
export function ggufOf(
  tj: Json,
  pre: string | null,
  ids: { bos?: number; eos?: number } = {},
): Map<string, GgufValue> {
  const model = tj.model as {
    vocab: Record<string, number>;
    merges: unknown[];
  };
  const added = tj.added_tokens as {
    id: number;
    content: string;
    special: boolean;
  }[];
  const n = [...Object.values(model.vocab), ...added.map((a) => a.id)]
    .reduce((a, b) => Math.max(a, b), 0) + 1;
  const tokens = new Array<string>(n);
  const types = new Int32Array(n).fill(TokenType.NORMAL);
  for (const [t, id] of Object.entries(model.vocab)) tokens[id] = t;
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
  }
  const merges = model.merges.map((m) =>
    Array.isArray(m) ? m.join(" ") : m as string
  );
  const md = new Map<string, GgufValue>([
    ["tokenizer.ggml.model", "gpt2"],
    ["tokenizer.ggml.tokens", tokens],
    ["tokenizer.ggml.token_type", types],
    ["tokenizer.ggml.merges", merges],
  ]);
  if (pre !== null) md.set("tokenizer.ggml.pre", pre);
  if (ids.bos !== undefined) md.set("tokenizer.ggml.bos_token_id", ids.bos);
  if (ids.eos !== undefined) md.set("tokenizer.ggml.eos_token_id", ids.eos);
  return md;
}

/** One metadata entry as the GGUF writer takes it (the types the tokenizer keys use). */
function kv(key: string, v: GgufValue): GgufKv {
  if (typeof v === "string") return { key, type: GT.STRING, value: v };
  if (typeof v === "boolean") return { key, type: GT.BOOL, value: v };
  if (typeof v === "number") {
    return { key, type: Number.isInteger(v) ? GT.U32 : GT.F32, value: v };
  }
  if (v instanceof Int32Array || v instanceof Float32Array) {
    const elemType = v instanceof Int32Array ? GT.I32 : GT.F32;
    return { key, type: GT.ARRAY, value: { elemType, items: [...v] } };
  }
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) {
    return {
      key,
      type: GT.ARRAY,
      value: { elemType: GT.STRING, items: v as string[] },
    };
  }
  throw new TypeError(`no GGUF type for metadata ${key}`);
}

/**
 * The bytes of a GGUF file: a tiny Llama (dim 8, one layer, one tensor;
 * open it with `skipTensorCheck`) with the tokenizer metadata `tokenizer`.
 */
export function tinyGguf(tokenizer: Map<string, GgufValue>): Uint8Array {
  const md = new Map<string, GgufValue>([
    ["general.architecture", "llama"],
    ["llama.embedding_length", 8],
    ["llama.block_count", 1],
    ["llama.attention.head_count", 2],
    ["llama.feed_forward_length", 16],
    ["llama.context_length", 32],
    ["llama.attention.layer_norm_rms_epsilon", 1e-5],
    ...tokenizer,
  ]);
  return buildGguf({
    kvs: [...md].map(([k, v]) => kv(k, v)),
    tensors: [{ name: "output_norm.weight", ne: [8], typeId: GGML.F32.id }],
  }).bytes;
}

/** What {@linkcode hfDirWith} puts next to the weights. */
export interface HfDirFiles {
  /** Files written as JSON, by name (`tokenizer.json`, `tokenizer_config.json`). */
  json?: Record<string, unknown>;
  /** Files linked, by name, to the path given (`tokenizer.model`). */
  link?: Record<string, string>;
  /** Keys that replace those of the weights' `config.json`. */
  config?: Record<string, unknown>;
}

/**
 * A Hugging Face directory in a new temporary folder (remove it after): the
 * weights of `weightsDir` (linked, not copied), its `config.json` (with
 * `files.config` over it), and the tokenizer files `files` gives.
 */
export async function hfDirWith(
  weightsDir: string,
  files: HfDirFiles,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "alisa-tok-" });
  await Deno.symlink(
    `${weightsDir}/model.safetensors`,
    `${dir}/model.safetensors`,
  );
  const config = JSON.parse(
    await Deno.readTextFile(`${weightsDir}/config.json`),
  );
  await Deno.writeTextFile(
    `${dir}/config.json`,
    JSON.stringify({ ...config, ...files.config }),
  );
  for (const [name, v] of Object.entries(files.json ?? {})) {
    await Deno.writeTextFile(`${dir}/${name}`, JSON.stringify(v));
  }
  for (const [name, target] of Object.entries(files.link ?? {})) {
    await Deno.symlink(target, `${dir}/${name}`);
  }
  return dir;
}
