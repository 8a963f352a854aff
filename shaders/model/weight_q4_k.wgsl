// Weight access for Q4_K matrices, kept as ggml's blocks (weight_blocks.wgsl):
// 256 elements in 144 bytes (so every block is 4-aligned), 8 sub-blocks
// of 32,
//   +0   d: f16
//   +2   dmin: f16
//   +4   scales: 12 bytes, 8 x (6-bit scale, 6-bit min) (wb_scale_min_k4)
//   +16  qs: 128 bytes; sub-blocks 2c and 2c + 1 are the low and high
//        nibbles of qs[32c .. 32c + 32]
// value = d * scale * q - dmin * min. `cols` is a multiple of 256.

// Elements k .. k+3 of row r (k a multiple of 4): one sub-block's scale
// and min, one u32 of nibbles.
fn w_get4(r: u32, k: u32, cols: u32) -> vec4f {
  let i = (r * (cols >> 8u) + (k >> 8u)) * 36u; // word of the block
  let e = k & 255u;
  let sb = e >> 5u;
  let f = wb_k4_factors(i, sb);
  let q = (w[i + 4u + ((sb >> 1u) << 3u) + ((e & 31u) >> 2u)] >> ((sb & 1u) << 2u)) &
    0x0f0f0f0fu;
  return f.x * vec4f(wb_bytes4(q)) - f.y;
}

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  return w_get4(r, k & ~3u, cols)[k & 3u];
}

// Elements k .. k+31 of row r (k a multiple of 32): one sub-block, its
// scale and min found once, eight words of nibbles. Equal to eight w_get4.
fn w_get32(r: u32, k: u32, cols: u32) -> array<vec4f, 8> {
  let i = (r * (cols >> 8u) + (k >> 8u)) * 36u;
  let sb = (k & 255u) >> 5u;
  let f = wb_k4_factors(i, sb);
  let base = i + 4u + ((sb >> 1u) << 3u);
  let sh = (sb & 1u) << 2u;
  var o: array<vec4f, 8>;
  for (var j = 0u; j < 8u; j++) {
    o[j] = f.x * vec4f(wb_bytes4((w[base + j] >> sh) & 0x0f0f0f0fu)) - f.y;
  }
  return o;
}
