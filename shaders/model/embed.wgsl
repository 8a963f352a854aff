// x[t, :] = token_embd[tok[t].id, :] * scale, dequantized through w_get()
// (scale: 1, or sqrt(dim) for Gemma).

struct Params {
  dim: u32,        // embedding width (elements)
  vocab: u32,      // rows of the table
  row_start: u32,  // first vocabulary row held by this weight part
  rows: u32,       // rows in this part
  scale: f32,      // multiplies every element
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(3) var<storage, read_write> x: array<f32>; // (n_tokens, dim)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (t >= step.n_tokens) { return; }
  let id = step.tok[t].id;
  if (id < p.row_start || id >= p.row_start + p.rows) { return; }
  for (var k = li; k < p.dim; k += WG) {
    x[t * p.dim + k] = w_get(id - p.row_start, k, p.dim) * p.scale;
  }
}
