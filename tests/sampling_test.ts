/**
 * `sample()` (src/api/sampling.ts) against the exact distribution it
 * documents, on fixed small logits: candidates sorted by logit (ties: lower
 * id first), cut by top-k, softmax at the temperature, cut by top-p (the
 * smallest prefix whose probability reaches p), renormalized, and one drawn
 * by walking the CDF with `random()`.
 *
 * The expected probabilities are computed here in f64, independently of
 * the code. Two kinds of check for every setting:
 * - exact draws: a `random()` that returns a chosen value just below and
 *   just above every CDF boundary must pick the token on that side;
 * - frequencies over many seeded draws: each token's count within 5
 *   binomial standard deviations of N p, and tokens of probability 0 never.
 *
 * Plus the edge cases: temperature 0 is the argmax, top-k 1, a tiny top-p,
 * ties, -Infinity logits, and `checkSampling`'s RangeErrors (NaN included).
 */
import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertLessOrEqual,
  assertNotEquals,
  assertThrows,
} from "@std/assert";
import {
  checkSampling,
  sample,
  type SamplingOptions,
  seededRandom,
} from "../src/api/sampling.ts";

/** The documented distribution, in f64: [id, probability] in CDF order. */
function expected(
  logits: number[],
  o: SamplingOptions,
): [number, number][] {
  const t = o.temperature ?? 0;
  assert(t > 0, "expected() is for sampling, not greedy");
  // sample() sees f32 logits; rank by logit, ties to the lower id.
  const ranked = logits.map((l, id) => ({ id, l: Math.fround(l) })).sort((
    a,
    b,
  ) => a.l !== b.l ? (a.l > b.l ? -1 : 1) : a.id - b.id);
  const k = o.topK && o.topK > 0
    ? Math.min(o.topK, ranked.length)
    : ranked.length;
  const kept = ranked.slice(0, k);
  // Softmax at temperature t over the kept tokens (max subtracted).
  const top = kept[0].l;
  const w = kept.map((c) => Math.exp((c.l - top) / t));
  const z = w.reduce((a, b) => a + b, 0);
  let dist: [number, number][] = kept.map((c, i) => [c.id, w[i] / z]);
  // Top-p: the smallest prefix whose mass reaches p, renormalized.
  const p = o.topP ?? 1;
  if (p < 1) {
    let mass = 0, n = 0;
    while (n < dist.length && mass < p) mass += dist[n++][1];
    dist = dist.slice(0, n).map(([id, q]) => [id, q / mass]);
  }
  return dist;
}

/** A "random" source that returns `u` once (and fails if asked again). */
function once(u: number): () => number {
  let used = false;
  return () => {
    assert(!used, "sample() drew twice for one token");
    used = true;
    return u;
  };
}

const draw = (logits: number[], o: SamplingOptions, u: number) =>
  sample(new Float32Array(logits), o, once(u));

/** Requires the draw with random() = `u` to be `id`. */
function expectDraw(
  logits: number[],
  o: SamplingOptions,
  u: number,
  id: number,
) {
  assertEquals(
    draw(logits, o, u),
    id,
    `logits ${JSON.stringify(logits)} (null: -Infinity), ${
      JSON.stringify(o)
    }, random() = ${u}`,
  );
}

/** The largest value seededRandom (32-bit mulberry32) can return. */
const U_MAX32 = 1 - 2 ** -32;

/**
 * Exact draws at every CDF boundary: u = c_i - d picks candidate i,
 * u = c_i + d picks candidate i + 1 (d a small relative margin).
 */
function checkBoundaries(logits: number[], o: SamplingOptions) {
  const dist = expected(logits, o);
  const label = JSON.stringify(o);
  assertEquals(draw(logits, o, 0), dist[0][0], `${label}: u = 0`);
  let c = 0;
  for (let i = 0; i < dist.length; i++) {
    c += dist[i][1];
    const d = 1e-9;
    if (c - d > 0 && dist[i][1] > 2 * d) {
      assertEquals(
        draw(logits, o, c - d),
        dist[i][0],
        `${label}: u = CDF(${i}) - ${d} = ${c - d} must pick id ${
          dist[i][0]
        } (p = ${dist[i][1]})`,
      );
    }
    if (i + 1 < dist.length && c + d < 1) {
      assertEquals(
        draw(logits, o, c + d),
        dist[i + 1][0],
        `${label}: u = CDF(${i}) + ${d} = ${c + d} must pick id ${
          dist[i + 1][0]
        } (p = ${dist[i + 1][1]})`,
      );
    }
  }
  // The largest value the engine's generator returns: the last candidate
  // with a positive probability.
  const last = dist.findLast(([, p]) => p > 0)!;
  assertEquals(draw(logits, o, U_MAX32), last[0], `${label}: u = 1 - 2^-32`);
}

/** Empirical frequencies of N seeded draws against N p, within 5 sigma. */
function checkFrequencies(
  logits: number[],
  o: SamplingOptions,
  N = 20000,
  seed = 20240601,
) {
  const dist = new Map(expected(logits, o));
  const random = seededRandom(seed);
  const counts = new Array(logits.length).fill(0);
  const x = new Float32Array(logits);
  for (let i = 0; i < N; i++) counts[sample(x, o, random)]++;
  const label = JSON.stringify(o);
  counts.forEach((count, id) => {
    const p = dist.get(id) ?? 0;
    if (p === 0) {
      assertEquals(count, 0, `${label}: id ${id} has probability 0`);
      return;
    }
    const sigma = Math.sqrt(N * p * (1 - p));
    assertLessOrEqual(
      Math.abs(count - N * p),
      5 * sigma,
      `${label}: id ${id} drawn ${count} times of ${N}, expected ${
        (N * p).toFixed(1)
      } ± ${(5 * sigma).toFixed(1)} (p = ${p.toFixed(5)})`,
    );
  });
}

// Distinct logits, out of order, so that sorting matters.
const L = [1, 3, -1, 2, 0, 0.5];

Deno.test("expected() itself: softmax of [2, 1, 0, -1] at T = 1 by hand", () => {
  const e = [Math.E ** 2, Math.E, 1, 1 / Math.E];
  const z = e.reduce((a, b) => a + b);
  const got = expected([2, 1, 0, -1], { temperature: 1 });
  assertEquals(got.map(([id]) => id), [0, 1, 2, 3]);
  got.forEach(([, p], i) => assertAlmostEquals(p, e[i] / z, 1e-15));
  // 0.6439 + 0.2369 >= 0.7: top-p 0.7 keeps two, renormalized.
  const tp = expected([2, 1, 0, -1], { temperature: 1, topP: 0.7 });
  assertEquals(tp.map(([id]) => id), [0, 1]);
  assertAlmostEquals(tp[0][1], e[0] / (e[0] + e[1]), 1e-15);
});

Deno.test("sample: temperature sets the distribution (T = 0.25, 0.5, 1, 2, 10)", () => {
  for (const temperature of [0.25, 0.5, 1, 2, 10]) {
    checkBoundaries(L, { temperature });
    checkFrequencies(L, { temperature });
  }
});

Deno.test("sample: top-k keeps exactly the k most likely tokens (k = 1, 2, 3, 5, 6, 100, 0 = all)", () => {
  for (const topK of [1, 2, 3, 5, 6, 100, 0]) {
    checkBoundaries(L, { temperature: 1, topK });
    checkFrequencies(L, { temperature: 1, topK });
  }
  // k = 1: the argmax, whatever the draw.
  for (const u of [0, 0.5, U_MAX32]) {
    expectDraw(L, { temperature: 5, topK: 1 }, u, 1);
  }
});

Deno.test("sample: top-p keeps the smallest prefix reaching p, renormalized (p = 0.3, 0.6, 0.9, 0.99, 1)", () => {
  for (const topP of [0.3, 0.6, 0.9, 0.99, 1]) {
    checkBoundaries(L, { temperature: 1, topP });
    checkFrequencies(L, { temperature: 1, topP });
  }
  // Where the cut falls: at T = 1 the top two hold 0.6439 + 0.2369 of
  // [2, 1, 0, -1]; p = 0.88 needs both, p = 0.89 needs three.
  const l = [2, 1, 0, -1];
  assertEquals(expected(l, { temperature: 1, topP: 0.88 }).length, 2);
  assertEquals(expected(l, { temperature: 1, topP: 0.89 }).length, 3);
  expectDraw(l, { temperature: 1, topP: 0.88 }, U_MAX32, 1);
  expectDraw(l, { temperature: 1, topP: 0.89 }, U_MAX32, 2);
  // Renormalized: the first token's share of the kept two, not of all.
  const p0 = Math.E / (Math.E + 1);
  expectDraw(l, { temperature: 1, topP: 0.88 }, p0 - 1e-9, 0);
  expectDraw(l, { temperature: 1, topP: 0.88 }, p0 + 1e-9, 1);
});

Deno.test("sample: temperature, top-k and top-p together (top-k first, then softmax at T, then top-p)", () => {
  const big = [0.3, 2.2, -0.7, 1.9, 2.0, 0.1, -3, 1.2, 1.9, 0.8];
  for (
    const o of [
      { temperature: 0.7, topK: 5, topP: 0.8 },
      { temperature: 1.5, topK: 8, topP: 0.95 },
      { temperature: 0.4, topK: 3, topP: 0.5 },
      { temperature: 3, topK: 0, topP: 0.7 },
    ]
  ) {
    checkBoundaries(big, o);
    checkFrequencies(big, o);
  }
  // The order matters: top-p over the top-k renormalized mass. With k = 2
  // at T = 1 the top two of [2, 1, 0, -1] hold 0.731 / 0.269; p = 0.7
  // keeps one (over all four tokens it would keep two).
  assertEquals(
    expected([2, 1, 0, -1], { temperature: 1, topP: 0.7 }).length,
    2,
  );
  assertEquals(
    expected([2, 1, 0, -1], { temperature: 1, topK: 2, topP: 0.7 }).length,
    1,
  );
  assertEquals(
    draw([2, 1, 0, -1], { temperature: 1, topK: 2, topP: 0.7 }, U_MAX32),
    0,
  );
});

Deno.test("sample: temperature 0 (and undefined) is the argmax, ties to the lower id", () => {
  for (const u of [0, 0.5, U_MAX32]) {
    expectDraw(L, { temperature: 0 }, u, 1);
    expectDraw(L, {}, u, 1);
    expectDraw([0, 5, 5, 1], { temperature: 0 }, u, 1);
    expectDraw([-Infinity, -1, -Infinity], {}, u, 1);
  }
});

Deno.test("sample: a tiny top-p keeps only the most likely token", () => {
  for (const temperature of [0.5, 1, 50]) {
    for (const u of [0, 0.5, U_MAX32]) {
      expectDraw(L, { temperature, topP: 1e-9 }, u, 1);
    }
  }
  checkFrequencies(L, { temperature: 1, topP: 1e-9 }, 2000);
});

Deno.test("sample: tied logits share the mass equally, the lower id first in the CDF", () => {
  const tied = [1, 3, 3, 0, 3];
  for (const o of [{ temperature: 1 }, { temperature: 0.5, topK: 4 }]) {
    checkBoundaries(tied, o);
    checkFrequencies(tied, o);
  }
  // Three ties at the top: p = 1/3 each; id 1 below 1/3, id 2 up to 2/3.
  const o = { temperature: 1, topK: 3 };
  expectDraw(tied, o, 1 / 3 - 1e-9, 1);
  expectDraw(tied, o, 1 / 3 + 1e-9, 2);
  expectDraw(tied, o, 2 / 3 + 1e-9, 4);
  // top-k 1 among ties: the lower id.
  expectDraw(tied, { temperature: 1, topK: 1 }, U_MAX32, 1);
  // [0, 0] at T = 1 is exactly 0.5 / 0.5: top-p 0.5 is reached by the
  // first (lower id) alone.
  expectDraw([0, 0], { temperature: 1, topP: 0.5 }, U_MAX32, 0);
  expectDraw([0, 0], { temperature: 1, topP: 0.51 }, U_MAX32, 1);
});

Deno.test("sample: -Infinity logits are never drawn (frequencies; draws up to 1 - 2^-32)", () => {
  const masked = [-Infinity, 1, -Infinity, 0.5, 2, -Infinity];
  for (
    const o of [
      { temperature: 1 },
      { temperature: 0.3 },
      { temperature: 4, topP: 0.999 },
      { temperature: 1, topK: 5 },
    ]
  ) {
    checkBoundaries(masked, o);
    checkFrequencies(masked, o);
  }
  // One finite logit: that token, always.
  for (const u of [0, 0.5, U_MAX32]) {
    expectDraw([-Infinity, -Infinity, 7], { temperature: 1 }, u, 2);
  }
});

Deno.test("sample() with random() = 1 - 2^-53 never returns a -Infinity (probability 0) token", () => {
  // Rounding can leave r >= 0 after the last positive probability (Math.random
  // can return 1 - 2^-53); the draw must then be the last token with p > 0
  // in CDF order (most likely first): id 0, the smallest finite logit.
  const u = 1 - 2 ** -53;
  const l = [1, 2, 3, 4, 5, -Infinity];
  expectDraw(l, { temperature: 0.7 }, u, 0);
});

Deno.test("checkSampling: RangeError for NaN, negative or infinite temperature, bad top-k and top-p", () => {
  const bad: [SamplingOptions, string][] = [
    [{ temperature: NaN }, "temperature"],
    [{ temperature: -0.5 }, "temperature"],
    [{ temperature: Infinity }, "temperature"],
    [{ topK: 1.5 }, "topK"],
    [{ topK: -1 }, "topK"],
    [{ topK: NaN }, "topK"],
    [{ topP: 0 }, "topP"],
    [{ topP: -0.1 }, "topP"],
    [{ topP: 1.01 }, "topP"],
    [{ topP: NaN }, "topP"],
  ];
  for (const [o, name] of bad) {
    assertThrows(() => checkSampling(o), RangeError, name, JSON.stringify(o));
  }
  for (
    const o of [
      {},
      { temperature: 0 },
      { temperature: 0.7, topK: 0, topP: 1 },
      { temperature: 2, topK: 40, topP: 1e-9 },
    ]
  ) {
    checkSampling(o);
  }
});

Deno.test("seededRandom: reproducible, in [0, 1), roughly uniform", () => {
  const a = seededRandom(7), b = seededRandom(7), c = seededRandom(8);
  const xs = Array.from({ length: 10000 }, () => a());
  assertEquals(Array.from({ length: 10000 }, () => b()), xs);
  assertNotEquals(Array.from({ length: 10000 }, () => c()), xs, "seed 8");
  assert(xs.every((x) => x >= 0 && x < 1));
  // Mean of 10^4 uniforms: 0.5 ± 5 sigma (sigma = 1 / sqrt(12 * 10^4)).
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assertAlmostEquals(mean, 0.5, 5 / Math.sqrt(12 * xs.length));
});
