/**
 * The GPU tier of the KV store: a pool of token rows shared by every layer
 * and sequence, and a row table per layer that attention reads K/V
 * through (`shaders/kv/kv_access.wgsl`):
 *
 *     pool   parts of (rows_per_part, kv_dim) u32   one row = one token's
 *            K then V at one layer, f16 pairs
 *     table  (layers, slots, ctx) u32               pool row of each
 *            (layer, slot, pos); NO_ROW where the token is not on the GPU
 *
 * The pool is sized by a byte budget, not by slots x ctx: one long
 * sequence and many short ones draw on the same rows (the row table is
 * still (layers, slots, ctx) u32). A pool larger than
 * one storage binding is split into parts. When the rows cover every
 * (layer, slot, pos) the pool is *static*: row = entry, and the table is
 * written once. Otherwise rows are assigned as the scheduler decides and
 * the table is written for the entries that change, before the step that
 * reads them; an entry whose token left the GPU is set to NO_ROW before
 * the next step (not within the step: an earlier layer may still read
 * it). The pool keeps a CPU mirror of the placements (`rowOf`) and of
 * each row's owner (`entryOf`), and counts its own bytes.
 *
 * @module
 */
import type { BufferSet } from "../gpu/buffers.ts";
import { u32s } from "../gpu/dispatch.ts";
import type { Gpu } from "../gpu/device.ts";
import type { KvBindings } from "../model/ops.ts";

/** The sizes a KV store is laid out for. */
export interface KvDims {
  nLayers: number;
  /** Sequences at once. */
  slots: number;
  /** Positions per sequence. */
  ctx: number;
  /** Elements of K (and of V) per token and layer: n_kv_heads x head_dim (even). */
  kvDim: number;
}

/** Table value of a token that has no GPU row. */
export const NO_ROW = 0xffffffff;

/** Most pool parts (storage bindings 16.. of the attention shader). */
export const MAX_POOL_PARTS = 8;

/** Entries of the row table: every (layer, slot, pos). */
export function tableEntries(d: KvDims): number {
  return d.nLayers * d.slots * d.ctx;
}

/** Bytes of one pool row (K and V of one token at one layer, f16). */
export function rowBytes(d: KvDims): number {
  return d.kvDim * 4;
}

/** Bytes the pool's fixed parts take: the table and the layer uniforms. */
export function poolOverheadBytes(d: KvDims): number {
  return Math.max(16, Math.ceil(tableEntries(d) * 4 / 16) * 16) +
    d.nLayers * 16;
}

/** GPU bytes of a pool of `rows` rows (buffers padded to 16 bytes as allocated). */
export function poolBytes(d: KvDims, rows: number, partRows: number): number {
  let n = poolOverheadBytes(d);
  for (let r = 0; r < rows; r += partRows) {
    n += Math.max(
      16,
      Math.ceil(Math.min(partRows, rows - r) * rowBytes(d) / 16) * 16,
    );
  }
  return n;
}

/** Rows per part under the device's binding and buffer limits. */
export function rowsPerPart(gpu: Gpu, d: KvDims): number {
  const limit = Math.min(
    gpu.limits.maxStorageBufferBindingSize,
    gpu.limits.maxBufferSize,
  );
  return Math.max(1, Math.floor(limit / rowBytes(d)));
}

/** The GPU pool and row tables. */
export class KvPool {
  readonly rows: number;
  readonly rowWords: number;
  readonly rowsPerPart: number;
  readonly parts: GPUBuffer[] = [];
  readonly table: GPUBuffer;
  /** Every (layer, slot, pos) has its own row (row = entry). */
  readonly isStatic: boolean;
  /** Row of each entry (l * slots + s) * ctx + p, or -1. */
  readonly rowOf: Int32Array;
  /** Entry held by each row, or -1 (free). */
  readonly entryOf: Int32Array;
  private readonly layerParams: GPUBuffer[] = [];

  constructor(
    private readonly gpu: Gpu,
    readonly set: BufferSet,
    readonly dims: KvDims,
    rows: number,
    /** Tests: fewer rows per pool buffer than the binding limit allows. */
    maxPartRows = Infinity,
  ) {
    const entries = tableEntries(dims);
    if (!Number.isInteger(rows) || rows < 1) {
      throw new RangeError(`a KV pool needs at least one row, got ${rows}`);
    }
    this.rows = Math.min(rows, entries);
    this.isStatic = this.rows === entries;
    this.rowWords = dims.kvDim;
    this.rowsPerPart = Math.min(this.rows, rowsPerPart(gpu, dims), maxPartRows);
    const nParts = Math.ceil(this.rows / this.rowsPerPart);
    if (nParts > MAX_POOL_PARTS) {
      throw new RangeError(
        `a KV pool of ${this.rows} rows needs ${nParts} buffers of at most ${this.rowsPerPart} rows (this GPU's binding limit); at most ${MAX_POOL_PARTS} are supported: use a smaller GPU KV budget`,
      );
    }
    for (let p = 0; p < nParts; p++) {
      const n = Math.min(this.rowsPerPart, this.rows - p * this.rowsPerPart);
      this.parts.push(set.buffer(`pool.${p}`, n * rowBytes(dims)));
    }
    this.rowOf = new Int32Array(entries).fill(-1);
    this.entryOf = new Int32Array(this.rows).fill(-1);
    const init = new Uint32Array(entries).fill(NO_ROW);
    if (this.isStatic) {
      for (let e = 0; e < entries; e++) {
        init[e] = e;
        this.rowOf[e] = e;
        this.entryOf[e] = e;
      }
    }
    this.table = set.buffer("table", entries * 4, init);
    for (let l = 0; l < dims.nLayers; l++) {
      this.layerParams.push(
        set.uniform(
          `layer.${l}`,
          u32s(
            l * dims.slots * dims.ctx,
            dims.ctx,
            this.rowWords,
            this.rowsPerPart,
          ),
        ),
      );
    }
  }

  /** The table entry of (layer, slot, pos). */
  entry(l: number, slot: number, pos: number): number {
    return (l * this.dims.slots + slot) * this.dims.ctx + pos;
  }

  /** The bindings through which layer `l`'s ops reach the pool. */
  bindings(l: number): KvBindings {
    const entries: Record<number, GPUBuffer> = {
      14: this.table,
      15: this.layerParams[l],
    };
    this.parts.forEach((b, i) => (entries[16 + i] = b));
    return { entries, parts: this.parts.length };
  }

  /** Gives `row` to `entry` (the row must be free). */
  assign(entry: number, row: number): void {
    if (this.entryOf[row] !== -1 || this.rowOf[entry] !== -1) {
      throw new Error(`KV pool: row ${row} or entry ${entry} is taken`);
    }
    this.entryOf[row] = entry;
    this.rowOf[entry] = row;
  }

  /** Takes `row` from its entry (the token leaves the GPU). */
  release(row: number): number {
    const e = this.entryOf[row];
    if (e >= 0) this.rowOf[e] = -1;
    this.entryOf[row] = -1;
    return e;
  }

  /** Writes the whole table from the CPU mirror (tests; a tiered store writes entries as it places them). */
  flushTable(): void {
    const t = new Uint32Array(this.rowOf.length);
    for (let e = 0; e < t.length; e++) {
      t[e] = this.rowOf[e] < 0 ? NO_ROW : this.rowOf[e];
    }
    this.gpu.device.queue.writeBuffer(this.table, 0, t);
  }

  /**
   * Writes the table entries of `pairs` ((entry, row) pairs) that differ
   * from what the GPU table holds (`gpuTable`, the store's mirror of it),
   * in runs of consecutive entries.
   */
  writeEntries(pairs: number[], gpuTable: Int32Array): void {
    const todo: number[] = [];
    for (let i = 0; i < pairs.length; i += 2) {
      if (gpuTable[pairs[i]] !== pairs[i + 1]) {
        gpuTable[pairs[i]] = pairs[i + 1];
        todo.push(pairs[i]);
      }
    }
    this.writeRuns(todo, gpuTable);
  }

  /**
   * Writes NO_ROW for the `entries` that have no row now but still have
   * one in the GPU table (tokens that left the GPU in an earlier step), so
   * the table says what is on the GPU.
   */
  clearEntries(entries: number[], gpuTable: Int32Array): void {
    const todo: number[] = [];
    for (const e of entries) {
      if (this.rowOf[e] < 0 && gpuTable[e] !== -1) {
        gpuTable[e] = -1;
        todo.push(e);
      }
    }
    this.writeRuns(todo, gpuTable);
  }

  private writeRuns(todo: number[], gpuTable: Int32Array): void {
    todo.sort((a, b) => a - b);
    let i = 0;
    while (i < todo.length) {
      let j = i + 1;
      while (j < todo.length && todo[j] === todo[j - 1] + 1) j++;
      const run = new Uint32Array(j - i);
      for (let q = i; q < j; q++) {
        const r = gpuTable[todo[q]];
        run[q - i] = r < 0 ? NO_ROW : r;
      }
      this.gpu.device.queue.writeBuffer(this.table, todo[i] * 4, run);
      i = j;
    }
  }

  /** Writes `words` (rowWords u32 per row) into consecutive rows from `row`. */
  writeRows(row: number, words: Uint32Array<ArrayBuffer>): void {
    const n = words.length / this.rowWords;
    let done = 0;
    while (done < n) {
      const r = row + done;
      const part = Math.floor(r / this.rowsPerPart);
      const inPart = r - part * this.rowsPerPart;
      const take = Math.min(n - done, this.rowsPerPart - inPart);
      this.gpu.device.queue.writeBuffer(
        this.parts[part],
        inPart * this.rowWords * 4,
        words,
        done * this.rowWords,
        take * this.rowWords,
      );
      done += take;
    }
  }

  /** Rows in use. */
  get used(): number {
    let n = 0;
    for (let r = 0; r < this.rows; r++) if (this.entryOf[r] >= 0) n++;
    return n;
  }
}
