// Shared by every op: the per-step token table.
//
// One step runs a batch of tokens through the model: prefill tokens of
// several sequences and/or one decode token per sequence. Every token knows
// its KV-cache slot (sequence), its position, its id and how many cached
// positions it attends (dense causal: pos + 1).

struct TokInfo {
  slot: u32,    // KV-cache slot of the token's sequence
  pos: u32,     // position in its sequence (elements of the KV time axis)
  id: u32,      // token id
  kv_len: u32,  // cached positions this token attends: 0 .. kv_len-1
}

struct Step {
  n_tokens: u32,    // tokens in this step (rows of the activation buffers)
  n_out: u32,       // rows that produce logits
  decode: u32,      // 1: a decode step (the KV policy applies), 0: prefill (dense)
  out_offset: u32,  // scoring: the run row of output row 0 (eval/nll.wgsl)
  tok: array<TokInfo>,
}

// tanh without the overflow some implementations hit for large |x|
// (exp(2x) / (exp(2x) + 1)): f32 tanh is +-1 beyond |x| = 9.
fn safe_tanh(x: f32) -> f32 {
  return tanh(clamp(x, -10.0, 10.0));
}
