// Writes the step's K and V rows into the KV pool at the row the table
// gives each token's (slot, pos), as f16 pairs (K then V, kv_access.wgsl).
// With `capture` = 1 the same words also go to row (layer, t) of a
// capture buffer that the step reads back (the host tier's copy).

struct Params {
  kv_dim: u32,    // elements per token of K (and of V), even
  capture: u32,   // 1: also write cap[cap_base + t * kv_dim ..]
  cap_base: u32,  // first word of this layer's capture rows
  _pad: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> k: array<f32>;          // (n_tokens, kv_dim)
@group(0) @binding(3) var<storage, read> v: array<f32>;          // (n_tokens, kv_dim)
@group(0) @binding(6) var<storage, read_write> cap: array<u32>;  // (layers, max tokens, kv_dim) words

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (t >= step.n_tokens) { return; }
  let info = step.tok[t];
  let row = kv_row(info.slot, info.pos);
  let half = p.kv_dim / 2u;
  for (var j = li; j < half; j += WG) {
    let s = t * p.kv_dim + 2u * j;
    let kw = pack2x16float(vec2f(k[s], k[s + 1u]));
    let vw = pack2x16float(vec2f(v[s], v[s + 1u]));
    kv_set(row, j, kw);
    kv_set(row, half + j, vw);
    if (p.capture == 1u) {
      cap[p.cap_base + t * p.kv_dim + j] = kw;
      cap[p.cap_base + t * p.kv_dim + half + j] = vw;
    }
  }
}
