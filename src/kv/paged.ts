/**
 * Paged KV that stays on the GPU, as vLLM keeps it: a sequence's positions
 * go in blocks of {@linkcode BLOCK_TOKENS}, one block table per sequence,
 * a block holding those positions at every layer (block b owns pool rows
 * [b * 16 L, (b + 1) * 16 L): row of (l, s, p) = block * 16 L + l * 16 +
 * p % 16). Nothing spills: a step whose new positions need blocks that are
 * not free is refused with {@linkcode PoolFullError}, and the caller (the
 * continuous-batching driver, `src/api/continuous.ts`) preempts a
 * sequence (frees its blocks; its prefix is recomputed when it comes
 * back). The FlexGen-style and ALISA baselines use the tiered store.
 *
 * @module
 */
import type { KvPool } from "./pool.ts";

/** Positions per block (vLLM's default). */
export const BLOCK_TOKENS = 16;

/** A step needs more blocks than are free. */
export class PoolFullError extends RangeError {
  constructor(readonly needed: number, readonly free: number) {
    super(
      `the paged KV pool has ${free} free blocks of ${BLOCK_TOKENS} positions; this step needs ${needed}`,
    );
    this.name = "PoolFullError";
  }
}

/** One step's token as the allocator sees it. */
export interface PagedToken {
  slot: number;
  pos: number;
}

/** Block tables of every sequence, and the free blocks. */
export class PagedAllocator {
  /** Blocks in the pool. */
  readonly blocks: number;
  /** Rows per block: BLOCK_TOKENS positions at every layer. */
  readonly blockRows: number;
  /** Per slot, its blocks in position order. */
  private readonly tables: number[][];
  private readonly freeList: number[] = [];

  constructor(readonly pool: KvPool) {
    const L = pool.dims.nLayers;
    this.blockRows = BLOCK_TOKENS * L;
    this.blocks = Math.floor(pool.rows / this.blockRows);
    this.tables = Array.from({ length: pool.dims.slots }, () => []);
    for (let b = this.blocks - 1; b >= 0; b--) this.freeList.push(b);
  }

  /** Free blocks. */
  get freeBlocks(): number {
    return this.freeList.length;
  }

  /** Blocks held by `slot`. */
  held(slot: number): number {
    return this.tables[slot].length;
  }

  /** Blocks that `tokens` (new positions) need beyond what their sequences hold. */
  needed(tokens: PagedToken[]): number {
    const reach = new Map<number, number>();
    for (const t of tokens) {
      reach.set(t.slot, Math.max(reach.get(t.slot) ?? 0, t.pos + 1));
    }
    let n = 0;
    for (const [slot, end] of reach) {
      n += Math.max(
        0,
        Math.ceil(end / BLOCK_TOKENS) - this.tables[slot].length,
      );
    }
    return n;
  }

  /** Blocks a sequence of `positions` positions holds. */
  static blocksFor(positions: number): number {
    return Math.ceil(positions / BLOCK_TOKENS);
  }

  /**
   * Gives every new position of `tokens` its rows at every layer, taking
   * blocks as needed: (entry, row) pairs per layer, for the row tables.
   * PoolFullError (nothing taken) when the blocks are not free.
   */
  place(tokens: PagedToken[]): number[][] {
    const need = this.needed(tokens);
    if (need > this.freeList.length) {
      throw new PoolFullError(need, this.freeList.length);
    }
    const { pool } = this;
    const L = pool.dims.nLayers;
    const pairs: number[][] = Array.from({ length: L }, () => []);
    for (const t of tokens) {
      const table = this.tables[t.slot];
      const bi = Math.floor(t.pos / BLOCK_TOKENS);
      while (table.length <= bi) table.push(this.freeList.pop()!);
      const base = table[bi] * this.blockRows + (t.pos % BLOCK_TOKENS);
      for (let l = 0; l < L; l++) {
        const e = pool.entry(l, t.slot, t.pos);
        const row = base + l * BLOCK_TOKENS;
        if (pool.rowOf[e] !== row) {
          if (pool.rowOf[e] >= 0) pool.release(pool.rowOf[e]);
          if (pool.entryOf[row] >= 0) pool.release(row);
          pool.assign(e, row);
        }
        pairs[l].push(e, row);
      }
    }
    return pairs;
  }

  /** Frees `slot`'s blocks; returns the entries that lost their rows. */
  release(slot: number): number[] {
    const released: number[] = [];
    for (const b of this.tables[slot]) {
      for (let r = b * this.blockRows; r < (b + 1) * this.blockRows; r++) {
        const e = this.pool.release(r);
        if (e >= 0) released.push(e);
      }
      this.freeList.push(b);
    }
    this.tables[slot] = [];
    return released;
  }
}
