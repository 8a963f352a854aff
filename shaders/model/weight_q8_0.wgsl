// Weight access for Q8_0 matrices, kept quantized on the GPU: ggml's
// 34-byte blocks (f16 d, 32 x i8 q) split at upload into
//   w:  the quants, 8 u32 per block, (rows * cols / 4,)
//   ws: the scales d, two f16 packed per u32, (rows * cols / 32 / 2,)
// value = d * q. `cols` is a multiple of 32.
@group(0) @binding(8) var<storage, read> w: array<u32>;
@group(0) @binding(9) var<storage, read> ws: array<u32>;

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  let e = r * cols + k;
  let b = e >> 5u;
  let q = extractBits(i32(w[e >> 2u]), (e & 3u) * 8u, 8u);
  let d = unpack2x16float(ws[b >> 1u])[b & 1u];
  return f32(q) * d;
}

// Elements k .. k+3 of row r (k a multiple of 4): one word of quants.
fn w_get4(r: u32, k: u32, cols: u32) -> vec4f {
  let e = r * cols + k;
  let b = e >> 5u;
  let word = i32(w[e >> 2u]);
  let q = vec4i(
    extractBits(word, 0u, 8u),
    extractBits(word, 8u, 8u),
    extractBits(word, 16u, 8u),
    extractBits(word, 24u, 8u),
  );
  return vec4f(q) * unpack2x16float(ws[b >> 1u])[b & 1u];
}
