/**
 * Sampling from logits on the CPU: temperature, top-k, top-p (nucleus),
 * seeded. Greedy decoding never comes here: it takes the GPU's argmax and
 * reads back one id per sequence.
 *
 * @example Temperature, top-k and a seeded draw
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { sample, seededRandom } from "./sampling.ts";
 * const logits = new Float32Array([1, 3, -1, 2]);
 * // Temperature 0 is the argmax; top-k 1 too, whatever random() says.
 * assertEquals(sample(logits, { temperature: 0 }, Math.random), 1);
 * assertEquals(sample(logits, { temperature: 1, topK: 1 }, () => 0.99), 1);
 * // Top-k 2 at T = 1: id 1 has e^3 / (e^3 + e^2) = 0.731 of the mass and
 * // comes first in the CDF, so random() = 0.73 picks it, 0.74 picks id 3.
 * assertEquals(sample(logits, { temperature: 1, topK: 2 }, () => 0.73), 1);
 * assertEquals(sample(logits, { temperature: 1, topK: 2 }, () => 0.74), 3);
 * // At T = 0.25 id 1 has e^4 / (e^4 + 1) = 0.982: 0.97 still picks it.
 * assertEquals(sample(logits, { temperature: 0.25, topK: 2 }, () => 0.97), 1);
 * // The same seed draws the same tokens.
 * const a = seededRandom(42), b = seededRandom(42);
 * const o = { temperature: 0.8, topP: 0.9 };
 * const draws = (r: () => number) => Array.from({ length: 20 }, () => sample(logits, o, r));
 * assertEquals(draws(a), draws(b));
 * ```
 *
 * @module
 */

/** Sampling options; `temperature` 0 (the default) means greedy. */
export interface SamplingOptions {
  /** Softmax temperature; 0 picks the most likely token (default 0). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: all). */
  topK?: number;
  /** Keep the smallest set whose probability reaches p (1 or undefined: all). */
  topP?: number;
  /** Seed of the random generator (default: random). */
  seed?: number;
}

/** Checks sampling options; RangeError naming a bad one. */
export function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t)) {
    throw new RangeError(
      `temperature must be a finite number >= 0, got ${o.temperature}`,
    );
  }
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) {
    throw new RangeError(`topK must be a non-negative integer, got ${o.topK}`);
  }
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) {
    throw new RangeError(`topP must be in (0, 1], got ${o.topP}`);
  }
}

/** A seeded uniform generator in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The first index of the largest value (the GPU argmax's tie rule). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

/**
 * Samples a token from one row of logits. Candidates are sorted by logit
 * (ties: lower id first), cut by top-k, turned into probabilities at the
 * temperature, cut by top-p, and one is drawn with `random()`.
 */
export function sample(
  logits: Float32Array,
  o: SamplingOptions,
  random: () => number,
): number {
  const t = o.temperature ?? 0;
  if (t === 0) return argmax(logits);
  let ids = Array.from(logits.keys()).sort((a, b) =>
    logits[b] - logits[a] || a - b
  );
  if (o.topK && o.topK < ids.length) ids = ids.slice(0, o.topK);
  const max = logits[ids[0]];
  let probs = ids.map((i) => Math.exp((logits[i] - max) / t));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  if (o.topP !== undefined && o.topP < 1) {
    let acc = 0, n = 0;
    while (n < probs.length && acc < o.topP) acc += probs[n++];
    ids = ids.slice(0, n);
    probs = probs.slice(0, n);
    sum = acc;
    probs = probs.map((p) => p / sum);
  }
  let r = random();
  for (let i = 0; i < ids.length; i++) {
    r -= probs[i];
    if (r < 0) return ids[i];
  }
  // Rounding left r >= 0 (random() within an ulp of 1): the last token
  // that has any probability, never a -Infinity one.
  for (let i = ids.length - 1; i > 0; i--) if (probs[i] > 0) return ids[i];
  return ids[0];
}
