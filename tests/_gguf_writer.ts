/**
 * A minimal GGUF writer (and header walker) for building test files, written
 * independently of the Rust parser: header, metadata of every value type
 * (nested arrays included), tensor infos, alignment padding and data. Every
 * count, length and type id can be overridden so tests can build hostile
 * files, and {@linkcode buildGguf} reports the offset of every section
 * boundary so truncation tests can cut the file there.
 *
 * @module
 */

/** GGUF metadata value type ids. */
export const GT = {
  U8: 0,
  I8: 1,
  U16: 2,
  I16: 3,
  U32: 4,
  I32: 5,
  F32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  U64: 10,
  I64: 11,
  F64: 12,
} as const;

/** ggml tensor type ids used by the tests, with block size and bytes per block. */
export const GGML: Record<string, { id: number; block: number; size: number }> =
  {
    F32: { id: 0, block: 1, size: 4 },
    F16: { id: 1, block: 1, size: 2 },
    Q4_0: { id: 2, block: 32, size: 18 },
    Q4_1: { id: 3, block: 32, size: 20 },
    Q5_0: { id: 6, block: 32, size: 22 },
    Q5_1: { id: 7, block: 32, size: 24 },
    Q8_0: { id: 8, block: 32, size: 34 },
    Q2_K: { id: 10, block: 256, size: 84 },
    Q3_K: { id: 11, block: 256, size: 110 },
    Q4_K: { id: 12, block: 256, size: 144 },
    Q5_K: { id: 13, block: 256, size: 176 },
    Q6_K: { id: 14, block: 256, size: 210 },
    IQ2_XXS: { id: 16, block: 256, size: 66 },
    BF16: { id: 30, block: 1, size: 2 },
  };

/** A scalar metadata value; strings may be raw bytes (e.g. invalid UTF-8). */
export type GgufScalar = number | bigint | boolean | string | Uint8Array;

/** A metadata array: `elemType` and items (arrays of arrays nest). */
export interface GgufArrayValue {
  elemType: number;
  items: (GgufScalar | GgufArrayValue)[];
  /** Written instead of `items.length` (for hostile counts). */
  count?: bigint;
}

/** Any metadata value. */
export type GgufMetaValue = GgufScalar | GgufArrayValue;

/** One metadata key-value pair. */
export interface GgufKv {
  key: string | Uint8Array;
  type: number;
  value: GgufMetaValue;
  /** Written instead of the key's byte length. */
  keyLength?: bigint;
}

/** One tensor info. */
export interface GgufTensorSpec {
  name: string | Uint8Array;
  /** ggml order: `ne[0]` is the contiguous dimension. */
  ne: (number | bigint)[];
  /** ggml type id (see {@linkcode GGML}). */
  typeId: number;
  /** Data offset relative to the data section; computed (packed, aligned) when omitted. */
  offset?: number | bigint;
  /** Written instead of `ne.length`. */
  nDims?: number;
  /** The tensor's bytes, written at its offset (default: filler bytes). */
  data?: Uint8Array;
}

/** What {@linkcode buildGguf} writes. */
export interface GgufSpec {
  /** Defaults to "GGUF". */
  magic?: Uint8Array;
  /** Defaults to 3. */
  version?: number;
  /** Written instead of the tensor count. */
  tensorCount?: bigint;
  /** Written instead of the metadata count. */
  kvCount?: bigint;
  kvs?: GgufKv[];
  tensors?: GgufTensorSpec[];
  /** Alignment used for padding and computed offsets (default 32; write `general.alignment` yourself). */
  alignment?: number;
  /** Bytes of tensor data written after the padding (default: exactly what the tensors need). */
  dataBytes?: number;
}

/** A section boundary: the file is complete up to `offset` when cut there. */
export interface Mark {
  offset: number;
  what: string;
}

/** A built file and its section boundaries. */
export interface BuiltGguf {
  bytes: Uint8Array;
  marks: Mark[];
  /** Absolute offset of the data section. */
  dataOffset: number;
}

const enc = new TextEncoder();

/** Little-endian byte writer. */
export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private grow(n: number) {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): this {
    this.grow(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
    return this;
  }
  i8(v: number): this {
    this.grow(1);
    this.view.setInt8(this.length, v);
    this.length += 1;
    return this;
  }
  u16(v: number): this {
    this.grow(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
    return this;
  }
  i16(v: number): this {
    this.grow(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
    return this;
  }
  u32(v: number): this {
    this.grow(4);
    this.view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
    return this;
  }
  i32(v: number): this {
    this.grow(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
    return this;
  }
  f32(v: number): this {
    this.grow(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
    return this;
  }
  f64(v: number): this {
    this.grow(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
    return this;
  }
  u64(v: number | bigint): this {
    this.grow(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, BigInt(v)), true);
    this.length += 8;
    return this;
  }
  i64(v: number | bigint): this {
    this.grow(8);
    this.view.setBigInt64(this.length, BigInt.asIntN(64, BigInt(v)), true);
    this.length += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  /** A GGUF string: u64 byte length, then the bytes. */
  str(s: string | Uint8Array, length?: bigint): this {
    const b = typeof s === "string" ? enc.encode(s) : s;
    this.u64(length ?? BigInt(b.length));
    return this.bytes(b);
  }
  /** Zero bytes up to a multiple of `alignment`. */
  pad(alignment: number): this {
    const n = (alignment - this.length % alignment) % alignment;
    this.grow(n);
    this.length += n; // the buffer is zero-filled
    return this;
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Writes one value of GGUF value type `type`. */
export function writeValue(w: ByteWriter, type: number, v: GgufMetaValue) {
  switch (type) {
    case GT.U8:
      w.u8(Number(v));
      break;
    case GT.I8:
      w.i8(Number(v));
      break;
    case GT.U16:
      w.u16(Number(v));
      break;
    case GT.I16:
      w.i16(Number(v));
      break;
    case GT.U32:
      w.u32(Number(v));
      break;
    case GT.I32:
      w.i32(Number(v));
      break;
    case GT.F32:
      w.f32(Number(v));
      break;
    case GT.BOOL:
      // Numbers are written as they are, so tests can write invalid bools.
      w.u8(typeof v === "boolean" ? (v ? 1 : 0) : Number(v));
      break;
    case GT.STRING:
      w.str(v as string | Uint8Array);
      break;
    case GT.ARRAY: {
      const a = v as GgufArrayValue;
      w.u32(a.elemType);
      w.u64(a.count ?? BigInt(a.items.length));
      for (const item of a.items) writeValue(w, a.elemType, item);
      break;
    }
    case GT.U64:
      w.u64(v as number | bigint);
      break;
    case GT.I64:
      w.i64(v as number | bigint);
      break;
    case GT.F64:
      w.f64(Number(v));
      break;
    default:
      // An unknown type: write the value as raw bytes if given any.
      if (v instanceof Uint8Array) w.bytes(v);
  }
}

/** Bytes of a tensor of ggml type id `typeId` with `ne` elements. */
export function tensorBytes(typeId: number, ne: (number | bigint)[]): number {
  const t = Object.values(GGML).find((x) => x.id === typeId);
  if (!t) return 0;
  const n = ne.reduce<number>((a, b) => a * Number(b), 1);
  return n / t.block * t.size;
}

/** Builds a GGUF file from `spec`, noting every section boundary. */
export function buildGguf(spec: GgufSpec = {}): BuiltGguf {
  const kvs = spec.kvs ?? [];
  const tensors = spec.tensors ?? [];
  const alignment = spec.alignment ?? 32;
  const w = new ByteWriter();
  const marks: Mark[] = [{ offset: 0, what: "empty file" }];
  const mark = (what: string) => marks.push({ offset: w.length, what });

  w.bytes(spec.magic ?? enc.encode("GGUF"));
  mark("magic");
  w.u32(spec.version ?? 3);
  mark("version");
  w.u64(spec.tensorCount ?? BigInt(tensors.length));
  mark("tensor count");
  w.u64(spec.kvCount ?? BigInt(kvs.length));
  mark("metadata count");
  kvs.forEach((kv, i) => {
    w.u64(
      kv.keyLength ?? BigInt(
        typeof kv.key === "string" ? enc.encode(kv.key).length : kv.key.length,
      ),
    );
    mark(`key length of metadata ${i}`);
    w.bytes(typeof kv.key === "string" ? enc.encode(kv.key) : kv.key);
    mark(`key of metadata ${i}`);
    w.u32(kv.type);
    mark(`type of metadata ${i}`);
    if (kv.type === GT.STRING || kv.type === GT.ARRAY) {
      // Cut inside the value too: after its length / element type + count.
      const start = w.length;
      writeValue(w, kv.type, kv.value);
      const headLen = kv.type === GT.STRING ? 8 : 12;
      if (w.length - start > headLen) {
        marks.push({
          offset: start + headLen,
          what: `inside value of metadata ${i}`,
        });
      }
    } else {
      writeValue(w, kv.type, kv.value);
    }
    mark(`value of metadata ${i}`);
  });

  let next = 0;
  const offsets: number[] = [];
  tensors.forEach((t, i) => {
    w.str(t.name);
    mark(`name of tensor ${i}`);
    w.u32(t.nDims ?? t.ne.length);
    mark(`n_dims of tensor ${i}`);
    for (const d of t.ne) w.u64(d);
    mark(`dims of tensor ${i}`);
    w.u32(t.typeId);
    mark(`type of tensor ${i}`);
    let off = t.offset;
    if (off === undefined) {
      off = Math.ceil(next / alignment) * alignment;
    }
    next = Number(off) + tensorBytes(t.typeId, t.ne);
    offsets.push(Number(off));
    w.u64(off);
    mark(`offset of tensor ${i}`);
  });
  w.pad(alignment);
  const dataOffset = w.length;
  if (dataOffset !== marks[marks.length - 1].offset) mark("padding");
  const dataBytes = spec.dataBytes ?? next;
  const data = new Uint8Array(dataBytes);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0x7f; // finite f32/f16 values
  tensors.forEach((t, i) => {
    if (t.data) data.set(t.data, offsets[i]);
  });
  w.bytes(data);
  if (dataBytes > 0) {
    marks.push({
      offset: dataOffset + Math.floor(dataBytes / 2),
      what: "middle of the data",
    });
  }
  return { bytes: w.finish(), marks, dataOffset };
}

/** One metadata entry of every value type, nested arrays included. */
export function everyValueType(): GgufKv[] {
  return [
    { key: "test.u8", type: GT.U8, value: 200 },
    { key: "test.i8", type: GT.I8, value: -100 },
    { key: "test.u16", type: GT.U16, value: 60000 },
    { key: "test.i16", type: GT.I16, value: -30000 },
    { key: "test.u32", type: GT.U32, value: 4000000000 },
    { key: "test.i32", type: GT.I32, value: -2000000000 },
    { key: "test.f32", type: GT.F32, value: 1.5 },
    { key: "test.bool", type: GT.BOOL, value: true },
    { key: "test.string", type: GT.STRING, value: "héllo ✓" },
    { key: "test.u64", type: GT.U64, value: 1n << 60n },
    { key: "test.i64", type: GT.I64, value: -(1n << 60n) },
    { key: "test.f64", type: GT.F64, value: -2.25 },
    {
      key: "test.array_u32",
      type: GT.ARRAY,
      value: { elemType: GT.U32, items: [1, 2, 3] },
    },
    {
      key: "test.array_string",
      type: GT.ARRAY,
      value: { elemType: GT.STRING, items: ["a", "", "ü"] },
    },
    {
      key: "test.array_bool",
      type: GT.ARRAY,
      value: { elemType: GT.BOOL, items: [true, false] },
    },
    {
      key: "test.array_array",
      type: GT.ARRAY,
      value: {
        elemType: GT.ARRAY,
        items: [
          { elemType: GT.I16, items: [-1, 2] },
          { elemType: GT.I16, items: [] },
        ],
      },
    },
  ];
}

/** `depth` arrays nested inside each other, the innermost holding one u8. */
export function nestedArray(depth: number): GgufArrayValue {
  let v: GgufArrayValue = { elemType: GT.U8, items: [7] };
  for (let i = 1; i < depth; i++) v = { elemType: GT.ARRAY, items: [v] };
  return v;
}

/**
 * Walks the header of a well-formed GGUF file (independently of the Wasm
 * parser) and returns the boundary after each header section: magic,
 * version, counts, each metadata key/type/value, each tensor info, and the
 * data section start.
 */
export function ggufBoundaries(bytes: Uint8Array): {
  marks: Mark[];
  tensorInfoStart: number;
  headerEnd: number;
  dataOffset: number;
} {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const marks: Mark[] = [];
  const mark = (what: string) => marks.push({ offset: p, what });
  const u32 = () => {
    const x = v.getUint32(p, true);
    p += 4;
    return x;
  };
  const u64 = () => {
    const x = Number(v.getBigUint64(p, true));
    p += 8;
    return x;
  };
  const dec = new TextDecoder();
  const str = () => {
    const n = u64();
    const s = dec.decode(bytes.subarray(p, p + n));
    p += n;
    return s;
  };
  const fixed: Record<number, number> = {
    0: 1,
    1: 1,
    2: 2,
    3: 2,
    4: 4,
    5: 4,
    6: 4,
    7: 1,
    10: 8,
    11: 8,
    12: 8,
  };
  const skipValue = (type: number) => {
    if (type === GT.STRING) str();
    else if (type === GT.ARRAY) {
      const et = u32();
      const n = u64();
      if (fixed[et] !== undefined) p += n * fixed[et];
      else for (let i = 0; i < n; i++) skipValue(et);
    } else p += fixed[type];
  };
  p = 4;
  mark("magic");
  u32();
  mark("version");
  const nTensors = u64();
  mark("tensor count");
  const nKv = u64();
  mark("metadata count");
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const key = str();
    mark(`key of metadata ${key}`);
    const type = u32();
    mark(`type of metadata ${key}`);
    if (key === "general.alignment") alignment = v.getUint32(p, true);
    skipValue(type);
    mark(`value of metadata ${key}`);
  }
  const tensorInfoStart = p;
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    mark(`name of tensor ${name}`);
    const nd = u32();
    p += 8 * nd;
    mark(`dims of tensor ${name}`);
    p += 4 + 8;
    mark(`tensor info ${name}`);
  }
  const headerEnd = p;
  const dataOffset = Math.ceil(p / alignment) * alignment;
  return { marks, tensorInfoStart, headerEnd, dataOffset };
}

const SCALAR_TYPES: Record<string, number> = {
  u8: GT.U8,
  i8: GT.I8,
  u16: GT.U16,
  i16: GT.I16,
  u32: GT.U32,
  i32: GT.I32,
  f32: GT.F32,
  bool: GT.BOOL,
  string: GT.STRING,
  u64: GT.U64,
  i64: GT.I64,
  f64: GT.F64,
};

/**
 * A metadata entry as the GGUF parser gives it (`type`: its
 * `metadataTypes` name, e.g. `u32` or `array<string>`) back as the writer
 * takes it: scalars and flat arrays, for re-writing a parsed file.
 */
export function kvFromParsed(
  key: string,
  type: string,
  v: unknown,
): GgufKv {
  const m = /^array<(\w+)>$/.exec(type);
  if (m && m[1] in SCALAR_TYPES) {
    return {
      key,
      type: GT.ARRAY,
      value: {
        elemType: SCALAR_TYPES[m[1]],
        items: Array.from(v as ArrayLike<GgufScalar>),
      } as GgufMetaValue,
    };
  }
  if (!(type in SCALAR_TYPES)) throw new TypeError(`metadata ${key}: ${type}`);
  return { key, type: SCALAR_TYPES[type], value: v as GgufMetaValue };
}
