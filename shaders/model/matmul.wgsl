// Y[t, row_offset + r] (+)= sum_k W[r, k] * X[t, k] for the step's tokens:
// a matrix-vector product per token (decode) and a matrix-matrix product
// for many tokens (prefill). Weights come through w_get() (weight_*.wgsl).
//
// Each workgroup computes ROWS_PER_WG = WG / TPR rows for up to TT tokens:
// TPR threads share a row, each summing a strided slice of k, then reduce.
// The weight is read once per TT tokens. With W32 = 1 (types whose
// w_get32 decodes a block's scales once for 32 elements: Q4_0, Q4_K,
// Q5_K, Q6_K; cols a multiple of 32) each lane reads 32 weights at a time.

struct Params {
  rows: u32,        // output rows in this weight part (elements)
  cols: u32,        // input width K (elements)
  row_offset: u32,  // first output column of this part in Y (elements)
  y_stride: u32,    // elements between tokens in Y
  x_stride: u32,    // elements between tokens in X
  accumulate: u32,  // 1: Y += W X (fused residual add), 0: Y = W X
  gather: u32,      // 0: all n_tokens rows; 1: row t reads X row out_rows[t], n_out rows;
                    // 2: the first n_out rows (X already gathered)
  _pad: u32,
}

override WG: u32 = 64;  // threads per workgroup
override TPR: u32 = 16; // threads per row (a power of two dividing WG)
override TT: u32 = 4;   // tokens per workgroup (<= 8)
override W32: u32 = 0;  // 1: 32 weights per read through w_get32 (cols % 32 == 0)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> out_rows: array<u32>;

var<workgroup> partial: array<f32, 512>; // (WG, TT) with WG * TT <= 512

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.x * (WG / TPR) + li / TPR;
  let lane = li % TPR;
  let t0 = wg.y * TT;
  let n_tok = select(step.n_tokens, step.n_out, p.gather >= 1u);
  var acc: array<f32, 8>;
  if (row < p.rows) {
    var xrow: array<u32, 8>;
    for (var tt = 0u; tt < TT; tt++) {
      let t = min(t0 + tt, n_tok - 1u);
      xrow[tt] = select(t, out_rows[t], p.gather == 1u) * p.x_stride;
    }
    if (W32 == 1u) {
      for (var k = lane * 32u; k < p.cols; k += TPR * 32u) {
        let wv = w_get32(row, k, p.cols);
        for (var j = 0u; j < 8u; j++) {
          let kj = k + 4u * j;
          for (var tt = 0u; tt < TT; tt++) {
            let xi = xrow[tt] + kj;
            acc[tt] += dot(wv[j], vec4f(x[xi], x[xi + 1u], x[xi + 2u], x[xi + 3u]));
          }
        }
      }
    } else if (p.cols % 4u == 0u) {
      // Four weights per step: one u32 of Q8_0 quants, two of f16 pairs.
      for (var k = lane * 4u; k < p.cols; k += TPR * 4u) {
        let wv = w_get4(row, k, p.cols);
        for (var tt = 0u; tt < TT; tt++) {
          let xi = xrow[tt] + k;
          acc[tt] += dot(wv, vec4f(x[xi], x[xi + 1u], x[xi + 2u], x[xi + 3u]));
        }
      }
    } else {
      for (var k = lane; k < p.cols; k += TPR) {
        let wv = w_get(row, k, p.cols);
        for (var tt = 0u; tt < TT; tt++) {
          acc[tt] += wv * x[xrow[tt] + k];
        }
      }
    }
  }
  for (var tt = 0u; tt < TT; tt++) {
    partial[li * TT + tt] = acc[tt];
  }
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var tt = 0u; tt < TT; tt++) {
        partial[li * TT + tt] += partial[(li + s) * TT + tt];
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && row < p.rows) {
    for (var tt = 0u; tt < TT; tt++) {
      let t = t0 + tt;
      if (t < n_tok) {
        let i = t * p.y_stride + p.row_offset + row;
        let v = partial[li * TT + tt];
        y[i] = select(v, y[i] + v, p.accumulate == 1u);
      }
    }
  }
}
