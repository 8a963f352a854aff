// Per-head RMSNorm in place: v[t, h, :] = v[t, h, :] / sqrt(mean(v[t, h, :]^2)
// + eps) * weight, over (n_tokens, n_heads, head_dim) (Qwen3's and Gemma 3's
// Q/K norms, before RoPE). One workgroup per (token, head).

struct Params {
  head_dim: u32,  // elements per head
  eps: f32,
  n_heads: u32,
  _pad: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;  // (n_tokens, n_heads, head_dim)
@group(0) @binding(5) var<storage, read> weight: array<f32>;   // (head_dim,)

var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  let live = t < step.n_tokens;
  let base = (t * p.n_heads + wg.y) * p.head_dim;
  var ss = 0.0;
  if (live) {
    for (var k = li; k < p.head_dim; k += WG) {
      let x = v[base + k];
      ss += x * x;
    }
  }
  sums[li] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { sums[li] += sums[li + s]; }
    workgroupBarrier();
  }
  if (!live) { return; }
  let scale = 1.0 / sqrt(sums[0] / f32(p.head_dim) + p.eps);
  for (var k = li; k < p.head_dim; k += WG) {
    v[base + k] = v[base + k] * scale * weight[k];
  }
}
