// y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * weight, one workgroup
// per token; with gather = 1, row t reads x row out_rows[t] (n_out rows).
// With ACCUMULATE = 1, y[t, :] += the same (Gemma's post-norms, added to
// the residual stream); a pipeline constant, so plain norms never read y.

struct Params {
  dim: u32,     // row width (elements)
  eps: f32,
  gather: u32,
  _pad: u32,
}

override WG: u32 = 64;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> out_rows: array<u32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>; // (dim,)

var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  let n = select(step.n_tokens, step.n_out, p.gather == 1u);
  let live = t < n;
  var src = 0u;
  if (live) { src = select(t, out_rows[t], p.gather == 1u) * p.dim; }
  var ss = 0.0;
  if (live) {
    for (var k = li; k < p.dim; k += WG) {
      let v = x[src + k];
      ss += v * v;
    }
  }
  sums[li] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { sums[li] += sums[li + s]; }
    workgroupBarrier();
  }
  if (!live) { return; }
  let scale = 1.0 / sqrt(sums[0] / f32(p.dim) + p.eps);
  for (var k = li; k < p.dim; k += WG) {
    let v = x[src + k] * scale * weight[k];
    if (ACCUMULATE == 1u) {
      y[t * p.dim + k] += v;
    } else {
      y[t * p.dim + k] = v;
    }
  }
}
