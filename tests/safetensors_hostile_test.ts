/**
 * Hostile safetensors input: bad header lengths, bad JSON, bad UTF-8, bad
 * offsets, shapes and dtypes, data past the end, and a seeded fuzz. Every
 * rejection must be a `TypeError` or `RangeError` whose message names the
 * problem; anything else (a Wasm `RuntimeError` from a Rust panic) fails.
 */
import { assert, assertEquals } from "@std/assert";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import type { ByteSource } from "../src/formats/byte_source.ts";
import {
  expectRejection,
  type LoaderErrorClass,
  readShared,
} from "./_shared.ts";

// ---------------------------------------------------------------- helpers

const HF_FILE = "models/austen-5m-hf/model.safetensors";
const HF: Uint8Array | undefined = readShared(HF_FILE);
const NO_HF = HF === undefined;

const enc = new TextEncoder();

/** A safetensors file: u64 header length, the header, `dataBytes` of data. */
function st(
  header: unknown,
  dataBytes: number,
  { length, raw }: { length?: bigint; raw?: Uint8Array } = {},
): Uint8Array {
  const json = raw ??
    enc.encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(
    0,
    length ?? BigInt(json.length),
    true,
  );
  out.set(json, 8);
  for (let i = 0; i < dataBytes; i++) out[8 + json.length + i] = i & 0xff;
  return out;
}

/** A valid header: three tensors and string metadata (84 bytes of data). */
function validHeader(): Record<string, unknown> {
  return {
    "__metadata__": { format: "pt", note: "ü" },
    "a": { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
    "b": { dtype: "F16", shape: [4, 4], data_offsets: [24, 56] },
    "c": { dtype: "BF16", shape: [14], data_offsets: [56, 84] },
  };
}
const VALID_DATA = 84;

type ErrorClass = LoaderErrorClass;

/** Opens `input` and requires a rejection of class `cls` whose message matches. */
function rejects(
  input: Uint8Array | ByteSource,
  cls: ErrorClass,
  pattern: string | RegExp,
  label = "",
): Promise<Error> {
  return expectRejection(
    async () => (await SafetensorsFile.open(input)).close(),
    cls,
    pattern,
    label,
  );
}

/** A source of `size` bytes whose bytes past `bytes` are zero. */
function paddedSource(bytes: Uint8Array, size: number): ByteSource {
  return {
    name: "<padded>",
    size,
    read(offset: number, length: number): Promise<Uint8Array> {
      if (offset + length > size) {
        return Promise.reject(new RangeError("<padded>: read past the end"));
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

// ---------------------------------------------------------------- tests

Deno.test("a small valid file parses (the baseline for the hostile cases)", async () => {
  const bytes = st(validHeader(), VALID_DATA);
  const f = await SafetensorsFile.open(bytes);
  assertEquals(f.dataOffset, bytes.length - VALID_DATA);
  assertEquals(
    f.tensors.map((t) => [t.name, t.dtype, t.shape, t.nBytes]),
    [["a", "F32", [2, 3], 24], ["b", "F16", [4, 4], 32], [
      "c",
      "BF16",
      [14],
      28,
    ]],
  );
  assertEquals(f.metadata.get("note"), "ü");
  assertEquals(Array.from(await f.read(f.tensors[1], 0, 2)), [24, 25]);
  f.close();
  // Spaces after the JSON (as writers pad the header to 8 bytes) are fine.
  const padded = st(JSON.stringify(validHeader()) + "      ", VALID_DATA);
  (await SafetensorsFile.open(padded)).close();
  // So is a file with no tensors.
  (await SafetensorsFile.open(st({}, 0))).close();
});

Deno.test("a file shorter than the 8-byte header length is a RangeError", async () => {
  for (let n = 0; n < 8; n++) {
    await rejects(
      new Uint8Array(n).fill(1),
      RangeError,
      `starts with an 8-byte header length, but the file has ${n} bytes`,
    );
  }
});

Deno.test("a header length past the file or over the 100 MB limit is a RangeError", async () => {
  const bytes = st(validHeader(), VALID_DATA);
  const json = bytes.length - 8 - VALID_DATA;
  for (
    const length of [
      BigInt(bytes.length - 7),
      BigInt(bytes.length),
      1n << 20n,
      100_000_000n,
    ]
  ) {
    await rejects(
      st(validHeader(), VALID_DATA, { length }),
      RangeError,
      "ends past the file",
      `header length ${length}`,
    );
  }
  for (
    const length of [
      100_000_001n,
      1n << 32n,
      1n << 53n,
      1n << 63n,
      (1n << 64n) - 1n,
    ]
  ) {
    await rejects(
      st(validHeader(), VALID_DATA, { length }),
      RangeError,
      "is larger than the 100000000 byte limit",
      `header length ${length}`,
    );
  }
  // Past the file even though the file is big: a 100 MB header in a 50 MB file.
  await rejects(
    paddedSource(st({}, 0, { length: 100_000_000n }), 50_000_000),
    RangeError,
    "ends past the file",
  );
  // A length that cuts the JSON short is invalid JSON, not a crash.
  await rejects(
    st(validHeader(), VALID_DATA, { length: BigInt(json - 1) }),
    TypeError,
    "invalid safetensors header",
  );
});

Deno.test("invalid JSON and the wrong JSON shape are TypeErrors", async () => {
  const bad = [
    "",
    "{",
    "[]",
    "null",
    "42",
    '"x"',
    "{}x",
    '{"a":}',
    "{'a':1}",
    '{"a":1}',
    '{"a":{"dtype":"F32","shape":[1]}}',
    '{"a":{"dtype":"F32","data_offsets":[0,4]}}',
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}',
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}',
    '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}',
    '{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}',
    '{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}',
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}}',
    '{"__metadata__":{"k":1}}',
    '{"__metadata__":[]}',
    "\u0000{}",
  ];
  for (const json of bad) {
    await rejects(
      st(json, 8),
      TypeError,
      "invalid safetensors header",
      JSON.stringify(json),
    );
  }
  // JSON nested far too deep hits serde_json's recursion limit, not the stack.
  const deep = '{"a":' + "[".repeat(100_000) + "]".repeat(100_000) + "}";
  await rejects(st(deep, 0), TypeError, "invalid safetensors header");
});

Deno.test("invalid UTF-8 in the header is a TypeError", async () => {
  const json = JSON.stringify(validHeader());
  for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    const at = json.indexOf("ü");
    const raw = new Uint8Array([
      ...enc.encode(json.slice(0, at)),
      ...bad,
      ...enc.encode(json.slice(at + 1)),
    ]);
    await rejects(
      st(null, VALID_DATA, { raw }),
      TypeError,
      "not valid UTF-8",
      `bytes ${bad}`,
    );
  }
});

Deno.test("offsets that are not contiguous from 0 are TypeErrors naming the tensor", async () => {
  const cases: [string, [number, number][]][] = [
    ["a gap", [[0, 24], [28, 60], [60, 88]]],
    ["an overlap", [[0, 24], [20, 52], [52, 80]]],
    ["not starting at 0", [[4, 28], [28, 60], [60, 88]]],
    ["end before begin", [[0, 24], [56, 24], [24, 52]]],
    ["the same range twice", [[0, 24], [0, 24], [24, 52]]],
  ];
  for (const [what, offsets] of cases) {
    const h = validHeader();
    ["a", "b", "c"].forEach((k, i) => {
      (h[k] as { data_offsets: number[] }).data_offsets = offsets[i];
    });
    await rejects(
      st(h, 100),
      TypeError,
      /invalid offset for tensor `[abc]`|invalid shape, data type, or offset/,
      what,
    );
  }
});

Deno.test("tensor data past the end of the file is a RangeError", async () => {
  for (const short of [1, 28, VALID_DATA]) {
    await rejects(
      st(validHeader(), VALID_DATA - short),
      RangeError,
      "safetensors tensor data ends past the file",
      `${short} bytes short`,
    );
  }
  // A file whose declared data is huge but whose header is fine.
  await rejects(
    st(
      { a: { dtype: "U8", shape: [1 << 30], data_offsets: [0, 1 << 30] } },
      16,
    ),
    RangeError,
    "ends past the file",
  );
});

Deno.test("shape/size mismatches, overflowing shapes and unknown dtypes are TypeErrors", async () => {
  const one = (t: unknown) => st({ a: t }, 64);
  await rejects(
    one({ dtype: "F16", shape: [2, 3], data_offsets: [0, 10] }),
    TypeError,
    "invalid shape, data type, or offset for tensor",
  );
  await rejects(
    one({ dtype: "F32", shape: [2, 3], data_offsets: [0, 12] }),
    TypeError,
    "invalid shape, data type, or offset",
  );
  await rejects(
    one({ dtype: "F32", shape: [], data_offsets: [0, 8] }),
    TypeError,
    "invalid shape, data type, or offset",
  );
  // Element count or bit count overflows u64.
  for (
    const shape of [
      [2 ** 32, 2 ** 32],
      [2 ** 62],
      [2 ** 21, 2 ** 21, 2 ** 21],
    ]
  ) {
    await rejects(
      one({ dtype: "F32", shape, data_offsets: [0, 16] }),
      TypeError,
      "overflow computing buffer size",
      `shape ${shape}`,
    );
  }
  for (const dtype of ["Q8_0", "f32", "F128", "", "FLOAT"]) {
    await rejects(
      one({ dtype, shape: [1], data_offsets: [0, 4] }),
      TypeError,
      "unknown variant",
      `dtype ${dtype}`,
    );
  }
  // Sub-byte dtypes must end on a byte boundary.
  await rejects(
    one({ dtype: "F4", shape: [3], data_offsets: [0, 2] }),
    TypeError,
    "byte boundary",
  );
});

Deno.test("tensors of 512 MiB and more and offsets past 4 GiB parse (sizes are not 32-bit)", async () => {
  // Wasm's usize is 32 bits: sizes computed in it (in bits, as the
  // safetensors crate does) overflow from 512 MiB on, offsets past 4 GiB do
  // not fit. Real checkpoints have both (Llama 3 8B's bf16 embeddings are
  // 1 GiB; shards of 5-10 GB are common).
  const emb = 128256 * 4096 * 2;
  const big = 1_250_000_000 * 4;
  const header = st({
    "model.embed_tokens.weight": {
      dtype: "BF16",
      shape: [128256, 4096],
      data_offsets: [0, emb],
    },
    "big": {
      dtype: "F32",
      shape: [1_250_000_000],
      data_offsets: [emb, emb + big],
    },
  }, 0);
  const size = header.length + emb + big;
  const f = await SafetensorsFile.open(paddedSource(header, size));
  assertEquals(
    f.tensors.map((t) => [t.name, t.nBytes, t.fileOffset]),
    [
      ["model.embed_tokens.weight", emb, header.length],
      ["big", big, header.length + emb],
    ],
  );
  assertEquals(Array.from(await f.read(f.tensors[1], big - 2, 2)), [0, 0]);
  f.close();
  await rejects(
    paddedSource(header, size - 1),
    RangeError,
    "safetensors tensor data ends past the file",
  );
});

Deno.test({
  name:
    "the Austen safetensors cut inside the header and the data is a RangeError",
  ignore: NO_HF,
  async fn() {
    const bytes = HF!;
    const f = await SafetensorsFile.open(bytes);
    f.close();
    const cuts = [0, 4, 7, 8, 9, f.dataOffset >> 1, f.dataOffset - 1];
    for (const t of f.tensors) cuts.push(t.fileOffset + (t.nBytes >> 1));
    cuts.push(bytes.length - 1);
    for (const cut of cuts) {
      await rejects(
        bytes.subarray(0, cut),
        RangeError,
        /ends past the file|8-byte header length/,
        `cut at ${cut}`,
      );
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
  return { next, int: (n: number) => Math.floor(next() * n) };
}

const NUMBERS = [
  "0",
  "1",
  "-1",
  "2",
  "3",
  "4",
  "24",
  "56",
  "84",
  "1e3",
  "0.5",
  "4294967295",
  "4294967296",
  "9007199254740993",
  "18446744073709551615",
  "18446744073709551616",
  "99999999999999999999999",
];
const TOKENS = [
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  '"',
  "\\",
  "null",
  "true",
  '"F32"',
  '"F4"',
  '"BOOL"',
  '"I64"',
  '"__metadata__"',
  '"shape"',
  '"dtype"',
  '"data_offsets"',
  "\\u0000",
  "\\ud800",
];

Deno.test("fuzz: 5,000 mutations of safetensors headers each parse or throw a TypeError/RangeError", async () => {
  const seed = Number(Deno.env.get("ALISA_FUZZ_SEED") ?? 0x5afe);
  const count = Number(Deno.env.get("ALISA_FUZZ_N_ST") ?? 5000);
  const rng = prng(seed);
  const baseJson = JSON.stringify(validHeader());
  const bases: Uint8Array[] = [st(validHeader(), VALID_DATA)];
  if (HF) {
    // The real header with a little data; opened as the start of a file of the real size.
    const n = Number(
      new DataView(HF.buffer, HF.byteOffset).getBigUint64(0, true),
    );
    bases.push(HF.slice(0, 8 + n + 64));
  }
  const failures: string[] = [];
  const stats = { parsed: 0, rejected: 0 };
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const which = rng.int(bases.length);
    const base = bases[which];
    let b: Uint8Array = base;
    const log: string[] = [];
    const steps = 1 + rng.int(3);
    for (let k = 0; k < steps; k++) {
      const kind = rng.int(7);
      // Mostly inside the JSON, sometimes the length prefix or the data.
      const jsonEnd = Math.min(b.length, 8 + baseJson.length + 8);
      const at = b.length === 0
        ? 0
        : rng.next() < 0.85
        ? Math.min(b.length - 1, 8 + rng.int(Math.max(1, jsonEnd - 8)))
        : rng.int(b.length);
      if (kind === 0 && b.length) {
        b = b === base ? b.slice() : b;
        const bit = rng.int(8);
        b[at] ^= 1 << bit;
        log.push(`flip bit ${bit} at ${at}`);
      } else if (kind === 1 && b.length >= 8) {
        b = b === base ? b.slice() : b;
        const v = BigInt(NUMBERS[rng.int(12)].replace(/\D/g, "") || "0") +
          BigInt(rng.int(3) - 1);
        new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
        log.push(`header length ${BigInt.asUintN(64, v)}`);
      } else if (kind === 2) {
        b = b.slice(0, at);
        log.push(`truncate at ${at}`);
      } else {
        // Replace a run of bytes with a JSON-ish token or number.
        const pool = kind === 3 ? NUMBERS : TOKENS;
        const tok = kind === 6
          ? new Uint8Array(1 + rng.int(4)).map(() => rng.int(256))
          : enc.encode(pool[rng.int(pool.length)]);
        const del = kind === 4 ? 0 : rng.int(6);
        const end = Math.min(b.length, at + del);
        const next = new Uint8Array(b.length - (end - at) + tok.length);
        next.set(b.subarray(0, at));
        next.set(tok, at);
        next.set(b.subarray(end), at + tok.length);
        b = next;
        log.push(
          `replace ${end - at} bytes at ${at} with ${
            JSON.stringify(new TextDecoder().decode(tok))
          }`,
        );
      }
    }
    const input = which === 1 && b.length > 8
      ? paddedSource(b, HF!.length + b.length - base.length)
      : b;
    try {
      const f = await SafetensorsFile.open(input);
      f.close();
      stats.parsed++;
    } catch (e) {
      if (
        (e instanceof TypeError || e instanceof RangeError) &&
        e.message.startsWith("Cannot load model ")
      ) {
        stats.rejected++;
      } else {
        failures.push(
          `seed ${seed} mutation ${i} of ${
            which ? "the Austen header" : "the small file"
          } [${log.join(", ")}]: ${(e as Error)?.constructor?.name}: ${
            (e as Error)?.message
          }`,
        );
        if (failures.length >= 20) break;
      }
    }
  }
  const ms = performance.now() - t0;
  console.log(
    `safetensors fuzz seed ${seed}: ${count} mutations in ${
      (ms / 1000).toFixed(1)
    } s: ${stats.parsed} parsed, ${stats.rejected} rejected`,
  );
  assertEquals(failures, []);
  assert(stats.parsed > 20, "too few mutations parsed to be a good fuzz");
});
