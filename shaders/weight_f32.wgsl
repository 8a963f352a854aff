// Weight access for f32 matrices: (rows, cols) row-major.
@group(0) @binding(8) var<storage, read> w: array<f32>;

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  return w[r * cols + k];
}
