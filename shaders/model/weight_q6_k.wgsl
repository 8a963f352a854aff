// Weight access for Q6_K matrices, kept as ggml's blocks (weight_blocks.wgsl):
// 256 elements in 210 bytes (blocks 2-aligned), two halves of 128, each
// four quarters of 32; element e = 128 n + 32 c + l (l < 32) has
//   +0    ql: 128 bytes; low 4 bits: ql[64n + l + 32 (c & 1)], the low
//         nibble for c < 2, the high one for c >= 2
//   +128  qh: 64 bytes; high 2 bits: bits 2c, 2c + 1 of qh[32n + l]
//   +192  scales: 16 x i8; element e's is scales[8n + 2c + l / 16]
//   +208  d: f16
// value = d * scale * (q - 32). `cols` is a multiple of 256.

// Elements k .. k+3 of row r (k a multiple of 4): one scale, one u32 of
// low bits, one of high bits.
fn w_get4(r: u32, k: u32, cols: u32) -> vec4f {
  let o = (r * (cols >> 8u) + (k >> 8u)) * 210u;
  let e = k & 255u;
  let n = e >> 7u;
  let c = (e >> 5u) & 3u;
  let l = e & 31u;
  let lo = (wb_u32(o + (n << 6u) + l + ((c & 1u) << 5u)) >> ((c >> 1u) << 2u)) &
    0x0f0f0f0fu;
  let hi = ((wb_u32(o + 128u + (n << 5u) + l) >> (c << 1u)) & 0x03030303u) << 4u;
  let sc = f32(i32(wb_u8(o + 192u + (n << 3u) + (c << 1u) + (l >> 4u)) << 24u) >> 24u);
  return wb_f16(o + 208u) * sc * (vec4f(wb_bytes4(lo | hi)) - 32.0);
}

fn w_get(r: u32, k: u32, cols: u32) -> f32 {
  return w_get4(r, k & ~3u, cols)[k & 3u];
}

// Elements k .. k+31 of row r (k a multiple of 32): one quarter, its two
// scales and d found once. Equal to eight w_get4.
fn w_get32(r: u32, k: u32, cols: u32) -> array<vec4f, 8> {
  let o = (r * (cols >> 8u) + (k >> 8u)) * 210u;
  let e = k & 255u;
  let n = e >> 7u;
  let c = (e >> 5u) & 3u;
  let d = wb_f16(o + 208u);
  let so = o + 192u + (n << 3u) + (c << 1u);
  let s0 = d * f32(i32(wb_u8(so) << 24u) >> 24u);
  let s1 = d * f32(i32(wb_u8(so + 1u) << 24u) >> 24u);
  let ql = o + (n << 6u) + ((c & 1u) << 5u);
  let shl = (c >> 1u) << 2u;
  let qh = o + 128u + (n << 5u);
  let shh = c << 1u;
  var out: array<vec4f, 8>;
  for (var j = 0u; j < 8u; j++) {
    let lo = (wb_u32(ql + 4u * j) >> shl) & 0x0f0f0f0fu;
    let hi = ((wb_u32(qh + 4u * j) >> shh) & 0x03030303u) << 4u;
    out[j] = select(s1, s0, j < 4u) * (vec4f(wb_bytes4(lo | hi)) - 32.0);
  }
  return out;
}
