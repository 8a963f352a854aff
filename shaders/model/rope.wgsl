// Rotary position embedding in place on (n_tokens, n_heads, head_dim),
// at each token's position, from a precomputed (positions, rope_dim / 2)
// table of (cos, sin). INTERLEAVED = 1 rotates pairs (2i, 2i+1) (GGUF
// llama), 0 rotates pairs (i, i + rope_dim/2) (Hugging Face, NeoX).

struct Params {
  n_heads: u32,
  head_dim: u32,  // elements per head
  rope_dim: u32,  // leading elements of each head that rotate
  max_pos: u32,   // positions in the table
}

override WG: u32 = 64;
override INTERLEAVED: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> cs: array<vec2f>; // (max_pos, rope_dim / 2)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (t >= step.n_tokens) { return; }
  let pos = min(step.tok[t].pos, p.max_pos - 1u);
  let half = p.rope_dim / 2u;
  for (var j = li; j < p.n_heads * half; j += WG) {
    let h = j / half;
    let i = j % half;
    let base = (t * p.n_heads + h) * p.head_dim;
    var a = base + i;
    var b = base + i + half;
    if (INTERLEAVED == 1u) {
      a = base + 2u * i;
      b = a + 1u;
    }
    let c = cs[pos * half + i];
    let x0 = v[a];
    let x1 = v[b];
    v[a] = x0 * c.x - x1 * c.y;
    v[b] = x0 * c.y + x1 * c.x;
  }
}
