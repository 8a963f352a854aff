// After a prefill of P tokens (the step table lists one token per slot
// with pos = P, kv_len = P), S[p] = the sum of the score rows of the last
// k(P + 1) prompt queries, added in query order (rows hold positions
// <= their query only).

struct Params {
  ctx: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(3) var<storage, read_write> score: array<f32>; // S: (slots, ctx)
@group(0) @binding(4) var<storage, read> rows: array<f32>;        // (slots, ring, ctx)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (t >= step.n_tokens) { return; }
  let info = step.tok[t];
  let P = info.kv_len;
  let k = budget_k(P + 1u);
  let first = select(0u, P - k, P > k);
  for (var x = li; x < P; x += WG) {
    var s = 0.0;
    for (var q = first; q < P; q++) {
      if (x <= q) { s += rows[(info.slot * pol.ring + q % pol.ring) * p.ctx + x]; }
    }
    score[info.slot * p.ctx + x] = s;
  }
}
