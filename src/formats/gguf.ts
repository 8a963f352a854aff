/**
 * GGUF files (versions 2 and 3): header, metadata and tensors, read piece by
 * piece from any {@linkcode ByteSource}. Parsing and dequantization run in
 * the Wasm core (`wasm/src/gguf.rs`, `wasm/src/dequant.rs`), which checks
 * every count, length and offset against the file size.
 *
 * @example Read the metadata and one tensor
 * ```ts
 * import { assertEquals, assertInstanceOf } from "@std/assert";
 * import { GgufFile } from "./gguf.ts";
 * const dir = Deno.env.get("ALISA_SHARED") ?? "../shared";
 * const path = `${dir}/models/austen-5m-q8_0.gguf`;
 * try {
 *   await Deno.stat(path);
 * } catch {
 *   console.log(`skipped: ${path} is absent`);
 *   Deno.exit(0);
 * }
 * const gguf = await GgufFile.open(path);
 * assertEquals(gguf.metadata.get("general.architecture"), "llama");
 * const w = await gguf.read("blk.0.attn_q.weight", "f32"); // q8_0, dequantized
 * assertInstanceOf(w, Float32Array);
 * assertEquals(w.length, 256 * 256);
 * gguf.close();
 * ```
 *
 * @module
 */
import { ggufParseHeader } from "../../wasm/pkg/alisa_wasm.js";
import {
  type ByteSource,
  type ByteSourceInput,
  openByteSource,
  readAtMost,
} from "./byte_source.ts";
import { dequantizeChunked } from "./dequantize.ts";
import type { FloatType, TensorData, TensorInfo } from "./tensor.ts";

/** A GGUF metadata value: numbers for 8-32 bit types, `bigint` for 64-bit integers, typed arrays for numeric arrays. */
export type GgufValue =
  | number
  | bigint
  | boolean
  | string
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | GgufValue[];

/** A tensor as the GGUF header describes it. */
export interface GgufTensorInfo extends TensorInfo {
  /** ggml order: `ne[0]` is the contiguous dimension. */
  ne: number[];
  typeId: number;
  /** Offset from the start of the data section. */
  offset: number;
}

interface RawHeader {
  needBytes?: number;
  version: number;
  alignment: number;
  dataOffset: number;
  metadata: Map<string, GgufValue>;
  metadataTypes: Map<string, string>;
  tensors: {
    name: string;
    ne: number[];
    typeId: number;
    typeName: string;
    offset: number;
    nElements: number;
    nBytes: number;
  }[];
}

/** Options for {@linkcode GgufFile.open}. */
export interface GgufOpenOptions {
  /** Refuse headers larger than this (default 256 MiB; real headers are tens of MB at most). */
  maxHeaderBytes?: number;
}

/** Re-throws `e` (a TypeError/RangeError from Wasm) with the file named once. */
export function withContext(name: string, e: unknown): Error {
  if (e instanceof Error && e.message.startsWith("Cannot load model ")) {
    return e;
  }
  if (e instanceof TypeError) {
    return new TypeError(`Cannot load model ${name}: ${e.message}`);
  }
  if (e instanceof RangeError) {
    return new RangeError(`Cannot load model ${name}: ${e.message}`);
  }
  return e instanceof Error ? e : new Error(String(e));
}

/** An open GGUF file. */
export class GgufFile {
  private readonly byName: Map<string, GgufTensorInfo>;

  private constructor(
    /** Where the bytes come from. */
    readonly source: ByteSource,
    /** GGUF version (2 or 3). */
    readonly version: number,
    /** Data section alignment in bytes. */
    readonly alignment: number,
    /** Absolute offset of the data section. */
    readonly dataOffset: number,
    /** Metadata in file order. */
    readonly metadata: Map<string, GgufValue>,
    /** GGUF value type of each key, e.g. `u32`, `array<string>`. */
    readonly metadataTypes: Map<string, string>,
    /** Tensors in file order. */
    readonly tensors: GgufTensorInfo[],
  ) {
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  /** Opens and parses a GGUF file; reads the header only. */
  static async open(
    input: ByteSourceInput,
    options: GgufOpenOptions = {},
  ): Promise<GgufFile> {
    const src = await openByteSource(input);
    try {
      return await GgufFile.fromSource(src, options);
    } catch (e) {
      src.close();
      throw withContext(src.name, e);
    }
  }

  private static async fromSource(
    src: ByteSource,
    { maxHeaderBytes = 256 << 20 }: GgufOpenOptions,
  ): Promise<GgufFile> {
    let want = 1 << 20;
    let size = src.size;
    for (;;) {
      const prefix = await readAtMost(src, 0, want);
      if (size === undefined && prefix.length < want) size = prefix.length;
      const h = ggufParseHeader(prefix, size) as RawHeader;
      if (h.needBytes === undefined) {
        const tensors = h.tensors.map((t): GgufTensorInfo => ({
          name: t.name,
          ne: t.ne,
          shape: [...t.ne].reverse(),
          type: t.typeName,
          typeId: t.typeId,
          offset: t.offset,
          nElements: t.nElements,
          nBytes: t.nBytes,
          fileOffset: h.dataOffset + t.offset,
        }));
        return new GgufFile(
          src,
          h.version,
          h.alignment,
          h.dataOffset,
          h.metadata,
          h.metadataTypes,
          tensors,
        );
      }
      if (h.needBytes > maxHeaderBytes) {
        throw new RangeError(
          `the GGUF header needs more than ${maxHeaderBytes} bytes (at least ${h.needBytes})`,
        );
      }
      want = Math.max(want * 2, h.needBytes);
    }
  }

  /** The tensor called `name`; throws a `TypeError` naming it if absent. */
  tensor(name: string): GgufTensorInfo {
    const t = this.byName.get(name);
    if (!t) {
      throw new TypeError(
        `Cannot load model ${this.source.name}: it has no tensor ${name}`,
      );
    }
    return t;
  }

  /** Whether the file has a tensor called `name`. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Reads `length` bytes of tensor `t` at `offset` within its data. */
  private async readData(
    t: GgufTensorInfo,
    offset: number,
    length: number,
  ): Promise<Uint8Array> {
    try {
      return await this.source.read(t.fileOffset + offset, length);
    } catch (e) {
      if (e instanceof RangeError) {
        throw new RangeError(
          `Cannot load model ${this.source.name}: tensor ${t.name} ends past the file (${e.message})`,
        );
      }
      throw e;
    }
  }

  /** The stored bytes of a tensor (quantized blocks as they are). */
  readRaw(name: string): Promise<Uint8Array> {
    const t = this.tensor(name);
    return this.readData(t, 0, t.nBytes);
  }

  /** A tensor dequantized to f32 values or f16 bits, row-major. */
  async read(name: string, to: FloatType = "f32"): Promise<TensorData> {
    const t = this.tensor(name);
    try {
      return await dequantizeChunked(
        t.type,
        t.nElements,
        to,
        (o, n) => this.readData(t, o, n),
      );
    } catch (e) {
      throw withContext(this.source.name, e);
    }
  }

  /** Closes the underlying source. */
  close() {
    this.source.close();
  }
}
