/**
 * The KV store the model reads and writes K/V through: the GPU pool and
 * row tables (`pool.ts`) and the sequences' lengths. The model only asks
 * it for each layer's bindings; where a token's K/V lives is the store's
 * business.
 *
 * @module
 */
import type { BufferSet } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import type { KvBindings } from "../model/ops.ts";
import { type KvDims, KvPool, tableEntries } from "./pool.ts";

/** Options of the KV store (`loadModel(..., { kv })`). */
export interface KvOptions {
  /**
   * GPU bytes for K/V: the pool of token rows and its row tables. Default:
   * enough for every position of every sequence (nothing leaves the GPU).
   */
  gpuBytes?: number;
}

/** The KV store of one model. */
export class KvStore {
  readonly pool: KvPool;
  /** Tokens stored so far, per slot. */
  readonly lengths: number[];

  constructor(
    gpu: Gpu,
    readonly set: BufferSet,
    readonly dims: KvDims,
    _options: KvOptions = {},
  ) {
    this.pool = new KvPool(gpu, set, dims, tableEntries(dims));
    this.lengths = new Array(dims.slots).fill(0);
  }

  /** Positions per sequence. */
  get ctx(): number {
    return this.dims.ctx;
  }

  /** Sequences at once. */
  get slots(): number {
    return this.dims.slots;
  }

  /** The bindings through which layer `l` reads and writes K/V. */
  bindings(l: number): KvBindings {
    return this.pool.bindings(l);
  }

  /** GPU bytes the store holds (its own accounting). */
  get bytes(): number {
    return this.set.bytes;
  }

  /**
   * Checks that `slot` can take `n` more tokens; throws a RangeError
   * naming the context length otherwise.
   */
  reserve(slot: number, n: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      throw new RangeError(
        `KV slot ${slot} does not exist (the store has ${this.slots})`,
      );
    }
    if (this.lengths[slot] + n > this.ctx) {
      throw new RangeError(
        `The sequence would need ${
          this.lengths[slot] + n
        } positions but the context holds ${this.ctx}`,
      );
    }
  }

  /** Forgets slot `slot`'s tokens. */
  clear(slot: number): void {
    this.lengths[slot] = 0;
  }
}
