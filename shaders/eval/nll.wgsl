// Scoring: for each output row r, nll = logsumexp(logits[r]) - logits[r,
// target[r]] and the argmax (lowest index on ties), written at row
// step.out_offset + r of the run's outputs, so teacher-forced decoding reads
// nothing back until the end.

struct Params {
  vocab: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> logits: array<f32>;       // (n_out, vocab)
@group(0) @binding(3) var<storage, read> targets: array<u32>;      // (n_out,)
@group(0) @binding(4) var<storage, read_write> nll: array<f32>;    // (run rows,)
@group(0) @binding(5) var<storage, read_write> top: array<u32>;    // (run rows,)

var<workgroup> mx: array<f32, 256>;
var<workgroup> mi: array<u32, 256>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x;
  let live = r < step.n_out;
  let base = r * p.vocab;
  var bv = -3.4e38;
  var bi = 0xffffffffu;
  if (live) {
    for (var j = li; j < p.vocab; j += WG) {
      let v = logits[base + j];
      if (v > bv) { bv = v; bi = j; }
    }
  }
  mx[li] = bv;
  mi[li] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let ov = mx[li + s];
      let oi = mi[li + s];
      if (ov > mx[li] || (ov == mx[li] && oi < mi[li])) { mx[li] = ov; mi[li] = oi; }
    }
    workgroupBarrier();
  }
  let m = mx[0];
  let arg = mi[0];
  workgroupBarrier();
  var sum = 0.0;
  if (live) {
    for (var j = li; j < p.vocab; j += WG) { sum += exp(logits[base + j] - m); }
  }
  mx[li] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { mx[li] += mx[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u && live) {
    let o = step.out_offset + r;
    nll[o] = m + log(mx[0]) - logits[base + targets[r]];
    top[o] = arg;
  }
}
