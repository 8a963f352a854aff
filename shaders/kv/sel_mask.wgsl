// The positions SWA chose for each sequence's next step (sel, sel_n as in
// policy.wgsl) as a bitmask per (layer, slot), which the step reads back
// with its sampled ids, so the KV store can fetch the chosen tokens that
// are not on the GPU before the next step. One workgroup per step token.

struct Params {
  ctx: u32,        // positions per slot in sel
  words: u32,      // u32 words of mask per slot (ceil(ctx / 32))
  mask_base: u32,  // first word of this layer's (slots, words) masks
  _pad: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> sel: array<u32>;              // (slots, ctx)
@group(0) @binding(3) var<storage, read> sel_n: array<u32>;            // (slots,)
@group(0) @binding(4) var<storage, read_write> mask: array<atomic<u32>>; // (layers, slots, words)

var<workgroup> live_sh: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = wg.x;
  if (li == 0u) { live_sh = select(0u, 1u, t < step.n_tokens); }
  if (workgroupUniformLoad(&live_sh) == 0u) { return; }
  let slot = step.tok[t].slot;
  let base = p.mask_base + slot * p.words;
  for (var w = li; w < p.words; w += WG) { atomicStore(&mask[base + w], 0u); }
  storageBarrier();
  workgroupBarrier();
  let n = sel_n[slot];
  for (var j = li; j < n; j += WG) {
    let pos = sel[slot * p.ctx + j];
    atomicOr(&mask[base + (pos >> 5u)], 1u << (pos & 31u));
  }
}
