/**
 * Dequantization against an independent reference: llama.cpp's own `gguf`
 * Python package wrote `tests/fixtures/quant/*.gguf` (its quantizers for the
 * legacy types, random blocks with sane scales for the K-quants) and its
 * numpy dequantizer wrote the expected values (`make_quant_fixtures.py`).
 */
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { GgufFile } from "../src/formats/gguf.ts";
import { compare, f16ToF32, FIXTURES_DIR } from "./_shared.ts";

interface RefTensor {
  name: string;
  ggml_type: string;
  shape: number[];
  made: "quantized" | "random_blocks";
  ref_offset: number;
  ref_count: number;
  src_offset: number | null;
  src_count: number | null;
  max_abs_err: number;
  nmse: number;
}
const dir = `${FIXTURES_DIR}/quant`;
const manifest = JSON.parse(await Deno.readTextFile(`${dir}/quant-ref.json`));
const refBin = await Deno.readFile(`${dir}/quant-ref.bin`);
const f32At = (offset: number, count: number) =>
  new Float32Array(refBin.buffer.slice(offset, offset + count * 4));

for (
  const file of manifest.files as {
    file: string;
    gguf_version: number;
    tensors: RefTensor[];
  }[]
) {
  Deno.test(`${file.file}: every tensor dequantizes to gguf-py's values bit for bit`, async () => {
    const g = await GgufFile.open(`${dir}/${file.file}`);
    try {
      assertEquals(g.version, file.gguf_version);
      assertEquals(
        g.tensors.map((t) => t.name),
        file.tensors.map((t) => t.name),
      );
      for (const t of file.tensors) {
        const info = g.tensor(t.name);
        assertEquals(info.type, t.ggml_type);
        assertEquals(info.shape, t.shape);
        const got = await g.read(t.name, "f32") as Float32Array;
        const want = f32At(t.ref_offset, t.ref_count);
        assertEquals(got.length, want.length);
        for (let i = 0; i < want.length; i++) {
          if (!Object.is(got[i], want[i])) {
            throw new Error(
              `${t.name} (${t.ggml_type}) element ${i}: got ${
                got[i]
              }, gguf-py says ${want[i]}`,
            );
          }
        }
        // The error against the original values is the type's, not ours.
        if (t.src_offset !== null) {
          const src = f32At(t.src_offset, t.src_count!);
          const { maxAbs, nmse } = compare(got, src);
          assertLessOrEqual(maxAbs, t.max_abs_err * (1 + 1e-6) + 1e-12, t.name);
          assertLessOrEqual(nmse, t.nmse * (1 + 1e-6) + 1e-15, t.name);
        }
        // f16 output is the f32 output rounded to nearest f16.
        const h = await g.read(t.name, "f16") as Uint16Array;
        for (let i = 0; i < want.length; i++) {
          const back = f16ToF32(h[i]);
          // Half an f16 ulp: 2^-11 relative, 2^-25 absolute in the subnormal range.
          const bound = Math.max(Math.abs(want[i]) * 2 ** -11, 2 ** -25);
          assert(
            Math.abs(back - want[i]) <= bound,
            `${t.name}[${i}] f16 ${back} vs ${want[i]}`,
          );
        }
      }
    } finally {
      g.close();
    }
  });
}

Deno.test("hand-built blocks give known values", async () => {
  const { dequantize } = await import("../src/formats/dequantize.ts");
  // Q8_0: d = 0.5 (f16 0x3800), q = -16..15.
  const q8 = new Uint8Array(34);
  q8[0] = 0x00;
  q8[1] = 0x38;
  for (let i = 0; i < 32; i++) q8[2 + i] = (i - 16) & 0xff;
  assertEquals(
    Array.from(dequantize("Q8_0", q8, 32)),
    Array.from({ length: 32 }, (_, i) => (i - 16) * 0.5),
  );
  // Q4_1: d = 1, m = -2 (f16 0xc000), nibbles j and 15-j.
  const q41 = new Uint8Array(20);
  q41.set([0x00, 0x3c, 0x00, 0xc0]);
  for (let j = 0; j < 16; j++) q41[4 + j] = j | ((15 - j) << 4);
  const y = dequantize("Q4_1", q41, 32);
  for (let j = 0; j < 16; j++) {
    assertEquals(y[j], j - 2);
    assertEquals(y[j + 16], 15 - j - 2);
  }
  // BF16: 1.0 is 0x3f80; -2.5 is 0xc020.
  assertEquals(
    Array.from(dequantize("BF16", new Uint8Array([0x80, 0x3f, 0x20, 0xc0]), 2)),
    [1, -2.5],
  );
  // Q4_K with d = 1, dmin = 0, every 6-bit scale 1 and every nibble 3 -> 3.
  const q4k = new Uint8Array(144);
  q4k.set([0x00, 0x3c, 0x00, 0x00]);
  for (let i = 0; i < 4; i++) q4k[4 + i] = 1; // scales 0..3
  for (let i = 8; i < 12; i++) q4k[4 + i] = 1; // scales 4..7 low nibbles
  q4k.fill(0x33, 16);
  assert(Array.from(dequantize("Q4_K", q4k, 256)).every((v) => v === 3));
});
