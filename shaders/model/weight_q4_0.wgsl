// Weight access for Q4_0 matrices, kept as ggml's blocks (weight_blocks.wgsl):
// 32 elements in 18 bytes,
//   +0  d: f16
//   +2  qs: 16 bytes; element j < 16 is the low nibble of qs[j], element
//       j + 16 the high nibble
// value = (q - 8) * d. `cols` is a multiple of 32.

// Elements k .. k+3 of row r (k a multiple of 4): one u32 of nibbles.
fn w_get4(r: u32, k: u32, cols: u32) -> vec4f {
  let o = (r * (cols >> 5u) + (k >> 5u)) * 18u;
  let e = k & 31u;
  let q = (wb_u32(o + 2u + (e & 15u)) >> ((e >> 4u) << 2u)) & 0x0f0f0f0fu;
  return (vec4f(wb_bytes4(q)) - 8.0) * wb_f16(o);
}

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  return w_get4(r, k & ~3u, cols)[k & 3u];
}

// Elements k .. k+31 of row r (k a multiple of 32): one block, d read
// once. Equal to eight w_get4.
fn w_get32(r: u32, k: u32, cols: u32) -> array<vec4f, 8> {
  let o = (r * (cols >> 5u) + (k >> 5u)) * 18u;
  let d = wb_f16(o);
  var out: array<vec4f, 8>;
  for (var j = 0u; j < 8u; j++) {
    let q = (wb_u32(o + 2u + ((j & 3u) << 2u)) >> ((j >> 2u) << 2u)) & 0x0f0f0f0fu;
    out[j] = (vec4f(wb_bytes4(q)) - 8.0) * d;
  }
  return out;
}
