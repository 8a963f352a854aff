// Weight access for Q5_0 matrices, kept as ggml's blocks (weight_blocks.wgsl):
// 32 elements in 22 bytes,
//   +0  d: f16
//   +2  qh: u32; bit j is the 5th bit of element j
//   +6  qs: 16 bytes; element j < 16 has the low nibble of qs[j] as its
//       low 4 bits, element j + 16 the high nibble
// value = (q - 16) * d. `cols` is a multiple of 32.

// Elements k .. k+3 of row r (k a multiple of 4).
fn w_get4(r: u32, k: u32, cols: u32) -> vec4f {
  let o = (r * (cols >> 5u) + (k >> 5u)) * 22u;
  let e = k & 31u;
  let lo = (wb_u32(o + 6u + (e & 15u)) >> ((e >> 4u) << 2u)) & 0x0f0f0f0fu;
  let hi = wb_bits4(wb_u32(o + 2u) >> e) << vec4u(4u);
  return (vec4f(wb_bytes4(lo) | hi) - 16.0) * wb_f16(o);
}

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  return w_get4(r, k & ~3u, cols)[k & 3u];
}
