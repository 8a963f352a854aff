/**
 * Streaming decoding: text one id at a time, never part of a character.
 * The Wasm tokenizers hold the bytes of an unfinished character between
 * pushes; {@linkcode checkedDecoder} puts the id check (with the position
 * in the stream) in front of them.
 *
 * @module
 */

/** Decodes one id at a time; never returns part of a character. */
export interface StreamDecoder {
  /** The text that `id` completes (possibly ""). */
  push(id: number): string;
  /** The rest: "" unless the ids ended inside a character (then U+FFFD when lossy, else a TypeError). */
  flush(): string;
}

/**
 * `inner`, each pushed id first passed to `check(id, position)` (which
 * throws for an id out of range), positions counted from 0.
 */
export function checkedDecoder(
  inner: StreamDecoder,
  check: (id: number, position: number) => number,
): StreamDecoder {
  let position = 0;
  return {
    push: (id: number) => inner.push(check(id, position++)),
    flush: () => inner.flush(),
  };
}
