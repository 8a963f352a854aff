/**
 * KV cache v1: dense, on the GPU, f16 (two per u32), one K and one V
 * buffer per layer, each laid out (slots, ctx, kv_dim) where a slot holds
 * one sequence and kv_dim = n_kv_heads * head_dim. The attention shader
 * reads it through the token table (which positions each token attends),
 * so other stores (sparse selection, host / recompute tiers) can replace
 * this one behind the same shape.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";

/** The dense GPU KV cache. */
export class KvCache {
  /** Per layer: K and V, each (slots, ctx, kvDim) f16. */
  readonly layers: { k: GPUBuffer; v: GPUBuffer }[] = [];
  /** Tokens stored so far, per slot. */
  readonly lengths: number[];

  constructor(
    gpu: Gpu,
    readonly nLayers: number,
    readonly slots: number,
    readonly ctx: number,
    readonly kvDim: number,
  ) {
    const bytes = slots * ctx * kvDim * 2;
    const limit = gpu.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new RangeError(
        `KV cache of ${slots} slots x ${ctx} positions x ${kvDim} values (${bytes} bytes per layer) exceeds the GPU's ${limit}-byte binding limit; use fewer slots or a shorter context`,
      );
    }
    for (let l = 0; l < nLayers; l++) {
      this.layers.push({
        k: gpu.buffer(`k_cache.${l}`, bytes),
        v: gpu.buffer(`v_cache.${l}`, bytes),
      });
    }
    this.lengths = new Array(slots).fill(0);
  }

  /** GPU bytes held. */
  get bytes(): number {
    return this.layers.reduce((n, l) => n + l.k.size + l.v.size, 0);
  }

  /**
   * Checks that `slot` can take `n` more tokens; throws a RangeError
   * naming the context length otherwise.
   */
  reserve(slot: number, n: number): void {
    if (slot < 0 || slot >= this.slots) {
      throw new RangeError(
        `KV slot ${slot} does not exist (the cache has ${this.slots})`,
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

  destroy(): void {
    for (const l of this.layers) {
      l.k.destroy();
      l.v.destroy();
    }
  }
}
