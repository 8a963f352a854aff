// KV selection policies (src/sparse/spec.ts has the rules): which cached
// positions each decode token attends. Dense attends 0 .. n-1; local,
// sinks and strided are arithmetic in n; swa lists one set per sequence
// and layer (shared by heads, chosen one step ahead by select_swa.wgsl),
// h2o one per (token, head), chosen in the layer by select_h2o.wgsl.
// Every set is ascending, so sparsity 0 sums exactly like dense. The
// POLICY_* ids are generated from src/sparse/spec.ts (POLICY_ID).

struct Policy {
  id: u32,      // one of POLICY_*
  r: f32,       // caching ratio 1 - sparsity
  min_k: u32,   // ceil(minBudget / 2)
  record: u32,  // 1: attention writes the arithmetic sets to sel (tests)
}

@group(0) @binding(10) var<uniform> pol: Policy;
// swa: (slots, ctx) of this layer, entry j of slot s at s * ctx + j;
// h2o and recorded sets: (decode tokens, heads, ctx).
@group(0) @binding(11) var<storage, read_write> sel: array<u32>;
// swa: (slots,); h2o and recorded sets: (decode tokens, heads).
@group(0) @binding(12) var<storage, read_write> sel_n: array<u32>;

// k of a step with n cached tokens: max(1, floor(n r / 2 + 0.5), min_k).
fn budget_k(n: u32) -> u32 {
  let half = f32(n) * pol.r / 2.0;
  return max(max(1u, u32(floor(half + 0.5))), pol.min_k);
}

// The policy of this step: pol.id on decode steps, dense on prefill.
// Branch on this, never on pol.id alone: Mesa's lavapipe (before 23.1)
// recompiles a shader whose branches depend only on uniform values for
// every dispatch, with those values inlined, and never frees the copies
// (accum_h2o grew the process by ~0.8 MB per decode step). Mixing in the
// step table (a storage buffer) keeps these branches out of that path.
fn step_policy() -> u32 {
  return select(POLICY_DENSE, pol.id, step.decode == 1u);
}

// Whether this step runs the policy (decode) or dense (prefill).
fn sparse_step() -> bool {
  return step_policy() != POLICY_DENSE;
}

// Strided's older positions: floor(i * m / k) for i < k, without
// overflowing u32 for m, k <= 65535.
fn strided_pos(i: u32, m: u32, k: u32) -> u32 {
  return i * (m / k) + (i * (m % k)) / k;
}

// How many positions token t (of sequence `slot`, head h) attends, with n cached.
fn att_count(t: u32, slot: u32, h: u32, n_heads: u32, n: u32) -> u32 {
  if (!sparse_step()) { return n; }
  let k = budget_k(n);
  switch step_policy() {
    case POLICY_LOCAL, POLICY_SINKS, POLICY_STRIDED: { return min(n, 2u * k); }
    case POLICY_H2O: { return sel_n[t * n_heads + h]; }
    case POLICY_SWA: { return sel_n[slot]; }
    default: { return n; }
  }
}

// The position of entry j of token t's (head h's) ascending set.
fn att_pos(t: u32, slot: u32, h: u32, n_heads: u32, ctx: u32, n: u32, j: u32) -> u32 {
  if (!sparse_step()) { return j; }
  let k = budget_k(n);
  switch step_policy() {
    case POLICY_LOCAL: { return n - min(n, 2u * k) + j; }
    case POLICY_SINKS: {
      let b = min(n, 2u * k);
      let s = min(4u, b - 1u);
      return select(n - (b - s) + (j - s), j, j < s);
    }
    case POLICY_STRIDED: {
      if (2u * k >= n) { return j; }
      let m = n - k;
      return select(m + (j - k), strided_pos(j, m, k), j < k);
    }
    case POLICY_H2O: { return sel[(t * n_heads + h) * ctx + j]; }
    case POLICY_SWA: { return sel[slot * ctx + j]; }
    default: { return j; }
  }
}
