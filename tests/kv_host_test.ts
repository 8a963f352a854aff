/**
 * The host tier's byte accounting equals the bytes it really holds, under
 * random puts, drops, x writes and clears, INT8 and f16 (the store's
 * `host_bytes_peak` and the `hostBytes` limit rely on it); f16 rows come
 * back bit for bit, INT8 ones within the quantization error; a host budget
 * too small is a RangeError, not a crash.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { HOST_CHUNK, HostTier } from "../src/kv/host.ts";
import { rng } from "./_gpu.ts";

/** Bytes of every typed array the tier holds (through its private lists). */
function held(h: HostTier): number {
  const a = h as unknown as {
    kv: ({
      raw: Uint16Array | null;
      k: { q: Uint8Array; scale: Float32Array; zero: Float32Array } | null;
      v: { q: Uint8Array; scale: Float32Array; zero: Float32Array } | null;
      have: Uint8Array;
    } | undefined)[][];
    xs: ({
      f32: Float32Array | null;
      q: Uint8Array | null;
      scale: Float32Array | null;
      zero: Float32Array | null;
      have: Uint8Array;
    } | undefined)[][];
  };
  const block = (
    b: { q: Uint8Array; scale: Float32Array; zero: Float32Array } | null,
  ) => b ? b.q.byteLength + b.scale.byteLength + b.zero.byteLength : 0;
  let n = 0;
  for (const list of a.kv) {
    for (const c of list) {
      if (c) {
        n += (c.raw?.byteLength ?? 0) + block(c.k) + block(c.v) +
          c.have.byteLength;
      }
    }
  }
  for (const list of a.xs) {
    for (const c of list) {
      if (c) {
        n += (c.f32?.byteLength ?? 0) + (c.q?.byteLength ?? 0) +
          (c.scale?.byteLength ?? 0) + (c.zero?.byteLength ?? 0) +
          c.have.byteLength;
      }
    }
  }
  return n;
}

Deno.test("host tier: counted bytes equal held bytes under random puts, drops, x and clears (INT8 and f16); rows come back", () => {
  for (const int8 of [true, false]) {
    const d = {
      nLayers: 2,
      slots: 2,
      ctx: 128,
      kvDim: 8,
      headDim: 4,
      dim: 16,
    };
    const h = new HostTier(d, { int8 });
    const r = rng(int8 ? 7 : 8).u;
    const last = new Map<string, Uint32Array>();
    for (let it = 0; it < 4000; it++) {
      const l = Math.floor(r() * 2), s = Math.floor(r() * 2);
      const p = Math.floor(r() * 100), op = r();
      // f16 values in [0, 1) (exponent bits below 0x3c00).
      const row = new Uint32Array(8).map(() =>
        Math.floor(r() * 0x3c00) | (Math.floor(r() * 0x3c00) << 16)
      );
      if (op < 0.6) {
        h.putKv(l, s, p, row);
        last.set(`${l},${s},${p}`, row);
      } else if (op < 0.75) h.putX(l, s, p, new Float32Array(16).map(r));
      else if (op < 0.97) {
        h.dropKv(l, s, p);
        last.delete(`${l},${s},${p}`);
      } else {
        h.clear(s);
        for (const k of [...last.keys()]) {
          if (k.split(",")[1] === String(s)) last.delete(k);
        }
      }
      assertEquals(h.bytes, held(h), `${int8 ? "int8" : "f16"} op ${it}`);
    }
    // Every row still held comes back: f16 exactly, INT8 within its error.
    const out = new Uint32Array(8);
    const f16 = (w: number) => new Float16Array(new Uint16Array([w]).buffer)[0];
    for (const [k, row] of last) {
      const [l, s, p] = k.split(",").map(Number);
      assert(h.hasKv(l, s, p), k);
      h.getKv(l, s, p, out, 0);
      for (let i = 0; i < 8; i++) {
        for (const sh of [0, 16]) {
          const a = f16((out[i] >>> sh) & 0xffff),
            b = f16((row[i] >>> sh) & 0xffff);
          assert(
            int8 ? Math.abs(a - b) <= 2 / 255 : a === b,
            `${k}: ${a} vs ${b}`,
          );
        }
      }
    }
  }
});

Deno.test("host tier: a host budget too small is a RangeError naming it", () => {
  const d = { nLayers: 1, slots: 1, ctx: 64, kvDim: 8, headDim: 4, dim: 16 };
  const h = new HostTier(d, { int8: false, maxBytes: 1500 });
  h.putKv(0, 0, 0, new Uint32Array(8)); // one chunk: 32 x 8 words + flags, 1056 bytes
  assertThrows(
    () => h.putKv(0, 0, HOST_CHUNK, new Uint32Array(8)),
    RangeError,
    "host memory for KV is exhausted",
  );
});
