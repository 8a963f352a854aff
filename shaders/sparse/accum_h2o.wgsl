// After attention: A[slot, h, p] += the weight head h gave p, for the
// step's tokens in order (one workgroup per head, so prefill tokens of a
// sequence add in query order). A token's own position starts at A = 0,
// kept = 1.

struct Params {
  ctx: u32,
  n_heads: u32,
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> att: array<f32>;        // (tokens, heads, ctx)
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;  // A: (slots, heads, ctx)
@group(0) @binding(4) var<storage, read_write> kept: array<u32>; // (slots, heads, ctx)

var<workgroup> n_sh: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let h = wg.x;
  if (li == 0u) { n_sh = step.n_tokens; }
  let n_tokens = workgroupUniformLoad(&n_sh);
  for (var t = 0u; t < n_tokens; t++) {
    let info = step.tok[t];
    let base = (info.slot * p.n_heads + h) * p.ctx;
    if (li == 0u) {
      acc[base + info.pos] = 0.0;
      kept[base + info.pos] = 1u;
    }
    storageBarrier();
    workgroupBarrier();
    let cnt = att_count(t, info.slot, h, p.n_heads, info.kv_len);
    for (var j = li; j < cnt; j += WG) {
      let q = att_pos(t, info.slot, h, p.n_heads, p.ctx, info.kv_len, j);
      acc[base + q] += att[(t * p.n_heads + h) * p.ctx + j];
    }
    storageBarrier();
    workgroupBarrier();
  }
}
