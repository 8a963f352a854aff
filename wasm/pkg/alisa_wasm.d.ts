/* tslint:disable */
/* eslint-disable */

/**
 * Incremental decoder of a `BpeTokenizer`.
 */
export class BpeDecoder {
    private constructor();
    free(): void;
    [Symbol.dispose](): void;
    flush(): string;
    push(id: number): string;
}

/**
 * A byte-level BPE tokenizer held in Wasm memory.
 */
export class BpeTokenizer {
    private constructor();
    free(): void;
    [Symbol.dispose](): void;
    /**
     * `stripLeadingSpace`: the ids start a text (see `DecodeState`).
     */
    decode(ids: Uint32Array | number[], strip_leading_space: boolean, lossy: boolean): string;
    decoder(strip_leading_space: boolean, lossy: boolean): BpeDecoder;
    /**
     * Ids of `text`, no BOS/EOS.
     */
    encode(text: string, parse_special: boolean): Uint32Array;
    /**
     * From the token texts and types (GGUF `tokenizer.ggml.{tokens,
     * token_type}`) and the merges in rank order: `"a b"` strings, or
     * with `mergePairs` a flat list of left and right sides. `pre`: a
     * pre-tokenizer name (`tokenizer.ggml.pre`).
     */
    static fromVocab(tokens: string[], types: Int32Array | number[], merges: string[], merge_pairs: boolean, pre: string, ignore_merges: boolean, add_prefix_space: boolean): BpeTokenizer;
    /**
     * The pieces a pre-tokenizer splits `text` into (before BPE).
     */
    static preSplit(pre: string, text: string): string[];
    /**
     * The canonical name of the pre-tokenizer.
     */
    readonly pre: string;
    readonly vocabSize: number;
}

/**
 * Buffers for INT8 (or Q8_0) compression of blocks of one shape.
 *
 * `configure` (or `configureQ8_0`) sizes the buffers and is the only
 * method that allocates; after it, re-create every view over
 * `int8Memory().buffer`. Buffers: `input` (`length` f32 or f16 bits),
 * `q` (`length` u8; for Q8_0, `length / 32 * 34` bytes of blocks),
 * `scale` and `zero` (`nGroups` f32), `output` (`length` f32 or f16).
 */
export class Int8Workspace {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Sizes the buffers for Q8_0 quantization of `nElements` f32 (a
     * multiple of 32): `input` f32, `q` the blocks.
     */
    configureQ8_0(n_elements: number): void;
    /**
     * Sizes the buffers for `(tokens, channels)` blocks cut by `shape`
     * (`perChannel`, `perToken` or `contiguous`) with group parameter
     * `param` (groupTokens, headDim or groupSize); `inputType` and
     * `outputType` are `f32` or `f16`.
     */
    configure(shape: string, tokens: number, channels: number, param: number, inputType: string, outputType: string): void;
    /**
     * `q`, `scale`, `zero` to `output`. Allocates nothing.
     */
    dequantize(simd: boolean): void;
    constructor();
    /**
     * `input` (f32) to Q8_0 blocks in `q`. Allocates nothing.
     */
    quantizeQ8_0(simd: boolean): void;
    /**
     * `input` to `q`, `scale`, `zero`. Allocates nothing.
     */
    quantize(simd: boolean): void;
    /**
     * Byte address of `input` in Wasm memory.
     */
    readonly inputPtr: number;
    /**
     * Elements per block (`tokens * channels`).
     */
    readonly length: number;
    /**
     * Scale/zero count.
     */
    readonly nGroups: number;
    readonly outputPtr: number;
    /**
     * Bytes in `q`.
     */
    readonly qLength: number;
    readonly qPtr: number;
    readonly scalePtr: number;
    readonly zeroPtr: number;
}

/**
 * Incremental decoder of an `SpmTokenizer`.
 */
export class SpmDecoder {
    private constructor();
    free(): void;
    [Symbol.dispose](): void;
    flush(): string;
    push(id: number): string;
}

/**
 * A SentencePiece BPE tokenizer held in Wasm memory.
 */
export class SpmTokenizer {
    private constructor();
    free(): void;
    [Symbol.dispose](): void;
    decode(ids: Uint32Array | number[], strip_leading_space: boolean, lossy: boolean): string;
    decoder(strip_leading_space: boolean, lossy: boolean): SpmDecoder;
    /**
     * Ids of `text`, no BOS/EOS.
     */
    encode(text: string, parse_special: boolean): Uint32Array;
    /**
     * From parallel lists of pieces, scores and types (GGUF
     * `tokenizer.ggml.{tokens,scores,token_type}`). `unkId` < 0: none.
     */
    static fromVocab(pieces: string[], scores: Float32Array | number[], types: Int32Array | number[], unk_id: number, add_space_prefix: boolean): SpmTokenizer;
    readonly vocabSize: number;
}

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
 * The module's `WebAssembly.Memory`, for views over workspace buffers.
 */
export function int8Memory(): any;

/**
 * Whether this build has the SIMD kernels.
 */
export function int8SimdAvailable(): boolean;

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
