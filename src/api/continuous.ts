/**
 * Continuous batching, as vLLM schedules: sequences wait in a queue, a
 * waiting sequence is admitted (prefilled into a free slot) when a slot is
 * free and, with paged KV, when the blocks of its prompt fit; every step
 * decodes one token of every running sequence; a sequence leaves when it
 * is done, and its slot and blocks go to the next in the queue. When a
 * step needs blocks that are not free, the newest running sequence is
 * preempted: its blocks are freed and it goes back to the front of the
 * queue, to be prefilled again later from its prompt and the tokens it had
 * generated (recompute). Greedy decoding, so a preempted sequence finishes
 * with the same tokens as if it had never been.
 *
 * With a static or tiered KV store the queue is bounded by the slots only
 * (tiered stores spill instead of preempting).
 *
 * @module
 */
import type { LlamaModel } from "../model/llama.ts";
import { PagedAllocator } from "../kv/paged.ts";
import type { KvStats, KvStepStats } from "../kv/store.ts";
import type { PolicySpec } from "../sparse/spec.ts";
import { argmax } from "./sampling.ts";

/** Options of {@linkcode runContinuous}. */
export interface ContinuousOptions {
  /** Tokens to generate per sequence (default 256). */
  maxTokens?: number;
  /** Stop a sequence at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
  /** KV policy of the decode steps (default dense). */
  policy?: PolicySpec;
  /** Called after every step with the KV store's stats. */
  onStep?: (s: KvStepStats) => void;
  /**
   * Called with the logits each generated token was chosen from (sequence
   * index, token index, vocab-long row); steps then read logits back
   * instead of only the argmax (tests compare runs bit for bit).
   */
  onLogits?: (sequence: number, token: number, logits: Float32Array) => void;
}

/** What a continuous run produced. */
export interface ContinuousResult {
  /** Per prompt, in order: its ids and the generated ids. */
  sequences: { promptIds: number[]; ids: number[] }[];
  /** Sequences preempted (and later prefilled again). */
  preemptions: number;
  /** Tokens prefilled again after a preemption. */
  recomputedTokens: number;
  /** Decode steps run. */
  decodeSteps: number;
  kvStats: KvStats;
}

interface Seq {
  index: number;
  promptIds: number[];
  ids: number[];
  done: boolean;
}

/**
 * Greedy generation of every prompt (token ids) with continuous batching
 * on `engine` (see the module doc). The caller holds the model's busy
 * lock.
 */
export async function runContinuous(
  engine: LlamaModel,
  prompts: number[][],
  eos: number | null,
  o: ContinuousOptions = {},
): Promise<ContinuousResult> {
  const kv = engine.kv;
  const maxTokens = o.maxTokens ?? 256;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new RangeError(
      `maxTokens must be a positive integer, got ${maxTokens}`,
    );
  }
  engine.setPolicy(o.policy ?? { name: "dense", sparsity: 0 });
  const alloc = kv.allocator;
  for (const p of prompts) {
    if (p.length === 0 || p.length >= kv.ctx) {
      throw new RangeError(
        `a prompt has ${p.length} tokens; the context holds ${kv.ctx} (one more is needed to generate)`,
      );
    }
    const need = PagedAllocator.blocksFor(
      Math.min(kv.ctx, p.length + maxTokens),
    );
    if (alloc && need > alloc.blocks) {
      throw new RangeError(
        `a sequence of ${p.length} + ${maxTokens} tokens needs ${need} blocks; the paged KV pool holds ${alloc.blocks}`,
      );
    }
  }
  kv.planRun(engine.policy, [], 0, true);
  kv.onStep = o.onStep ?? null;
  const stopAtEos = o.stopAtEos ?? true;
  const seqs: Seq[] = prompts.map((p, index) => ({
    index,
    promptIds: p,
    ids: [],
    done: false,
  }));
  const waiting: Seq[] = [...seqs];
  /** Running sequences by slot, and the slots in admission order. */
  const running = new Map<number, Seq>();
  const order: number[] = [];
  const free: number[] = [...Array(kv.slots).keys()];
  let preemptions = 0, recomputed = 0, decodeSteps = 0;

  const finished = (s: Seq) =>
    s.ids.length >= maxTokens ||
    (stopAtEos && s.ids[s.ids.length - 1] === eos) ||
    s.promptIds.length + s.ids.length >= kv.ctx;
  const leave = (slot: number) => {
    running.delete(slot);
    order.splice(order.indexOf(slot), 1);
    kv.clear(slot);
    free.push(slot);
    free.sort((a, b) => a - b);
  };

  try {
    while (waiting.length || running.size) {
      // Admit while a slot is free and (paged) the prompt's blocks fit.
      while (waiting.length && free.length) {
        const s = waiting[0];
        const ids = [...s.promptIds, ...s.ids];
        if (alloc && PagedAllocator.blocksFor(ids.length) > alloc.freeBlocks) {
          break;
        }
        waiting.shift();
        const slot = free.shift()!;
        running.set(slot, s);
        order.push(slot);
        if (s.ids.length) {
          recomputed += ids.length;
          preemptions++;
        }
        kv.clear(slot);
        let next = 0;
        const T = Math.min(kv.stepTokens, engine.maxStepTokens);
        for (let i = 0; i < ids.length; i += T) {
          const chunk = ids.slice(i, i + T).map((id, j) => ({
            slot,
            pos: i + j,
            id,
          }));
          const last = i + T >= ids.length;
          const rows = last ? [chunk.length - 1] : [];
          if (last && o.onLogits) {
            const l = await engine.stepLogits(chunk, rows, false);
            next = argmax(l);
            o.onLogits(s.index, s.ids.length, l);
          } else {
            const out = await engine.stepArgmax(chunk, rows, false);
            if (last) next = out[0];
          }
        }
        kv.lengths[slot] = ids.length;
        await engine.seedPolicy([slot], [ids.length]);
        s.ids.push(next);
        if (finished(s)) {
          s.done = true;
          leave(slot);
        }
      }
      if (!running.size) {
        if (waiting.length) {
          throw new RangeError(
            "no sequence can be admitted: the paged KV pool is too small for the next prompt",
          );
        }
        break;
      }
      // One decode step of every running sequence; preempt the newest
      // while the step's new positions need blocks that are not free.
      const step = () =>
        [...running].map(([slot, s]) => ({
          slot,
          pos: s.promptIds.length + s.ids.length - 1,
          id: s.ids[s.ids.length - 1],
        }));
      let toks = step();
      while (alloc && alloc.needed(toks) > alloc.freeBlocks) {
        const slot = order[order.length - 1];
        const s = running.get(slot)!;
        leave(slot);
        waiting.unshift(s);
        toks = step();
      }
      if (!toks.length) continue;
      const rows = toks.map((_, r) => r);
      let next: Uint32Array;
      if (o.onLogits) {
        const V = engine.config.vocabSize;
        const l = await engine.stepLogits(toks, rows, true);
        next = new Uint32Array(toks.length);
        toks.forEach((t, r) => {
          const row = l.subarray(r * V, (r + 1) * V);
          next[r] = argmax(row);
          const s = running.get(t.slot)!;
          o.onLogits!(s.index, s.ids.length, row);
        });
      } else {
        next = await engine.stepArgmax(toks, rows, true);
      }
      decodeSteps++;
      toks.forEach((t, r) => {
        const s = running.get(t.slot)!;
        s.ids.push(next[r]);
        if (finished(s)) {
          s.done = true;
          leave(t.slot);
        }
      });
    }
  } finally {
    kv.onStep = null;
  }
  kv.preemptions = preemptions;
  for (const s of seqs) {
    if (stopAtEos && s.ids[s.ids.length - 1] === eos) s.ids.pop();
  }
  return {
    sequences: seqs.map((s) => ({ promptIds: s.promptIds, ids: s.ids })),
    preemptions,
    recomputedTokens: recomputed,
    decodeSteps,
    kvStats: kv.stats(),
  };
}
