// ids[r] = argmax over logits[r, :] (lowest index on ties), one workgroup
// per output row, so greedy decoding reads back one u32 per sequence.

struct Params {
  vocab: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> logits: array<f32>; // (n_out, vocab)
@group(0) @binding(3) var<storage, read_write> ids: array<u32>; // (n_out,)

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x;
  let live = r < step.n_out;
  var bv = -3.4e38;
  var bi = 0xffffffffu;
  if (live) {
    for (var j = li; j < p.vocab; j += WG) {
      let v = logits[r * p.vocab + j];
      if (v > bv) { bv = v; bi = j; }
    }
  }
  best_v[li] = bv;
  best_i[li] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let ov = best_v[li + s];
      let oi = best_i[li + s];
      if (ov > best_v[li] || (ov == best_v[li] && oi < best_i[li])) {
        best_v[li] = ov;
        best_i[li] = oi;
      }
    }
    workgroupBarrier();
  }
  if (li == 0u && live) { ids[r] = best_i[0]; }
}
