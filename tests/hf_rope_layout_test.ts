/**
 * Hugging Face Llama checkpoints store Q/K rows in rotate-half order, GGUF in
 * interleaved pairs. Loaded as stored (`permuteQK: false`) with rotate-half
 * RoPE, and loaded from GGUF with interleaved RoPE, the two shared copies of
 * the Austen model must give the same attention inputs: the same post-RoPE
 * Q and K values (as a per-head permutation) and the same Q.K scores.
 */
import { assertEquals, assertLessOrEqual } from "@std/assert";
import { openModelFile } from "../src/formats/model_file.ts";
import { rotateHalfToInterleavedRows } from "../src/formats/hf.ts";
import { hasShared, sharedPath } from "./_shared.ts";
import { matvec, rmsnorm, rope } from "./_reference.ts";

const present = hasShared("models/austen-5m-hf") &&
  hasShared("models/austen-5m-f16.gguf");

Deno.test({
  name:
    "HF (rotate-half, unpermuted) and GGUF (interleaved) give identical attention inputs",
  ignore: !present,
  async fn() {
    const hf = await openModelFile(sharedPath("models/austen-5m-hf"), {
      permuteQK: false,
    });
    const gg = await openModelFile(sharedPath("models/austen-5m-f16.gguf"));
    try {
      assertEquals(hf.config.ropeLayout, "rotate_half");
      assertEquals(gg.config.ropeLayout, "interleaved");
      const c = gg.config;
      const emb = await gg.read("token_embd.weight") as Float32Array;
      const tokens = [1, 597, 366, 261, 1818]; // BOS + "It is a truth"
      for (let layer = 0; layer < c.nLayers; layer++) {
        const norm = await gg.read(
          `blk.${layer}.attn_norm.weight`,
        ) as Float32Array;
        const qkv = async (m: typeof hf, pos: number, tok: number) => {
          const x = rmsnorm(
            emb.subarray(tok * c.dim, (tok + 1) * c.dim),
            // The f16 GGUF keeps norms in f32, the HF copy in f16: use one
            // norm for both, so only the Q/K layout differs.
            norm,
            c.normEps,
          );
          const q = matvec(
            await m.read(`blk.${layer}.attn_q.weight`) as Float32Array,
            x,
          );
          const k = matvec(
            await m.read(`blk.${layer}.attn_k.weight`) as Float32Array,
            x,
          );
          rope(q, c.nHeads, c.headDim, pos, c.ropeTheta, m.config.ropeLayout);
          rope(k, c.nKvHeads, c.headDim, pos, c.ropeTheta, m.config.ropeLayout);
          return { q, k };
        };
        const qRows = rotateHalfToInterleavedRows(c.nHeads, c.headDim);
        const kRows = rotateHalfToInterleavedRows(c.nKvHeads, c.headDim);
        const hs = [], gs = [];
        for (let p = 0; p < tokens.length; p++) {
          const h = await qkv(hf, p, tokens[p]);
          const g = await qkv(gg, p, tokens[p]);
          // Exactly the same values, rows in the other order.
          assertEquals(g.q, h.q.map((_, r) => h.q[qRows[r]]));
          assertEquals(g.k, h.k.map((_, r) => h.k[kRows[r]]));
          hs.push(h);
          gs.push(g);
        }
        // Scores q_i . k_j per head (GQA: head h reads KV head h / group).
        const group = c.nHeads / c.nKvHeads;
        for (let i = 0; i < tokens.length; i++) {
          for (let j = 0; j <= i; j++) {
            for (let h = 0; h < c.nHeads; h++) {
              const kv = Math.floor(h / group);
              let sh = 0, sg = 0;
              for (let d = 0; d < c.headDim; d++) {
                sh += hs[i].q[h * c.headDim + d] * hs[j].k[kv * c.headDim + d];
                sg += gs[i].q[h * c.headDim + d] * gs[j].k[kv * c.headDim + d];
              }
              // Same products summed in another order.
              assertLessOrEqual(Math.abs(sh - sg), 1e-9 * (1 + Math.abs(sg)));
            }
          }
        }
      }
    } finally {
      hf.close();
      gg.close();
    }
  },
});
