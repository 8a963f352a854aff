// v = cap * tanh(v / cap) over the output rows' logits (n_out, width):
// Gemma 2's final logit soft-capping.

struct Params {
  width: u32,  // elements per row (the vocabulary)
  cap: f32,
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;  // (n_out, width)

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= step.n_out * p.width) { return; }
  v[i] = p.cap * safe_tanh(v[i] / p.cap);
}
