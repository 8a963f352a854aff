/**
 * Hostile GGUF input: truncations at every section boundary, bad magic and
 * versions, bad counts, dimensions, types, offsets, strings and values, and a
 * seeded fuzz of the real Austen q8_0 header. Every rejection must be a
 * `TypeError` or `RangeError` whose message names the problem; anything else
 * (a Wasm `RuntimeError` from a Rust panic, a hang, unbounded memory) fails.
 */
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { GgufFile } from "../src/formats/gguf.ts";
import { type ByteSource, StreamSource } from "../src/formats/byte_source.ts";
import {
  expectRejection,
  type LoaderErrorClass,
  readShared,
} from "./_shared.ts";
import {
  buildGguf,
  everyValueType,
  GGML,
  ggufBoundaries,
  type GgufKv,
  type GgufSpec,
  type GgufTensorSpec,
  GT,
  nestedArray,
} from "./_gguf_writer.ts";

// ---------------------------------------------------------------- helpers

const AUSTEN_FILE = "models/austen-5m-q8_0.gguf";
const AUSTEN: Uint8Array | undefined = readShared(AUSTEN_FILE);
const NO_AUSTEN = AUSTEN === undefined;

type ErrorClass = LoaderErrorClass;

/** Opens `input` and requires a rejection of class `cls` whose message matches. */
function rejects(
  input: Uint8Array | ByteSource | ReadableStream<Uint8Array>,
  cls: ErrorClass,
  pattern: string | RegExp,
  label = "",
): Promise<Error> {
  return expectRejection(
    async () => (await GgufFile.open(input)).close(),
    cls,
    pattern,
    label,
  );
}

/** Opens a file that must parse. */
async function parses(input: Uint8Array | ByteSource): Promise<GgufFile> {
  const g = await GgufFile.open(input);
  g.close();
  return g;
}

/** What a file cut short must say (each parse step names its own check). */
const TRUNCATED =
  /ends past the file|the file ends at|remain in the file|cannot fit/;

/** A small valid file: every value type, general.alignment, three tensors. */
function fullSpec(): GgufSpec {
  return {
    kvs: [
      { key: "general.architecture", type: GT.STRING, value: "llama" },
      { key: "general.alignment", type: GT.U32, value: 32 },
      ...everyValueType(),
    ],
    tensors: [
      { name: "a.weight", ne: [64, 2], typeId: GGML.Q8_0.id },
      { name: "b.weight", ne: [3], typeId: GGML.F32.id },
      { name: "c.weight", ne: [4, 2, 1, 1], typeId: GGML.F16.id },
    ],
  };
}

/** One f32 tensor named `name` of `n` elements (helper for small specs). */
function f32(
  name: string,
  n: number,
  offset?: number | bigint,
): GgufTensorSpec {
  return { name, ne: [n], typeId: GGML.F32.id, offset };
}

/** A file with these metadata entries and one small tensor. */
function withKvs(...kvs: GgufKv[]): Uint8Array {
  return buildGguf({ kvs, tensors: [f32("t", 8)] }).bytes;
}

/** A file with these tensors and no metadata. */
function withTensors(
  tensors: GgufTensorSpec[],
  extra: Partial<GgufSpec> = {},
): Uint8Array {
  return buildGguf({ tensors, ...extra }).bytes;
}

/** A source of `size` bytes (or unknown size) whose bytes past `bytes` are zero. */
function paddedSource(
  bytes: Uint8Array,
  size: number | undefined,
  name = "<padded>",
): ByteSource {
  return {
    name,
    size,
    read(offset: number, length: number): Promise<Uint8Array> {
      if (size !== undefined && offset + length > size) {
        return Promise.reject(new RangeError(`${name}: read past the end`));
      }
      const out = new Uint8Array(length);
      if (offset < bytes.length) {
        out.set(
          bytes.subarray(offset, Math.min(bytes.length, offset + length)),
        );
      }
      return Promise.resolve(out);
    },
    close() {},
  };
}

/** A ReadableStream of `bytes` in chunks (size unknown to the reader). */
function streamOf(bytes: Uint8Array, chunk = 64 << 10) {
  let pos = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (pos >= bytes.length) {
        c.close();
        return;
      }
      c.enqueue(bytes.slice(pos, pos + chunk));
      pos += chunk;
    },
  });
}

function header(version: number, tensors: bigint, kvs: bigint): Uint8Array {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  b.set([0x47, 0x47, 0x55, 0x46]);
  v.setUint32(4, version, true);
  v.setBigUint64(8, tensors, true);
  v.setBigUint64(16, kvs, true);
  return b;
}

// ---------------------------------------------------------------- the writer

Deno.test("the test writer's file with every value type parses back", async () => {
  const built = buildGguf(fullSpec());
  const g = await parses(built.bytes);
  assertEquals(g.version, 3);
  assertEquals(g.dataOffset, built.dataOffset);
  assertEquals(g.metadata.get("test.u8"), 200);
  assertEquals(g.metadata.get("test.i8"), -100);
  assertEquals(g.metadata.get("test.u16"), 60000);
  assertEquals(g.metadata.get("test.i16"), -30000);
  assertEquals(g.metadata.get("test.u32"), 4000000000);
  assertEquals(g.metadata.get("test.i32"), -2000000000);
  assertEquals(g.metadata.get("test.f32"), 1.5);
  assertEquals(g.metadata.get("test.bool"), true);
  assertEquals(g.metadata.get("test.string"), "héllo ✓");
  assertEquals(g.metadata.get("test.u64"), 1n << 60n);
  assertEquals(g.metadata.get("test.i64"), -(1n << 60n));
  assertEquals(g.metadata.get("test.f64"), -2.25);
  assertEquals(g.metadata.get("test.array_u32"), new Uint32Array([1, 2, 3]));
  assertEquals(g.metadata.get("test.array_string"), ["a", "", "ü"]);
  assertEquals(g.metadata.get("test.array_bool"), [true, false]);
  assertEquals(g.metadata.get("test.array_array"), [
    new Int16Array([-1, 2]),
    new Int16Array([]),
  ]);
  assertEquals(g.metadataTypes.get("test.array_array"), "array<array<i16>>");
  assertEquals(g.tensors.map((t) => [t.name, t.type, t.nBytes]), [
    ["a.weight", "Q8_0", 136],
    ["b.weight", "F32", 12],
    ["c.weight", "F16", 16],
  ]);
  // Version 2 has the same layout.
  assertEquals(
    (await parses(buildGguf({ ...fullSpec(), version: 2 }).bytes)).version,
    2,
  );
});

// ---------------------------------------------------------------- truncation

Deno.test("a synthetic file cut at every section boundary and every byte is a RangeError", async () => {
  const { bytes, marks } = buildGguf(fullSpec());
  let n = 0;
  for (const m of marks) {
    if (m.offset >= bytes.length) continue;
    await rejects(
      bytes.slice(0, m.offset),
      RangeError,
      TRUNCATED,
      `cut after ${m.what} (${m.offset} of ${bytes.length} bytes)`,
    );
    n++;
  }
  assert(n > 60, `only ${n} boundaries`);
  for (let cut = 0; cut < bytes.length; cut++) {
    await rejects(
      bytes.subarray(0, cut),
      RangeError,
      TRUNCATED,
      `cut at byte ${cut}`,
    );
  }
});

Deno.test({
  name:
    "the Austen GGUF cut at every header boundary and inside the data is a RangeError",
  ignore: NO_AUSTEN,
  async fn() {
    const bytes = AUSTEN!;
    const { marks, dataOffset } = ggufBoundaries(bytes);
    // The walker and the parser agree on the layout.
    const whole = await parses(bytes);
    assertEquals(whole.dataOffset, dataOffset);
    const cuts = [
      { offset: 0, what: "empty" },
      { offset: 2, what: "inside the magic" },
      ...marks,
      { offset: dataOffset - 1, what: "inside the padding" },
      { offset: dataOffset, what: "the data section start" },
      ...whole.tensors.map((t) => ({
        offset: t.fileOffset + Math.floor(t.nBytes / 2),
        what: `the middle of tensor ${t.name}`,
      })),
      { offset: Math.floor((dataOffset + bytes.length) / 2), what: "mid data" },
      { offset: bytes.length - 1, what: "the last byte" },
    ];
    assert(marks.length > 200, `only ${marks.length} boundaries`);
    for (const c of cuts) {
      const e = await rejects(
        bytes.subarray(0, c.offset),
        RangeError,
        TRUNCATED,
        `cut at ${c.what} (byte ${c.offset})`,
      );
      if (c.offset > dataOffset) assertStringIncludes(e.message, "tensor ");
    }
  },
});

// ---------------------------------------------------------------- magic and version

Deno.test("wrong magic is a TypeError naming the bytes", async () => {
  const enc = new TextEncoder();
  for (
    const magic of ["GGUX", "GGML", "FUGG", "gguf", "\0\0\0\0", "PK\x03\x04"]
  ) {
    const bytes = buildGguf({ ...fullSpec(), magic: enc.encode(magic) }).bytes;
    await rejects(bytes, TypeError, "not a GGUF file", `magic ${magic}`);
  }
  // A safetensors file is not a GGUF file either.
  const st = new Uint8Array(64);
  new DataView(st.buffer).setBigUint64(0, 2n, true);
  st.set(enc.encode("{}"), 8);
  await rejects(st, TypeError, "not a GGUF file");
});

Deno.test("unknown, old and big-endian versions are TypeErrors naming the version", async () => {
  for (const version of [0, 4, 5, 0xffff, 0xffffffff]) {
    await rejects(
      buildGguf({ ...fullSpec(), version }).bytes,
      TypeError,
      `unknown GGUF version ${version}`,
    );
  }
  await rejects(
    buildGguf({ ...fullSpec(), version: 1 }).bytes,
    TypeError,
    "GGUF version 1 is not supported",
  );
  // Version 2 and 3 written big-endian: 00 00 00 02 / 00 00 00 03.
  for (const v of [2, 3]) {
    const bytes = buildGguf({ ...fullSpec(), version: v }).bytes;
    new DataView(bytes.buffer).setUint32(4, v, false);
    await rejects(bytes, TypeError, "big-endian");
  }
});

// ---------------------------------------------------------------- tensor placement

Deno.test("tensor data past the end of the file is a RangeError naming the tensor", async () => {
  const spec = fullSpec();
  const built = buildGguf(spec);
  const need = built.bytes.length - built.dataOffset;
  // One byte short.
  await rejects(
    buildGguf({ ...spec, dataBytes: need - 1 }).bytes,
    RangeError,
    "tensor c.weight ends past the file",
  );
  // No data at all.
  await rejects(
    buildGguf({ ...spec, dataBytes: 0 }).bytes,
    RangeError,
    "ends past the file",
  );
  // An offset far past the end.
  await rejects(
    withTensors([f32("far", 8, 1n << 40n)], { dataBytes: 64 }),
    RangeError,
    "tensor far ends past the file",
  );
  // An offset that overflows u64 when the data offset is added.
  await rejects(
    withTensors([f32("wrap", 8, (1n << 64n) - 32n)], { dataBytes: 64 }),
    RangeError,
    /tensor wrap .*overflows|larger than 2\^53/,
  );
});

Deno.test("overlapping tensors are a RangeError; out-of-order ones are fine", async () => {
  await rejects(
    withTensors([f32("a", 64, 0), f32("b", 64, 0)]),
    RangeError,
    "overlap",
  );
  await rejects(
    withTensors([f32("a", 64, 0), f32("b", 8, 224)]),
    RangeError,
    "tensors a and b overlap",
  );
  await rejects(
    withTensors([f32("b", 8, 224), f32("a", 64, 0)], { dataBytes: 256 }),
    RangeError,
    "overlap",
  );
  const g = await parses(
    withTensors([f32("b", 8, 256), f32("a", 64, 0)], { dataBytes: 288 }),
  );
  assertEquals(g.tensors.map((t) => t.offset), [256, 0]);
});

Deno.test("misaligned tensor offsets are a RangeError naming the alignment", async () => {
  for (const offset of [4, 16, 31, 33]) {
    await rejects(
      withTensors([f32("t", 8, offset)], { dataBytes: 128 }),
      RangeError,
      "is not a multiple of the alignment 32",
      `offset ${offset}`,
    );
  }
  const align = (a: number): GgufKv => ({
    key: "general.alignment",
    type: GT.U32,
    value: a,
  });
  await rejects(
    buildGguf({
      kvs: [align(64)],
      tensors: [f32("a", 8), f32("b", 8, 32)],
      alignment: 64,
      dataBytes: 128,
    }).bytes,
    RangeError,
    "is not a multiple of the alignment 64",
  );
  // Alignment 8 is honoured: offsets and the data section use it.
  const built = buildGguf({
    kvs: [align(8)],
    tensors: [f32("a", 2), f32("b", 2)],
    alignment: 8,
  });
  const g = await parses(built.bytes);
  assertEquals([g.alignment, g.dataOffset], [8, built.dataOffset]);
  assertEquals(g.tensors.map((t) => t.offset), [0, 8]);
});

Deno.test("duplicate tensor names and metadata keys are TypeErrors", async () => {
  await rejects(
    withTensors([f32("same", 8), f32("other", 8), f32("same", 8)]),
    TypeError,
    "tensor name same appears twice",
  );
  await rejects(
    withKvs(
      { key: "k", type: GT.U32, value: 1 },
      { key: "j", type: GT.U32, value: 1 },
      { key: "k", type: GT.STRING, value: "x" },
    ),
    TypeError,
    'metadata key "k" appears twice',
  );
  await rejects(
    withKvs(
      { key: "general.alignment", type: GT.U32, value: 32 },
      { key: "general.alignment", type: GT.U32, value: 32 },
    ),
    TypeError,
    "appears twice",
  );
});

Deno.test("general.alignment of the wrong type, 0 or not a power of two is a TypeError", async () => {
  const bad: GgufKv[] = [
    { key: "general.alignment", type: GT.U64, value: 32n },
    { key: "general.alignment", type: GT.I32, value: 32 },
    { key: "general.alignment", type: GT.U16, value: 32 },
    { key: "general.alignment", type: GT.STRING, value: "32" },
    { key: "general.alignment", type: GT.F32, value: 32 },
    {
      key: "general.alignment",
      type: GT.ARRAY,
      value: { elemType: GT.U32, items: [32] },
    },
    { key: "general.alignment", type: GT.U32, value: 0 },
    { key: "general.alignment", type: GT.U32, value: 3 },
    { key: "general.alignment", type: GT.U32, value: 48 },
    { key: "general.alignment", type: GT.U32, value: 0xffffffff },
  ];
  for (const kv of bad) {
    await rejects(
      withKvs(kv),
      TypeError,
      "general.alignment must be a u32 power of two",
      `${kv.type}: ${String(kv.value)}`,
    );
  }
});

// ---------------------------------------------------------------- absurd counts

Deno.test("absurd tensor, metadata and array counts are RangeErrors that allocate nothing", async () => {
  for (const count of [1n << 63n, (1n << 64n) - 1n, 1n << 32n, 1000n]) {
    await rejects(header(3, count, 0n), RangeError, "the tensor count claims");
    await rejects(
      header(3, 0n, count),
      RangeError,
      "the metadata count claims",
    );
    await rejects(header(3, count, count), RangeError, "cannot fit");
  }
  const arrays: [number, bigint][] = [
    [GT.U64, 1n << 62n],
    [GT.U64, 1n << 61n], // 2^64 bytes: the product overflows
    [GT.U8, (1n << 64n) - 1n],
    [GT.U32, 1n << 40n],
    [GT.STRING, 1n << 60n],
    [GT.BOOL, 1n << 33n],
    [GT.ARRAY, 1n << 60n],
    [GT.F64, 100n],
  ];
  for (const [elemType, count] of arrays) {
    await rejects(
      withKvs({
        key: "big",
        type: GT.ARRAY,
        value: { elemType, items: [], count },
      }),
      RangeError,
      "cannot fit",
      `array of ${count} of type ${elemType}`,
    );
  }
});

Deno.test("absurd counts from sources of unknown or huge size are RangeErrors, not Wasm traps", async () => {
  // A stream of unknown size (the size check cannot help) and a file that
  // claims 1 TB: counts that fit "in the file" must not be preallocated.
  const sources = (bytes: Uint8Array) => [
    paddedSource(bytes, undefined, "<endless>"),
    paddedSource(bytes, 2 ** 40, "<1 TB>"),
  ];
  const files: [string, Uint8Array][] = [
    ["2^28 metadata entries", header(3, 0n, 1n << 28n)],
    ["2^28 tensors", header(3, 1n << 28n, 0n)],
    ["2^40 + 1 metadata entries", header(3, 0n, (1n << 40n) + 1n)],
    ["2^32 + 1 tensors", header(3, (1n << 32n) + 1n, 0n)],
  ];
  for (
    const [elemType, count] of [
      [GT.STRING, 1n << 28n],
      [GT.ARRAY, 1n << 27n],
      [GT.BOOL, 1n << 31n],
      [GT.U32, (1n << 32n) + 1n],
      [GT.U8, (1n << 32n) + 3n],
    ] as const
  ) {
    files.push([
      `an array of ${count} of type ${elemType}`,
      withKvs({
        key: "big",
        type: GT.ARRAY,
        value: { elemType, items: [], count },
      }),
    ]);
  }
  for (const [what, bytes] of files) {
    for (const src of sources(bytes)) {
      await rejects(
        src,
        RangeError,
        /needs more than|cannot fit|larger than 2\^53|ends past the file/,
        `${what} from ${src.name}`,
      );
    }
  }
  // Through the public stream path too.
  const stream = new Uint8Array(2 << 20);
  stream.set(header(3, 0n, 1n << 28n));
  await rejects(
    new StreamSource(streamOf(stream)),
    RangeError,
    "the GGUF header needs more than",
  );
});

Deno.test("dimensions: overflowing products, bad n_dims, partial blocks are rejected", async () => {
  const t = (ne: (number | bigint)[], typeId = GGML.F32.id, nDims?: number) =>
    withTensors([{ name: "t", ne, typeId, offset: 0, nDims }], {
      dataBytes: 64,
    });
  const big = 1n << 32n;
  await rejects(t([big, big, big]), RangeError, "product overflows");
  await rejects(t([big, big]), RangeError, "product overflows");
  // The element count fits in u64, its byte size does not.
  await rejects(t([1n << 62n]), RangeError, "overflow");
  await rejects(t([1n << 31n, 1n << 31n], GGML.F32.id), RangeError, "overflow");
  await rejects(t([1n << 63n]), RangeError, /absurd dimension|overflow/);
  await rejects(t([(1n << 64n) - 1n, 0n]), RangeError, /absurd dimension/);
  // Elements fit, bytes fit, but not in the file.
  await rejects(t([1n << 40n]), RangeError, "ends past the file");
  for (const nDims of [0, 5, 0xffffffff]) {
    await rejects(
      t([32], GGML.F32.id, nDims),
      RangeError,
      `has ${nDims} dimensions (1 to 4 allowed)`,
    );
  }
  await rejects(
    t([33], GGML.Q8_0.id),
    TypeError,
    "not a multiple of the Q8_0 block size 32",
  );
  await rejects(t([16, 2], GGML.Q8_0.id), TypeError, "block size");
  await rejects(t([128], GGML.Q4_K.id), TypeError, "block size 256");
  for (const typeId of [4, 5, 31, 40, 1000, 0xffffffff]) {
    await rejects(
      t([32], typeId),
      TypeError,
      `unknown ggml type id ${typeId}`,
    );
  }
  // Zero elements is a valid (empty) tensor.
  const g = await parses(t([0, 4]));
  assertEquals(g.tensors[0].nBytes, 0);
});

Deno.test("unknown value types and arrays nested too deep are rejected", async () => {
  for (const type of [13, 100, 0xffffffff]) {
    await rejects(
      withKvs({ key: "k", type, value: new Uint8Array(8) }),
      TypeError,
      `has unknown value type ${type}`,
    );
    await rejects(
      withKvs({
        key: "k",
        type: GT.ARRAY,
        value: { elemType: type, items: [], count: 1n },
      }),
      TypeError,
      "unknown element type",
    );
  }
  // Eight levels parse, nine do not, nor does a thousand.
  const g = await parses(withKvs({
    key: "deep",
    type: GT.ARRAY,
    value: nestedArray(8),
  }));
  let v = g.metadata.get("deep");
  for (let i = 1; i < 8; i++) v = (v as unknown[])[0] as typeof v;
  assertEquals(v, new Uint8Array([7]));
  for (const depth of [9, 10, 1000]) {
    await rejects(
      withKvs({ key: "deep", type: GT.ARRAY, value: nestedArray(depth) }),
      RangeError,
      "nests arrays deeper than 8",
      `depth ${depth}`,
    );
  }
});

// ---------------------------------------------------------------- strings and values

Deno.test("strings longer than the file are RangeErrors", async () => {
  const long = (n: bigint) => ({
    key: "k",
    keyLength: n,
    type: GT.U8,
    value: 0,
  });
  for (const n of [1000n, 1n << 40n, (1n << 64n) - 1n]) {
    await rejects(
      withKvs(long(n)),
      RangeError,
      "remain in the file",
      `key length ${n}`,
    );
  }
  // A string value whose length runs past the end.
  const bytes = withKvs({ key: "s", type: GT.STRING, value: "abcdef" });
  const at = bytes.indexOf(0x61) - 8; // the u64 length before "abcdef"
  new DataView(bytes.buffer).setBigUint64(at, BigInt(bytes.length), true);
  await rejects(bytes, RangeError, 'metadata value "s"');
  // A string inside an array.
  const arr = withKvs({
    key: "toks",
    type: GT.ARRAY,
    value: { elemType: GT.STRING, items: ["ok", "zzzz"] },
  });
  const at2 = arr.indexOf(0x7a) - 8;
  new DataView(arr.buffer).setBigUint64(at2, 1n << 50n, true);
  await rejects(arr, RangeError, "string 1 of");
  // A tensor name.
  const tn = withTensors([f32("tensorname", 8)]);
  const at3 = tn.indexOf(0x74) - 8;
  new DataView(tn.buffer).setBigUint64(at3, 5000n, true);
  await rejects(tn, RangeError, "the name of tensor 0");
});

Deno.test("invalid UTF-8 in keys, values and tensor names is a TypeError", async () => {
  const bad = [
    [0xff],
    [0x6b, 0xc0, 0x80], // overlong NUL
    [0xed, 0xa0, 0x80], // a UTF-16 surrogate
    [0x6b, 0xe2, 0x82], // cut multibyte sequence
    [0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
  ].map((b) => new Uint8Array(b));
  for (const key of bad) {
    await rejects(
      withKvs({ key, type: GT.U8, value: 1 }),
      TypeError,
      "is not valid UTF-8",
      `key ${key}`,
    );
    await rejects(
      withKvs({ key: "k", type: GT.STRING, value: key }),
      TypeError,
      "UTF-8",
    );
    await rejects(
      withKvs({
        key: "k",
        type: GT.ARRAY,
        value: { elemType: GT.STRING, items: ["fine", key] },
      }),
      TypeError,
      "UTF-8",
    );
    await rejects(
      withTensors([{ name: key, ne: [8], typeId: GGML.F32.id }]),
      TypeError,
      "UTF-8",
    );
  }
});

Deno.test("a bool other than 0 or 1 is a TypeError", async () => {
  for (const b of [2, 0x80, 0xff]) {
    await rejects(
      withKvs({ key: "flag", type: GT.BOOL, value: b }),
      TypeError,
      `is a bool stored as ${b}`,
    );
    await rejects(
      withKvs({
        key: "flags",
        type: GT.ARRAY,
        value: { elemType: GT.BOOL, items: [true, false, b] },
      }),
      TypeError,
      `element 2 of metadata value "flags" is a bool stored as ${b}`,
    );
  }
});

Deno.test("a header larger than the first read parses from bytes and from a stream, and is refused cut", async () => {
  // 120,000 tokens: a 1.5 MB string array, past the first 1 MiB read.
  const items = Array.from({ length: 120_000 }, (_, i) => `tok${i}`);
  const built = buildGguf({
    kvs: [
      {
        key: "tokenizer.ggml.tokens",
        type: GT.ARRAY,
        value: { elemType: GT.STRING, items },
      },
      {
        key: "tokenizer.ggml.scores",
        type: GT.ARRAY,
        value: { elemType: GT.F32, items: items.map((_, i) => i) },
      },
    ],
    tensors: [f32("t", 64)],
  });
  assert(built.dataOffset > 1.5 * 2 ** 20);
  for (
    const input of [
      built.bytes,
      new StreamSource(streamOf(built.bytes, 50_000)),
    ]
  ) {
    const g = await GgufFile.open(input);
    assertEquals(g.dataOffset, built.dataOffset);
    assertEquals(
      (g.metadata.get("tokenizer.ggml.tokens") as string[])[119_999],
      "tok119999",
    );
    assertEquals((await g.read("t")).length, 64);
    g.close();
  }
  for (
    const cut of [1.2 * 2 ** 20, built.dataOffset - 100, built.dataOffset + 10]
  ) {
    await rejects(
      built.bytes.subarray(0, cut),
      RangeError,
      TRUNCATED,
      `cut at ${cut}`,
    );
    await rejects(
      new StreamSource(streamOf(built.bytes.subarray(0, cut))),
      RangeError,
      TRUNCATED,
      `stream cut at ${cut}`,
    );
  }
});

Deno.test("many metadata keys and tensors parse in linear-ish time", async () => {
  const n = 60_000;
  const kvs: GgufKv[] = [];
  const tensors: GgufTensorSpec[] = [];
  for (let i = 0; i < n; i++) {
    kvs.push({ key: `k.${i}`, type: GT.U8, value: i & 0xff });
    tensors.push({ name: `t.${i}`, ne: [0], typeId: GGML.F32.id, offset: 0 });
  }
  const bytes = buildGguf({ kvs, tensors }).bytes;
  const t0 = performance.now();
  const g = await parses(bytes);
  const ms = performance.now() - t0;
  assertEquals([g.metadata.size, g.tensors.length], [n, n]);
  // Checking names for duplicates pairwise took 16 s here; a set takes ~1 s.
  assert(ms < 6000, `${n} keys and tensors took ${ms.toFixed(0)} ms`);
  // The same with one duplicate at the very end is still found.
  kvs.push({ key: "k.0", type: GT.U8, value: 0 });
  await rejects(buildGguf({ kvs }).bytes, TypeError, '"k.0" appears twice');
});

// ---------------------------------------------------------------- reading cut data

Deno.test("read() of tensor data cut short in a stream of unknown size is a RangeError naming the tensor", async () => {
  // Over 1 MiB of header + data, so the first header read does not reach the
  // end of the stream and the file size stays unknown.
  const built = buildGguf({
    kvs: [{ key: "general.architecture", type: GT.STRING, value: "test" }],
    tensors: [f32("small", 64), f32("big", 1 << 19), f32("after", 64)],
  });
  const cut = built.dataOffset + 256 + (1 << 20) * 1.5;
  const bytes = built.bytes.slice(0, cut);
  const g = await GgufFile.open(new StreamSource(streamOf(bytes)));
  assertEquals(g.source.size, undefined);
  try {
    assertEquals((await g.read("small")).length, 64);
    await assertRejects(
      () => g.read("big"),
      RangeError,
      "tensor big ends past the file",
    );
  } finally {
    g.close();
  }
  // readRaw says the same.
  const g2 = await GgufFile.open(new StreamSource(streamOf(bytes)));
  await assertRejects(() => g2.readRaw("big"), RangeError, "tensor big");
  g2.close();
  // Known size: the same file is refused at open, naming the tensor.
  await rejects(bytes, RangeError, "tensor big ends past the file");
});

Deno.test({
  name:
    "read() of the Austen GGUF from a cut stream fails at the tensor the cut falls in",
  ignore: NO_AUSTEN,
  async fn() {
    const whole = await parses(AUSTEN!);
    const cut = 3_000_001;
    const victim = whole.tensors.find((t) =>
      t.fileOffset < cut && t.fileOffset + t.nBytes > cut
    )!;
    const g = await GgufFile.open(
      new StreamSource(streamOf(AUSTEN!.subarray(0, cut), 100_000)),
    );
    try {
      // Read in file order (a stream reads forward only).
      const order = [...g.tensors].sort((a, b) => a.fileOffset - b.fileOffset);
      for (const t of order) {
        if (t.fileOffset + t.nBytes <= cut) {
          await g.read(t.name);
          continue;
        }
        assertEquals(t.name, victim.name);
        await assertRejects(
          () => g.read(t.name),
          RangeError,
          `tensor ${victim.name} ends past the file`,
        );
        break;
      }
    } finally {
      g.close();
    }
  },
});

// ---------------------------------------------------------------- fuzz

/** mulberry32: a small seeded PRNG. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    u64: () =>
      (BigInt(Math.floor(next() * 2 ** 32)) << 32n) |
      BigInt(Math.floor(next() * 2 ** 32)),
  };
}

const INTERESTING_U64 = [
  0n,
  1n,
  2n,
  3n,
  4n,
  5n,
  7n,
  8n,
  9n,
  12n,
  13n,
  31n,
  32n,
  33n,
  0x7fn,
  0x80n,
  0xffn,
  0x100n,
  0x7fffn,
  0xffffn,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  1n << 32n,
  (1n << 32n) + 1n,
  1n << 40n,
  1n << 53n,
  (1n << 53n) + 1n,
  1n << 62n,
  (1n << 63n) - 1n,
  1n << 63n,
  (1n << 64n) - 1n,
  (1n << 64n) - 32n,
];

/**
 * Stacks 1-3 random mutations on a copy of `src`: bit flips, byte writes,
 * u32/u64 writes (interesting or random values), truncations, insertions and
 * deletions, at offsets drawn by `offsetIn`. Returns the bytes and a log.
 */
function mutator(
  rng: ReturnType<typeof prng>,
  offsetIn: (len: number) => number,
): (src: Uint8Array) => [Uint8Array, string[]] {
  return (src: Uint8Array): [Uint8Array, string[]] => {
    let b = src;
    const log: string[] = [];
    const n = 1 + rng.int(3);
    for (let k = 0; k < n; k++) {
      const kind = rng.int(7);
      const at = offsetIn(b.length);
      if (b.length === 0) break;
      if (kind === 0) {
        const bit = rng.int(8);
        b = b === src ? b.slice() : b;
        b[at] ^= 1 << bit;
        log.push(`flip bit ${bit} at ${at}`);
      } else if (kind === 1) {
        const v = rng.int(256);
        b = b === src ? b.slice() : b;
        b[at] = v;
        log.push(`byte ${v} at ${at}`);
      } else if (kind === 2 || kind === 3) {
        const v = kind === 2
          ? INTERESTING_U64[rng.int(INTERESTING_U64.length)]
          : rng.u64();
        const size = rng.next() < 0.3 ? 4 : 8;
        const pos = Math.min(at, b.length - size);
        if (pos < 0) continue;
        b = b === src ? b.slice() : b;
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        if (size === 8) dv.setBigUint64(pos, v, true);
        else dv.setUint32(pos, Number(v & 0xffffffffn), true);
        log.push(`u${size * 8} ${v} at ${pos}`);
      } else if (kind === 4) {
        b = b.slice(0, at);
        log.push(`truncate at ${at}`);
      } else if (kind === 5) {
        const ins = new Uint8Array(1 + rng.int(16));
        for (let i = 0; i < ins.length; i++) ins[i] = rng.int(256);
        const next = new Uint8Array(b.length + ins.length);
        next.set(b.subarray(0, at));
        next.set(ins, at);
        next.set(b.subarray(at), at + ins.length);
        b = next;
        log.push(`insert ${ins.length} bytes at ${at}`);
      } else {
        const del = 1 + rng.int(16);
        const end = Math.min(b.length, at + del);
        const next = new Uint8Array(b.length - (end - at));
        next.set(b.subarray(0, at));
        next.set(b.subarray(end), at);
        b = next;
        log.push(`delete ${del} bytes at ${at}`);
      }
    }
    return [b, log];
  };
}

/**
 * Fuzzes the real Austen header: its first 120 KB (header + a little data)
 * with 1-3 stacked mutations, opened both as the bytes themselves and as the
 * start of a file of the real size (so mutations that keep the header valid
 * parse, and the checks after the metadata get exercised too).
 */
Deno.test({
  name:
    "fuzz: 10,000 mutations of the Austen header each parse or throw a TypeError/RangeError",
  ignore: NO_AUSTEN,
  async fn() {
    const seed = Number(Deno.env.get("ALISA_FUZZ_SEED") ?? 0x0a115a);
    const count = Number(Deno.env.get("ALISA_FUZZ_N") ?? 10_000);
    const base = AUSTEN!.slice(0, 120_000);
    const { tensorInfoStart, dataOffset } = ggufBoundaries(AUSTEN!);
    const rng = prng(seed);
    const offsetIn = (len: number) => {
      if (len <= 1) return 0;
      const r = rng.next();
      // Bias toward the small scalar entries and the tensor infos, where a
      // mutation changes what is parsed; token strings are 90% of the header.
      if (r < 0.35) return rng.int(Math.min(len, 1100));
      if (r < 0.7) {
        return Math.min(
          len - 1,
          tensorInfoStart + rng.int(dataOffset - tensorInfoStart),
        );
      }
      return rng.int(len);
    };
    const mutate = mutator(rng, offsetIn);

    const failures: string[] = [];
    const stats = { parsed: 0, rejected: 0, parsedFull: 0, rejectedFull: 0 };
    const reasons = new Map<string, number>();
    const rssLimit = 2 * 1024 ** 3;
    let maxRss = Deno.memoryUsage().rss;
    const t0 = performance.now();
    const check = async (
      input: Uint8Array | ByteSource,
      i: number,
      log: string[],
      full: boolean,
    ) => {
      try {
        const g = await GgufFile.open(input);
        g.close();
        if (full) stats.parsedFull++;
        else stats.parsed++;
      } catch (e) {
        if (
          (e instanceof TypeError || e instanceof RangeError) &&
          e.message.startsWith("Cannot load model ") && e.message.length > 30
        ) {
          if (full) stats.rejectedFull++;
          else stats.rejected++;
          const reason = e.message.replace(/^Cannot load model [^:]*: /, "")
            .replace(/[0-9]+/g, "N").replace(/".*?"|\S+\.weight/g, "X")
            .slice(0, 40);
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        } else {
          failures.push(
            `seed ${seed} mutation ${i} [${log.join(", ")}]${
              full ? " (as a 6 MB file)" : ""
            }: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`,
          );
        }
      }
    };
    for (let i = 0; i < count; i++) {
      const [m, log] = mutate(base);
      await check(m, i, log, false);
      // The same bytes as the start of a file of the real size.
      if (m.length >= 120_000 - 16) {
        const size = AUSTEN!.length + m.length - base.length;
        await check(paddedSource(m, size, "<fuzz>"), i, log, true);
      }
      if (i % 250 === 0) {
        const rss = Deno.memoryUsage().rss;
        maxRss = Math.max(maxRss, rss);
        assert(rss < rssLimit, `RSS ${rss} bytes after mutation ${i}`);
      }
      if (failures.length >= 20) break;
    }
    const ms = performance.now() - t0;
    const top = [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 8);
    console.log(
      `fuzz seed ${seed}: ${count} mutations in ${(ms / 1000).toFixed(1)} s; ` +
        `as bytes: ${stats.parsed} parsed, ${stats.rejected} rejected; ` +
        `as a full-size file: ${stats.parsedFull} parsed, ${stats.rejectedFull} rejected; ` +
        `max RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB\n  top reasons: ${
          top.map(([r, n]) => `${n}× ${r}`).join(" | ")
        }`,
    );
    assertEquals(failures, []);
    assert(
      stats.parsedFull > 100,
      "too few mutations parsed to be a good fuzz",
    );
    assert(maxRss < rssLimit);
  },
});

Deno.test("fuzz: 5,000 mutations of a synthetic file with every value type each parse or throw a TypeError/RangeError", async () => {
  const seed = Number(Deno.env.get("ALISA_FUZZ_SEED") ?? 0x5eed);
  const count = Number(Deno.env.get("ALISA_FUZZ_N_SYNTH") ?? 5000);
  const spec = fullSpec();
  spec.kvs!.push({ key: "deep", type: GT.ARRAY, value: nestedArray(8) });
  const base = buildGguf(spec).bytes;
  const rng = prng(seed);
  const mutate = mutator(rng, (len) => rng.int(Math.max(1, len)));
  const failures: string[] = [];
  let parsed = 0, rejected = 0;
  const t0 = performance.now();
  for (let i = 0; i < count && failures.length < 20; i++) {
    const [m, log] = mutate(base);
    try {
      (await GgufFile.open(m)).close();
      parsed++;
    } catch (e) {
      if (e instanceof TypeError || e instanceof RangeError) rejected++;
      else {
        failures.push(
          `seed ${seed} mutation ${i} [${log.join(", ")}]: ${
            (e as Error)?.constructor?.name
          }: ${(e as Error)?.message}`,
        );
      }
    }
  }
  console.log(
    `synthetic fuzz seed ${seed}: ${count} mutations of ${base.length} bytes in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s: ${parsed} parsed, ${rejected} rejected`,
  );
  assertEquals(failures, []);
  assert(parsed > 100, "too few mutations parsed to be a good fuzz");
});
