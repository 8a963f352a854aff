/**
 * The embedded default model: the CC0 Austen 5.8M q8_0 GGUF shipped in
 * `src/assets/`, so demos and examples run offline.
 *
 * @module
 */

/** Where the embedded default model lives (a `file:` or `https:` URL). */
export const DEFAULT_MODEL_URL: URL = new URL(
  "../assets/austen-5m-q8_0.gguf",
  import.meta.url,
);

/** The default model as something `openModelFile` accepts. */
export function defaultModelPath(): string {
  return DEFAULT_MODEL_URL.protocol === "file:"
    ? decodeURIComponent(DEFAULT_MODEL_URL.pathname)
    : DEFAULT_MODEL_URL.href;
}
