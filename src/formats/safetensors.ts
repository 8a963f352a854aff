/**
 * Safetensors files, read piece by piece: the JSON header is parsed and
 * validated in the Wasm core by Hugging Face's `safetensors` crate, tensors
 * are read one at a time.
 *
 * @module
 */
import { safetensorsParseHeader } from "../../wasm/pkg/alisa_wasm.js";
import {
  type ByteSource,
  type ByteSourceInput,
  openByteSource,
  readAtMost,
} from "./byte_source.ts";
import { withContext } from "./gguf.ts";

/** Safetensors dtypes and the ggml type that stores the same bytes. */
const DTYPE_TO_GGML: Record<string, string> = {
  F32: "F32",
  F16: "F16",
  BF16: "BF16",
  F64: "F64",
  I8: "I8",
  I16: "I16",
  I32: "I32",
  I64: "I64",
};

/** A tensor as the safetensors header describes it. */
export interface SafetensorsTensorInfo {
  name: string;
  dtype: string;
  /** ggml type name with the same layout, or the dtype when there is none. */
  type: string;
  shape: number[];
  nElements: number;
  nBytes: number;
  /** Absolute offset of the data in the file. */
  fileOffset: number;
}

/** An open safetensors file. */
export class SafetensorsFile {
  private constructor(
    readonly source: ByteSource,
    readonly dataOffset: number,
    readonly metadata: Map<string, string>,
    readonly tensors: SafetensorsTensorInfo[],
  ) {}

  /** Opens a file and parses its header. */
  static async open(input: ByteSourceInput): Promise<SafetensorsFile> {
    const src = await openByteSource(input);
    try {
      if (src.size === undefined) {
        throw new TypeError("safetensors needs a source of known size");
      }
      let want = 1 << 16;
      for (;;) {
        const prefix = await readAtMost(src, 0, want);
        const h = safetensorsParseHeader(prefix, src.size);
        if (h.needBytes !== undefined) {
          want = Math.max(want * 2, h.needBytes);
          continue;
        }
        const tensors = (h.tensors as {
          name: string;
          dtype: string;
          shape: number[];
          begin: number;
          end: number;
        }[]).map((t): SafetensorsTensorInfo => ({
          name: t.name,
          dtype: t.dtype,
          type: DTYPE_TO_GGML[t.dtype] ?? t.dtype,
          shape: t.shape,
          nElements: t.shape.reduce((a, b) => a * b, 1),
          nBytes: t.end - t.begin,
          fileOffset: h.dataOffset + t.begin,
        }));
        return new SafetensorsFile(src, h.dataOffset, h.metadata, tensors);
      }
    } catch (e) {
      src.close();
      throw withContext(src.name, e);
    }
  }

  /**
   * The stored bytes of tensor `t`, `offset`/`length` within its data
   * (default: from `offset` to its end).
   */
  read(
    t: SafetensorsTensorInfo,
    offset = 0,
    length?: number,
  ): Promise<Uint8Array> {
    return this.source.read(t.fileOffset + offset, length ?? t.nBytes - offset);
  }

  close() {
    this.source.close();
  }
}
