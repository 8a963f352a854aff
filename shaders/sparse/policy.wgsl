// KV selection policies (src/sparse/spec.ts has the rules): which cached
// positions each decode token attends. Dense attends 0 .. n-1; local,
// sinks and strided are arithmetic in n; swa lists one set per token
// (shared by heads), h2o one per (token, head), built by select_*.wgsl.
// Every set is ascending, so sparsity 0 sums exactly like dense.

struct Policy {
  id: u32,          // 0 dense, 1 local, 2 strided, 3 sinks, 4 h2o, 5 swa
  r: f32,           // caching ratio 1 - sparsity
  min_k: u32,       // ceil(minBudget / 2)
  ring: u32,        // SWA score rows kept per slot (elements of the ring axis)
  record: u32,      // 1: attention writes the arithmetic sets to sel (tests)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(10) var<uniform> pol: Policy;
@group(0) @binding(11) var<storage, read_write> sel: array<u32>;   // (tokens, heads, ctx) or (tokens, ctx)
@group(0) @binding(12) var<storage, read_write> sel_n: array<u32>; // (tokens, heads) or (tokens,)

// k of a step with n cached tokens: max(1, floor(n r / 2 + 0.5), min_k).
fn budget_k(n: u32) -> u32 {
  let half = f32(n) * pol.r / 2.0;
  return max(max(1u, u32(floor(half + 0.5))), pol.min_k);
}

// The policy of this step: pol.id on decode steps, dense (0) on prefill.
// Branch on this, never on pol.id alone: Mesa's lavapipe (before 23.1)
// recompiles a shader whose branches depend only on uniform values for
// every dispatch, with those values inlined, and never frees the copies
// (accum_h2o grew the process by ~0.8 MB per decode step). Mixing in the
// step table (a storage buffer) keeps these branches out of that path.
fn step_policy() -> u32 {
  return select(0u, pol.id, step._pad0 == 1u);
}

// Whether token t of this step runs the policy (decode) or dense (prefill).
fn sparse_step() -> bool {
  return step_policy() != 0u;
}

// How many positions token t (head h) attends, with n cached.
fn att_count(t: u32, h: u32, n_heads: u32, n: u32) -> u32 {
  if (!sparse_step()) { return n; }
  let k = budget_k(n);
  switch step_policy() {
    case 1u, 3u: { return min(n, 2u * k); }
    case 2u: {
      if (k >= n) { return n; }
      let m = n - k;
      let stride = max(1u, (m + k - 1u) / k);
      return (m + stride - 1u) / stride + k;
    }
    case 4u: { return sel_n[t * n_heads + h]; }
    case 5u: { return sel_n[t]; }
    default: { return n; }
  }
}

// The position of entry j of token t's (head h's) ascending set.
fn att_pos(t: u32, h: u32, n_heads: u32, ctx: u32, n: u32, j: u32) -> u32 {
  if (!sparse_step()) { return j; }
  let k = budget_k(n);
  switch step_policy() {
    case 1u: { return n - min(n, 2u * k) + j; }
    case 3u: {
      let b = min(n, 2u * k);
      let s = min(4u, b);
      return select(n - (b - s) + (j - s), j, j < s);
    }
    case 2u: {
      if (k >= n) { return j; }
      let m = n - k;
      let stride = max(1u, (m + k - 1u) / k);
      let c = (m + stride - 1u) / stride;
      return select(m + (j - c), j * stride, j < c);
    }
    case 4u: { return sel[(t * n_heads + h) * ctx + j]; }
    case 5u: { return sel[t * ctx + j]; }
    default: { return j; }
  }
}
