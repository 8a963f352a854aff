// Writes the step's K and V rows into the KV cache at each token's
// (slot, pos). The cache holds f16, two per u32, laid out
// (slots, ctx, kv_dim) with kv_dim = n_kv_heads * head_dim (even).

struct Params {
  kv_dim: u32,  // elements per token
  ctx: u32,     // positions per slot
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> k: array<f32>;          // (n_tokens, kv_dim)
@group(0) @binding(3) var<storage, read_write> k_cache: array<u32>; // (slots, ctx, kv_dim / 2)
@group(0) @binding(4) var<storage, read> v: array<f32>;          // (n_tokens, kv_dim)
@group(0) @binding(5) var<storage, read_write> v_cache: array<u32>; // (slots, ctx, kv_dim / 2)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (t >= step.n_tokens) { return; }
  let info = step.tok[t];
  let dst = (info.slot * p.ctx + info.pos) * (p.kv_dim / 2u);
  for (var j = li; j < p.kv_dim / 2u; j += WG) {
    let s = t * p.kv_dim + 2u * j;
    k_cache[dst + j] = pack2x16float(vec2f(k[s], k[s + 1u]));
    v_cache[dst + j] = pack2x16float(vec2f(v[s], v[s + 1u]));
  }
}
