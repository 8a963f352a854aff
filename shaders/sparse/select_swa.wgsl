// SWA selection (one workgroup per step token): the k most recent
// positions [n-k, n) plus the k positions of [0, n-k) with the highest
// score S (ties: smaller position; S <= 0, which a running sum can reach
// by cancellation, ranks as 0), as one ascending list per sequence shared
// by the layer's heads (topk.wgsl), written to sel[slot, ..] and
// sel_n[slot]. SWA's choice for a step depends only on S after the
// previous step, so it runs one step ahead: at the end of a decode step
// (or after the prefill's seed) with `next` = 1, choosing for n =
// kv_len + 1, which lets a tiered KV store fetch the chosen tokens before
// the step that reads them. Each slot appears at most once in the table.

struct Params {
  ctx: u32,   // positions per slot (elements of S's last axis and of a list)
  next: u32,  // 1: choose for the token's next step (n = kv_len + 1)
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> score: array<f32>; // S: (slots, ctx)

var<private> s_base: u32;
var<workgroup> n_sh: u32;

fn topk_key(q: u32) -> u32 {
  let s = score[s_base + q];
  return select(bitcast<u32>(s), 0u, s <= 0.0);
}
fn topk_eligible(q: u32) -> bool { return true; }
fn topk_drop(q: u32) {}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (li == 0u) {
    // A token at the last position has no next step: n stays within ctx.
    n_sh = select(0u, min(step.tok[t].kv_len + p.next, p.ctx), t < step.n_tokens);
  }
  let n = workgroupUniformLoad(&n_sh); // uniform: the branches below hold barriers
  if (n == 0u) { return; }
  let slot = step.tok[t].slot;
  s_base = slot * p.ctx;
  let k = budget_k(n);
  let out = slot * p.ctx;
  let m = select(0u, n - k, n > k); // older candidates [0, m)
  if (m <= k) {
    // Everything fits: attend all of [0, n).
    for (var j = li; j < n; j += WG) { sel[out + j] = j; }
    if (li == 0u) { sel_n[slot] = n; }
    return;
  }
  let chosen = topk_select(li, m, k, out);
  // Then the local window [m, n) after the k global positions.
  for (var j = li; j < k; j += WG) { sel[out + chosen + j] = m + j; }
  if (li == 0u) { sel_n[slot] = chosen + k; }
}
