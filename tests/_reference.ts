/**
 * Plain TypeScript reference ops (f64 accumulation), the yardstick that
 * loaders and shaders are tested against.
 *
 * @module
 */

/** RMSNorm: x / sqrt(mean(x^2) + eps) * w. */
export function rmsnorm(
  x: Float32Array,
  w: Float32Array,
  eps: number,
): Float32Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * w[i]);
}

/** y = W x for a row-major W of shape (rows, x.length). */
export function matvec(w: Float32Array, x: Float32Array): Float32Array {
  const n = x.length;
  const rows = w.length / n;
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < n; c++) s += w[r * n + c] * x[c];
    y[r] = s;
  }
  return y;
}

/**
 * RoPE in place on `nHeads` heads of `headDim` at position `pos`.
 * `interleaved` rotates pairs (2i, 2i+1); `rotate_half` pairs (i, i + d/2).
 * Pair i turns by pos * theta^(-2i/d).
 */
export function rope(
  v: Float32Array,
  nHeads: number,
  headDim: number,
  pos: number,
  theta: number,
  layout: "interleaved" | "rotate_half",
): Float32Array {
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(theta, (-2 * i) / headDim);
      const c = Math.cos(angle), s = Math.sin(angle);
      const a = h * headDim + (layout === "interleaved" ? 2 * i : i);
      const b = layout === "interleaved" ? a + 1 : a + half;
      const x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
  return v;
}
