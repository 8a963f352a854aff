// After a prefill of P tokens (the step table lists one token per slot
// with pos = P, kv_len = P), S[p] = the sum of the score rows of the last
// k(P + 1) prompt queries, added in query order (a row holds positions
// <= its query only); S is 0 elsewhere in [0, P).

struct Params {
  ctx: u32,   // positions per slot
  ring: u32,  // rows kept per slot
  cap: u32,   // entries per row
  _pad: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(3) var<storage, read_write> score: array<f32>; // S: (slots, ctx)
@group(0) @binding(4) var<storage, read> ring_pos: array<u32>;    // (slots, ring, 1 + cap)
@group(0) @binding(5) var<storage, read> ring_w: array<f32>;      // (slots, ring, 1 + cap)

var<workgroup> n_sh: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (li == 0u) { n_sh = select(0u, step.tok[t].kv_len, t < step.n_tokens); }
  let P = workgroupUniformLoad(&n_sh);
  if (P == 0u) { return; }
  let slot = step.tok[t].slot;
  let sbase = slot * p.ctx;
  let k = budget_k(P + 1u);
  let first = select(0u, P - k, P > k);
  for (var x = li; x < P; x += WG) { score[sbase + x] = 0.0; }
  storageBarrier();
  workgroupBarrier();
  for (var q = first; q < P; q++) {
    let row = (slot * p.ring + q % p.ring) * (p.cap + 1u);
    let cnt = ring_pos[row];
    for (var j = li; j < cnt; j += WG) {
      let x = ring_pos[row + 1u + j];
      score[sbase + x] = score[sbase + x] + ring_w[row + 1u + j];
    }
    storageBarrier();
    workgroupBarrier();
  }
}
