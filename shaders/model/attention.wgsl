// Causal softmax attention of each step token over its sequence's cached
// K/V, with GQA: query head h reads KV head h / (n_heads / n_kv_heads).
// One workgroup per (token, head). Scores and then the normalized weights
// go to `att` (n_tokens, n_heads, ctx), where later stages (the sparse
// policies' scores) read them.
//
// The attended positions come from policy.wgsl: 0 .. kv_len-1 (dense, and
// every prefill step), or the policy's ascending set on decode steps;
// entry j of the set goes to att[t, h, j]. K and V are read by index from
// the KV pool through the layer's row table (kv_access.wgsl), never
// copied.
//
// A layer with its own sliding window (Mistral, Gemma's local layers)
// attends only the entries of that set within the last `window` positions
// (pos >= kv_len - window): the set is ascending, so they are its tail,
// found by binary search; the entries before it get weight 0. Scores may
// be soft-capped (Gemma 2): s = SOFTCAP * tanh(s / SOFTCAP).

struct Params {
  n_heads: u32,
  n_kv_heads: u32,
  head_dim: u32,  // elements per head
  ctx: u32,       // elements per row of att (positions per sequence)
  scale: f32,     // 1 / sqrt(head_dim), or the model's own
  window: u32,    // > 0: the layer's sliding window (positions)
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 64;
override SOFTCAP: f32 = 0.0;  // > 0: scores soft-capped at it (Gemma 2); a pipeline constant

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> q: array<f32>;          // (n_tokens, n_heads, head_dim)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // (n_tokens, n_heads, head_dim)
@group(0) @binding(6) var<storage, read_write> att: array<f32>;  // (n_tokens, n_heads, ctx)

var<workgroup> q_sh: array<f32, 256>;
var<workgroup> red: array<f32, 256>;

// Element e of K (or V) in pool row `row`.
fn kv_elem(row: u32, e: u32, is_v: bool) -> f32 {
  let w = select(0u, kv.row_words / 2u, is_v) + (e >> 1u);
  return unpack2x16float(kv_word(row, w))[e & 1u];
}

// The first entry of token t's set at or after position `lo` (entries are
// ascending), by binary search over the n entries.
fn first_from(t: u32, slot: u32, h: u32, n_cached: u32, n: u32, lo: u32) -> u32 {
  var a = 0u;
  var b = n;
  loop {
    if (a >= b) { break; }
    let m = (a + b) / 2u;
    if (att_pos(t, slot, h, p.n_heads, p.ctx, n_cached, m) < lo) {
      a = m + 1u;
    } else {
      b = m;
    }
  }
  return a;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  let h = wg.y;
  let live = t < step.n_tokens;
  var info = TokInfo(0u, 0u, 0u, 0u);
  if (live) { info = step.tok[t]; }
  let n_cached = info.kv_len;
  let slot = info.slot;
  var n = 0u;
  if (live) { n = att_count(t, slot, h, p.n_heads, n_cached); }
  // Entries before j0 are outside the layer's window (none without one).
  let lo = select(0u, n_cached - p.window, p.window > 0u && n_cached > p.window);
  var j0 = 0u;
  if (live && lo > 0u) { j0 = first_from(t, slot, h, n_cached, n, lo); }
  let kvh = h / (p.n_heads / p.n_kv_heads);
  let head_off = kvh * p.head_dim;
  let q_off = (t * p.n_heads + h) * p.head_dim;
  let att_off = (t * p.n_heads + h) * p.ctx;

  for (var d = li; d < p.head_dim; d += WG) {
    if (live) { q_sh[d] = q[q_off + d]; }
  }
  workgroupBarrier();

  // Scores and their maximum.
  var m = -3.4e38;
  // Tests: record the arithmetic policies' sets where swa/h2o keep theirs.
  let record = live && pol.record == 1u && pol.id != POLICY_SWA &&
    pol.id != POLICY_H2O;
  if (record && li == 0u) { sel_n[t * p.n_heads + h] = n; }
  for (var j = li; j < j0; j += WG) {
    if (record) {
      sel[(t * p.n_heads + h) * p.ctx + j] =
        att_pos(t, slot, h, p.n_heads, p.ctx, n_cached, j);
    }
    att[att_off + j] = 0.0;
  }
  for (var j = j0 + li; j < n; j += WG) {
    let pos = att_pos(t, slot, h, p.n_heads, p.ctx, n_cached, j);
    if (record) { sel[(t * p.n_heads + h) * p.ctx + j] = pos; }
    let row = kv_row(slot, pos);
    var s = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
      s += q_sh[d] * kv_elem(row, head_off + d, false);
    }
    s *= p.scale;
    if (SOFTCAP > 0.0) { s = SOFTCAP * safe_tanh(s / SOFTCAP); }
    att[att_off + j] = s;
    m = max(m, s);
  }
  red[li] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();

  // Exponentials and their sum.
  var sum = 0.0;
  for (var j = j0 + li; j < n; j += WG) {
    let e = exp(att[att_off + j] - mx);
    att[att_off + j] = e;
    sum += e;
  }
  red[li] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  // A window that leaves no entry (no policy does) gives zeros, not NaN.
  let inv = select(0.0, 1.0 / red[0], red[0] > 0.0);
  workgroupBarrier();
  for (var j = j0 + li; j < n; j += WG) {
    att[att_off + j] *= inv;
  }
  storageBarrier();
  workgroupBarrier();

  // Weighted sum of V.
  if (!live) { return; }
  for (var d = li; d < p.head_dim; d += WG) {
    var acc = 0.0;
    for (var j = j0; j < n; j++) {
      let row = kv_row(slot, att_pos(t, slot, h, p.n_heads, p.ctx, n_cached, j));
      acc += att[att_off + j] * kv_elem(row, head_off + d, true);
    }
    out[q_off + d] = acc;
  }
}
