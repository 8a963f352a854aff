/**
 * INT8 KV compression (src/kv/int8.ts, wasm/src/int8.rs) against a plain
 * TypeScript reference of the formulas, bit for bit, for the SIMD and the
 * scalar kernels; error bounds and NMSE per group shape on Gaussian data,
 * on KV-like data with outlier channels and on real K/V from the Austen
 * model; edge cases; Q8_0 against ggml's quantize_row_q8_0_ref.
 */
import {
  assert,
  assertEquals,
  assertLess,
  assertLessOrEqual,
  assertThrows,
} from "@std/assert";
import {
  dequantizeInt8,
  type GroupShape,
  INT8_SIMD,
  type Int8Block,
  int8GroupCount,
  type Int8Layout,
  int8ParamShape,
  Int8Workspace,
  KEY_GROUP,
  quantizeInt8,
  quantizeQ8_0,
  VALUE_GROUP,
} from "../src/kv/int8.ts";
import { dequantize } from "../src/formats/dequantize.ts";
import { GgufFile } from "../src/formats/gguf.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import { dequantizeF32 } from "../wasm/pkg/alisa_wasm.js";
import { FIXTURES_DIR, hasShared, sharedPath } from "./_shared.ts";
import { matvec, rmsnorm, rope } from "./_reference.ts";

// ---------------------------------------------------------------------------
// Data.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(r: () => number): number {
  const u = Math.max(r(), 1e-300), v = r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function gaussianBlock(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => gaussian(r));
}

/**
 * Key-like data: every channel has its own offset and spread, and about one
 * channel in 16 is an outlier 10-50x larger (as real keys have); tokens vary
 * in magnitude a little.
 */
function keyLike(t: number, c: number, seed: number): Float32Array {
  const r = rng(seed);
  const spread = Array.from(
    { length: c },
    () => r() < 1 / 16 ? 10 + 40 * r() : 0.5 + r(),
  );
  const offset = spread.map((s) => 0.5 * s * gaussian(r));
  const x = new Float32Array(t * c);
  for (let i = 0; i < t; i++) {
    const tok = 0.7 + 0.6 * r();
    for (let j = 0; j < c; j++) {
      x[i * c + j] = offset[j] + spread[j] * tok * gaussian(r);
    }
  }
  return x;
}

/** Value-like data: no channel outliers, per-token magnitude varies 0.3-3x. */
function valueLike(t: number, c: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(t * c);
  for (let i = 0; i < t; i++) {
    const tok = 0.3 + 2.7 * r() ** 2;
    for (let j = 0; j < c; j++) x[i * c + j] = tok * gaussian(r);
  }
  return x;
}

/** f32 values to f16 bits (round to nearest even) and back. */
function toF16(x: ArrayLike<number>): Uint16Array {
  return new Uint16Array(Float16Array.from(x as number[]).buffer);
}
function fromF16(h: Uint16Array): Float32Array {
  return Float32Array.from(new Float16Array(h.buffer, h.byteOffset, h.length));
}

// ---------------------------------------------------------------------------
// The reference: ALISA section 4 written out in plain TypeScript.

/** C roundf: half away from zero. */
function roundAway(v: number): number {
  const t = Math.trunc(v);
  return Math.abs(v - t) >= 0.5 ? t + Math.sign(v) : t;
}

function paramOf(l: Int8Layout): number {
  return l.groupShape === "perChannel"
    ? l.groupTokens!
    : l.groupShape === "perToken"
    ? l.headDim!
    : l.groupSize!;
}

/** Group of every element. */
function groupIds(l: Int8Layout, n: number): Int32Array {
  const t = l.tokens ?? 1, c = l.channels ?? n, p = paramOf(l);
  const g = new Int32Array(t * c);
  for (let r = 0; r < t; r++) {
    for (let j = 0; j < c; j++) {
      const i = r * c + j;
      g[i] = l.groupShape === "perChannel"
        ? Math.floor(r / p) * c + j
        : l.groupShape === "perToken"
        ? r * Math.ceil(c / p) + Math.floor(j / p)
        : Math.floor(i / p);
    }
  }
  return g;
}

function refParams(lo: number, hi: number): [number, number] {
  let s: number;
  if (hi === lo) s = lo === 0 ? 1 : Math.abs(lo);
  else {
    s = Math.fround((hi - lo) / 255);
    if (s === 0) s = 2 ** -149;
  }
  return [s, Math.fround(roundAway(-lo / s)) + 0];
}

function refQuantize(x: ArrayLike<number>, l: Int8Layout): Int8Block {
  const gid = groupIds(l, x.length);
  const ng = int8GroupCount(l, x.length);
  const lo = new Float64Array(ng).fill(Infinity);
  const hi = new Float64Array(ng).fill(-Infinity);
  for (let i = 0; i < x.length; i++) {
    lo[gid[i]] = Math.min(lo[gid[i]], x[i]);
    hi[gid[i]] = Math.max(hi[gid[i]], x[i]);
  }
  const scale = new Float32Array(ng), zero = new Float32Array(ng);
  for (let g = 0; g < ng; g++) [scale[g], zero[g]] = refParams(lo[g], hi[g]);
  const q = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const s = scale[gid[i]], z = zero[gid[i]];
    const v = Math.fround(roundAway(Math.fround(x[i] / s)) + z);
    q[i] = Math.min(255, Math.max(0, Math.trunc(v)));
  }
  return { q, scale, zero };
}

function refDequantize(b: Int8Block, l: Int8Layout): Float32Array {
  const gid = groupIds(l, b.q.length);
  return Float32Array.from(
    b.q,
    (q, i) => (q - b.zero[gid[i]]) * b.scale[gid[i]],
  );
}

function assertSameBits(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  what: string,
) {
  assertEquals(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) {
      throw new Error(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
    }
  }
}

function assertSameBlock(a: Int8Block, b: Int8Block, what: string) {
  assertSameBits(a.q, b.q, `${what} q`);
  assertSameBits(a.scale, b.scale, `${what} scale`);
  assertSameBits(a.zero, b.zero, `${what} zero`);
}

const SIMD_MODES = INT8_SIMD ? [true, false] : [false];

/** Layouts with every shape and partial groups at every edge. */
function layouts(t: number, c: number): Int8Layout[] {
  const out: Int8Layout[] = [];
  for (const g of [1, 7, 16, 32, 1000]) {
    out.push({
      groupShape: "perChannel",
      tokens: t,
      channels: c,
      groupTokens: g,
    });
  }
  for (const d of [1, 5, 16, 32, 4096]) {
    out.push({ groupShape: "perToken", tokens: t, channels: c, headDim: d });
  }
  for (const n of [1, 13, 32, 128, 1 << 20]) {
    out.push({
      groupShape: "contiguous",
      tokens: t,
      channels: c,
      groupSize: n,
    });
  }
  return out;
}

const name = (l: Int8Layout) =>
  `${l.groupShape}(${paramOf(l)}) ${l.tokens}x${l.channels}`;

// ---------------------------------------------------------------------------

Deno.test("INT8 SIMD build", () => {
  // The committed Wasm is built with simd128; the SIMD kernels must be in it.
  assert(INT8_SIMD);
});

Deno.test("quantize and dequantize equal the TS reference bit for bit, SIMD and scalar, every shape", () => {
  const blocks: [number, number, Float32Array][] = [
    [37, 24, keyLike(37, 24, 1)],
    [33, 130, keyLike(33, 130, 2)],
    [64, 128, valueLike(64, 128, 3)],
    [5, 3, gaussianBlock(15, 4)],
    [1, 1, new Float32Array([2.5])],
    // Halves: many exact ties x / scale = k + 0.5.
    [
      17,
      48,
      Float32Array.from({ length: 17 * 48 }, (_, i) => (i * 37 % 511) / 2 - 64),
    ],
  ];
  for (const [t, c, x] of blocks) {
    for (const l of layouts(t, c)) {
      const want = refQuantize(x, l);
      const wantY = refDequantize(want, l);
      for (const simd of SIMD_MODES) {
        const got = quantizeInt8(x, { ...l, simd });
        assertSameBlock(got, want, `${name(l)} simd=${simd}`);
        const y = dequantizeInt8(got, { ...l, simd });
        assertSameBits(y, wantY, `${name(l)} simd=${simd} dequantized`);
        const y16 = dequantizeInt8(got, { ...l, simd }, "f16");
        assertSameBits(y16, toF16(wantY), `${name(l)} simd=${simd} f16 out`);
      }
    }
  }
});

Deno.test("f16 input gives the same codes as f32 input of the same values", () => {
  const x = keyLike(40, 72, 5);
  const h = toF16(x);
  // Subnormals, signed zeros and the largest finite f16 on the way.
  h.set([0x0001, 0x8001, 0x03ff, 0x8000, 0x0000, 0x7bff, 0xfbff], 100);
  const xf = fromF16(h);
  for (const l of layouts(40, 72)) {
    for (const simd of SIMD_MODES) {
      assertSameBlock(
        quantizeInt8(h, { ...l, simd }),
        quantizeInt8(xf, { ...l, simd }),
        `${name(l)} simd=${simd}`,
      );
    }
  }
});

Deno.test("f16 output rounds to nearest even like Float16Array, SIMD and scalar", () => {
  // Group size 1, q = 1, zero = 0: the output is the scale, converted.
  const r = rng(9);
  const vals: number[] = [];
  for (let e = 0; e < 256; e++) {
    for (let k = 0; k < 24; k++) {
      // Random mantissas, halfway cases (low 13 bits 0x1000) and +-1 ulp.
      const m = k < 8
        ? (r() * 0x800000) >>> 0
        : ((r() * 0x400) << 13 | 0x1000) + (k % 3) - 1;
      const bits = (e << 23 | (m & 0x7fffff)) >>> 0;
      const f = new Float32Array(new Uint32Array([bits]).buffer)[0];
      if (Number.isFinite(f)) vals.push(f, -f);
    }
  }
  vals.push(65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 0, -0);
  const n = vals.length;
  using ws = new Int8Workspace();
  const l = {
    groupShape: "contiguous",
    tokens: 1,
    channels: n,
    groupSize: 1,
  } as const;
  for (const simd of SIMD_MODES) {
    ws.configure({ ...l, output: "f16" });
    ws.q.fill(1);
    ws.zero.fill(0);
    ws.scale.set(vals);
    ws.dequantize(simd);
    const want = toF16(vals);
    const got = ws.output as Uint16Array;
    for (let i = 0; i < n; i++) {
      assertEquals(got[i], want[i], `${vals[i]} simd=${simd}`);
    }
  }
});

Deno.test("every element comes back within scale/2; NMSE table per group shape", () => {
  const t = 256, c = 128, headDim = 32;
  const data: Record<string, Float32Array> = {
    gaussian: gaussianBlock(t * c, 11),
    "key-like": keyLike(t, c, 12),
    "value-like": valueLike(t, c, 13),
  };
  const shapes: [string, Int8Layout][] = [
    ["perChannel G=16", { groupShape: "perChannel", groupTokens: 16 }],
    ["perChannel G=32", { groupShape: "perChannel", groupTokens: 32 }],
    ["perChannel G=64", { groupShape: "perChannel", groupTokens: 64 }],
    ["perChannel G=256", { groupShape: "perChannel", groupTokens: 256 }],
    ["perToken D=32 (head)", { groupShape: "perToken", headDim }],
    ["perToken D=128 (token)", { groupShape: "perToken", headDim: c }],
    ["contiguous N=32", { groupShape: "contiguous", groupSize: 32 }],
    ["contiguous N=all", { groupShape: "contiguous", groupSize: t * c }],
  ];
  const rows: string[] = [];
  const nmse: Record<string, Record<string, number>> = {};
  for (const [label, shape] of shapes) {
    const l = { ...shape, tokens: t, channels: c };
    const bits = 8 + 64 * int8GroupCount(l) / (t * c);
    nmse[label] = {};
    for (const [kind, x] of Object.entries(data)) {
      const b = quantizeInt8(x, l);
      const y = dequantizeInt8(b, l);
      const gid = groupIds(l, x.length);
      let num = 0, den = 0;
      for (let i = 0; i < x.length; i++) {
        const err = Math.abs(x[i] - y[i]);
        const bound = b.scale[gid[i]] / 2 +
          4 * 2 ** -24 * Math.max(Math.abs(x[i]), Math.abs(y[i]));
        if (err > bound) {
          throw new Error(`${label} ${kind} [${i}]: error ${err} > ${bound}`);
        }
        num += (x[i] - y[i]) ** 2;
        den += x[i] ** 2;
      }
      nmse[label][kind] = num / den;
    }
    rows.push(
      `${label.padEnd(24)} ${bits.toFixed(2).padStart(6)} ${
        Object.values(nmse[label]).map((v) => v.toExponential(2).padStart(11))
          .join("")
      }`,
    );
  }
  console.log(
    `\nINT8 NMSE, ${t} tokens x ${c} channels (bits/element incl. f32 scale+zero)\n` +
      `${"group shape".padEnd(24)} ${"bits".padStart(6)}${
        Object.keys(data).map((k) => k.padStart(11)).join("")
      }\n${rows.join("\n")}`,
  );
  // Min-max INT8 of a Gaussian: (range/255)^2/12 relative to the variance.
  for (const label of Object.keys(nmse)) {
    assertLess(nmse[label].gaussian, 2e-4, label);
  }
  // KIVI's finding on keys: outlier channels need per-channel groups.
  assertLess(
    nmse["perChannel G=32"]["key-like"] * 2,
    nmse["perToken D=32 (head)"]["key-like"],
  );
  assertLess(
    nmse["perToken D=32 (head)"]["value-like"],
    nmse["perChannel G=32"]["value-like"],
  );
});

Deno.test("constant groups reconstruct exactly", () => {
  for (const v of [0, -0, 1.5, -3.25, 1e-45, -7e-39, 3.4e38, -3.4e38]) {
    const x = new Float32Array(6 * 40).fill(v);
    for (const l of layouts(6, 40)) {
      for (const simd of SIMD_MODES) {
        const b = quantizeInt8(x, { ...l, simd });
        assert(b.q.every((q) => q === 0), name(l));
        const want = v === 0 ? 1 : Math.abs(Math.fround(v));
        assert(b.scale.every((s) => s === want), `${name(l)} ${v}`);
        assert(b.zero.every((z) => Object.is(z, v === 0 ? 0 : -Math.sign(v))));
        const y = dequantizeInt8(b, { ...l, simd });
        assert(y.every((e) => e === Math.fround(v)), `${name(l)} ${v}`);
      }
    }
  }
  // One constant channel among varying ones, per channel.
  const x = keyLike(8, 16, 3);
  for (let r = 0; r < 8; r++) x[r * 16 + 5] = -2.75;
  const l = {
    groupShape: "perChannel",
    tokens: 8,
    channels: 16,
    groupTokens: 8,
  } as const;
  const y = dequantizeInt8(quantizeInt8(x, l), l);
  for (let r = 0; r < 8; r++) assertEquals(y[r * 16 + 5], -2.75);
});

Deno.test("NaN and Infinity throw a RangeError naming the first bad index", () => {
  // First element (the SIMD accumulators start there), inside a 16-channel
  // strip, in a 4-channel strip, in the scalar tail, the last element.
  for (const bad of [NaN, Infinity, -Infinity]) {
    for (const at of [0, 37, 97, 178, 179]) {
      for (const l of layouts(9, 20)) {
        for (const simd of SIMD_MODES) {
          const x = gaussianBlock(180, 21);
          x[at] = bad;
          x[Math.min(at + 50, 179)] = bad;
          assertThrows(
            () => quantizeInt8(x, { ...l, simd }),
            RangeError,
            `input element ${at} is`,
          );
          // f16 input: 0x7e00 NaN, 0x7c00 / 0xfc00 infinities.
          const h = toF16(x);
          assertThrows(
            () => quantizeInt8(h, { ...l, simd }),
            RangeError,
            `input element ${at} is`,
          );
        }
      }
    }
    for (const at of [0, 33, 63]) {
      const x = new Float32Array(64);
      x[at] = bad;
      for (const simd of SIMD_MODES) {
        assertThrows(
          () => quantizeQ8_0(x, { simd }),
          RangeError,
          `input element ${at} is`,
        );
      }
    }
  }
});

Deno.test("empty blocks, partial groups and parameter shapes", () => {
  for (const [t, c] of [[0, 16], [16, 0], [0, 0]]) {
    for (const l of layouts(t, c)) {
      const b = quantizeInt8(new Float32Array(0), l);
      assertEquals([b.q.length, b.scale.length, b.zero.length], [0, 0, 0]);
      assertEquals(dequantizeInt8(b, l).length, 0);
    }
  }
  assertEquals(quantizeQ8_0(new Float32Array(0)).length, 0);
  const pc = {
    groupShape: "perChannel",
    tokens: 10,
    channels: 6,
    groupTokens: 4,
  } as const;
  assertEquals(int8ParamShape(pc), [3, 6]);
  const pt = {
    groupShape: "perToken",
    tokens: 10,
    channels: 6,
    headDim: 4,
  } as const;
  assertEquals(int8ParamShape(pt), [10, 2]);
  assertEquals(int8ParamShape({ groupShape: "contiguous", groupSize: 7 }, 60), [
    9,
  ]);
  // The last partial token group has its own parameters: here a constant.
  const x = gaussianBlock(60, 8);
  x.fill(4, 48);
  const b = quantizeInt8(x, pc);
  assertEquals(Array.from(b.scale.subarray(12)), [4, 4, 4, 4, 4, 4]);
  assertEquals(
    Array.from(dequantizeInt8(b, pc).subarray(48)),
    Array(12).fill(4),
  );
});

Deno.test("bad lengths are RangeErrors, bad options TypeErrors", () => {
  const l = {
    groupShape: "perToken",
    tokens: 4,
    channels: 8,
    headDim: 4,
  } as const;
  const x = new Float32Array(32);
  assertThrows(() => quantizeInt8(x.subarray(1), l), RangeError, "31 elements");
  const b = quantizeInt8(x, l);
  assertThrows(
    () => dequantizeInt8({ ...b, q: b.q.subarray(1) }, l),
    RangeError,
  );
  assertThrows(
    () => dequantizeInt8({ ...b, scale: b.scale.subarray(1) }, l),
    RangeError,
    "scale has 7 elements, expected 8",
  );
  assertThrows(
    () => dequantizeInt8({ ...b, zero: new Float32Array(9) }, l),
    RangeError,
  );
  assertThrows(
    () => quantizeInt8(x, { ...l, headDim: 0 }),
    RangeError,
    "headDim",
  );
  assertThrows(() => quantizeInt8(x, { ...l, headDim: 2.5 }), RangeError);
  assertThrows(
    () => quantizeInt8(x, { ...l, tokens: -4, channels: -8 }),
    RangeError,
  );
  assertThrows(
    () => quantizeInt8(x, { groupShape: "perToken", headDim: 4 }),
    TypeError,
  );
  assertThrows(
    () =>
      quantizeInt8(x, { groupShape: "perHead" as GroupShape, groupSize: 4 }),
    TypeError,
    "unknown group shape",
  );
  assertThrows(
    () => quantizeInt8(x, { groupShape: "perChannel", tokens: 4, channels: 8 }),
    TypeError,
    "groupTokens",
  );
  assertThrows(
    () => quantizeQ8_0(new Float32Array(40)),
    RangeError,
    "40 elements",
  );
  // The Wasm layer checks on its own too.
  using ws = new Int8Workspace();
  assertThrows(() => ws.quantize(), TypeError, "not configured");
  assertThrows(
    () => ws.configure({ ...l, input: "bf16" as "f16" }),
    TypeError,
    "bf16",
  );
});

Deno.test("workspace: zero-copy views survive memory growth", () => {
  using ws = new Int8Workspace();
  const t = 64, c = 128;
  const l = {
    groupShape: "perChannel",
    tokens: t,
    channels: c,
    groupTokens: 32,
  } as const;
  ws.configure(l);
  const x = keyLike(t, c, 31);
  ws.input.set(x);
  const before = ws.input;
  const size = before.buffer.byteLength;
  // Grow Wasm memory by 128 MiB through another export: views detach.
  dequantizeF32(0, new Uint8Array(64 << 20), 16 << 20);
  assert(ws.input.buffer.byteLength > size);
  assertEquals(before.length, 0);
  // The getters re-create their views; the data is still there.
  assertSameBits(ws.input, x, "input after growth");
  ws.quantize();
  assertSameBlock(
    { q: ws.q, scale: ws.scale, zero: ws.zero },
    refQuantize(x, l),
    "workspace",
  );
  ws.dequantize();
  assertSameBits(ws.output, refDequantize(refQuantize(x, l), l), "output");
  // Reconfiguring to a smaller block reuses the buffers.
  ws.configure({ ...l, tokens: 32, input: "f16", output: "f16" });
  assertEquals([
    ws.input.length,
    ws.q.length,
    ws.scale.length,
    ws.output.length,
  ], [4096, 4096, 128, 4096]);
  assert(ws.input instanceof Uint16Array && ws.output instanceof Uint16Array);
  ws.free();
  assertThrows(() => ws.quantize(), TypeError, "freed");
});

// ---------------------------------------------------------------------------
// Q8_0.

/** ggml's quantize_row_q8_0_ref in plain TypeScript. */
function refQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, toF16([d])[0], true);
    for (let j = 0; j < 32; j++) {
      out[b * 34 + 2 + j] = roundAway(Math.fround(x[b * 32 + j] * id)) & 0xff;
    }
  }
  return out;
}

Deno.test("Q8_0 matches ggml's quantize_row_q8_0_ref bit for bit and round-trips within d/2", () => {
  const x = keyLike(32, 96, 41);
  x.fill(0, 64, 96); // a zero block
  x.fill(-3, 96, 128); // a constant block
  for (let i = 128; i < 160; i++) x[i] = (i - 144) / 2; // ties
  for (const simd of SIMD_MODES) {
    const q = quantizeQ8_0(x, { simd });
    assertSameBits(q, refQ8_0(x), `simd=${simd}`);
    const y = dequantize("Q8_0", q, x.length) as Float32Array;
    for (let b = 0; b < x.length / 32; b++) {
      const d = fromF16(new Uint16Array([q[b * 34] | q[b * 34 + 1] << 8]))[0];
      let amax = 0;
      for (let j = 0; j < 32; j++) {
        amax = Math.max(amax, Math.abs(x[b * 32 + j]));
      }
      const dExact = amax / 127;
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        // d/2 from rounding, plus |q| * (f16 rounding of d).
        const bound = dExact / 2 + 127 * Math.abs(d - dExact) + 1e-7 * amax;
        assertLessOrEqual(Math.abs(x[i] - y[i]), bound, `element ${i}`);
      }
    }
  }
});

Deno.test("Q8_0 matches llama.cpp's gguf-py quantizer on its fixture", async () => {
  const m = JSON.parse(
    await Deno.readTextFile(`${FIXTURES_DIR}/quant/quant-ref.json`),
  );
  const refBin = await Deno.readFile(`${FIXTURES_DIR}/quant/quant-ref.bin`);
  const file = m.files[0];
  const t = file.tensors.find((t: { ggml_type: string }) =>
    t.ggml_type === "Q8_0"
  );
  const src = new Float32Array(
    refBin.buffer.slice(t.src_offset * 4, (t.src_offset + t.src_count) * 4),
  );
  const g = await GgufFile.open(`${FIXTURES_DIR}/quant/${file.file}`);
  try {
    const raw = await g.readRaw(t.name);
    for (const simd of SIMD_MODES) {
      assertSameBits(quantizeQ8_0(src, { simd }), raw, `simd=${simd}`);
    }
  } finally {
    g.close();
  }
});

// ---------------------------------------------------------------------------
// Real K and V from the Austen model.

/** Greedy longest-match tokenization over the GGUF vocabulary (BOS first). */
function tokenize(text: string, vocab: string[], n: number): number[] {
  const ids = new Map(vocab.map((p, i) => [p, i]));
  const s = "▁" + text.replaceAll(" ", "▁");
  const out = [1];
  for (let i = 0; i < s.length && out.length < n;) {
    let len = Math.min(16, s.length - i);
    while (len > 0 && !ids.has(s.slice(i, i + len))) len--;
    if (len > 0) {
      out.push(ids.get(s.slice(i, i + len))!);
      i += len;
    } else {
      const cp = String.fromCodePoint(s.codePointAt(i)!);
      for (const byte of new TextEncoder().encode(cp)) {
        const hex = byte.toString(16).toUpperCase().padStart(2, "0");
        out.push(ids.get(`<0x${hex}>`)!);
      }
      i += cp.length;
    }
  }
  return out.slice(0, n);
}

/** K (after RoPE) and V of every layer: a plain f64 forward pass. */
async function austenKV(nTokens: number) {
  const m = await openModelFile(sharedPath("models/austen-5m-f32.gguf"));
  try {
    const c = m.config;
    const w = async (n: string) => await m.read(n) as Float32Array;
    const text = (await Deno.readTextFile(
      sharedPath("data/northanger-abbey.txt"),
    )).split("\n").find((p) => p.startsWith("No one who had ever seen"))!;
    const vocab = m.gguf!.metadata.get("tokenizer.ggml.tokens") as string[];
    const tokens = tokenize(text, vocab, nTokens);
    const emb = await w("token_embd.weight");
    const xs = tokens.map((t) => emb.slice(t * c.dim, (t + 1) * c.dim));
    const kvDim = c.nKvHeads * c.headDim, hd = c.headDim;
    const K: Float32Array[] = [], V: Float32Array[] = [];
    for (let layer = 0; layer < c.nLayers; layer++) {
      const p = `blk.${layer}.`;
      // One read at a time: FileSource reads are seek + read on one handle.
      const ws: Float32Array[] = [];
      for (
        const n of [
          "attn_norm",
          "attn_q",
          "attn_k",
          "attn_v",
          "attn_output",
          "ffn_norm",
          "ffn_gate",
          "ffn_up",
          "ffn_down",
        ]
      ) ws.push(await w(`${p}${n}.weight`));
      const [an, wq, wk, wv, wo, fn, gate, up, down] = ws;
      const k = new Float32Array(nTokens * kvDim);
      const v = new Float32Array(nTokens * kvDim);
      const qs: Float32Array[] = [];
      xs.forEach((x, pos) => {
        const h = rmsnorm(x, an, c.normEps);
        const q = rope(
          matvec(wq, h),
          c.nHeads,
          hd,
          pos,
          c.ropeTheta,
          c.ropeLayout,
        );
        k.set(
          rope(matvec(wk, h), c.nKvHeads, hd, pos, c.ropeTheta, c.ropeLayout),
          pos * kvDim,
        );
        v.set(matvec(wv, h), pos * kvDim);
        qs.push(q);
      });
      xs.forEach((x, pos) => {
        const att = new Float32Array(c.dim);
        for (let head = 0; head < c.nHeads; head++) {
          const kvh = Math.floor(head / (c.nHeads / c.nKvHeads));
          const sc = new Float64Array(pos + 1);
          let mx = -Infinity;
          for (let j = 0; j <= pos; j++) {
            let s = 0;
            for (let d = 0; d < hd; d++) {
              s += qs[pos][head * hd + d] * k[j * kvDim + kvh * hd + d];
            }
            sc[j] = s / Math.sqrt(hd);
            mx = Math.max(mx, sc[j]);
          }
          let sum = 0;
          for (let j = 0; j <= pos; j++) sum += sc[j] = Math.exp(sc[j] - mx);
          for (let j = 0; j <= pos; j++) {
            for (let d = 0; d < hd; d++) {
              att[head * hd + d] += sc[j] / sum * v[j * kvDim + kvh * hd + d];
            }
          }
        }
        const o = matvec(wo, att);
        for (let i = 0; i < c.dim; i++) x[i] += o[i];
        const h = rmsnorm(x, fn, c.normEps);
        const g = matvec(gate, h), u = matvec(up, h);
        for (let i = 0; i < g.length; i++) {
          g[i] = g[i] / (1 + Math.exp(-g[i])) * u[i];
        }
        const f = matvec(down, g);
        for (let i = 0; i < c.dim; i++) x[i] += f[i];
      });
      K.push(k);
      V.push(v);
    }
    return { K, V, kvDim, headDim: hd, nTokens };
  } finally {
    m.close();
  }
}

Deno.test({
  name: "real K/V of the Austen model: NMSE per group shape",
  ignore: !hasShared("models/austen-5m-f32.gguf") ||
    !hasShared("data/northanger-abbey.txt"),
  async fn() {
    const { K, V, kvDim, headDim, nTokens } = await austenKV(128);
    const shapes: [string, Int8Layout][] = [
      ["perChannel G=16", { groupShape: "perChannel", groupTokens: 16 }],
      ["perChannel G=32", { groupShape: "perChannel", groupTokens: 32 }],
      ["perChannel G=64", { groupShape: "perChannel", groupTokens: 64 }],
      ["perChannel G=128", { groupShape: "perChannel", groupTokens: 128 }],
      [`perToken D=${headDim} (head)`, { groupShape: "perToken", headDim }],
      [`perToken D=${kvDim} (token)`, {
        groupShape: "perToken",
        headDim: kvDim,
      }],
      ["contiguous N=all", {
        groupShape: "contiguous",
        groupSize: nTokens * kvDim,
      }],
    ];
    const result: Record<
      string,
      { k: number; v: number; kMax: number; vMax: number }
    > = {};
    const rows: string[] = [];
    for (const [label, shape] of shapes) {
      const l = { ...shape, tokens: nTokens, channels: kvDim };
      const stat = (xs: Float32Array[]) => {
        let mean = 0, max = 0;
        for (const x of xs) {
          const y = dequantizeInt8(quantizeInt8(x, l), l);
          let num = 0, den = 0;
          for (let i = 0; i < x.length; i++) {
            num += (x[i] - y[i]) ** 2;
            den += x[i] ** 2;
          }
          mean += num / den / xs.length;
          max = Math.max(max, num / den);
        }
        return [mean, max];
      };
      const [k, kMax] = stat(K), [v, vMax] = stat(V);
      result[label] = { k, v, kMax, vMax };
      const bits = 8 + 64 * int8GroupCount(l) / (nTokens * kvDim);
      rows.push(
        `${label.padEnd(24)} ${bits.toFixed(2).padStart(6)} ${
          [k, kMax, v, vMax].map((e) => e.toExponential(2).padStart(11)).join(
            "",
          )
        }`,
      );
    }
    // Outlier channels: ratio of the largest channel RMS to the median.
    const ratio = (xs: Float32Array[]) =>
      xs.map((x) => {
        const rms = Array.from({ length: kvDim }, (_, ch) => {
          let s = 0;
          for (let t = 0; t < nTokens; t++) s += x[t * kvDim + ch] ** 2;
          return Math.sqrt(s / nTokens);
        }).sort((a, b) => a - b);
        return (rms[kvDim - 1] / rms[kvDim >> 1]).toFixed(1);
      }).join(" ");
    console.log(
      `\nAusten model, ${nTokens} tokens of Northanger Abbey, ${K.length} layers, K after RoPE; NMSE mean and worst layer\n` +
        `max/median channel RMS per layer: K ${ratio(K)}; V ${ratio(V)}\n` +
        `${"group shape".padEnd(24)} ${"bits".padStart(6)}${
          ["K mean", "K worst", "V mean", "V worst"].map((s) => s.padStart(11))
            .join("")
        }\n${rows.join("\n")}`,
    );
    // The shapes alisa uses.
    const key = `perChannel G=${KEY_GROUP.groupTokens}`;
    const value = `perToken D=${headDim} (head)`;
    assertEquals(VALUE_GROUP.groupShape, "perToken");
    assertLess(result[key].kMax, 1e-4);
    assertLess(result[value].vMax, 1e-4);
    assertLess(result[key].k, result[value].k);
  },
});
