/**
 * A plain TypeScript Llama forward pass, one token at a time, the yardstick
 * for the GPU engine's scoring and sparse attention: token embedding,
 * RMSNorm, Q/K/V projections, RoPE, causal GQA attention over a given set
 * of cached positions per head, SiLU-gated MLP, output projection. Weights
 * come from `openModelFile(path).read(name, "f32")`; the ops are those of
 * `_reference.ts` (f64 sums, f32 values between ops, as the GPU stores
 * them), attention and softmax in f64.
 *
 * The K/V cache keeps values rounded to f16 by default, as the GPU's cache
 * does (`src/kv/kv_cache.ts`); `kvF16: false` keeps f32.
 *
 * Which positions a token attends is the caller's: `select(layer, n)`
 * returns one ascending list per query head (default: all of [0, n));
 * `observe(layer, q, weights)` receives each head's softmax weights
 * aligned with its list. A `ReferenceSelection` per layer (from
 * `src/sparse/reference.ts`) plugs in directly, so the same pass runs any
 * KV policy, or attends sets recorded from the GPU.
 *
 * @module
 */
import type { ModelConfig } from "../src/formats/config.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import { matvec, rmsnorm, rope } from "./_reference.ts";

/** One layer's weights, f32, row-major (out, in). */
interface LayerWeights {
  attnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  ffnNorm: Float32Array;
  wGate: Float32Array;
  wUp: Float32Array;
  wDown: Float32Array;
}

/** Which positions each head attends, and what it gave them. */
export interface AttentionHooks {
  /**
   * One ascending list of positions in [0, n) per query head, for a token
   * with `n` cached positions (itself included) at layer `layer`.
   */
  select?(layer: number, n: number): ArrayLike<number>[];
  /** Each head's softmax weights (f32), aligned with its list, query `q`. */
  observe?(layer: number, q: number, weights: Float32Array[]): void;
}

/** The model's weights and config, for any number of sequences. */
export class ReferenceLlama {
  private constructor(
    readonly config: ModelConfig,
    readonly tokenEmbd: Float32Array,
    readonly layers: LayerWeights[],
    readonly outputNorm: Float32Array,
    readonly output: Float32Array,
  ) {}

  /** Reads every weight of the model at `path` as f32. */
  static async open(path: string): Promise<ReferenceLlama> {
    const file = await openModelFile(path);
    try {
      const c = file.config;
      const read = async (name: string) =>
        await file.read(name, "f32") as Float32Array;
      const tokenEmbd = await read("token_embd.weight");
      const layers: LayerWeights[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        const b = `blk.${l}.`;
        layers.push({
          attnNorm: await read(`${b}attn_norm.weight`),
          wq: await read(`${b}attn_q.weight`),
          wk: await read(`${b}attn_k.weight`),
          wv: await read(`${b}attn_v.weight`),
          wo: await read(`${b}attn_output.weight`),
          ffnNorm: await read(`${b}ffn_norm.weight`),
          wGate: await read(`${b}ffn_gate.weight`),
          wUp: await read(`${b}ffn_up.weight`),
          wDown: await read(`${b}ffn_down.weight`),
        });
      }
      const outputNorm = await read("output_norm.weight");
      const output = c.tiedEmbeddings ? tokenEmbd : await read("output.weight");
      return new ReferenceLlama(c, tokenEmbd, layers, outputNorm, output);
    } finally {
      file.close();
    }
  }

  /** A new, empty sequence (its own K/V cache). */
  sequence(o: { kvF16?: boolean } = {}): ReferenceSequence {
    return new ReferenceSequence(this, o.kvF16 ?? true);
  }

  /** Logits of every position of `ids`, dense attention: (ids.length) rows. */
  logits(ids: number[], o: { kvF16?: boolean } = {}): Float64Array[] {
    const s = this.sequence(o);
    return ids.map((id) => s.step(id));
  }
}

/** One sequence: its K/V cache, grown a token per step. */
export class ReferenceSequence {
  /** Per layer, per position: K and V rows (kv_dim). */
  private readonly k: Float32Array[][];
  private readonly v: Float32Array[][];

  constructor(readonly model: ReferenceLlama, readonly kvF16: boolean) {
    this.k = model.layers.map(() => []);
    this.v = model.layers.map(() => []);
  }

  /** Tokens cached so far (the position of the next step). */
  get length(): number {
    return this.k[0].length;
  }

  /**
   * Runs token `id` at the next position and returns its logits (f64
   * sums of the f32 output row), predicting the token after it.
   */
  step(id: number, hooks: AttentionHooks = {}): Float64Array {
    const m = this.model, c = m.config;
    const pos = this.length, n = pos + 1;
    const hd = c.headDim, H = c.nHeads, group = c.nHeads / c.nKvHeads;
    const scale = 1 / Math.sqrt(hd);
    const store = (x: Float32Array) =>
      this.kvF16 ? x.map((e) => Math.f16round(e)) : x;
    const x = m.tokenEmbd.slice(id * c.dim, (id + 1) * c.dim);
    m.layers.forEach((L, l) => {
      const xn = rmsnorm(x, L.attnNorm, c.normEps);
      const q = rope(matvec(L.wq, xn), H, hd, pos, c.ropeTheta, c.ropeLayout);
      const k = rope(
        matvec(L.wk, xn),
        c.nKvHeads,
        hd,
        pos,
        c.ropeTheta,
        c.ropeLayout,
      );
      this.k[l].push(store(k));
      this.v[l].push(store(matvec(L.wv, xn)));
      const lists = hooks.select?.(l, n) ??
        Array.from({ length: H }, () => Array.from({ length: n }, (_, j) => j));
      const o = new Float32Array(H * hd);
      const weights: Float32Array[] = [];
      for (let h = 0; h < H; h++) {
        const list = lists[h];
        const kvOff = Math.floor(h / group) * hd;
        const s = new Float64Array(list.length);
        let max = -Infinity;
        for (let j = 0; j < list.length; j++) {
          const kr = this.k[l][list[j]];
          if (kr === undefined) {
            throw new RangeError(
              `position ${list[j]} is not cached (n = ${n})`,
            );
          }
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += q[h * hd + d] * kr[kvOff + d];
          s[j] = dot * scale;
          max = Math.max(max, s[j]);
        }
        let sum = 0;
        for (let j = 0; j < s.length; j++) sum += s[j] = Math.exp(s[j] - max);
        for (let j = 0; j < s.length; j++) s[j] /= sum;
        for (let d = 0; d < hd; d++) {
          let acc = 0;
          for (let j = 0; j < s.length; j++) {
            acc += s[j] * this.v[l][list[j]][kvOff + d];
          }
          o[h * hd + d] = acc;
        }
        weights.push(Float32Array.from(s));
      }
      hooks.observe?.(l, pos, weights);
      const attnOut = matvec(L.wo, o);
      for (let i = 0; i < c.dim; i++) x[i] += attnOut[i];
      const xn2 = rmsnorm(x, L.ffnNorm, c.normEps);
      const gate = matvec(L.wGate, xn2);
      const up = matvec(L.wUp, xn2);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = matvec(L.wDown, act);
      for (let i = 0; i < c.dim; i++) x[i] += down[i];
    });
    const xo = rmsnorm(x, m.outputNorm, c.normEps);
    const logits = new Float64Array(c.vocabSize);
    for (let r = 0; r < c.vocabSize; r++) {
      let s = 0;
      for (let i = 0; i < c.dim; i++) s += m.output[r * c.dim + i] * xo[i];
      logits[r] = s;
    }
    return logits;
  }
}

/** log-softmax(logits)[target] negated, in f64 (max subtracted). */
export function nllOf(logits: ArrayLike<number>, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum) - logits[target];
}

/** The index of the largest logit, the lowest on ties. */
export function argmaxOf(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

/** The gap between the largest and the second largest logit. */
export function top2Gap(logits: ArrayLike<number>): number {
  let a = -Infinity, b = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > a) {
      b = a;
      a = v;
    } else if (v > b) b = v;
  }
  return a - b;
}
