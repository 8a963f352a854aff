// H2O selection per decode token and head (one workgroup each): the k
// most recent positions [n-k, n) plus, of the older positions still kept,
// the k with the highest accumulated score A (ties: smaller position);
// the other older kept positions are evicted for good. Radix select on
// the bits of A (>= 0), then an ordered scan writes the ascending list.

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

var<workgroup> count: atomic<u32>;
var<workgroup> scan: array<u32, 256>;
var<workgroup> prefix_sh: u32;
var<workgroup> n_sh: u32;
var<workgroup> kept_sh: u32;

fn exclusive_scan(li: u32, v: u32) -> u32 {
  scan[li] = v;
  workgroupBarrier();
  for (var o = 1u; o < WG; o <<= 1u) {
    var add = 0u;
    if (li >= o) { add = scan[li - o]; }
    workgroupBarrier();
    scan[li] += add;
    workgroupBarrier();
  }
  let incl = scan[li];
  workgroupBarrier();
  return incl - v;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  let h = wg.y;
  var slot = 0u;
  if (li == 0u) { n_sh = select(0u, step.tok[t].kv_len, t < step.n_tokens); }
  if (t < step.n_tokens) { slot = step.tok[t].slot; }
  let n = workgroupUniformLoad(&n_sh);
  let k = budget_k(max(n, 1u));
  let m = select(0u, n - k, n > k);
  let base = (slot * p.n_heads + h) * p.ctx;
  let out = (t * p.n_heads + h) * p.ctx;
  let chunk = (m + WG - 1u) / WG;
  let lo = min(li * chunk, m);
  let hi = min(lo + chunk, m);

  // How many older positions are still kept?
  var c = 0u;
  for (var q = lo; q < hi; q++) { c += kept[base + q]; }
  if (li == 0u) { atomicStore(&count, 0u); }
  workgroupBarrier();
  atomicAdd(&count, c);
  workgroupBarrier();
  if (li == 0u) { kept_sh = atomicLoad(&count); }
  let n_kept = workgroupUniformLoad(&kept_sh);

  var thr = 0u;
  var need_ties = 0xffffffffu; // every kept one is chosen when they fit
  if (n_kept > k) {
    var prefix = 0u;
    for (var bit = 31i; bit >= 0; bit--) {
      let cand = prefix | (1u << u32(bit));
      if (li == 0u) { atomicStore(&count, 0u); }
      workgroupBarrier();
      var cc = 0u;
      for (var q = lo; q < hi; q++) {
        if (kept[base + q] == 1u && bitcast<u32>(acc[base + q]) >= cand) { cc++; }
      }
      atomicAdd(&count, cc);
      workgroupBarrier();
      if (li == 0u) { prefix_sh = select(prefix, cand, atomicLoad(&count) >= k); }
      prefix = workgroupUniformLoad(&prefix_sh);
    }
    thr = prefix;
    var above = 0u;
    for (var q = lo; q < hi; q++) {
      if (kept[base + q] == 1u && bitcast<u32>(acc[base + q]) > thr) { above++; }
    }
    if (li == 0u) { atomicStore(&count, 0u); }
    workgroupBarrier();
    atomicAdd(&count, above);
    workgroupBarrier();
    need_ties = k - atomicLoad(&count);
  }

  var ties = 0u;
  for (var q = lo; q < hi; q++) {
    if (kept[base + q] == 1u && bitcast<u32>(acc[base + q]) == thr) { ties++; }
  }
  let tie_base = exclusive_scan(li, ties);
  var chosen = 0u;
  var tie_i = tie_base;
  for (var q = lo; q < hi; q++) {
    if (kept[base + q] == 1u) {
      let b = bitcast<u32>(acc[base + q]);
      if (b > thr || (b == thr && tie_i < need_ties)) { chosen++; }
      if (b == thr) { tie_i++; }
    }
  }
  var o = exclusive_scan(li, chosen);
  let n_heavy = select(n_kept, k, n_kept > k);
  tie_i = tie_base;
  for (var q = lo; q < hi; q++) {
    if (kept[base + q] == 1u) {
      let b = bitcast<u32>(acc[base + q]);
      if (b > thr || (b == thr && tie_i < need_ties)) {
        sel[out + o] = q;
        o++;
      } else {
        kept[base + q] = 0u; // evicted for good
      }
      if (b == thr) { tie_i++; }
    }
  }
  let recent = n - m;
  for (var j = li; j < recent; j += WG) { sel[out + n_heavy + j] = m + j; }
  if (li == 0u && t < step.n_tokens) { sel_n[t * p.n_heads + h] = n_heavy + recent; }
}
