/**
 * Plain TypeScript reference of the KV tiers: where every (layer, slot,
 * pos)'s K/V lives after each step, per the written rules in the module
 * doc of `scheduler.ts` (read it first). It is the yardstick the KV store
 * (`store.ts`, its `TierScheduler` and what the GPU holds) is tested
 * against, so it is written independently of `TierScheduler`: one record
 * per entry in a `Map`, a plain array of row owners, linear scans, and
 * the tier *derived* from two facts instead of stored:
 *
 * - an entry with a pool row is `gpu`;
 * - else, while the host holds its K/V, `host`;
 * - else (phase III dropped them) `recompute`;
 * - an entry never written is `none`.
 *
 * Rules, one step (the step counter j grows by one per step, first step
 * j = 1):
 *
 * 1. Phase III (decode step index >= plan.p2 and plan.beta > 0): for every
 *    sequence s in the step and every layer, the entries with
 *    pos < floor(beta x length(s)) lose their host K/V. length(s) counts
 *    the positions of s including the ones this step writes (the reading
 *    the cost model's n = promptLen + j + 1 uses). Prefill steps
 *    (decode step index -1) drop nothing.
 * 2. W_l, per sequence in the step: its set at layer l (`sets(l, slot)`),
 *    or, when that is null, every position below the largest kvLen of its
 *    tokens; positions the step writes are not misses but new entries.
 *    For l = 0, 1, ...: the misses of W_l (entries without a row) in
 *    (slot, pos) order get a row (host K/V present: an upload, else a
 *    recompute), then the new entries in step order (a new entry that
 *    somehow still has a row keeps it). A row is the smallest free row,
 *    else a victim's:
 *    a. rows whose entry is in no W_l' with l' >= l: smallest last-use
 *       step, ties to the smallest row;
 *    b. else rows whose entry is in a W_l' with l' > l: largest l', then
 *       smallest last-use step, then the smallest row;
 *    c. else a RangeError (the budget cannot hold W_l).
 *    The victim loses its row (so it is `host`, or `recompute` if its
 *    host K/V were dropped). Then every entry of W_l is marked used at j.
 * 3. New entries' K/V reach the host with the step (write-through): they
 *    count as having host K/V from the moment they are written.
 *
 * Where the spec is silent the reference says so: a slot restarting at
 * position 0 is the caller's business (`clear`), as is the plan (`setPlan`).
 *
 * (Phase III drops only from the sequences in the step: a sequence that is
 * not decoding, e.g. one of a batch that finished first, costs no
 * transfers, so nothing is gained by dropping its tokens.)
 *
 * @example Three rows, one layer: LRU victims, ties to the smallest row
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { TierReference } from "./reference.ts";
 * const ref = new TierReference({ nLayers: 1, slots: 1, ctx: 8, rows: 3 });
 * const tok = (pos: number) => ({ slot: 0, pos, kvLen: pos + 1 });
 * // Prefill positions 0..2 (sets null: every earlier position).
 * ref.step([tok(0), tok(1), tok(2)], () => null, -1);
 * assertEquals([0, 1, 2].map((p) => ref.row(0, 0, p)), [0, 1, 2]);
 * // Decode 3 attending {2, 3}: rows 0 and 1 may be taken, both last used
 * // at step 1: the tie goes to row 0, so position 0 goes to the host.
 * const s = ref.step([tok(3)], () => [2, 3], 0);
 * assertEquals(s.layers[0].news, [{ slot: 0, pos: 3, row: 0 }]);
 * assertEquals(ref.tier(0, 0, 0), "host");
 * // Decode 4 attending {0, 4}: 0 is uploaded into the least recently
 * // used row (row 1, position 1, last used at step 1), then 4 takes row 0
 * // (positions 3 and 2, rows 0 and 2, tie at step 2: the smaller row).
 * const t = ref.step([tok(4)], () => [0, 4], 1);
 * assertEquals(t.layers[0].uploads, [{ slot: 0, pos: 0, row: 1 }]);
 * assertEquals(t.layers[0].news, [{ slot: 0, pos: 4, row: 0 }]);
 * assertEquals([0, 1, 2, 3, 4].map((p) => ref.tier(0, 0, p)), [
 *   "gpu", "host", "gpu", "host", "gpu",
 * ]);
 * ```
 *
 * @module
 */

/** Where an entry's K/V live. */
export type RefTier = "none" | "gpu" | "host" | "recompute";

/** The sizes of the modelled store. */
export interface TierReferenceDims {
  nLayers: number;
  /** Sequences at once. */
  slots: number;
  /** Positions per sequence. */
  ctx: number;
  /** Rows of the GPU pool. */
  rows: number;
}

/** The plan's fields the rules use (`scheduler.ts`'s `TierPlan`). */
export interface RefPlan {
  p1: number;
  /** First decode step index of phase III. */
  p2: number;
  alpha: number;
  /** Fraction of each sequence's oldest positions dropped from p2 on. */
  beta: number;
}

/** One token of a step. */
export interface RefToken {
  slot: number;
  pos: number;
  /** Cached positions it attends (pos + 1 for dense causal). */
  kvLen: number;
}

/** An entry of one layer placed into a row. */
export interface RefPlacement {
  slot: number;
  pos: number;
  row: number;
}

/** What one layer of a step did. */
export interface RefLayerWork {
  /** Host entries uploaded, in the order handled. */
  uploads: RefPlacement[];
  /** Dropped entries rebuilt, in the order handled. */
  recomputes: RefPlacement[];
  /** The step's new entries, in step order. */
  news: RefPlacement[];
  /** Every entry of W_l with its row when the layer runs: misses and hits in (slot, pos) order, then the new entries. */
  reads: RefPlacement[];
}

/** What one step did. */
export interface RefStepResult {
  /** The step counter j of this step. */
  step: number;
  layers: RefLayerWork[];
  /** Entries whose host K/V were dropped by this step. */
  drops: { l: number; slot: number; pos: number }[];
  /** Rows taken from an entry to make room. */
  evictions: number;
  /** Of those, taken by rule 2a (least recently used) and 2b (needed later). */
  byRule: { lru: number; neededLater: number };
}

interface Entry {
  l: number;
  slot: number;
  pos: number;
  /** Pool row, or -1. */
  row: number;
  /** Whether the host holds its K/V. */
  hostKv: boolean;
  /** Step counter of its last use. */
  lastUse: number;
}

/** The reference model of the tiers. */
export class TierReference {
  readonly nLayers: number;
  readonly slots: number;
  readonly ctx: number;
  readonly rows: number;
  /** Steps so far (the step counter j of the last step). */
  stepCount = 0;
  private plan: RefPlan = { p1: Infinity, p2: Infinity, alpha: 0, beta: 0 };
  private readonly entries = new Map<string, Entry>();
  /** The entry holding each row, or null. */
  private readonly owner: (Entry | null)[];
  /** Positions written so far per slot (largest pos + 1). */
  private readonly lengths: number[];

  constructor(d: TierReferenceDims) {
    for (const k of ["nLayers", "slots", "ctx", "rows"] as const) {
      if (!Number.isSafeInteger(d[k]) || d[k] < 1) {
        throw new RangeError(`${k} must be an integer >= 1, got ${d[k]}`);
      }
    }
    this.nLayers = d.nLayers;
    this.slots = d.slots;
    this.ctx = d.ctx;
    this.rows = d.rows;
    this.owner = new Array(d.rows).fill(null);
    this.lengths = new Array(d.slots).fill(0);
  }

  private key(l: number, slot: number, pos: number): string {
    return `${l},${slot},${pos}`;
  }

  private get(l: number, slot: number, pos: number): Entry | undefined {
    return this.entries.get(this.key(l, slot, pos));
  }

  /** Sets the plan (p2 and beta drive phase III). */
  setPlan(plan: RefPlan): void {
    this.plan = { ...plan };
  }

  /** The tier of (layer, slot, pos). */
  tier(l: number, slot: number, pos: number): RefTier {
    const e = this.get(l, slot, pos);
    if (!e) return "none";
    if (e.row >= 0) return "gpu";
    return e.hostKv ? "host" : "recompute";
  }

  /** The pool row of (layer, slot, pos), or -1. */
  row(l: number, slot: number, pos: number): number {
    return this.get(l, slot, pos)?.row ?? -1;
  }

  /** Whether the host holds the K/V of (layer, slot, pos). */
  hostHas(l: number, slot: number, pos: number): boolean {
    return this.get(l, slot, pos)?.hostKv ?? false;
  }

  /** The step of the last use of (layer, slot, pos), or -1 if it does not exist. */
  lastUse(l: number, slot: number, pos: number): number {
    return this.get(l, slot, pos)?.lastUse ?? -1;
  }

  /** Positions written so far in `slot`. */
  length(slot: number): number {
    return this.lengths[slot];
  }

  /** Entries per tier. */
  counts(): { gpu: number; host: number; recompute: number } {
    const c = { gpu: 0, host: 0, recompute: 0 };
    for (const e of this.entries.values()) {
      c[this.tier(e.l, e.slot, e.pos) as "gpu" | "host" | "recompute"]++;
    }
    return c;
  }

  /** The observed phase: 3 if any entry is `recompute`, else 2 if any is `host`, else 1. */
  phase(): 1 | 2 | 3 {
    const c = this.counts();
    return c.recompute > 0 ? 3 : c.host > 0 ? 2 : 1;
  }

  /** Forgets every entry of `slot` (its rows become free). */
  clear(slot: number): void {
    for (const [k, e] of [...this.entries]) {
      if (e.slot !== slot) continue;
      if (e.row >= 0) this.owner[e.row] = null;
      this.entries.delete(k);
    }
    this.lengths[slot] = 0;
  }

  /**
   * Runs the rules for one step. `sets(l, slot)`: the positions the
   * slot's token attends at layer l, or null for every position below its
   * kvLen. `decodeStep`: the index of this step among the run's decode
   * steps, or -1 for a prefill step.
   */
  step(
    tokens: RefToken[],
    sets: (l: number, slot: number) => ArrayLike<number> | null,
    decodeStep: number,
  ): RefStepResult {
    for (const t of tokens) {
      if (
        t.slot < 0 || t.slot >= this.slots || t.pos < 0 || t.pos >= this.ctx
      ) {
        throw new RangeError(
          `token (slot ${t.slot}, pos ${t.pos}) is outside the store`,
        );
      }
    }
    this.stepCount++;
    const j = this.stepCount;
    for (const t of tokens) {
      this.lengths[t.slot] = Math.max(this.lengths[t.slot], t.pos + 1);
    }

    // 1. Phase III drops.
    const drops: RefStepResult["drops"] = [];
    if (this.plan.beta > 0 && decodeStep >= 0 && decodeStep >= this.plan.p2) {
      const inStep = new Set(tokens.map((t) => t.slot));
      for (let slot = 0; slot < this.slots; slot++) {
        if (!inStep.has(slot)) continue;
        const upto = Math.floor(this.plan.beta * this.lengths[slot]);
        for (let l = 0; l < this.nLayers; l++) {
          for (let pos = 0; pos < upto; pos++) {
            const e = this.get(l, slot, pos);
            if (e && e.hostKv) {
              e.hostKv = false;
              drops.push({ l, slot, pos });
            }
          }
        }
      }
    }

    // 2. Working sets: cached positions (sorted by slot, then pos) and new entries.
    const stepSlots = [...new Set(tokens.map((t) => t.slot))].sort((a, b) =>
      a - b
    );
    const cached: { slot: number; pos: number }[][] = [];
    /** "l,slot,pos" of every entry in some W_l this step -> l. */
    const needed = new Map<string, number>();
    for (let l = 0; l < this.nLayers; l++) {
      const list: { slot: number; pos: number }[] = [];
      for (const slot of stepSlots) {
        const mine = tokens.filter((t) => t.slot === slot);
        const fresh = mine.map((t) => t.pos);
        const set = sets(l, slot);
        let positions: number[];
        if (set === null) {
          const reach = Math.max(...mine.map((t) => t.kvLen));
          positions = [];
          for (let p = 0; p < reach; p++) positions.push(p);
        } else {
          positions = [...new Set(Array.from(set))].sort((a, b) => a - b);
        }
        for (const pos of positions) {
          if (!fresh.includes(pos)) list.push({ slot, pos });
        }
      }
      cached.push(list);
      for (const c of list) needed.set(this.key(l, c.slot, c.pos), l);
      for (const t of tokens) needed.set(this.key(l, t.slot, t.pos), l);
    }

    let evictions = 0;
    const byRule = { lru: 0, neededLater: 0 };
    const takeRow = (l: number): number => {
      // The smallest free row.
      for (let r = 0; r < this.rows; r++) if (this.owner[r] === null) return r;
      // a. needed by no layer >= l: least recently used, ties the smaller row.
      let victim = -1;
      for (let r = 0; r < this.rows; r++) {
        const e = this.owner[r]!;
        const at = needed.get(this.key(e.l, e.slot, e.pos));
        if (at !== undefined && at >= l) continue;
        if (victim < 0 || e.lastUse < this.owner[victim]!.lastUse) victim = r;
      }
      if (victim >= 0) byRule.lru++;
      // b. needed by a later layer: the largest layer, then LRU, then the smaller row.
      if (victim < 0) {
        let bestAt = -1;
        for (let r = 0; r < this.rows; r++) {
          const e = this.owner[r]!;
          const at = needed.get(this.key(e.l, e.slot, e.pos));
          if (at === undefined || at <= l) continue;
          const v = victim >= 0 ? this.owner[victim]! : null;
          if (
            v === null || at > bestAt ||
            (at === bestAt && e.lastUse < v.lastUse)
          ) {
            victim = r;
            bestAt = at;
          }
        }
        if (victim >= 0) byRule.neededLater++;
      }
      // c. nothing can be taken.
      if (victim < 0) {
        throw new RangeError(
          `reference: ${this.rows} rows cannot hold the working set of layer ${l} at step ${j}`,
        );
      }
      this.owner[victim]!.row = -1;
      this.owner[victim] = null;
      evictions++;
      return victim;
    };
    const place = (e: Entry, row: number) => {
      e.row = row;
      this.owner[row] = e;
    };

    const layers: RefLayerWork[] = [];
    for (let l = 0; l < this.nLayers; l++) {
      const w: RefLayerWork = {
        uploads: [],
        recomputes: [],
        news: [],
        reads: [],
      };
      for (const { slot, pos } of cached[l]) {
        const e = this.get(l, slot, pos);
        if (!e) {
          throw new RangeError(
            `reference: (layer ${l}, slot ${slot}, pos ${pos}) is attended but was never written`,
          );
        }
        if (e.row >= 0) continue;
        const upload = e.hostKv;
        const row = takeRow(l);
        place(e, row);
        (upload ? w.uploads : w.recomputes).push({ slot, pos, row });
      }
      for (const t of tokens) {
        let e = this.get(l, t.slot, t.pos);
        if (!e) {
          e = {
            l,
            slot: t.slot,
            pos: t.pos,
            row: -1,
            hostKv: true,
            lastUse: j,
          };
          this.entries.set(this.key(l, t.slot, t.pos), e);
        }
        e.hostKv = true; // written through with the step
        if (e.row < 0) place(e, takeRow(l));
        w.news.push({ slot: t.slot, pos: t.pos, row: e.row });
      }
      for (const { slot, pos } of cached[l]) {
        const e = this.get(l, slot, pos)!;
        e.lastUse = j;
        w.reads.push({ slot, pos, row: e.row });
      }
      for (const t of tokens) {
        const e = this.get(l, t.slot, t.pos)!;
        e.lastUse = j;
        w.reads.push({ slot: t.slot, pos: t.pos, row: e.row });
      }
      layers.push(w);
    }
    return { step: j, layers, drops, evictions, byRule };
  }
}
