// Weight access for f16 matrices: (rows, cols) row-major, two f16 packed
// per u32 (element e in word e/2, low half first), so no shader-f16 needed.
@group(0) @binding(8) var<storage, read> w: array<u32>;

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  let e = r * cols + k;
  let pair = unpack2x16float(w[e >> 1u]);
  return pair[e & 1u];
}

// Elements k .. k+3 of row r (k a multiple of 4, cols a multiple of 4).
fn w_get4(r: u32, k: u32, cols: u32) -> vec4f {
  let i = (r * cols + k) >> 1u;
  return vec4f(unpack2x16float(w[i]), unpack2x16float(w[i + 1u]));
}
