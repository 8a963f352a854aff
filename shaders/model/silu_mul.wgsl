// h = silu(gate) * up, elementwise over (n_tokens, ffn_dim).

struct Params {
  width: u32,  // ffn_dim (elements per token)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read_write> up: array<f32>; // becomes h

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= step.n_tokens * p.width) { return; }
  let g = gate[i];
  up[i] = g / (1.0 + exp(-g)) * up[i];
}
