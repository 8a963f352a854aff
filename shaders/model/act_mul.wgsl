// h = act(gate) * up, elementwise over (n_tokens, ffn_dim): the gated MLP.
// ACT 0: SiLU, x / (1 + exp(-x)) (Llama, Qwen, Phi-3); 1: GELU with the
// tanh approximation, x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Gemma).

struct Params {
  width: u32,  // ffn_dim (elements per token)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 64;
override ACT: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read_write> up: array<f32>; // becomes h

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= step.n_tokens * p.width) { return; }
  let g = gate[i];
  var a: f32;
  if (ACT == 1u) {
    a = 0.5 * g * (1.0 + safe_tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)));
  } else {
    a = g / (1.0 + exp(-g));
  }
  up[i] = a * up[i];
}
