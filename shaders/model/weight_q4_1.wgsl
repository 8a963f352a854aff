// Weight access for Q4_1 matrices, kept as ggml's blocks (weight_blocks.wgsl):
// 32 elements in 20 bytes (so every block is 4-aligned),
//   +0  d: f16
//   +2  m: f16
//   +4  qs: 16 bytes; element j < 16 is the low nibble of qs[j], element
//       j + 16 the high nibble
// value = q * d + m. `cols` is a multiple of 32.

// Elements k .. k+3 of row r (k a multiple of 4): one u32 of nibbles.
fn w_get4(r: u32, k: u32, cols: u32) -> vec4f {
  let i = (r * (cols >> 5u) + (k >> 5u)) * 5u; // word of the block
  let e = k & 31u;
  let dm = unpack2x16float(w[i]);
  let q = (w[i + 1u + ((e & 15u) >> 2u)] >> ((e >> 4u) << 2u)) & 0x0f0f0f0fu;
  return vec4f(wb_bytes4(q)) * dm.x + dm.y;
}

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  return w_get4(r, k & ~3u, cols)[k & 3u];
}
