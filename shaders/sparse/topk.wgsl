// Top-k selection inside one workgroup, shared by select_swa and
// select_h2o: the k eligible candidates with the largest keys (ties: the
// smaller position), written in ascending position order. Each thread owns
// a contiguous run [lo, hi) of candidates, so thread order is position
// order. The including op defines
//   fn topk_key(q: u32) -> u32        // sort key (f32 bits of a score >= 0)
//   fn topk_eligible(q: u32) -> bool  // may q be chosen at all?
//   fn topk_drop(q: u32)              // called for eligible q not chosen
// and the override WG (<= 256).

var<workgroup> tk_count: atomic<u32>;
var<workgroup> tk_scan: array<u32, 256>;
var<workgroup> tk_uniform: u32;

// Sum of v over the workgroup, the same value in every thread.
fn workgroup_sum(li: u32, v: u32) -> u32 {
  if (li == 0u) { atomicStore(&tk_count, 0u); }
  workgroupBarrier();
  atomicAdd(&tk_count, v);
  workgroupBarrier();
  if (li == 0u) { tk_uniform = atomicLoad(&tk_count); }
  return workgroupUniformLoad(&tk_uniform);
}

// Exclusive prefix sum of v over the workgroup, in thread order.
fn exclusive_scan(li: u32, v: u32) -> u32 {
  tk_scan[li] = v;
  workgroupBarrier();
  for (var o = 1u; o < WG; o <<= 1u) {
    var add = 0u;
    if (li >= o) { add = tk_scan[li - o]; }
    workgroupBarrier();
    tk_scan[li] += add;
    workgroupBarrier();
  }
  let incl = tk_scan[li];
  workgroupBarrier();
  return incl - v;
}

// Writes the k best eligible candidates of [0, m) to sel[out ..] in
// ascending order (all eligible ones when there are at most k); returns
// how many. Radix select finds the key threshold T, the largest bit
// pattern with #{key >= T} >= k, one bit per round.
fn topk_select(li: u32, m: u32, k: u32, out: u32) -> u32 {
  let chunk = (m + WG - 1u) / WG;
  let lo = min(li * chunk, m);
  let hi = min(lo + chunk, m);
  var n_eligible = 0u;
  for (var q = lo; q < hi; q++) {
    if (topk_eligible(q)) { n_eligible++; }
  }
  let total = workgroup_sum(li, n_eligible);
  var thr = 0u;
  var need_ties = 0xffffffffu; // every eligible one is chosen when they fit
  if (total > k) {
    var prefix = 0u;
    for (var bit = 31i; bit >= 0; bit--) {
      let cand = prefix | (1u << u32(bit));
      var c = 0u;
      for (var q = lo; q < hi; q++) {
        if (topk_eligible(q) && topk_key(q) >= cand) { c++; }
      }
      if (workgroup_sum(li, c) >= k) { prefix = cand; }
    }
    thr = prefix;
    var above = 0u;
    for (var q = lo; q < hi; q++) {
      if (topk_eligible(q) && topk_key(q) > thr) { above++; }
    }
    need_ties = k - workgroup_sum(li, above);
  }
  // Equal to the threshold: the first need_ties by position.
  var ties = 0u;
  for (var q = lo; q < hi; q++) {
    if (topk_eligible(q) && topk_key(q) == thr) { ties++; }
  }
  let tie_base = exclusive_scan(li, ties);
  var chosen = 0u;
  var tie_i = tie_base;
  for (var q = lo; q < hi; q++) {
    if (topk_eligible(q)) {
      let b = topk_key(q);
      if (b > thr || (b == thr && tie_i < need_ties)) { chosen++; }
      if (b == thr) { tie_i++; }
    }
  }
  var o = exclusive_scan(li, chosen);
  tie_i = tie_base;
  for (var q = lo; q < hi; q++) {
    if (topk_eligible(q)) {
      let b = topk_key(q);
      if (b > thr || (b == thr && tie_i < need_ties)) {
        sel[out + o] = q;
        o++;
      } else {
        topk_drop(q);
      }
      if (b == thr) { tie_i++; }
    }
  }
  return min(total, k);
}
