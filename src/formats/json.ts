/**
 * Reading the small JSON files of a Hugging Face directory (`config.json`,
 * `tokenizer.json`, `tokenizer_config.json`, ...), shared by the model and
 * tokenizer loaders: files that must be JSON objects, optional files, and
 * short renderings of values for error messages.
 *
 * @module
 */
import { readTextFileOrNull } from "../platform/fs.ts";

/** A parsed JSON object. */
export type Json = Record<string, unknown>;

/** Whether `v` is a JSON object (not null, not an array). */
export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A short JSON rendering of `v` for messages (at most 200 characters and "..."). */
export function brief(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

export { exists } from "../platform/fs.ts";

/** The JSON object in `text`; a TypeError naming `path` if it is not one. */
function parseObject(text: string, path: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(v)) throw new TypeError(`${path} is not a JSON object`);
  return v;
}

/**
 * The JSON object in the file at `path`, or null when there is no such file.
 * A TypeError naming `path` when it is not valid JSON or not an object.
 */
export async function readOptionalJson(path: string): Promise<Json | null> {
  const text = await readTextFileOrNull(path);
  return text === null ? null : parseObject(text, path);
}

/**
 * The JSON object in the file at `path`: a TypeError "PATH is missing" when
 * there is no such file, as {@linkcode readOptionalJson} otherwise.
 */
export async function readJson(path: string): Promise<Json> {
  const v = await readOptionalJson(path);
  if (v === null) throw new TypeError(`${path} is missing`);
  return v;
}
