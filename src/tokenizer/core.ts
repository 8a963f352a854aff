/**
 * What the two Wasm tokenizers (`SpmTokenizer`, `BpeTokenizer`) offer the
 * `Tokenizer` class: encoding without BOS/EOS, decoding, and a streaming
 * decoder. Ids reach them already checked.
 *
 * @module
 */
import type { StreamDecoder } from "./stream.ts";

/** A tokenizer algorithm over a checked vocabulary. */
export interface TokenizerCore {
  /** Ids of `text`, no BOS/EOS; control pieces written in it only with `parseSpecial`. */
  encode(text: string, parseSpecial: boolean): Uint32Array;
  /** The text of `ids` (ids in range). */
  decode(ids: Uint32Array, stripLeadingSpace: boolean, lossy: boolean): string;
  /** An incremental decoder (ids in range). */
  decoder(stripLeadingSpace: boolean, lossy: boolean): StreamDecoder;
}
