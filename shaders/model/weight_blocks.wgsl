// Shared by the weight types kept as raw ggml blocks (weight_q4_0 ...
// weight_q6_k): the tensor's bytes exactly as stored, blocks of BYTES
// bytes for BLOCK consecutive elements of a row, rows one after another,
// little-endian in u32 words (the part padded to 4 bytes). Row r, block b
// starts at byte (r * cols / BLOCK + b) * BYTES. Every ggml block size is
// even, so a block, and each of its 2-byte fields, starts 2-aligned.
@group(0) @binding(8) var<storage, read> w: array<u32>;

// The u16 at byte offset o (o even).
fn wb_u16(o: u32) -> u32 {
  return (w[o >> 2u] >> ((o & 2u) << 3u)) & 0xffffu;
}

// The f16 at byte offset o (o even), as f32.
fn wb_f16(o: u32) -> f32 {
  return unpack2x16float(wb_u16(o)).x;
}

// The u32 at byte offset o (o even): one word, or the halves of two.
// Branch-free (about 10% faster GEMV on llvmpipe than a branch): the next
// word is always read and, when o is 4-aligned, shifted out entirely (at
// the end of a buffer WebGPU's bounds checks make that read harmless).
fn wb_u32(o: u32) -> u32 {
  let i = o >> 2u;
  let s = (o & 2u) << 3u; // 0 or 16
  return (w[i] >> s) | ((w[i + 1u] << 16u) << (16u - s));
}

// The byte at offset o.
fn wb_u8(o: u32) -> u32 {
  return (w[o >> 2u] >> ((o & 3u) << 3u)) & 0xffu;
}

// The four bytes of x, lowest first.
fn wb_bytes4(x: u32) -> vec4u {
  return (vec4u(x) >> vec4u(0u, 8u, 16u, 24u)) & vec4u(0xffu);
}

// Bits 0..3 of x, one per lane.
fn wb_bits4(x: u32) -> vec4u {
  return (vec4u(x) >> vec4u(0u, 1u, 2u, 3u)) & vec4u(1u);
}

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the
// block's 12 scale bytes s, held in words i, i+1, i+2 (ggml's
// get_scale_min_k4): j < 4: scale s[j] & 63, min s[j+4] & 63; j >= 4:
// scale (s[j+4] & 15) | (s[j-4] >> 6) << 4, min (s[j+4] >> 4) | (s[j] >> 6) << 4.
fn wb_scale_min_k4(i: u32, j: u32) -> vec2u {
  let sh = (j & 3u) << 3u;
  let a = (w[i] >> sh) & 0xffu;        // s[j & 3]
  let b = (w[i + 1u] >> sh) & 0xffu;   // s[(j & 3) + 4]
  if (j < 4u) {
    return vec2u(a, b) & vec2u(63u);
  }
  let c = (w[i + 2u] >> sh) & 0xffu;   // s[(j & 3) + 8]
  return vec2u(c & 15u, c >> 4u) | ((vec2u(a, b) >> vec2u(6u)) << vec2u(4u));
}

// Q4_K / Q5_K: sub-block j's multiplier d * scale and offset dmin * min,
// for the block whose first word (d, dmin) is i: value = x * q - y.
fn wb_k4_factors(i: u32, j: u32) -> vec2f {
  let dm = unpack2x16float(w[i]);
  let sm = wb_scale_min_k4(i + 1u, j);
  return vec2f(dm.x * f32(sm.x), dm.y * f32(sm.y));
}
