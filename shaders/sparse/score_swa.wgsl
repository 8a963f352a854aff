// After attention, per token of the step (one workgroup each): the row
// w_q[p] = sum over heads (in head order) of the weight position p got
// goes into the slot's ring of score rows, stored sparsely as the
// attended positions and their weights (a decode row has at most 2k
// entries, a prefill row q + 1); on decode steps the running window sum
// S is updated, position by position in this order:
//   S[q] = 0 (the new position), S[p] += w_q[p] for the row's entries,
//   then S[p] -= w_old[p] for the entries of the row leaving the window.
// (src/sparse/spec.ts has the rules; prefill rows seed S in seed_swa.wgsl.)
// A prefill step may hold more than `ring` positions of one sequence:
// only the rows no later token of the step overwrites are written.

struct Params {
  ctx: u32,      // elements per row of att
  _pad: u32,
  ring: u32,     // rows kept per slot (at least the largest k + 1)
  cap: u32,      // entries per row (at least the largest row)
}

override WG: u32 = 64;
// Heads per token: a pipeline constant, not a uniform. A loop bounded by a
// uniform alone makes Mesa's lavapipe (22.x) compile a variant of the
// shader with the value inlined at every dispatch and never free it (~1.6
// MB per SWA decode step); see step_policy() in policy.wgsl.
override N_HEADS: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> att: array<f32>;             // (tokens, heads, ctx)
@group(0) @binding(3) var<storage, read_write> score: array<f32>;     // S: (slots, ctx)
// (slots, ring, 1 + cap): entry 0 the row's count, then its positions
@group(0) @binding(4) var<storage, read_write> ring_pos: array<u32>;
// (slots, ring, 1 + cap): entry 0 unused, then the weights
@group(0) @binding(5) var<storage, read_write> ring_w: array<f32>;

var<workgroup> last_sh: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  let live = t < step.n_tokens;
  var info = TokInfo(0u, 0u, 0u, 0u);
  if (live) { info = step.tok[t]; }
  if (li == 0u) {
    // The last position of this token's sequence in the step.
    var last = info.pos;
    for (var u = t + 1u; u < step.n_tokens; u++) {
      if (step.tok[u].slot == info.slot) { last = max(last, step.tok[u].pos); }
    }
    last_sh = last;
  }
  let last = workgroupUniformLoad(&last_sh);
  let q = info.pos;
  let n = info.kv_len;
  let slot = info.slot;
  let stride = p.cap + 1u;
  let row = (slot * p.ring + q % p.ring) * stride;
  var cnt = 0u;
  if (live) { cnt = att_count(t, slot, 0u, N_HEADS, n); }
  if (live && q + p.ring > last) {
    for (var j = li; j < cnt; j += WG) {
      var w = 0.0;
      for (var h = 0u; h < N_HEADS; h++) { w += att[(t * N_HEADS + h) * p.ctx + j]; }
      ring_pos[row + 1u + j] = att_pos(t, slot, 0u, N_HEADS, p.ctx, n, j);
      ring_w[row + 1u + j] = w;
    }
    if (li == 0u) { ring_pos[row] = cnt; }
  }
  storageBarrier();
  workgroupBarrier();
  if (!live || !sparse_step()) { return; }

  let sbase = slot * p.ctx;
  if (li == 0u) { score[sbase + q] = 0.0; }
  storageBarrier();
  workgroupBarrier();
  for (var j = li; j < cnt; j += WG) {
    let x = ring_pos[row + 1u + j];
    score[sbase + x] = score[sbase + x] + ring_w[row + 1u + j];
  }
  storageBarrier();
  workgroupBarrier();
  let k = budget_k(n);
  if (k == budget_k(n + 1u) && q >= k) {
    // The row of query q - k leaves the window.
    let old = (slot * p.ring + (q - k) % p.ring) * stride;
    let cnt_old = ring_pos[old];
    for (var j = li; j < cnt_old; j += WG) {
      let x = ring_pos[old + 1u + j];
      score[sbase + x] = score[sbase + x] - ring_w[old + 1u + j];
    }
  }
}
