// y[t, i] += bias[i] over (n_tokens, width): the Q/K/V biases of Qwen2.

struct Params {
  width: u32,  // elements per token
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // (n_tokens, width)
@group(0) @binding(5) var<storage, read> bias: array<f32>;     // (width,)

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= step.n_tokens * p.width) { return; }
  y[i] += bias[i % p.width];
}
