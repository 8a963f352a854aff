// Copies the step's layer inputs x (n_tokens, dim) into this layer's rows
// of a capture buffer that the step reads back: the recompute tier keeps a
// token's x to rebuild its K and V later (K = RoPE(Wk RMSNorm(x)),
// V = Wv RMSNorm(x)).

struct Params {
  dim: u32,       // elements per token
  cap_base: u32,  // first element of this layer's capture rows
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;          // (n_tokens, dim)
@group(0) @binding(3) var<storage, read_write> cap: array<f32>;  // (layers, max tokens, dim)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (t >= step.n_tokens) { return; }
  for (var e = li; e < p.dim; e += WG) {
    cap[p.cap_base + t * p.dim + e] = x[t * p.dim + e];
  }
}
