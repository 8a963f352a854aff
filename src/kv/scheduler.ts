/**
 * The three-phase scheduler (ALISA section 3): decides, per step, where
 * every token's K/V lives at every layer. It only decides; the KV store
 * (`store.ts`) executes (uploads, recomputes, table writes, host drops).
 *
 * ## Tiers
 *
 * An entry is a (layer, slot, pos) of a cached token. Its tier is
 * - `gpu`: it has a row in the pool (attention reads it directly);
 * - `host`: no row; its K/V are in the host tier (uploaded when needed);
 * - `recompute`: no row and no K/V anywhere; its layer input x is kept
 *   and K, V are rebuilt on the GPU when needed.
 *
 * Every token is created on the GPU (it is in its own local window) and
 * its K/V (and x, when recomputing may happen) reach the host at the end
 * of the step that made it (write-through), so a spill moves no data.
 *
 * ## One step
 *
 * The step's working set at layer l, W_l, is what that layer's attention
 * reads: for each sequence in the step, the cached positions its tokens
 * attend (ascending; decode: the policy's set for n = kv_len, known before the step:
 * arithmetic policies on the CPU, SWA chosen one step ahead on the GPU and
 * read back; prefill: every earlier position), plus the positions the step
 * itself writes (new tokens). The step counter j grows by one per step.
 *
 * 1. Phase III drops (from decode step p2 of the plan on, when beta > 0):
 *    for every sequence s in the step and every layer l, the entries with
 *    pos < floor(beta x length(s)) lose their host K/V; the ones without a
 *    row become `recompute` (those with a row keep it, and become
 *    `recompute` when they lose it). Sequences not in the step (e.g. one
 *    of a batch that finished first) cost no transfers and keep theirs.
 * 2. For l = 0, 1, ...: every entry of W_l gets a row:
 *    - already on the GPU: nothing moves;
 *    - `host`: uploaded into a row; `recompute`: rebuilt into a row; new:
 *      written into a row by the step.
 *    Misses are handled in (slot, pos) order, then the new entries in step
 *    order. A row is the smallest free row, else a victim's:
 *    a. among rows whose entry is in no working set of layers >= l this
 *       step: the least recently used (smallest last-use step; ties: the
 *       smallest row). Tokens of the current local windows are used every
 *       step, so they go last, and only when one layer's working set
 *       leaves no other row (streaming, as FlexGen does for dense);
 *    b. else among rows needed by a later layer this step: the one needed
 *       last (largest layer; ties: least recently used, smallest row),
 *       which that layer will fetch again;
 *    c. else the budget cannot hold layer l's working set: RangeError.
 *    The victim's entry becomes `host` (or `recompute` if dropped).
 *    Every entry of W_l is then marked used at step j.
 *
 * The phases follow from the budget: phase I while every entry has a row,
 * phase II once some are on the host (the KV no longer fits: p1), phase III
 * once some are dropped (p2, chosen by the cost model, `cost_model.ts`).
 *
 * @module
 */
import type { KvPool } from "./pool.ts";

/** Where an entry's K/V live. */
export const TIER = { none: 0, gpu: 1, host: 2, recompute: 3 } as const;

/** The plan of the three phases (`cost_model.ts` chooses it). */
export interface TierPlan {
  /** Decode step at which the KV no longer fits the GPU (phase II), or Infinity. */
  p1: number;
  /** Decode step from which host tokens are dropped for recompute (phase III), or Infinity. */
  p2: number;
  /** Fraction of the KV on the host at the end (forced by the budget). */
  alpha: number;
  /** Fraction of each sequence's oldest positions dropped for recompute from p2 on. */
  beta: number;
}

/** A plan with no phase III. */
export const NO_RECOMPUTE: TierPlan = {
  p1: Infinity,
  p2: Infinity,
  alpha: 0,
  beta: 0,
};

/** One step's token as the scheduler sees it. */
export interface ScheduledToken {
  slot: number;
  pos: number;
  /** Cached positions it attends (pos + 1 for dense causal). */
  kvLen: number;
}

/** What one layer needs done before its attention. */
export interface LayerWork {
  /** (entry, row) pairs to upload from the host. */
  uploads: number[];
  /** (entry, row) pairs to rebuild from x. */
  recomputes: number[];
  /** (entry, row) pairs the step writes (new tokens). */
  news: number[];
  /** Rows this layer reads or writes (for the executor's ordering). */
  rows: number[];
  /**
   * (entry, row) of every entry this layer reads or writes, as placed
   * when the layer runs: the table entries the layer's dispatches need
   * (a later layer of the same step may take a row away again).
   */
  table: number[];
}

/** The decisions of one step. */
export interface StepDecision {
  layers: LayerWork[];
  /** Entries whose host K/V are dropped now (phase III). */
  drops: number[];
  /** Rows taken from a token to make room. */
  evictions: number;
}

/** Entry counts per tier. */
export interface TierCounts {
  gpu: number;
  host: number;
  recompute: number;
}

/** Min-heap of numbers. */
class Heap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(v: number): void {
    const a = this.a;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= v) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = v;
  }
  pop(): number | undefined {
    const a = this.a;
    if (!a.length) return undefined;
    const top = a[0], last = a.pop()!;
    if (a.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i, mv = last;
        if (l < a.length && a[l] < mv) (m = l), (mv = a[l]);
        if (r < a.length && a[r] < mv) m = r;
        if (m === i) break;
        a[i] = a[m];
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
  clear(): void {
    this.a = [];
  }
}

/** Keys (last use, row) in one number: last use * ROW_SPAN + row. */
const ROW_SPAN = 2 ** 22;

/** Most pool rows the scheduler handles (row indices fit its heap keys). */
export const MAX_SCHEDULED_ROWS: number = ROW_SPAN;

/** The scheduler's state and decisions. */
export class TierScheduler {
  /** Tier of each entry. */
  readonly tier: Uint8Array;
  /** Step of each entry's last use. */
  readonly lastUse: Int32Array;
  /** Entries whose host K/V were dropped. */
  readonly dropped: Uint8Array;
  /** Counts per tier. */
  readonly counts: TierCounts = { gpu: 0, host: 0, recompute: 0 };
  /** Steps decided so far (the step counter j). */
  step = 0;
  /** Entries that lost their row since the store last took this list. */
  released: number[] = [];
  plan: TierPlan = NO_RECOMPUTE;
  private readonly free = new Heap();
  private readonly lru = new Heap();
  /** Per layer, this step's LRU keys of rows that layer needs (set aside by takeRow). */
  private readonly deferred: Heap[];
  /** Per step: the layer that needs each entry (-1: none), reset per step. */
  private readonly neededAt: Int16Array;
  private readonly lengths: number[];

  constructor(readonly pool: KvPool) {
    if (pool.rows >= ROW_SPAN) {
      throw new RangeError(
        `a KV pool of ${pool.rows} rows is larger than the scheduler handles (${ROW_SPAN})`,
      );
    }
    const n = pool.rowOf.length;
    this.tier = new Uint8Array(n);
    this.lastUse = new Int32Array(n);
    this.dropped = new Uint8Array(n);
    this.neededAt = new Int16Array(n).fill(-1);
    this.deferred = Array.from({ length: pool.dims.nLayers }, () => new Heap());
    this.lengths = new Array(pool.dims.slots).fill(0);
    for (let r = 0; r < pool.rows; r++) this.free.push(r);
  }

  private setTier(e: number, t: number): void {
    const old = this.tier[e];
    if (old === TIER.gpu) this.counts.gpu--;
    else if (old === TIER.host) this.counts.host--;
    else if (old === TIER.recompute) this.counts.recompute--;
    if (t === TIER.gpu) this.counts.gpu++;
    else if (t === TIER.host) this.counts.host++;
    else if (t === TIER.recompute) this.counts.recompute++;
    this.tier[e] = t;
  }

  /** Marks entry `e` used now (its row, if any, moves to the back of the LRU order). */
  private touch(e: number): void {
    this.lastUse[e] = this.step;
    const r = this.pool.rowOf[e];
    if (r >= 0) this.lru.push(this.step * ROW_SPAN + r);
  }

  /** Takes a row for layer `l` (see the module doc, 2a-c). */
  private takeRow(l: number): { row: number; evicted: boolean } {
    const f = this.free.pop();
    if (f !== undefined) return { row: f, evicted: false };
    const { pool } = this;
    let victim = -1;
    // a: the least recently used row not needed at layer l or later. A
    // row needed at layer l' >= l is set aside in deferred[l'] (each key
    // once a step): its entry is used at l' and gets a fresh key then.
    for (;;) {
      const key = this.lru.pop();
      if (key === undefined) break;
      const row = key % ROW_SPAN, use = Math.floor(key / ROW_SPAN);
      const e = pool.entryOf[row];
      if (e < 0 || this.lastUse[e] !== use) continue; // stale key
      if (this.neededAt[e] >= l) {
        this.deferred[this.neededAt[e]].push(key);
        continue;
      }
      victim = row;
      break;
    }
    if (victim < 0) {
      // b: every row is needed at layer l or later (the LRU keys are all
      // set aside): of the rows a later layer needs, the one needed last,
      // least recently used, smallest row.
      for (let at = this.deferred.length - 1; at > l && victim < 0; at--) {
        for (;;) {
          const key = this.deferred[at].pop();
          if (key === undefined) break;
          const row = key % ROW_SPAN, use = Math.floor(key / ROW_SPAN);
          const e = pool.entryOf[row];
          if (e < 0 || this.lastUse[e] !== use || this.neededAt[e] !== at) {
            continue;
          }
          victim = row;
          break;
        }
      }
    }
    if (victim < 0) {
      throw new RangeError(
        `the GPU KV budget (${pool.rows} rows) cannot hold the working set of layer ${l} for this step`,
      );
    }
    const e = pool.release(victim);
    this.released.push(e);
    this.setTier(e, this.dropped[e] ? TIER.recompute : TIER.host);
    return { row: victim, evicted: true };
  }

  private place(e: number, row: number): void {
    this.pool.assign(e, row);
    this.setTier(e, TIER.gpu);
  }

  /** Forgets every entry of `slot` (its sequence ended or restarts). */
  clear(slot: number): void {
    const { pool } = this;
    const { nLayers } = pool.dims;
    for (let l = 0; l < nLayers; l++) {
      for (let p = 0; p < this.lengths[slot]; p++) {
        const e = pool.entry(l, slot, p);
        const r = pool.rowOf[e];
        if (r >= 0) {
          pool.release(r);
          this.free.push(r);
          this.released.push(e);
        }
        this.setTier(e, TIER.none);
        this.dropped[e] = 0;
      }
    }
    this.lengths[slot] = 0;
  }

  /**
   * Decides one step. `sets(l, slot)` is the sorted list of cached
   * positions a decode token of `slot` attends at layer `l` (its own new
   * position included or not), or null for every position below kv_len.
   * `decodeStep` is the step's index among the run's decode steps (for the
   * plan's p2), or -1 for a prefill step.
   */
  decide(
    tokens: ScheduledToken[],
    sets: (l: number, slot: number) => ArrayLike<number> | null,
    decodeStep: number,
  ): StepDecision {
    const { pool } = this;
    const { nLayers } = pool.dims;
    this.step++;
    // The step's new positions and each sequence's reach, per slot.
    const news = new Map<number, number[]>();
    const reach = new Map<number, number>();
    for (const t of tokens) {
      const list = news.get(t.slot) ?? [];
      list.push(t.pos);
      news.set(t.slot, list);
      reach.set(t.slot, Math.max(reach.get(t.slot) ?? 0, t.kvLen));
    }
    for (const [slot, list] of news) {
      this.lengths[slot] = Math.max(
        this.lengths[slot],
        ...list.map((p) => p + 1),
      );
    }
    const drops: number[] = [];
    if (this.plan.beta > 0 && decodeStep >= this.plan.p2) {
      for (const slot of news.keys()) {
        const upto = Math.floor(this.plan.beta * this.lengths[slot]);
        for (let l = 0; l < nLayers; l++) {
          for (let p = 0; p < upto; p++) {
            const e = pool.entry(l, slot, p);
            if (this.dropped[e] || this.tier[e] === TIER.none) continue;
            this.dropped[e] = 1;
            drops.push(e);
            if (this.tier[e] === TIER.host) this.setTier(e, TIER.recompute);
          }
        }
      }
    }
    // Working sets (existing entries, in (slot, pos) order) and new entries.
    const slots = [...news.keys()].sort((a, b) => a - b);
    const existing: number[][] = [];
    const created: number[][] = [];
    for (let l = 0; l < nLayers; l++) {
      const ex: number[] = [];
      for (const slot of slots) {
        const fresh = new Set(news.get(slot));
        const set = sets(l, slot);
        if (set) {
          for (let i = 0; i < set.length; i++) {
            if (!fresh.has(set[i])) ex.push(pool.entry(l, slot, set[i]));
          }
        } else {
          const n = reach.get(slot)!;
          for (let p = 0; p < n; p++) {
            if (!fresh.has(p)) ex.push(pool.entry(l, slot, p));
          }
        }
      }
      existing.push(ex);
      created.push(tokens.map((t) => pool.entry(l, t.slot, t.pos)));
      for (const e of ex) this.neededAt[e] = l;
      for (const e of created[l]) this.neededAt[e] = l;
    }
    let evictions = 0;
    const layers: LayerWork[] = [];
    try {
      for (let l = 0; l < nLayers; l++) {
        // Keys set aside for layer l - 1 are stale now (its entries were
        // used and got fresh keys).
        if (l > 0) this.deferred[l - 1].clear();
        const w: LayerWork = {
          uploads: [],
          recomputes: [],
          news: [],
          rows: [],
          table: [],
        };
        for (const e of existing[l]) {
          if (this.tier[e] === TIER.gpu) continue;
          if (this.tier[e] === TIER.none) {
            throw new RangeError(
              `KV entry (layer ${l}, position ${
                e % pool.dims.ctx
              }) was never written`,
            );
          }
          const { row, evicted } = this.takeRow(l);
          if (evicted) evictions++;
          (this.tier[e] === TIER.host ? w.uploads : w.recomputes).push(e, row);
          this.place(e, row);
        }
        for (const e of created[l]) {
          let row = pool.rowOf[e];
          if (row < 0) {
            const t = this.takeRow(l);
            if (t.evicted) evictions++;
            row = t.row;
            this.place(e, row);
          }
          this.dropped[e] = 0;
          w.news.push(e, row);
        }
        for (const e of [...existing[l], ...created[l]]) {
          this.touch(e);
          w.rows.push(pool.rowOf[e]);
          w.table.push(e, pool.rowOf[e]);
        }
        layers.push(w);
      }
    } finally {
      for (const list of [...existing, ...created]) {
        for (const e of list) this.neededAt[e] = -1;
      }
      for (const d of this.deferred) d.clear();
    }
    if (this.lru.size > 4 * pool.rows + 1024) this.rebuildLru();
    return { layers, drops, evictions };
  }

  private rebuildLru(): void {
    this.lru.clear();
    for (let r = 0; r < this.pool.rows; r++) {
      const e = this.pool.entryOf[r];
      if (e >= 0) this.lru.push(this.lastUse[e] * ROW_SPAN + r);
    }
  }
}
