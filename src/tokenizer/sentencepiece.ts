/**
 * SentencePiece BPE (Llama 1/2, TinyLlama, Mistral) in the Wasm core
 * (`wasm/src/tokenizer.rs`, following llama.cpp's `llm_tokenizer_spm`):
 * spaces become `▁`, a dummy-prefix `▁` starts the text, the
 * highest-scoring adjacent pair is merged until none is a piece, and
 * characters without a piece become `<0xNN>` byte pieces.
 *
 * Also the reader of SentencePiece `tokenizer.model` files.
 *
 * @module
 */
import { sentencepieceParse, SpmTokenizer } from "../../wasm/pkg/alisa_wasm.js";
import type { TokenizerCore } from "./core.ts";
import type { SpmVocabulary } from "./vocab.ts";

/** The SentencePiece tokenizer of a checked vocabulary. */
export function spmCore(v: SpmVocabulary): TokenizerCore {
  return SpmTokenizer.fromVocab(
    v.pieces,
    Float32Array.from(v.scores),
    Int32Array.from(v.types),
    v.unk ?? -1,
    v.addSpacePrefix,
  );
}

/** What a SentencePiece `tokenizer.model` holds that a tokenizer needs. */
export interface SentencePieceModel {
  /** Piece text by id. */
  pieces: string[];
  /** Score by id. */
  scores: Float32Array;
  /** `TokenType` by id. */
  types: Int32Array;
  /** Special ids as the model's trainer spec has them; -1: none. */
  unkId: number;
  bosId: number;
  eosId: number;
  /** The trainer's `add_dummy_prefix`. */
  addDummyPrefix: boolean;
}

/**
 * Parses a SentencePiece `tokenizer.model` (a protobuf `ModelProto`): a
 * TypeError when it is not one, or is not a BPE model.
 */
export function parseSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  const m = sentencepieceParse(bytes);
  if (m.modelType !== 2) {
    throw new TypeError(
      m.modelType === 1
        ? "SentencePiece unigram models are not supported yet (only BPE)"
        : `SentencePiece model type ${m.modelType} is not supported (only BPE)`,
    );
  }
  return {
    pieces: m.pieces,
    scores: m.scores,
    types: m.types,
    unkId: m.unkId,
    bosId: m.bosId,
    eosId: m.eosId,
    addDummyPrefix: m.addDummyPrefix,
  };
}
