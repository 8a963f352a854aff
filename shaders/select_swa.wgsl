// SWA selection for each decode token (one workgroup per token): the k
// most recent positions [n-k, n) plus the k positions of [0, n-k) with
// the highest score S (ties: smaller position), as one ascending list
// shared by the layer's heads. Top-k by a radix select on the bits of S
// (S >= 0, so its f32 bits order like its values), then a scan writes the
// chosen positions in order. Nothing leaves the GPU.

struct Params {
  ctx: u32,  // positions per slot (elements of S's last axis and of a list)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> score: array<f32>; // S: (slots, ctx)

var<workgroup> count: atomic<u32>;

// The sort key of a score: its bits, with every S <= 0 (a running sum can
// cancel to -0 or -1e-9) ranking as 0.
fn key(s: f32) -> u32 {
  return select(bitcast<u32>(s), 0u, s <= 0.0);
}
var<workgroup> scan: array<u32, 256>;
var<workgroup> prefix_sh: u32;
var<workgroup> n_sh: u32;

// Exclusive prefix sum of v over the workgroup, in thread order.
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
  var slot = 0u;
  if (li == 0u) { n_sh = select(0u, step.tok[t].kv_len, t < step.n_tokens); }
  if (t < step.n_tokens) { slot = step.tok[t].slot; }
  let n = workgroupUniformLoad(&n_sh); // uniform: the branches below hold barriers
  let k = budget_k(max(n, 1u));
  let out = t * p.ctx;
  let m = select(0u, n - k, n > k); // older candidates [0, m)
  let sbase = slot * p.ctx;
  // Each thread owns the contiguous candidates [lo, hi).
  let chunk = (m + WG - 1u) / WG;
  let lo = min(li * chunk, m);
  let hi = min(lo + chunk, m);

  if (m <= k) {
    // Everything fits: attend all of [0, n).
    for (var j = li; j < n; j += WG) { sel[out + j] = j; }
    if (li == 0u && t < step.n_tokens) { sel_n[t] = n; }
    return;
  }

  // Radix select: the largest bit pattern T with #{S >= T} >= k.
  var prefix = 0u;
  for (var bit = 31i; bit >= 0; bit--) {
    let cand = prefix | (1u << u32(bit));
    if (li == 0u) { atomicStore(&count, 0u); }
    workgroupBarrier();
    var c = 0u;
    for (var q = lo; q < hi; q++) {
      if (key(score[sbase + q]) >= cand) { c++; }
    }
    atomicAdd(&count, c);
    workgroupBarrier();
    if (li == 0u) {
      prefix_sh = select(prefix, cand, atomicLoad(&count) >= k);
    }
    prefix = workgroupUniformLoad(&prefix_sh);
  }
  let thr = prefix;

  // Above the threshold: always; equal: the first (k - above) by position.
  var above = 0u;
  var ties = 0u;
  for (var q = lo; q < hi; q++) {
    let b = key(score[sbase + q]);
    if (b > thr) { above++; }
    if (b == thr) { ties++; }
  }
  if (li == 0u) { atomicStore(&count, 0u); }
  workgroupBarrier();
  atomicAdd(&count, above);
  workgroupBarrier();
  let need_ties = k - atomicLoad(&count);
  let tie_base = exclusive_scan(li, ties);
  var chosen = 0u;
  var tie_i = tie_base;
  for (var q = lo; q < hi; q++) {
    let b = key(score[sbase + q]);
    if (b > thr || (b == thr && tie_i < need_ties)) { chosen++; }
    if (b == thr) { tie_i++; }
  }
  var o = exclusive_scan(li, chosen);
  tie_i = tie_base;
  for (var q = lo; q < hi; q++) {
    let b = key(score[sbase + q]);
    if (b > thr || (b == thr && tie_i < need_ties)) {
      sel[out + o] = q;
      o++;
    }
    if (b == thr) { tie_i++; }
  }
  // Then the local window [m, n) after the k global positions.
  for (var j = li; j < k; j += WG) { sel[out + k + j] = m + j; }
  if (li == 0u) { sel_n[t] = 2u * k; }
}
