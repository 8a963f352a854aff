/**
 * The shared Austen model in four files (GGUF f32, f16, q8_0 and the Hugging
 * Face f16 directory) loads to the same config, and every one of its 56
 * weight tensors dequantizes to the f32 file's values within the error of
 * its stored type:
 * - F32: exactly equal.
 * - F16 / BF16: rounding to nearest, so at most half an ulp per element:
 *   |x| * 2^-11 (F16; 2^-25 absolute below the normal range) or |x| * 2^-8 (BF16).
 * - Q8_0: per 32-element block, d = amax/127 stored as f16, so
 *   |x - q*d'| <= d/2 + 127 * |d - d'| <= (amax/127) * (1/2 + 127 * 2^-11).
 * NMSE per tensor is printed and bounded by the worst case the bounds allow.
 */
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { openModelFile } from "../src/formats/model_file.ts";
import { compare, hasShared, sharedPath } from "./_shared.ts";

const VARIANTS = [
  "models/austen-5m-f16.gguf",
  "models/austen-5m-q8_0.gguf",
  "models/austen-5m-hf",
];
const REF = "models/austen-5m-f32.gguf";
const present = [REF, ...VARIANTS].every(hasShared);

function elementBound(type: string, x: Float32Array, i: number): number {
  switch (type) {
    case "F32":
      return 0;
    case "F16":
      return Math.max(Math.abs(x[i]) * 2 ** -11, 2 ** -25);
    case "BF16":
      return Math.abs(x[i]) * 2 ** -8;
    case "Q8_0": {
      const b = i - (i % 32);
      let amax = 0;
      for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[j]));
      return (amax / 127) * (0.5 + 127 * 2 ** -11) * (1 + 1e-6);
    }
    default:
      throw new Error(`no bound for ${type}`);
  }
}

Deno.test({
  name: "the four Austen files give the same config and tokenizer summary",
  ignore: !present,
  async fn() {
    const ref = await openModelFile(sharedPath(REF));
    try {
      for (const v of VARIANTS) {
        const m = await openModelFile(sharedPath(v));
        try {
          assertEquals(m.config, ref.config, v);
          assertEquals(m.tokenizer, ref.tokenizer, v);
          assertEquals(m.tensors.length, 56, v);
        } finally {
          m.close();
        }
      }
      assertEquals(ref.config.dim, 256);
      assertEquals(ref.config.nLayers, 6);
      assertEquals(ref.config.nHeads, 8);
      assertEquals(ref.config.nKvHeads, 4);
      assertEquals(ref.config.ffnDim, 768);
      assertEquals(ref.config.vocabSize, 4096);
      assertEquals(ref.config.contextLength, 1024);
    } finally {
      ref.close();
    }
  },
});

for (const v of VARIANTS) {
  Deno.test({
    name:
      `${v}: all 56 tensors dequantize within their type's error of the f32 file`,
    ignore: !present,
    async fn() {
      const ref = await openModelFile(sharedPath(REF));
      const m = await openModelFile(sharedPath(v));
      const rows: string[] = [];
      try {
        assertEquals(
          m.tensors.map((t) => t.name).sort(),
          ref.tensors.map((t) => t.name).sort(),
        );
        for (const t of m.tensors) {
          assertEquals(t.shape, ref.tensor(t.name).shape, t.name);
          const want = await ref.read(t.name) as Float32Array;
          const got = await m.read(t.name) as Float32Array;
          let worst = 0;
          let bound2 = 0; // sum of squared bounds: the largest squared error allowed
          for (let i = 0; i < want.length; i++) {
            const bound = elementBound(t.type, want, i);
            const err = Math.abs(got[i] - want[i]);
            if (!(err <= bound)) {
              throw new Error(
                `${v} ${t.name} (${t.type}) element ${i}: ${got[i]} vs f32 ${
                  want[i]
                }, error ${err} > bound ${bound}`,
              );
            }
            worst = Math.max(worst, err);
            bound2 += bound * bound;
          }
          const { nmse } = compare(got, want);
          let den = 0;
          for (const x of want) den += x * x;
          assertLessOrEqual(nmse, bound2 / den + 1e-30, t.name);
          rows.push(
            `${t.name} ${t.type} max_abs=${worst.toExponential(2)} nmse=${
              nmse.toExponential(2)
            }`,
          );
        }
      } finally {
        m.close();
        ref.close();
      }
      const q = rows.filter((r) => r.includes("attn_q.weight"));
      assert(q.length === 6);
      console.log(
        `${v}: ${rows.length} tensors, e.g.\n  ${
          rows.slice(0, 4).join("\n  ")
        }`,
      );
    },
  });
}

Deno.test({
  name: "the HF copy's permuted Q/K equal the f16 GGUF's bit for bit",
  ignore: !present,
  async fn() {
    const hf = await openModelFile(sharedPath("models/austen-5m-hf"));
    const g = await openModelFile(sharedPath("models/austen-5m-f16.gguf"));
    try {
      for (const t of g.tensors) {
        if (g.tensor(t.name).type !== "F16") continue;
        assertEquals(await hf.readRaw(t.name), await g.readRaw(t.name), t.name);
      }
    } finally {
      hf.close();
      g.close();
    }
  },
});
