/**
 * Prefill: the prompts of several sequences (each in its KV slot) run in
 * steps of at most the engine's step size, each step's per-layer working
 * set (every position up to each sequence's last token in the step) within
 * the KV store's rows, so that a prompt prefills under a GPU KV budget too.
 * Shared by the batcher (`generate`, `chat`) and `generateBatch`.
 *
 * @module
 */
import type { LlamaModel } from "../model/llama.ts";

/** A sequence to prefill: its slot and prompt ids. */
export interface PrefillSequence {
  slot: number;
  ids: number[];
}

/**
 * Clears the slots of `seqs`, prefills their prompts, and calls `first`
 * with each sequence's index and its first generated token (its id when
 * `greedy`, else its logits row) after the step holding its last prompt
 * token. Lengths are set and the policy seeded for the sequences
 * `live(i)` keeps (default all) once every step has run. RangeError when
 * one token's working set does not fit the pool.
 */
export async function prefill(
  engine: LlamaModel,
  seqs: PrefillSequence[],
  greedy: boolean,
  first: (i: number, x: number | Float32Array) => void,
  live: (i: number) => boolean = () => true,
): Promise<void> {
  const kv = engine.kv;
  for (const s of seqs) kv.clear(s.slot);
  const toks: { slot: number; pos: number; id: number; seq: number }[] = [];
  seqs.forEach((s, seq) =>
    s.ids.forEach((id, pos) => toks.push({ slot: s.slot, pos, id, seq }))
  );
  const V = engine.config.vocabSize;
  const T = Math.min(kv.stepTokens, engine.maxOut);
  const rows = kv.maxWorkingRows;
  for (let i = 0; i < toks.length;) {
    const reach = new Map<number, number>();
    let j = i, need = 0;
    while (j < toks.length && j - i < T) {
      const t = toks[j];
      const add = t.pos + 1 - (reach.get(t.slot) ?? 0);
      if (need + add > rows) {
        if (j > i) break;
        throw new RangeError(
          `a prompt of ${
            seqs[t.seq].ids.length
          } tokens does not fit the GPU KV budget's ${rows} rows (its prefill attends every position)`,
        );
      }
      reach.set(t.slot, t.pos + 1);
      need += add;
      j++;
    }
    const chunk = toks.slice(i, j);
    i = j;
    const outRows = chunk.flatMap((t, k) =>
      t.pos === seqs[t.seq].ids.length - 1 ? [k] : []
    );
    const got: [number, number | Float32Array][] = [];
    if (greedy) {
      const ids = await engine.stepArgmax(chunk, outRows, false);
      outRows.forEach((k, n) => got.push([chunk[k].seq, ids[n]]));
    } else {
      const l = await engine.stepLogits(chunk, outRows, false);
      outRows.forEach((k, n) =>
        got.push([chunk[k].seq, l.slice(n * V, (n + 1) * V)])
      );
    }
    for (const [seq, x] of got) first(seq, x);
  }
  const kept = seqs.filter((_, i) => live(i));
  for (const s of kept) kv.lengths[s.slot] = s.ids.length;
  if (kept.length) {
    await engine.seedPolicy(
      kept.map((s) => s.slot),
      kept.map((s) => s.ids.length),
    );
  }
}
