// After attention, per token of the step (one workgroup each): the row
// w_q[p] = sum over heads (in head order) of the weight position p got
// (0 where not attended) goes into the slot's ring of score rows; on
// decode steps the running window sum S is updated:
//   S[p] = S[p] + w_q[p], then minus the row leaving the window.
// (src/sparse/spec.ts has the rules; prefill rows seed S in seed_swa.wgsl.)

struct Params {
  ctx: u32,      // positions per slot
  n_heads: u32,
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> att: array<f32>;             // (tokens, heads, ctx)
@group(0) @binding(3) var<storage, read_write> score: array<f32>;     // S: (slots, ctx)
@group(0) @binding(4) var<storage, read_write> rows: array<f32>;      // (slots, ring, ctx)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  let live = t < step.n_tokens;
  var info = TokInfo(0u, 0u, 0u, 0u);
  if (live) { info = step.tok[t]; }
  let q = info.pos;
  let n = info.kv_len;
  let row = (info.slot * pol.ring + q % pol.ring) * p.ctx;
  var cnt = 0u;
  if (live) { cnt = att_count(t, 0u, p.n_heads, n); }

  for (var x = li; x < n; x += WG) { rows[row + x] = 0.0; }
  storageBarrier();
  workgroupBarrier();
  for (var j = li; j < cnt; j += WG) {
    var w = 0.0;
    for (var h = 0u; h < p.n_heads; h++) { w += att[(t * p.n_heads + h) * p.ctx + j]; }
    rows[row + att_pos(t, 0u, p.n_heads, p.ctx, n, j)] = w;
  }
  storageBarrier();
  workgroupBarrier();
  if (!live || !sparse_step()) { return; }

  let k = budget_k(n);
  let leave = k == budget_k(n + 1u) && q >= k;
  let old_q = q - select(0u, k, leave);
  let old_row = (info.slot * pol.ring + old_q % pol.ring) * p.ctx;
  let sbase = info.slot * p.ctx;
  for (var x = li; x < n; x += WG) {
    var s = select(score[sbase + x], 0.0, x == q) + rows[row + x];
    if (leave && x <= old_q) { s = s - rows[old_row + x]; }
    score[sbase + x] = s;
  }
}
