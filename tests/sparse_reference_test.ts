/**
 * The plain TypeScript reference of the KV selection policies
 * (src/sparse/reference.ts) against hand-computed cases and brute-force
 * recomputations of src/sparse/spec.ts's rules.
 */
import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertNotEquals,
  assertThrows,
} from "@std/assert";
import { budgetK, POLICY_NAMES, type PolicySpec } from "../src/sparse/spec.ts";
import {
  H2oReference,
  headSumRow,
  referenceSelection,
  selectDense,
  selectLocal,
  selectSinks,
  selectStatic,
  selectStrided,
  selectSwa,
  simulateSelection,
  stepBudget,
  SwaReference,
  topScored,
} from "../src/sparse/reference.ts";

const list = (a: Int32Array) => Array.from(a);
const iota = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => from + i);

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A softmax over `len` random logits (f32 weights summing to ~1). */
function softmax(rand: () => number, len: number, spread = 4): Float32Array {
  const l = Array.from({ length: len }, () => (rand() - 0.5) * 2 * spread);
  const m = Math.max(...l);
  const e = l.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return Float32Array.from(e, (x) => x / s);
}

// ---------------------------------------------------------------- budget

Deno.test("budgetK: hand-computed k at n = 1, 2, 3, 5, 8, 20", () => {
  const ns = [1, 2, 3, 5, 8, 20];
  // s = 0: r = 1, k = floor(n/2 + 0.5): 0.5 -> 1, 1 -> 1, 1.5 -> 2, 2.5 -> 3, 4, 10
  assertEquals(ns.map((n) => budgetK(n, 0)), [1, 1, 2, 3, 4, 10]);
  // s = 0.5: n/4 + 0.5 = 0.75, 1, 1.25, 1.75, 2.5, 5.5
  assertEquals(ns.map((n) => budgetK(n, 0.5)), [1, 1, 1, 1, 2, 5]);
  // s = 0.8: r = f32(0.2); 20 * r = f32(4.0000000596) = 4 -> 2.5 -> 2
  assertEquals(ns.map((n) => budgetK(n, 0.8)), [1, 1, 1, 1, 1, 2]);
  // s = 0.9: r = f32(0.1); 20 * r / 2 = 1 -> 1.5 -> 1
  assertEquals(ns.map((n) => budgetK(n, 0.9)), [1, 1, 1, 1, 1, 1]);
});

Deno.test("budgetK: minBudget floors k at ceil(minBudget / 2)", () => {
  assertEquals(budgetK(20, 0.9, 8), 4);
  assertEquals(budgetK(20, 0.9, 7), 4); // ceil(3.5)
  assertEquals(budgetK(20, 0.9, 1), 1);
  assertEquals(budgetK(20, 0.5, 8), 5); // the ratio already gives more
  assertEquals(budgetK(2, 0.9, 8), 4); // k > n: b = min(n, 2k) = n
  assertEquals(stepBudget(2, { sparsity: 0.9, minBudget: 8 }), { k: 4, b: 2 });
  assertEquals(stepBudget(20, { sparsity: 0.5 }), { k: 5, b: 10 });
  assertEquals(stepBudget(5, { sparsity: 0 }), { k: 3, b: 5 });
});

Deno.test("budgetK: x.5 rounds half up, and f32 decides near x.5", () => {
  // exact halves
  assertEquals(budgetK(3, 0), 2); // 1.5
  assertEquals(budgetK(5, 0), 3); // 2.5
  assertEquals(budgetK(6, 0.5), 2); // 1.5
  assertEquals(budgetK(10, 0.5), 3); // 2.5
  assertEquals(budgetK(2, 0.5), 1); // 0.5
  // f32: r = f32(1 - 0.8) = 0.200000003; 15 r = f32(3.0000000447) = 3 -> 1.5 -> 2.
  // In f64, 15 * (1 - 0.8) / 2 = 1.4999999999999998 would give k = 1.
  assertEquals(Math.floor(15 * (1 - 0.8) / 2 + 0.5), 1);
  assertEquals(budgetK(15, 0.8), 2);
  // r = f32(0.1); 30 r = f32(3.0000000447) = 3 -> 1.5 -> 2 (f64: 1)
  assertEquals(Math.floor(30 * (1 - 0.9) / 2 + 0.5), 1);
  assertEquals(budgetK(30, 0.9), 2);
  // s = 0.3: r = f32(0.7) = 0.699999988; 90 r = 62.9999989 -> f32 63 -> 31.5 -> 32
  assertEquals(Math.floor(90 * (1 - 0.3) / 2 + 0.5), 31);
  assertEquals(budgetK(90, 0.3), 32);
  // r must be f32(1 - s) computed in f64 (what budgetK does), not
  // 1 - f32(s) in f32: f32(0.8) = 0.800000012, 1 - it = 0.199999988, and
  // 15 * 0.199999988 = 2.9999998 -> 1.4999999 -> k = 1 instead of 2.
  const rBad = Math.fround(1 - Math.fround(0.8));
  const kBad = Math.floor(
    Math.fround(Math.fround(Math.fround(15 * rBad) / 2) + 0.5),
  );
  assertEquals(kBad, 1);
  assertEquals(Math.fround(1 - 0.8), 0.20000000298023224);
});

Deno.test("budgetK: grows by 0 or 1 per step (what the SWA window relies on)", () => {
  for (const s of [0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.99]) {
    for (const mb of [0, 5, 64]) {
      let prev = budgetK(1, s, mb);
      for (let n = 2; n <= 4096; n++) {
        const k = budgetK(n, s, mb);
        assert(
          k - prev === 0 || k - prev === 1,
          `s ${s} n ${n}: ${prev} -> ${k}`,
        );
        prev = k;
      }
    }
  }
});

// ------------------------------------------------------ stateless policies

Deno.test("dense, local, sinks, strided: hand-computed lists", () => {
  // n = 20, s = 0.5: k = 5, b = 10
  assertEquals(list(selectDense(20)), iota(0, 20));
  assertEquals(list(selectLocal(20, 5)), iota(10, 20));
  assertEquals(list(selectSinks(20, 5)), [0, 1, 2, 3, 14, 15, 16, 17, 18, 19]);
  // m = 15: floor(i * 15 / 5) = 0 3 6 9 12, then 15..19
  assertEquals(list(selectStrided(20, 5)), [
    0,
    3,
    6,
    9,
    12,
    15,
    16,
    17,
    18,
    19,
  ]);
  // n = 20, s = 0.8: k = 2, b = 4
  assertEquals(list(selectLocal(20, 2)), [16, 17, 18, 19]);
  assertEquals(list(selectSinks(20, 2)), [0, 1, 2, 19]); // s = min(4, b - 1) = 3
  assertEquals(list(selectStrided(20, 2)), [0, 9, 18, 19]); // m 18: 0, 18/2
  // n = 20, s = 0.9: k = 1, b = 2
  assertEquals(list(selectLocal(20, 1)), [18, 19]);
  assertEquals(list(selectSinks(20, 1)), [0, 19]); // s = min(4, 1)
  assertEquals(list(selectStrided(20, 1)), [0, 19]); // m 19
  // n = 8, s = 0.5: k = 2, b = 4
  assertEquals(list(selectLocal(8, 2)), [4, 5, 6, 7]);
  assertEquals(list(selectSinks(8, 2)), [0, 1, 2, 7]);
  assertEquals(list(selectStrided(8, 2)), [0, 3, 6, 7]); // m 6: 0, 6/2
  // n = 8, s = 0.8/0.9: k = 1
  assertEquals(list(selectLocal(8, 1)), [6, 7]);
  assertEquals(list(selectStrided(8, 1)), [0, 7]);
  // n = 5, k = 1
  assertEquals(list(selectLocal(5, 1)), [3, 4]);
  assertEquals(list(selectSinks(5, 1)), [0, 4]);
  assertEquals(list(selectStrided(5, 1)), [0, 4]);
  // n = 3, k = 1
  assertEquals(list(selectLocal(3, 1)), [1, 2]);
  assertEquals(list(selectSinks(3, 1)), [0, 2]);
  assertEquals(list(selectStrided(3, 1)), [0, 2]); // m 2
  // n = 2, 1: everything
  for (const n of [1, 2]) {
    for (const f of [selectLocal, selectSinks, selectStrided]) {
      assertEquals(list(f(n, 1)), iota(0, n));
    }
  }
  // sinks with b > 4: n = 20, k = 3 -> b 6: 0..3 + 18, 19
  assertEquals(list(selectSinks(20, 3)), [0, 1, 2, 3, 18, 19]);
  // strided with uneven spacing: n = 20, k = 3: m 17: floor(i * 17 / 3) = 0 5 11
  assertEquals(list(selectStrided(20, 3)), [0, 5, 11, 17, 18, 19]);
  // the whole budget is used: m = 9, k = 4 gives 4 older positions (a
  // stride of ceil(9 / 4) = 3 would give only 0 3 6)
  assertEquals(list(selectStrided(13, 4)), [0, 2, 4, 6, 9, 10, 11, 12]);
  // k >= n (minBudget): everything
  assertEquals(list(selectStrided(3, 4)), [0, 1, 2]);
  assertEquals(list(selectLocal(3, 4)), [0, 1, 2]);
  assertEquals(list(selectSinks(3, 4)), [0, 1, 2]);
});

Deno.test("selectStatic: spec -> k -> list, with minBudget", () => {
  const ns = [1, 2, 3, 5, 8, 20];
  const want: Record<string, number[][]> = {
    // s = 0.5
    local: [[0], [0, 1], [1, 2], [3, 4], [4, 5, 6, 7], iota(10, 20)],
    sinks: [[0], [0, 1], [0, 2], [0, 4], [0, 1, 2, 7], [
      0,
      1,
      2,
      3,
      14,
      15,
      16,
      17,
      18,
      19,
    ]],
    strided: [[0], [0, 1], [0, 2], [0, 4], [0, 3, 6, 7], [
      0,
      3,
      6,
      9,
      12,
      15,
      16,
      17,
      18,
      19,
    ]],
  };
  for (const name of ["local", "sinks", "strided"] as const) {
    assertEquals(
      ns.map((n) => list(selectStatic({ name, sparsity: 0.5 }, n))),
      want[name],
      name,
    );
  }
  // minBudget 8 at s = 0.9, n = 20: k = 4, b = 8
  assertEquals(
    list(selectStatic({ name: "local", sparsity: 0.9, minBudget: 8 }, 20)),
    iota(12, 20),
  );
  assertEquals(
    list(selectStatic({ name: "sinks", sparsity: 0.9, minBudget: 8 }, 20)),
    [0, 1, 2, 3, 16, 17, 18, 19],
  );
  // m 16: floor(i * 16 / 4) = 0 4 8 12, then 16..19
  assertEquals(
    list(selectStatic({ name: "strided", sparsity: 0.9, minBudget: 8 }, 20)),
    [0, 4, 8, 12, 16, 17, 18, 19],
  );
  assertThrows(
    () => selectStatic({ name: "swa", sparsity: 0.5 }, 3),
    TypeError,
    "stateful",
  );
  assertThrows(
    () => selectStatic({ name: "local", sparsity: 1 }, 3),
    RangeError,
    "sparsity",
  );
  assertThrows(
    () => selectStatic({ name: "local", sparsity: 0.5 }, 0),
    RangeError,
    "n",
  );
  assertThrows(
    // deno-lint-ignore no-explicit-any
    () => referenceSelection({ name: "nope" as any, sparsity: 0.5 }, 1),
    TypeError,
    "known: dense, local, strided, sinks, h2o, swa",
  );
});

Deno.test("selectSwa and topScored: ties go to the smaller position", () => {
  // all-zero scores: n = 20, k = 5: the first 5 plus the last 5
  assertEquals(list(selectSwa(20, 5, new Float32Array(20))), [
    0,
    1,
    2,
    3,
    4,
    15,
    16,
    17,
    18,
    19,
  ]);
  const S = Float32Array.from([0.5, 0.25, 0.5, 0.75, 0.25, 0.5, 0, 0]);
  // n = 8, k = 2: older [0, 6): top 2 = 3 (0.75), then 0.5 at 0, 2, 5 -> 0
  assertEquals(list(selectSwa(8, 2, S)), [0, 3, 6, 7]);
  // k = 3: 3, 0, 2
  assertEquals(list(selectSwa(8, 3, S)), [0, 2, 3, 5, 6, 7]);
  // n - k <= k: all older positions
  assertEquals(list(selectSwa(6, 3, S)), iota(0, 6));
  assertEquals(list(topScored(S, 6, 3)), [0, 2, 3]);
  assertEquals(list(topScored(S, 6, 10)), iota(0, 6));
  assertEquals(list(topScored(S, 6, 2, Uint8Array.from([0, 0, 0, 1]))), [0, 2]);
  // -0 == +0 (value comparison, not bits)
  assertEquals(list(topScored(Float32Array.from([-0, 0, -0, 0]), 4, 2)), [
    0,
    1,
  ]);
  // a score <= 0 ranks as 0 (f32 window sums can cancel to -1e-9):
  // -1e-9 ties with 0, so the smaller positions win
  assertEquals(list(topScored(Float32Array.from([-1e-9, 0, 0]), 3, 2)), [0, 1]);
  assertEquals(list(topScored(Float32Array.from([0, -1e-9, 1e-30]), 3, 2)), [
    0,
    2,
  ]);
  assertEquals(list(topScored(Float32Array.from([-0.5, -1e-9, 0.25]), 3, 2)), [
    0,
    2,
  ]);
});

// --------------------------------------------------------------- sparsity 0

Deno.test("sparsity 0: every policy selects all of [0, n) at every step", () => {
  const rand = rng(7);
  for (const name of POLICY_NAMES) {
    for (const minBudget of [0, 6]) {
      const lists = simulateSelection(
        { name, sparsity: 0, minBudget },
        3,
        120,
        (_q, ls) => ls.map((l) => softmax(rand, l.length)),
      );
      lists.forEach((perHead, q) => {
        for (const l of perHead) {
          assertEquals(list(l), iota(0, q + 1), `${name} n=${q + 1}`);
        }
      });
    }
  }
  for (const n of [1, 2, 3, 5, 8, 20, 1023, 1024]) {
    for (const name of ["dense", "local", "strided", "sinks"] as const) {
      assertEquals(list(selectStatic({ name, sparsity: 0 }, n)), iota(0, n));
    }
  }
});

// ---------------------------------------------------------------------- SWA

Deno.test("headSumRow: heads summed in head order, in f32", () => {
  const e = 2 ** -24;
  // (1 + e) + e = 1 in f32 (ties to even), while (e + e) + 1 = 1 + 2^-23
  const a = headSumRow(1, Int32Array.of(0), [
    Float32Array.of(1),
    Float32Array.of(e),
    Float32Array.of(e),
  ]);
  const b = headSumRow(1, Int32Array.of(0), [
    Float32Array.of(e),
    Float32Array.of(e),
    Float32Array.of(1),
  ]);
  assertEquals(a[0], 1);
  assertEquals(b[0], 1 + 2 ** -23);
  // positions not attended stay 0; per-head lists (h2o-shaped) also work
  const r = headSumRow(4, [Int32Array.of(0, 3), Int32Array.of(1, 3)], [
    Float32Array.of(0.25, 0.75),
    Float32Array.of(0.5, 0.5),
  ]);
  assertEquals(Array.from(r), [0.25, 0.5, 0, 1.25]);
  assertThrows(
    () => headSumRow(2, Int32Array.of(0, 1), [Float32Array.of(1)]),
    RangeError,
    "weights",
  );
});

Deno.test("SWA: running window on a hand-made sequence (s = 0.5)", () => {
  // k(n) at s = 0.5: n 1..5 -> 1, 6..9 -> 2. One head, dyadic weights:
  // every sum is exact, so S equals the brute-force window sum exactly.
  const swa = new SwaReference({ name: "swa", sparsity: 0.5 });
  const steps: { list: number[]; w: number[]; S: number[] }[] = [
    // n 1: [0]; S = row0; k(2) = k(1) but q - k < 0: no subtraction
    { list: [0], w: [1], S: [1] },
    // n 2: n - k = 1 <= k: all; S = [1.5, .5] - row0
    { list: [0, 1], w: [0.5, 0.5], S: [0.5, 0.5] },
    // n 3: older [0, 1] tie at 0.5 -> 0; S + row2 - row1
    { list: [0, 2], w: [0.25, 0.75], S: [0.25, 0, 0.75] },
    // n 4: older top 1 of [.25, 0, .75] -> 2
    { list: [2, 3], w: [0.5, 0.5], S: [0, 0, 0.5, 0.5] },
    // n 5: tie .5 at 2 and 3 -> 2; k(6) = 2 != k(5): no subtraction
    { list: [2, 4], w: [0.125, 0.875], S: [0, 0, 0.625, 0.5, 0.875] },
    // n 6: k = 2: older top 2 of [0, 0, .625, .5] -> 2, 3; subtract row3
    {
      list: [2, 3, 4, 5],
      w: [0.25, 0.25, 0.25, 0.25],
      S: [0, 0, 0.375, 0.25, 1.125, 0.25],
    },
    // n 7: older top 2 of [0, 0, .375, .25, 1.125] -> 4, 2; subtract row4
    {
      list: [2, 4, 5, 6],
      w: [0.5, 0.25, 0.125, 0.125],
      S: [0, 0, 0.75, 0.25, 0.5, 0.375, 0.125],
    },
  ];
  const rows: Float32Array[] = [];
  steps.forEach((st, q) => {
    const n = q + 1;
    assertEquals(swa.next, n);
    const l = swa.select(n);
    assertEquals(list(l), st.list, `list at n = ${n}`);
    swa.observe(q, [Float32Array.from(st.w)]);
    assertEquals(Array.from(swa.scores), st.S, `S after n = ${n}`);
    // brute force: the rows of the last k(n + 1) queries
    const row = new Float32Array(n);
    st.list.forEach((p, i) => (row[p] = st.w[i]));
    rows.push(row);
    const k1 = budgetK(n + 1, 0.5);
    const brute = new Array(n).fill(0);
    for (let r = Math.max(0, q - k1 + 1); r <= q; r++) {
      rows[r].forEach((v, p) => (brute[p] += v));
    }
    assertEquals(Array.from(swa.scores), brute, `brute S after n = ${n}`);
  });
  // the ring keeps only the rows a later step can still subtract:
  // next step n = 8 (k(8) = 2) subtracts row 8 - 1 - 2 = 5
  assertEquals(swa.ringQueries, [5, 6]);
  assertThrows(() => swa.select(9), RangeError, "n = 8");
  assertThrows(
    () => swa.observe(7, [Float32Array.of(1)]),
    RangeError,
    "select",
  );
});

Deno.test("SWA: f32 rounding makes S differ from the window sum only within float error", () => {
  // s = 0.5, one head. Row 1 puts 1e-8 on position 0 next to 1.0 from row 0:
  // f32(1 + 1e-8) = 1, so after row 0 leaves S[0] = 0, while the true
  // window sum (row 1 alone) is 1e-8.
  const swa = new SwaReference({ name: "swa", sparsity: 0.5 });
  swa.select(1);
  swa.observe(0, [Float32Array.of(1)]); // S = [1]
  assertEquals(list(swa.select(2)), [0, 1]);
  const tiny = Math.fround(1e-8);
  swa.observe(1, [Float32Array.of(tiny, Math.fround(1 - tiny))]);
  // S[0] = f32(f32(1 + tiny) - 1) = 0; exact window sum = tiny
  assertEquals(swa.scores[0], 0);
  assertNotEquals(swa.scores[0], tiny);
  assertAlmostEquals(swa.scores[0], tiny, 1e-7);
  assertEquals(swa.scores[1], Math.fround(1 - tiny)); // = 1 in f32
  // A window sum can even go (slightly) negative: step n = 3 attends [1, 2]
  // (0 gets weight 0), then row 1 leaves: S[0] = 0 + 0 - tiny, exact sum 0.
  assertEquals(list(swa.select(3)), [1, 2]);
  swa.observe(2, [Float32Array.of(0.5, 0.5)]);
  assertEquals(Array.from(swa.scores), [-tiny, 0.5, 0.5]);
  // ranking by value: -tiny < 0.5 = 0.5 -> position 1 (tie to the smaller)
  assertEquals(list(swa.select(4)), [1, 3]);
});

Deno.test("SWA: S tracks the last-k-rows sum over long random runs", () => {
  for (
    const [sparsity, minBudget, heads] of [
      [0.5, 0, 2],
      [0.8, 0, 4],
      [0.9, 0, 1],
      [0.7, 8, 3],
      [0.2, 0, 2],
    ]
  ) {
    const rand = rng(1000 * sparsity + minBudget);
    const swa = new SwaReference({ name: "swa", sparsity, minBudget });
    const rows: Float64Array[] = [];
    // an independent brute force: S from the f64 sum of the last k(n) rows
    for (let q = 0; q < 300; q++) {
      const n = q + 1, k = budgetK(n, sparsity, minBudget);
      const l = swa.select(n);
      // brute-force selection from brute-force scores
      const bruteS = new Float64Array(n);
      for (let r = Math.max(0, q - k); r < q; r++) {
        rows[r].forEach((v, p) => (bruteS[p] += v));
      }
      assertEquals(
        list(l),
        list(selectSwa(n, k, bruteS)),
        `s ${sparsity} n ${n}`,
      );
      assertEquals(l.length, Math.min(n, 2 * k));
      const w = Array.from({ length: heads }, () => softmax(rand, l.length, 6));
      swa.observe(q, w);
      const row = new Float64Array(n);
      w.forEach((wh) => wh.forEach((v, i) => (row[l[i]] += v)));
      rows.push(row);
      const k1 = budgetK(n + 1, sparsity, minBudget);
      const want = new Float64Array(n);
      for (let r = Math.max(0, q - k1 + 1); r <= q; r++) {
        rows[r].forEach((v, p) => (want[p] += v));
      }
      const S = swa.scores;
      for (let p = 0; p < n; p++) {
        assertAlmostEquals(
          S[p],
          want[p],
          2e-6 * heads,
          `s ${sparsity} n ${n} p ${p}`,
        );
      }
    }
  }
});

Deno.test("SWA: seed = the last k(P + 1) dense rows, added in query order", () => {
  const rand = rng(42);
  const P = 13, heads = 2, sparsity = 0.5; // k(14) = floor(3.5 + .5) = 4
  assertEquals(budgetK(P + 1, sparsity), 4);
  assertEquals(budgetK(P + 2, sparsity), 4); // k(15) = floor(3.75 + .5)
  const dense: Float32Array[][] = Array.from(
    { length: P },
    (_, q) => Array.from({ length: heads }, () => softmax(rand, q + 1)),
  );
  const sel = referenceSelection({ name: "swa", sparsity }, heads);
  sel.seed(dense);
  assertEquals(sel.next, P + 1);
  // brute force in the same f32 order: rows 9..12 (heads summed in order)
  const S = new Float32Array(P);
  const summed = dense.map((perHead, q) => {
    const r = new Float32Array(q + 1);
    for (const h of perHead) {
      h.forEach((v, p) => (r[p] = Math.fround(r[p] + v)));
    }
    return r;
  });
  for (let q = P - 4; q < P; q++) {
    summed[q].forEach((v, p) => (S[p] = Math.fround(S[p] + v)));
  }
  const swa = new SwaReference({ name: "swa", sparsity });
  swa.seed(summed);
  assertEquals(Array.from(swa.scores), Array.from(S));
  // the first decode step uses it: n = 14, k = 4: older [0, 10) top 4
  const first = sel.select(P + 1)[0];
  assertEquals(list(first), list(selectSwa(P + 1, 4, S)));
  assertEquals(first.length, 8);
  assertEquals(list(swa.select(P + 1)), list(first));
  // k(15) = k(14): the step subtracts row 13 - 4 = 9, the oldest seeded
  assertEquals(swa.ringQueries, [9, 10, 11, 12]);
  const w = [softmax(rand, first.length)];
  swa.observe(P, w);
  const row = headSumRow(P + 1, first, w);
  const want = new Float32Array(P + 1);
  for (let p = 0; p < P; p++) want[p] = S[p];
  for (let p = 0; p <= P; p++) want[p] = Math.fround(want[p] + row[p]);
  for (let p = 0; p <= 9; p++) want[p] = Math.fround(want[p] - summed[9][p]);
  assertEquals(Array.from(swa.scores), Array.from(want));
  assertThrows(() => swa.seed(summed), RangeError, "before");
});

Deno.test("SWA: S goes slightly negative in realistic runs; it ranks as 0", () => {
  // Peaked attention (a sink at 0, a few content hits, many tiny weights):
  // the add-then-subtract window leaves f32 residues, some below 0. Such a
  // score ranks as 0 (ties: smaller position). Ranking by the raw f32 bits
  // as a u32 would put negative scores first; the GPU's key
  // (s <= 0 ? 0 : bits(s)) gives exactly the reference's lists.
  const rand = rng(1);
  const swa = new SwaReference({ name: "swa", sparsity: 0.8 });
  const bits = new Uint32Array(1), fl = new Float32Array(bits.buffer);
  const rawKey = (v: number) => ((fl[0] = v), bits[0]);
  const gpuKey = (v: number) => (v <= 0 ? 0 : rawKey(v));
  let negSteps = 0, rawDiffers = 0;
  for (let q = 0; q < 300; q++) {
    const n = q + 1, k = budgetK(n, 0.8), m = Math.max(0, n - k);
    const l = swa.select(n);
    const S = swa.scores;
    const chosen = new Set(l);
    const key = (p: number) => Math.max(0, S[p]);
    let neg = false;
    for (let p = 0; p < m; p++) {
      if (S[p] < 0) neg = true;
      if (!chosen.has(p)) continue;
      for (let o = 0; o < m; o++) {
        if (chosen.has(o)) continue;
        assert(
          key(p) > key(o) || (key(p) === key(o) && p < o),
          `n ${n}: chose ${p} (${S[p]}) over ${o} (${S[o]})`,
        );
      }
    }
    if (neg) negSteps++;
    const gpu = selectSwa(n, k, Float64Array.from(S, gpuKey));
    assertEquals(list(gpu), list(l), `GPU key order at n ${n}`);
    const raw = selectSwa(n, k, Float64Array.from(S, rawKey));
    if (list(raw).join() !== list(l).join()) rawDiffers++;
    swa.observe(
      q,
      Array.from({ length: 4 }, () => {
        const lg = Array.from(
          l,
          (p) => p === 0 ? 8 : rand() < 0.05 ? 4 : -6 + 4 * rand(),
        );
        const e = lg.map((x) => Math.exp(x - 8));
        const z = e.reduce((a, b) => a + b, 0);
        return Float32Array.from(e, (x) => x / z);
      }),
    );
  }
  assert(negSteps > 100, `negative S at ${negSteps} steps`);
  assert(rawDiffers > 100, `raw bit order differs at ${rawDiffers} steps`);
});

Deno.test("SWA: one set shared by every head", () => {
  const rand = rng(3);
  simulateSelection({ name: "swa", sparsity: 0.7 }, 4, 60, (_q, ls) => {
    for (const l of ls) assertEquals(l, ls[0]);
    return ls.map((l) => softmax(rand, l.length));
  });
});

// ---------------------------------------------------------------------- H2O

Deno.test("H2O: hand-made sequence, permanent eviction even when k grows", () => {
  // s = 0.5: k(n) = 1 for n <= 5, 2 for 6..9. One head.
  const h2o = new H2oReference({ name: "h2o", sparsity: 0.5 }, 1);
  const steps: { list: number[]; w: number[]; evicted: number[] }[] = [
    { list: [0], w: [1], evicted: [] }, // A = [1]
    { list: [0, 1], w: [0.25, 0.75], evicted: [] }, // A = [1.25, .75]
    // n 3: older kept [0, 1], top 1 = 0, evict 1
    { list: [0, 2], w: [0.5, 0.5], evicted: [1] }, // A = [1.75, .75, .5]
    // n 4: older kept [0, 2]: keep 0, evict 2
    { list: [0, 3], w: [0.125, 0.875], evicted: [1, 2] }, // A = [1.875, .75, .5, .875]
    // n 5: older kept [0, 3]: keep 0, evict 3
    { list: [0, 4], w: [0.5, 0.5], evicted: [1, 2, 3] }, // A = [2.375, .75, .5, .875, .5]
    // n 6: k = 2, recent [4, 5]; older kept [0] only: 1, 2, 3 do not return
    { list: [0, 4, 5], w: [0.25, 0.25, 0.5], evicted: [1, 2, 3] },
    // A = [2.625, .75, .5, .875, .75, .5]; n 7: recent [5, 6], older kept [0, 4]
    { list: [0, 4, 5, 6], w: [0.25, 0.25, 0.25, 0.25], evicted: [1, 2, 3] },
    // A = [2.875, .75, .5, .875, 1, .75, .25]; n 8: older kept [0, 4, 5] -> 0, 4
    { list: [0, 4, 6, 7], w: [0.25, 0.25, 0.25, 0.25], evicted: [1, 2, 3, 5] },
  ];
  steps.forEach((st, q) => {
    const [l] = h2o.select(q + 1);
    assertEquals(list(l), st.list, `n = ${q + 1}`);
    assertEquals(list(h2o.evicted(0)), st.evicted, `evicted at n = ${q + 1}`);
    h2o.observe([Float32Array.from(st.w)]);
  });
  assertEquals(Array.from(h2o.scores(0)), [
    3.125,
    0.75,
    0.5,
    0.875,
    1.25,
    0.75,
    0.5,
    0.25,
  ]);
  // SWA at the same budget re-selects instead (its lists can bring 1 back)
});

Deno.test("H2O: per-head sets, ties to the smaller position, evicted never return", () => {
  // two heads; head 0 never attends 1 after eviction, head 1 keeps 1
  const h2o = new H2oReference({ name: "h2o", sparsity: 0.5 }, 2);
  h2o.select(1);
  h2o.observe([Float32Array.of(1), Float32Array.of(1)]);
  h2o.select(2);
  h2o.observe([Float32Array.of(0.5, 0.5), Float32Array.of(0.25, 0.75)]);
  // A0 = [1.5, .5], A1 = [1.25, .75]; n 3, k 1: both keep 0
  const [a, b] = h2o.select(3);
  assertEquals(list(a), [0, 2]);
  assertEquals(list(b), [0, 2]);
  h2o.observe([Float32Array.of(0, 1), Float32Array.of(0, 1)]);
  // A0 = [1.5, .5, 1], A1 = [1.25, .75, 1]: n 4: older kept [0, 2]
  const [c, d] = h2o.select(4);
  assertEquals(list(c), [0, 3]);
  assertEquals(list(d), [0, 3]);
  // ties: all-zero scores keep the smaller positions
  const z = new H2oReference({ name: "h2o", sparsity: 0.5, minBudget: 4 }, 1);
  // k = 2 throughout the first steps; weights all 0 -> ties everywhere
  for (let n = 1; n <= 7; n++) {
    const [l] = z.select(n);
    z.observe([new Float32Array(l.length)]);
    if (n === 7) assertEquals(list(l), [0, 1, 5, 6]);
  }
  assertEquals(list(z.evicted(0)), [2, 3, 4]);
  // once evicted, a position never comes back even if the budget becomes
  // large: random weights over 200 steps at s = 0.8
  const rand = rng(11);
  const r = new H2oReference({ name: "h2o", sparsity: 0.8 }, 3);
  const gone: Set<number>[] = [new Set(), new Set(), new Set()];
  for (let n = 1; n <= 200; n++) {
    const lists = r.select(n);
    const k = budgetK(n, 0.8);
    lists.forEach((l, h) => {
      for (const p of l) {
        assert(!gone[h].has(p), `head ${h} n ${n}: ${p} came back`);
      }
      assert(l.length <= Math.min(n, 2 * k));
      for (let p = Math.max(0, n - k); p < n; p++) assert(l.includes(p));
      for (const p of r.evicted(h)) gone[h].add(p);
    });
    r.observe(lists.map((l) => softmax(rand, l.length)));
  }
  // the heads diverged
  assertNotEquals(list(r.evicted(0)), list(r.evicted(1)));
});

Deno.test("H2O: seed adds the dense prefill to A, evicting at the first decode step", () => {
  const sel = referenceSelection({ name: "h2o", sparsity: 0.5 }, 1);
  // P = 4 dense rows, one head
  const rows = [[1], [0.5, 0.5], [0.25, 0.25, 0.5], [0.125, 0.5, 0.125, 0.25]]
    .map((r) => [Float32Array.from(r)]);
  sel.seed(rows);
  assertEquals(sel.next, 5);
  // A = [1.875, 1.25, .625, .25]; n 5, k 1: recent [4], older top 1 -> 0
  const [l] = sel.select(5);
  assertEquals(list(l), [0, 4]);
  assertThrows(
    () => sel.observe(3, [Float32Array.of(0.5, 0.5)]),
    RangeError,
    "select",
  );
  sel.observe(4, [Float32Array.of(0.5, 0.5)]);
  assertEquals(sel.next, 6);
});

// --------------------------------------------------------- the uniform API

Deno.test("referenceSelection: every policy, step by step, lists well-formed", () => {
  const rand = rng(5);
  for (const name of POLICY_NAMES) {
    for (const sparsity of [0.5, 0.8, 0.9]) {
      const spec: PolicySpec = { name, sparsity };
      const heads = 2;
      const lists = simulateSelection(
        spec,
        heads,
        100,
        (_q, ls) => ls.map((l) => softmax(rand, l.length)),
      );
      lists.forEach((perHead, q) => {
        const n = q + 1, { k, b } = stepBudget(n, spec);
        assertEquals(perHead.length, heads);
        for (const l of perHead) {
          for (let i = 0; i < l.length; i++) {
            assert(l[i] >= 0 && l[i] < n);
            if (i) assert(l[i] > l[i - 1], `${name} n ${n}: not ascending`);
          }
          const size = name === "dense"
            ? n
            : name === "local" || name === "sinks" || name === "swa"
            ? b
            : -1;
          if (size >= 0) assertEquals(l.length, size, `${name} n ${n}`);
          else assert(l.length <= b, `${name} n ${n}: ${l.length} > ${b}`);
          if (name !== "sinks" && name !== "dense") {
            for (let p = Math.max(0, n - k); p < n; p++) {
              assert(l.includes(p), `${name} n ${n} misses ${p}`);
            }
          }
        }
        if (name !== "h2o") assertEquals(perHead[0], perHead[1]);
      });
    }
  }
  // stateless ones accept any n; stateful ones need the next step
  const loc = referenceSelection({ name: "local", sparsity: 0.5 }, 1);
  assertEquals(list(loc.select(20)[0]), iota(10, 20));
  const swa = referenceSelection({ name: "swa", sparsity: 0.5 }, 1);
  assertThrows(() => swa.select(20), RangeError, "n = 1");
  assertThrows(() => swa.observe(0, [Float32Array.of(1)]), RangeError);
  swa.select(1);
  assertThrows(
    () => swa.observe(0, [Float32Array.of(1), Float32Array.of(1)]),
    RangeError,
    "heads",
  );
});
