/**
 * Plain TypeScript reference of every KV selection policy, exactly per
 * `spec.ts` (read its module doc first): the yardstick the GPU kernels
 * (`shaders/sparse/select_*.wgsl`, `shaders/sparse/policy.wgsl`) are tested against.
 *
 * - Stateless policies: {@linkcode selectDense}, {@linkcode selectLocal},
 *   {@linkcode selectSinks}, {@linkcode selectStrided} (given `k` from
 *   {@linkcode budgetK}), and {@linkcode selectStatic} (given a spec).
 * - SWA: {@linkcode SwaReference} keeps the running-window score S (f32,
 *   in the spec's order of operations) and the rows still needed to slide
 *   the window; {@linkcode selectSwa} is its stateless selection rule.
 * - H2O: {@linkcode H2oReference} keeps per-head accumulated scores and
 *   the permanently evicted positions.
 * - {@linkcode referenceSelection}: one interface for all six, to drive a
 *   policy step by step from recorded attention weights
 *   ({@linkcode simulateSelection} does the loop).
 *
 * Conventions (the GPU must match them):
 * - every list is ascending, positions in [0, n), no duplicates;
 * - "highest score, ties to the smaller position" compares f32 values as
 *   numbers, a score <= 0 ranking as 0 (S's running window sum can cancel
 *   to -0 or slightly below 0; so -1e-9, -0 and +0 tie); scores are
 *   assumed not NaN;
 * - k larger than n (possible only with a large `minBudget`) clamps the
 *   recent window to [0, n) and leaves no older positions;
 * - f32 sums are `Math.fround` after every single addition/subtraction,
 *   in the order the spec states (heads in order 0, 1, ...; rows in query
 *   order).
 *
 * @example Drive SWA for three steps
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { SwaReference } from "./reference.ts";
 * const swa = new SwaReference({ name: "swa", sparsity: 0.5 });
 * for (let n = 1; n <= 3; n++) {
 *   const list = swa.select(n); // ascending positions
 *   // one head, uniform weights over the attended positions
 *   const w = new Float32Array(list.length).fill(1 / list.length);
 *   swa.observe(n - 1, [w]);
 * }
 * assertEquals(swa.scores.length, 3);
 * ```
 *
 * @module
 */
import {
  budgetK,
  checkPolicy,
  type PolicyName,
  type PolicySpec,
} from "./spec.ts";

const f32 = Math.fround;

function checkN(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(`n (cached tokens) must be an integer >= 1, got ${n}`);
  }
}

function checkK(k: number): void {
  if (!Number.isSafeInteger(k) || k < 1) {
    throw new RangeError(`k must be an integer >= 1, got ${k}`);
  }
}

/** `k` and `b = min(n, 2k)` (tokens attended) of a step with `n` cached tokens. */
export function stepBudget(
  n: number,
  spec: Pick<PolicySpec, "sparsity" | "minBudget">,
): { k: number; b: number } {
  checkN(n);
  const k = budgetK(n, spec.sparsity, spec.minBudget ?? 0);
  return { k, b: Math.min(n, 2 * k) };
}

function range(from: number, to: number): Int32Array {
  const out = new Int32Array(Math.max(0, to - from));
  for (let i = 0; i < out.length; i++) out[i] = from + i;
  return out;
}

/** dense: all of [0, n). */
export function selectDense(n: number): Int32Array {
  checkN(n);
  return range(0, n);
}

/** local: the last b = min(n, 2k) positions [n - b, n). */
export function selectLocal(n: number, k: number): Int32Array {
  checkN(n);
  checkK(k);
  const b = Math.min(n, 2 * k);
  return range(n - b, n);
}

/**
 * sinks (StreamingLLM): the first s = min(4, b - 1) positions plus the
 * last b - s, with b = min(n, 2k): the current token is always attended.
 * (The two never overlap since b <= n.)
 */
export function selectSinks(n: number, k: number): Int32Array {
  checkN(n);
  checkK(k);
  const b = Math.min(n, 2 * k);
  const s = Math.min(4, b - 1);
  const out = new Int32Array(b);
  for (let j = 0; j < s; j++) out[j] = j;
  for (let j = s; j < b; j++) out[j] = n - (b - s) + (j - s);
  return out;
}

/**
 * strided (Sparse Transformer): the last k positions plus, of the older
 * m = n - k, the k evenly spaced positions floor(i * m / k), i < k (so the
 * whole budget b = min(n, 2k) is used). 2k >= n: all of [0, n).
 */
export function selectStrided(n: number, k: number): Int32Array {
  checkN(n);
  checkK(k);
  if (2 * k >= n) return range(0, n);
  const m = n - k;
  const out = new Int32Array(2 * k);
  for (let i = 0; i < k; i++) out[i] = Math.floor(i * m / k);
  for (let j = 0; j < k; j++) out[k + j] = m + j;
  return out;
}

/**
 * The `count` positions of [0, limit) with the highest `scores` (a score
 * <= 0 ranks as 0; ties: the smaller position), or all of them when
 * limit <= count; ascending.
 * `exclude` (optional) marks positions that may not be chosen.
 */
export function topScored(
  scores: ArrayLike<number>,
  limit: number,
  count: number,
  exclude?: ArrayLike<number>,
): Int32Array {
  const cand: number[] = [];
  for (let p = 0; p < limit; p++) if (!exclude?.[p]) cand.push(p);
  if (cand.length > count) {
    cand.sort((a, b) => {
      // A score <= 0 ranks as 0 (running sums can cancel to -0 or -1e-9).
      const sa = Math.max(0, scores[a] ?? 0), sb = Math.max(0, scores[b] ?? 0);
      return sa > sb ? -1 : sa < sb ? 1 : a - b;
    });
    cand.length = count;
    cand.sort((a, b) => a - b);
  }
  return Int32Array.from(cand);
}

/**
 * swa's rule with given scores: the last k positions [n - k, n) plus the
 * k positions of [0, n - k) with the highest `scores` (all of them when
 * n - k <= k); ties to the smaller position. Ascending.
 */
export function selectSwa(
  n: number,
  k: number,
  scores: ArrayLike<number>,
): Int32Array {
  checkN(n);
  checkK(k);
  const start = Math.max(0, n - k);
  const older = topScored(scores, start, k);
  const out = new Int32Array(older.length + (n - start));
  out.set(older);
  for (let p = start; p < n; p++) out[older.length + p - start] = p;
  return out;
}

/** The list of a stateless policy (dense, local, strided, sinks) at `n`. */
export function selectStatic(spec: PolicySpec, n: number): Int32Array {
  const s = checkPolicy(spec);
  const { k } = stepBudget(n, s);
  switch (s.name) {
    case "dense":
      return selectDense(n);
    case "local":
      return selectLocal(n, k);
    case "strided":
      return selectStrided(n, k);
    case "sinks":
      return selectSinks(n, k);
    default:
      throw new TypeError(
        `${s.name} is stateful: use referenceSelection(spec, nHeads)`,
      );
  }
}

/**
 * The f32 row of one query: w[p] = sum over heads h = 0, 1, ... (in that
 * order, `Math.fround` after each add) of the weight head h gave p; 0 at
 * positions not attended. `weights[h]` is aligned with `lists[h]` (or with
 * `lists[0]` when one list is shared by every head).
 */
export function headSumRow(
  length: number,
  lists: Int32Array | Int32Array[],
  weights: Float32Array[],
): Float32Array {
  const row = new Float32Array(length);
  weights.forEach((w, h) => {
    const list = Array.isArray(lists)
      ? lists[lists.length === 1 ? 0 : h]
      : lists;
    if (!list || w.length !== list.length) {
      throw new RangeError(
        `head ${h}: ${w.length} weights for ${
          list?.length ?? 0
        } attended positions`,
      );
    }
    for (let i = 0; i < list.length; i++) {
      const p = list[i];
      if (p < 0 || p >= length) {
        throw new RangeError(`head ${h}: position ${p} outside [0, ${length})`);
      }
      row[p] = f32(row[p] + w[i]);
    }
  });
  return row;
}

/**
 * SWA (ALISA) for one layer and one sequence: the running-window score S
 * and the selection it drives.
 *
 * Step protocol: `select(n)` (n = q + 1, in order from the first query
 * after the prompt), attend, then `observe(q, weights)` with each head's
 * weights aligned with the list `select` returned. `seed(rows)` first, for
 * a dense prefill of P prompt tokens (then the first `select` is at
 * n = P + 1); without a seed the first step is n = 1.
 */
export class SwaReference {
  readonly spec: Readonly<Required<PolicySpec>>;
  #S = new Float32Array(64);
  /** Rows observed (= positions with a score = the next query index). */
  #q = 0;
  /** Past rows still needed to slide the window, by query index. */
  #rows = new Map<number, Float32Array>();
  #last: Int32Array | null = null;

  constructor(spec: PolicySpec) {
    this.spec = checkPolicy(spec);
    if (this.spec.name !== "swa") {
      throw new TypeError(`SwaReference needs policy swa, got ${spec.name}`);
    }
  }

  /** k of a step with `n` cached tokens. */
  k(n: number): number {
    return budgetK(n, this.spec.sparsity, this.spec.minBudget);
  }

  /** The `n` the next `select` expects (queries seen + 1). */
  get next(): number {
    return this.#q + 1;
  }

  /** S over the positions seen so far (a view: length = queries seen). */
  get scores(): Float32Array {
    return this.#S.subarray(0, this.#q);
  }

  /** The rows the ring holds now, by query index (oldest first). */
  get ringQueries(): number[] {
    return [...this.#rows.keys()].sort((a, b) => a - b);
  }

  #grow(len: number): void {
    if (len <= this.#S.length) return;
    let c = this.#S.length;
    while (c < len) c *= 2;
    const s = new Float32Array(c);
    s.set(this.#S);
    this.#S = s;
  }

  /** The ascending list of step `n` (must be {@linkcode next}). */
  select(n: number): Int32Array {
    checkN(n);
    if (n !== this.next) {
      throw new RangeError(`swa: expected the step n = ${this.next}, got ${n}`);
    }
    this.#last = selectSwa(n, this.k(n), this.#S.subarray(0, n));
    return this.#last;
  }

  /** Per-head weights of query `q` aligned with the last `select(q + 1)` list. */
  observe(q: number, weights: Float32Array[]): void {
    if (this.#last === null || q !== this.#q) {
      throw new RangeError(
        `swa: observe(${q}) without select(${q + 1}) first`,
      );
    }
    if (weights.length === 0) throw new RangeError("swa: no head weights");
    this.observeRow(q, headSumRow(q + 1, this.#last, weights));
  }

  /**
   * The running-window update with the head-summed row `row` (length
   * q + 1) of query q: S += row, then, when k(q + 2) == k(q + 1) and
   * q - k(q + 1) >= 0, S -= the row of query q - k(q + 1).
   */
  observeRow(q: number, row: Float32Array): void {
    if (q !== this.#q) {
      throw new RangeError(
        `swa: expected the row of query ${this.#q}, got ${q}`,
      );
    }
    if (row.length !== q + 1) {
      throw new RangeError(
        `swa: row of query ${q} has length ${row.length}, want ${q + 1}`,
      );
    }
    const n = q + 1;
    this.#grow(n);
    const S = this.#S;
    for (let p = 0; p <= q; p++) S[p] = f32(S[p] + row[p]);
    this.#rows.set(q, row);
    const k = this.k(n), k1 = this.k(n + 1);
    if (k1 === k && q - k >= 0) {
      const old = this.#rows.get(q - k);
      if (!old) throw new Error(`swa: row ${q - k} is not in the ring`);
      for (let p = 0; p < old.length; p++) S[p] = f32(S[p] - old[p]);
    }
    // The next step subtracts (at most) row n - k(n + 1); older ones are done.
    for (const r of this.#rows.keys()) if (r < n - k1) this.#rows.delete(r);
    this.#q = n;
    this.#last = null;
  }

  /**
   * Seeds S from a dense prefill of P = rows.length prompt tokens:
   * `rows[q]` (length q + 1) is query q's dense row summed over heads (see
   * {@linkcode headSumRow}). S = the rows of the last k(P + 1) queries,
   * added in query order. Only before any step.
   */
  seed(rows: Float32Array[]): void {
    if (this.#q !== 0) throw new RangeError("swa: seed only before any step");
    const P = rows.length;
    if (P === 0) return;
    rows.forEach((r, q) => {
      if (r.length !== q + 1) {
        throw new RangeError(
          `swa: seed row ${q} has length ${r.length}, want ${q + 1}`,
        );
      }
    });
    this.#grow(P);
    const k = this.k(P + 1);
    for (let q = Math.max(0, P - k); q < P; q++) {
      const r = rows[q];
      for (let p = 0; p <= q; p++) this.#S[p] = f32(this.#S[p] + r[p]);
      this.#rows.set(q, r);
    }
    this.#q = P;
    this.#last = null;
  }
}

/**
 * H2O (Heavy-Hitter Oracle) for one layer and one sequence: per head, the
 * accumulated score A_h (f32, every weight head h ever gave each position,
 * added step by step) and the positions evicted for good.
 *
 * Step protocol as {@linkcode SwaReference}: `select(n)` returns one list
 * per head (and evicts), `observe(weights)` with `weights[h]` aligned with
 * head h's list. `seed(rows)` adds a dense prefill's per-head rows to A
 * (no eviction during the prefill: the first eviction is at the first
 * decode step).
 */
export class H2oReference {
  readonly spec: Readonly<Required<PolicySpec>>;
  #A: Float32Array[];
  #evicted: Uint8Array[];
  #cap = 64;
  #q = 0;
  #last: Int32Array[] | null = null;

  constructor(spec: PolicySpec, readonly nHeads: number) {
    this.spec = checkPolicy(spec);
    if (this.spec.name !== "h2o") {
      throw new TypeError(`H2oReference needs policy h2o, got ${spec.name}`);
    }
    if (!Number.isSafeInteger(nHeads) || nHeads < 1) {
      throw new RangeError(`nHeads must be an integer >= 1, got ${nHeads}`);
    }
    this.#A = Array.from({ length: nHeads }, () => new Float32Array(this.#cap));
    this.#evicted = Array.from(
      { length: nHeads },
      () => new Uint8Array(this.#cap),
    );
  }

  /** k of a step with `n` cached tokens. */
  k(n: number): number {
    return budgetK(n, this.spec.sparsity, this.spec.minBudget);
  }

  /** The `n` the next `select` expects. */
  get next(): number {
    return this.#q + 1;
  }

  /** A_h over the positions seen so far (a view). */
  scores(h: number): Float32Array {
    return this.#A[h].subarray(0, this.#q);
  }

  /** The positions head h has evicted, ascending. */
  evicted(h: number): Int32Array {
    const e: number[] = [];
    for (let p = 0; p < this.#cap; p++) if (this.#evicted[h][p]) e.push(p);
    return Int32Array.from(e);
  }

  #grow(len: number): void {
    if (len <= this.#cap) return;
    let c = this.#cap;
    while (c < len) c *= 2;
    this.#A = this.#A.map((a) => {
      const b = new Float32Array(c);
      b.set(a);
      return b;
    });
    this.#evicted = this.#evicted.map((a) => {
      const b = new Uint8Array(c);
      b.set(a);
      return b;
    });
    this.#cap = c;
  }

  /**
   * Per head: the last k positions plus the k kept older positions with
   * the highest A_h (ties: smaller position); the other kept older
   * positions are evicted for good. `n` must be {@linkcode next}.
   */
  select(n: number): Int32Array[] {
    checkN(n);
    if (n !== this.next) {
      throw new RangeError(`h2o: expected the step n = ${this.next}, got ${n}`);
    }
    this.#grow(n);
    const k = this.k(n);
    const start = Math.max(0, n - k);
    this.#last = this.#A.map((A, h) => {
      const ev = this.#evicted[h];
      const keep = topScored(A, start, k, ev);
      const kept = new Uint8Array(start);
      for (const p of keep) kept[p] = 1;
      for (let p = 0; p < start; p++) if (!kept[p]) ev[p] = 1;
      const out = new Int32Array(keep.length + (n - start));
      out.set(keep);
      for (let p = start; p < n; p++) out[keep.length + p - start] = p;
      return out;
    });
    return this.#last;
  }

  /** `weights[h]` aligned with head h's list of the last `select`. */
  observe(weights: Float32Array[]): void {
    const lists = this.#last;
    if (lists === null) throw new RangeError("h2o: observe without select");
    if (weights.length !== this.nHeads) {
      throw new RangeError(
        `h2o: ${weights.length} heads of weights, want ${this.nHeads}`,
      );
    }
    weights.forEach((w, h) => {
      const list = lists[h];
      if (w.length !== list.length) {
        throw new RangeError(
          `h2o: head ${h}: ${w.length} weights for ${list.length} attended positions`,
        );
      }
      const A = this.#A[h];
      for (let i = 0; i < list.length; i++) A[list[i]] = f32(A[list[i]] + w[i]);
    });
    this.#q++;
    this.#last = null;
  }

  /**
   * Adds a dense prefill of P = rows.length tokens: `rows[q][h]` (length
   * q + 1) is head h's dense row of query q; added in query order. Only
   * before any step.
   */
  seed(rows: Float32Array[][]): void {
    if (this.#q !== 0) throw new RangeError("h2o: seed only before any step");
    this.#grow(rows.length);
    rows.forEach((perHead, q) => {
      if (perHead.length !== this.nHeads) {
        throw new RangeError(
          `h2o: seed row ${q} has ${perHead.length} heads, want ${this.nHeads}`,
        );
      }
      perHead.forEach((r, h) => {
        if (r.length !== q + 1) {
          throw new RangeError(
            `h2o: seed row ${q} head ${h} has length ${r.length}, want ${
              q + 1
            }`,
          );
        }
        const A = this.#A[h];
        for (let p = 0; p <= q; p++) A[p] = f32(A[p] + r[p]);
      });
    });
    this.#q = rows.length;
  }
}

/** Any policy, driven step by step (one layer, one sequence). */
export interface ReferenceSelection {
  readonly spec: Readonly<Required<PolicySpec>>;
  readonly nHeads: number;
  /** The `n` the next `select` expects. */
  readonly next: number;
  /**
   * One ascending list per head for the step with `n` cached tokens (the
   * same array for every head when the policy shares one set). Stateful
   * policies (swa, h2o) need `n` = `next`; stateless ones accept any `n`.
   */
  select(n: number): Int32Array[];
  /**
   * The attention weights of query `q` (the last `select` was at
   * n = q + 1): `weights[h]` aligned with head h's list.
   */
  observe(q: number, weights: Float32Array[]): void;
  /**
   * A dense prefill of P tokens: `rows[q][h]` (length q + 1) is head h's
   * row of query q. swa sums heads in order and seeds S; h2o adds to A;
   * the others only advance `next` to P + 1.
   */
  seed(rows: Float32Array[][]): void;
}

class StaticSelection implements ReferenceSelection {
  #q = 0;
  #lastN = 0;
  #last: Int32Array | null = null;
  constructor(
    readonly spec: Readonly<Required<PolicySpec>>,
    readonly nHeads: number,
  ) {}
  get next(): number {
    return this.#q + 1;
  }
  select(n: number): Int32Array[] {
    const list = selectStatic(this.spec, n);
    this.#last = list;
    this.#lastN = n;
    return Array.from({ length: this.nHeads }, () => list);
  }
  observe(q: number, weights: Float32Array[]): void {
    if (this.#last === null || q !== this.#lastN - 1) {
      throw new RangeError(
        `${this.spec.name}: observe(${q}) without select(${q + 1}) first`,
      );
    }
    if (weights.length !== this.nHeads) {
      throw new RangeError(
        `${this.spec.name}: ${weights.length} heads of weights, want ${this.nHeads}`,
      );
    }
    for (const w of weights) {
      if (w.length !== this.#last.length) {
        throw new RangeError(
          `${this.spec.name}: ${w.length} weights for ${this.#last.length} attended positions`,
        );
      }
    }
    this.#q = q + 1;
    this.#last = null;
  }
  seed(rows: Float32Array[][]): void {
    this.#q = rows.length;
  }
}

class SwaSelection implements ReferenceSelection {
  readonly swa: SwaReference;
  readonly spec: Readonly<Required<PolicySpec>>;
  constructor(spec: PolicySpec, readonly nHeads: number) {
    this.swa = new SwaReference(spec);
    this.spec = this.swa.spec;
  }
  get next(): number {
    return this.swa.next;
  }
  select(n: number): Int32Array[] {
    const list = this.swa.select(n);
    return Array.from({ length: this.nHeads }, () => list);
  }
  observe(q: number, weights: Float32Array[]): void {
    if (weights.length !== this.nHeads) {
      throw new RangeError(
        `swa: ${weights.length} heads of weights, want ${this.nHeads}`,
      );
    }
    this.swa.observe(q, weights);
  }
  seed(rows: Float32Array[][]): void {
    this.swa.seed(rows.map((perHead, q) => {
      if (perHead.length !== this.nHeads) {
        throw new RangeError(
          `swa: seed row ${q} has ${perHead.length} heads, want ${this.nHeads}`,
        );
      }
      const all = range(0, q + 1);
      return headSumRow(q + 1, all, perHead);
    }));
  }
}

class H2oSelection implements ReferenceSelection {
  readonly h2o: H2oReference;
  readonly spec: Readonly<Required<PolicySpec>>;
  constructor(spec: PolicySpec, readonly nHeads: number) {
    this.h2o = new H2oReference(spec, nHeads);
    this.spec = this.h2o.spec;
  }
  get next(): number {
    return this.h2o.next;
  }
  select(n: number): Int32Array[] {
    return this.h2o.select(n);
  }
  observe(q: number, weights: Float32Array[]): void {
    if (q !== this.h2o.next - 1) {
      throw new RangeError(`h2o: observe(${q}) without select(${q + 1}) first`);
    }
    this.h2o.observe(weights);
  }
  seed(rows: Float32Array[][]): void {
    this.h2o.seed(rows);
  }
}

/** A step-by-step reference of `spec` with `nHeads` (query) heads. */
export function referenceSelection(
  spec: PolicySpec,
  nHeads: number,
): ReferenceSelection {
  const s = checkPolicy(spec);
  if (!Number.isSafeInteger(nHeads) || nHeads < 1) {
    throw new RangeError(`nHeads must be an integer >= 1, got ${nHeads}`);
  }
  switch (s.name) {
    case "swa":
      return new SwaSelection(s, nHeads);
    case "h2o":
      return new H2oSelection(s, nHeads);
    default:
      return new StaticSelection(s, nHeads);
  }
}

/**
 * Runs `spec` over the queries `prompt.length` .. `steps - 1` of one
 * sequence: at each step, `weightsFor(q, lists)` returns each head's
 * weights aligned with its list (e.g. recorded from the GPU, or a softmax
 * of reference scores). `prompt` (optional): the dense prefill rows, as
 * {@linkcode ReferenceSelection.seed} takes them. Returns the lists of
 * every decode step (index 0 = query `prompt.length`).
 */
export function simulateSelection(
  spec: PolicySpec,
  nHeads: number,
  steps: number,
  weightsFor: (q: number, lists: Int32Array[]) => Float32Array[],
  prompt: Float32Array[][] = [],
): Int32Array[][] {
  const sel = referenceSelection(spec, nHeads);
  sel.seed(prompt);
  const out: Int32Array[][] = [];
  for (let q = prompt.length; q < steps; q++) {
    const lists = sel.select(q + 1);
    sel.observe(q, weightsFor(q, lists));
    out.push(lists);
  }
  return out;
}

export type { PolicyName, PolicySpec };
