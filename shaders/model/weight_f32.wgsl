// Weight access for f32 matrices: (rows, cols) row-major.
@group(0) @binding(8) var<storage, read> w: array<f32>;

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  return w[r * cols + k];
}

// Elements k .. k+3 of row r (k a multiple of 4, cols a multiple of 4).
fn w_get4(r: u32, k: u32, cols: u32) -> vec4f {
  let e = r * cols + k;
  return vec4f(w[e], w[e + 1u], w[e + 2u], w[e + 3u]);
}
