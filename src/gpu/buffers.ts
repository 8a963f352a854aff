/**
 * A registry of GPU buffers with one owner: every buffer an owner creates
 * goes through its `BufferSet`, so the bytes it holds and its `destroy`
 * are derived from one list rather than written out by hand (nothing can
 * be missed: a plan's per-dispatch uniforms, a policy's state, the KV
 * pool). Sets nest: a model's set holds the sets of its plans, its KV
 * store and its policy, and a child set can be destroyed on its own
 * (a dropped plan frees its uniforms).
 *
 * @example A set counts and frees what it made
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { openGpu } from "./device.ts";
 * import { BufferSet } from "./buffers.ts";
 * if (!(await navigator.gpu?.requestAdapter())) Deno.exit(0);
 * const gpu = await openGpu();
 * const set = new BufferSet(gpu, "demo");
 * set.buffer("a", 100); // rounded up to 16 bytes
 * set.child("plan").uniform("u", new Uint32Array(4));
 * assertEquals(set.bytes, 112 + 16);
 * set.destroy();
 * assertEquals(set.bytes, 0);
 * gpu.destroy();
 * ```
 *
 * @module
 */
import type { Gpu } from "./device.ts";

/** GPU buffers created for one owner, with their byte count. */
export class BufferSet {
  private readonly own: GPUBuffer[] = [];
  private readonly children = new Set<BufferSet>();
  private parent: BufferSet | null = null;

  constructor(readonly gpu: Gpu, readonly owner: string) {}

  /** A storage buffer (STORAGE, COPY_SRC, COPY_DST), optionally filled. */
  buffer(label: string, size: number, data?: ArrayBufferView): GPUBuffer {
    return this.keep(this.gpu.buffer(`${this.owner}.${label}`, size, data));
  }

  /** A uniform buffer holding `data`. */
  uniform(label: string, data: ArrayBufferView): GPUBuffer {
    return this.keep(this.gpu.uniform(`${this.owner}.${label}`, data));
  }

  /** A buffer with explicit usage (staging for reads or writes). */
  raw(label: string, size: number, usage: GPUBufferUsageFlags): GPUBuffer {
    return this.keep(
      this.gpu.device.createBuffer({
        label: `${this.owner}.${label}`,
        size: Math.max(16, Math.ceil(size / 16) * 16),
        usage,
      }),
    );
  }

  /** A nested set (destroyed with this one, or on its own). */
  child(owner: string): BufferSet {
    const c = new BufferSet(this.gpu, `${this.owner}.${owner}`);
    c.parent = this;
    this.children.add(c);
    return c;
  }

  /** Destroys one buffer of this set and stops counting it. */
  free(b: GPUBuffer): void {
    const i = this.own.indexOf(b);
    if (i < 0) {
      throw new RangeError(`${b.label} is not a buffer of ${this.owner}`);
    }
    this.own.splice(i, 1);
    b.destroy();
  }

  private keep(b: GPUBuffer): GPUBuffer {
    this.own.push(b);
    return b;
  }

  /** Bytes held by this set and its children. */
  get bytes(): number {
    let n = 0;
    for (const b of this.own) n += b.size;
    for (const c of this.children) n += c.bytes;
    return n;
  }

  /** Every buffer held, children included (for accounting tests). */
  get all(): GPUBuffer[] {
    return [...this.own, ...[...this.children].flatMap((c) => c.all)];
  }

  /** Frees every buffer of this set and its children. */
  destroy(): void {
    for (const c of [...this.children]) c.destroy();
    for (const b of this.own) b.destroy();
    this.own.length = 0;
    this.parent?.children.delete(this);
    this.parent = null;
  }
}
