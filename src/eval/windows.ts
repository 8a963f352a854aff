/**
 * Token windows for perplexity evaluation (ALISA.md section 6).
 *
 * - {@linkcode textWindows}: natural text. The whole text is encoded once
 *   (no BOS), then cut into consecutive windows of `window` tokens, each
 *   starting with BOS (so `window - 1` text tokens per window). A final
 *   window with fewer than `window / 4` tokens (BOS included) is dropped.
 * - {@linkcode docWindows}: `--docs` mode. Documents are separated by blank
 *   lines (one or more lines that are empty or whitespace only); each is
 *   encoded from BOS and cut to `window` tokens. Documents of fewer than
 *   two tokens (nothing to predict) are dropped.
 *
 * Every window has at least two tokens: BOS and one token to predict.
 *
 * @module
 */

/** What the windows need of a tokenizer (`Tokenizer` has it). */
export interface WindowTokenizer {
  encode(text: string, options?: { addSpecial?: boolean }): number[];
  readonly bos: number | null;
}

/** Options of {@linkcode textWindows} and {@linkcode docWindows}. */
export interface WindowOptions {
  /** The model's context (positions): a longer window is a RangeError. */
  contextLength?: number;
  /** Keep at most this many windows (the first ones). */
  maxWindows?: number;
}

function check(
  tok: WindowTokenizer,
  text: string,
  window: number,
  o: WindowOptions,
): number {
  if (!Number.isSafeInteger(window) || window < 2) {
    throw new RangeError(
      `the window must be an integer >= 2 tokens (BOS and one token to predict), got ${window}`,
    );
  }
  if (o.contextLength !== undefined && window > o.contextLength) {
    throw new RangeError(
      `the window (${window} tokens) is longer than the model's context (${o.contextLength} positions)`,
    );
  }
  if (
    o.maxWindows !== undefined &&
    !(Number.isSafeInteger(o.maxWindows) && o.maxWindows >= 1)
  ) {
    throw new RangeError(
      `maxWindows must be an integer >= 1, got ${o.maxWindows}`,
    );
  }
  if (typeof text !== "string" || text.trim() === "") {
    throw new RangeError("the text is empty");
  }
  if (tok.bos === null) {
    throw new TypeError("the tokenizer has no BOS token");
  }
  return tok.bos;
}

/** The smallest final window {@linkcode textWindows} keeps (BOS included). */
export function minFinalWindow(window: number): number {
  return Math.max(2, Math.ceil(window / 4));
}

/**
 * Consecutive windows of `window` tokens over the whole `text`, each
 * `[BOS, window - 1 text tokens]`; the last one is kept if it has at
 * least {@linkcode minFinalWindow} tokens.
 */
export function textWindows(
  tokenizer: WindowTokenizer,
  text: string,
  window: number,
  options: WindowOptions = {},
): number[][] {
  const bos = check(tokenizer, text, window, options);
  const ids = tokenizer.encode(text, { addSpecial: false });
  const per = window - 1;
  const max = options.maxWindows ?? Infinity;
  const out: number[][] = [];
  for (let i = 0; i < ids.length && out.length < max; i += per) {
    const w = [bos, ...ids.slice(i, i + per)];
    if (w.length < window && w.length < minFinalWindow(window)) break;
    out.push(w);
  }
  if (out.length === 0) {
    throw new RangeError(
      `the text has ${ids.length} tokens: too few for one window of ${window} (at least ${
        minFinalWindow(window) - 1
      } needed)`,
    );
  }
  return out;
}

/** The documents of `text`: split at blank lines, trimmed, empty ones dropped. */
export function splitDocuments(text: string): string[] {
  return text.split(/\r?\n(?:[ \t\f\v]*\r?\n)+/)
    .map((d) => d.trim())
    .filter((d) => d !== "");
}

/**
 * One window per document of `text` (see {@linkcode splitDocuments}):
 * `[BOS, ...document tokens]`, cut to `window` tokens.
 */
export function docWindows(
  tokenizer: WindowTokenizer,
  text: string,
  window: number,
  options: WindowOptions = {},
): number[][] {
  const bos = check(tokenizer, text, window, options);
  const max = options.maxWindows ?? Infinity;
  const out: number[][] = [];
  for (const doc of splitDocuments(text)) {
    if (out.length >= max) break;
    const ids = tokenizer.encode(doc, { addSpecial: false });
    if (ids.length === 0) continue;
    out.push([bos, ...ids.slice(0, window - 1)]);
  }
  if (out.length === 0) throw new RangeError("the text has no document");
  return out;
}
