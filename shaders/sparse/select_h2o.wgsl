// H2O selection per decode token and head (one workgroup each): the k
// most recent positions [n-k, n) plus, of the older positions still kept,
// the k with the highest accumulated score A (ties: smaller position);
// the other older kept positions are evicted for good (topk.wgsl).

struct Params {
  ctx: u32,
  n_heads: u32,
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> acc: array<f32>;        // A: (slots, heads, ctx)
@group(0) @binding(3) var<storage, read_write> kept: array<u32>; // (slots, heads, ctx): 1 kept, 0 evicted

var<private> h_base: u32;
var<workgroup> n_sh: u32;

fn topk_key(q: u32) -> u32 { return bitcast<u32>(acc[h_base + q]); }
fn topk_eligible(q: u32) -> bool { return kept[h_base + q] == 1u; }
fn topk_drop(q: u32) { kept[h_base + q] = 0u; } // evicted for good

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  let h = wg.y;
  if (li == 0u) { n_sh = select(0u, step.tok[t].kv_len, t < step.n_tokens); }
  let n = workgroupUniformLoad(&n_sh);
  var slot = 0u;
  if (t < step.n_tokens) { slot = step.tok[t].slot; }
  h_base = (slot * p.n_heads + h) * p.ctx;
  let k = budget_k(max(n, 1u));
  let m = select(0u, n - k, n > k);
  let out = (t * p.n_heads + h) * p.ctx;
  let heavy = topk_select(li, m, k, out);
  let recent = n - m;
  for (var j = li; j < recent; j += WG) { sel[out + heavy + j] = m + j; }
  if (li == 0u && t < step.n_tokens) { sel_n[t * p.n_heads + h] = heavy + recent; }
}
