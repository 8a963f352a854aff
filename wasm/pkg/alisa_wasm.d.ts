/* tslint:disable */
/* eslint-disable */

/**
 * Dequantizes whole blocks of ggml type `typeId` to IEEE f16 bits
 * (round to nearest even; F16 input is copied unchanged).
 */
export function dequantizeF16(type_id: number, src: Uint8Array | number[], n_elements: number): Uint16Array;

/**
 * Dequantizes whole blocks of ggml type `typeId` to f32.
 */
export function dequantizeF32(type_id: number, src: Uint8Array | number[], n_elements: number): Float32Array;

/**
 * The ggml type table: `[{ id, name, blockSize, typeSize, dequantizable }]`.
 */
export function ggmlTypes(): Array<any>;

/**
 * Parses a GGUF header from a prefix of the file.
 *
 * Returns `{ needBytes }` when the header continues past `prefix`, or the
 * header: `{ version, alignment, dataOffset, metadata: Map<string, value>,
 * metadataTypes: Map<string, string>, tensors: [{ name, ne, typeId,
 * typeName, offset, nElements, nBytes }] }`. `fileSize` undefined means
 * unknown (a stream); then data bounds are checked while reading.
 */
export function ggufParseHeader(prefix: Uint8Array | number[], file_size?: number | null): any;

/**
 * Parses a safetensors header from a prefix of the file: `{ needBytes }` or
 * `{ dataOffset, metadata: Map<string, string>, tensors: [{ name, dtype,
 * shape, begin, end }] }` (offsets relative to `dataOffset`).
 */
export function safetensorsParseHeader(prefix: Uint8Array | number[], file_size: number): any;

/**
 * Parses a SentencePiece `tokenizer.model`: `{ pieces, scores, types,
 * modelType, byteFallback, unkId, bosId, eosId, padId, addDummyPrefix,
 * removeExtraWhitespaces }`.
 */
export function sentencepieceParse(bytes: Uint8Array | number[]): any;
