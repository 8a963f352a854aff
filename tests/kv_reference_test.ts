/**
 * The plain TypeScript reference of the KV tiers (src/kv/reference.ts)
 * alone, on small cases computed by hand from the rules in the module doc
 * of src/kv/scheduler.ts: LRU victims and their ties, misses in (slot,
 * pos) order then new entries in step order, prefill working sets, the
 * needed-later fallback, phase III drops and the budget error. CPU only.
 */
import { assertEquals, assertThrows } from "@std/assert";
import {
  type RefTier,
  type RefToken,
  TierReference,
} from "../src/kv/reference.ts";

const tok = (slot: number, pos: number, kvLen = pos + 1): RefToken => ({
  slot,
  pos,
  kvLen,
});
const dense = () => null;
/** Sets by slot (the same at every layer). */
const bySlot = (m: Record<number, number[]>) => (_l: number, slot: number) =>
  m[slot];

/** Tiers of positions 0..n-1 of (layer, slot). */
function tiers(
  ref: TierReference,
  l: number,
  slot: number,
  n: number,
): RefTier[] {
  return Array.from({ length: n }, (_, p) => ref.tier(l, slot, p));
}

/** Rows of positions 0..n-1 of (layer, slot) (-1: none). */
function rows(
  ref: TierReference,
  l: number,
  slot: number,
  n: number,
): number[] {
  return Array.from({ length: n }, (_, p) => ref.row(l, slot, p));
}

Deno.test("new entries take the smallest free row, in step order", () => {
  const ref = new TierReference({ nLayers: 2, slots: 2, ctx: 8, rows: 10 });
  const s = ref.step([tok(1, 0), tok(0, 0), tok(0, 1)], dense, -1);
  // Layer 0 first, then layer 1; within a layer, the step's order.
  assertEquals(s.layers[0].news, [
    { slot: 1, pos: 0, row: 0 },
    { slot: 0, pos: 0, row: 1 },
    { slot: 0, pos: 1, row: 2 },
  ]);
  assertEquals(s.layers[1].news.map((p) => p.row), [3, 4, 5]);
  assertEquals(s.evictions, 0);
  assertEquals(ref.phase(), 1);
  assertEquals(ref.counts(), { gpu: 6, host: 0, recompute: 0 });
  assertEquals(ref.tier(0, 0, 2), "none");
  assertEquals(ref.length(0), 2);
  assertEquals(ref.length(1), 1);
  assertEquals(ref.lastUse(1, 1, 0), 1);
});

Deno.test("LRU: the least recently used row goes; ties go to the smallest row", () => {
  const ref = new TierReference({ nLayers: 1, slots: 2, ctx: 8, rows: 4 });
  // j=1: rows 0..3 = (0,0), (0,1), (1,0), (1,1).
  ref.step([tok(0, 0), tok(0, 1), tok(1, 0), tok(1, 1)], dense, -1);
  // j=2: (0,1) and (1,0) are attended; (0,0) [row 0] and (1,1) [row 3]
  // may go, both last used at j=1: the tie takes row 0 first, then row 3.
  let s = ref.step([tok(0, 2), tok(1, 2)], bySlot({ 0: [1, 2], 1: [0, 2] }), 0);
  assertEquals(s.layers[0].news, [
    { slot: 0, pos: 2, row: 0 },
    { slot: 1, pos: 2, row: 3 },
  ]);
  assertEquals(s.evictions, 2);
  assertEquals(tiers(ref, 0, 0, 3), ["host", "gpu", "gpu"]);
  assertEquals(tiers(ref, 0, 1, 3), ["gpu", "host", "gpu"]);
  assertEquals(ref.phase(), 2);
  // j=3: every row was last used at j=2. (0,0) is uploaded into row 0,
  // the new (0,3) into row 1, the new (1,3) into row 2 (row 3 is (1,2),
  // attended).
  s = ref.step([tok(0, 3), tok(1, 3)], bySlot({ 0: [0, 3], 1: [2, 3] }), 1);
  assertEquals(s.layers[0].uploads, [{ slot: 0, pos: 0, row: 0 }]);
  assertEquals(s.layers[0].recomputes, []);
  assertEquals(s.layers[0].news, [
    { slot: 0, pos: 3, row: 1 },
    { slot: 1, pos: 3, row: 2 },
  ]);
  assertEquals(s.evictions, 3);
  assertEquals(rows(ref, 0, 0, 4), [0, -1, -1, 1]);
  assertEquals(rows(ref, 0, 1, 4), [-1, -1, 3, 2]);
  // j=4: only slot 0 steps, attending (0,3): rows 0, 2, 3 tie at j=3.
  s = ref.step([tok(0, 4)], bySlot({ 0: [3, 4] }), 2);
  assertEquals(s.layers[0].news, [{ slot: 0, pos: 4, row: 0 }]);
  // j=5: slot 1 steps, attending (1,2) [row 3]: rows 0 and 1 were used at
  // j=4, row 2 ((1,3)) last at j=3: LRU takes row 2, not the smallest.
  s = ref.step([tok(1, 4)], bySlot({ 1: [2, 4] }), 3);
  assertEquals(s.layers[0].news, [{ slot: 1, pos: 4, row: 2 }]);
  assertEquals(ref.tier(0, 1, 3), "host");
  assertEquals(ref.lastUse(0, 1, 3), 3);
  assertEquals(ref.lastUse(0, 1, 2), 5);
  assertEquals(s.layers[0].reads, [
    { slot: 1, pos: 2, row: 3 },
    { slot: 1, pos: 4, row: 2 },
  ]);
});

Deno.test("misses are placed in (slot, pos) order, then new entries in step order", () => {
  const ref = new TierReference({ nLayers: 1, slots: 2, ctx: 8, rows: 6 });
  ref.step(
    [tok(0, 0), tok(0, 1), tok(0, 2), tok(1, 0), tok(1, 1), tok(1, 2)],
    dense,
    -1,
  ); // rows 0..5
  ref.step([tok(0, 3), tok(1, 3)], bySlot({ 0: [3], 1: [3] }), 0);
  ref.step([tok(0, 4), tok(1, 4)], bySlot({ 0: [4], 1: [4] }), 1);
  // Host now: (0,0), (0,1), (0,2), (1,0). Rows: 0 (0,3) j2, 1 (1,3) j2,
  // 2 (0,4) j3, 3 (1,4) j3, 4 (1,1) j1, 5 (1,2) j1.
  assertEquals(tiers(ref, 0, 0, 5), ["host", "host", "host", "gpu", "gpu"]);
  assertEquals(tiers(ref, 0, 1, 5), ["host", "gpu", "gpu", "gpu", "gpu"]);
  // Slot 1's token comes first in the step, but (0,1) is handled before
  // (1,0): it takes row 4 (LRU j1, smaller), (1,0) row 5; then the new
  // (1,5) takes row 0, (0,5) row 1 (both j2, in step order).
  const s = ref.step(
    [tok(1, 5), tok(0, 5)],
    bySlot({ 0: [1, 5], 1: [0, 5] }),
    2,
  );
  assertEquals(s.layers[0].uploads, [
    { slot: 0, pos: 1, row: 4 },
    { slot: 1, pos: 0, row: 5 },
  ]);
  assertEquals(s.layers[0].news, [
    { slot: 1, pos: 5, row: 0 },
    { slot: 0, pos: 5, row: 1 },
  ]);
  assertEquals(s.layers[0].reads, [
    { slot: 0, pos: 1, row: 4 },
    { slot: 1, pos: 0, row: 5 },
    { slot: 1, pos: 5, row: 0 },
    { slot: 0, pos: 5, row: 1 },
  ]);
  assertEquals(s.evictions, 4);
  assertEquals(tiers(ref, 0, 1, 6), [
    "gpu",
    "host",
    "host",
    "host",
    "gpu",
    "gpu",
  ]);
});

Deno.test("prefill: a chunk's working set is every earlier position of its own sequences", () => {
  const ref = new TierReference({ nLayers: 1, slots: 2, ctx: 8, rows: 5 });
  // Chunk 1: slot 0 whole (3 tokens), slot 1's first token.
  ref.step([tok(0, 0), tok(0, 1), tok(0, 2), tok(1, 0)], dense, -1);
  // Chunk 2: slot 1's positions 1 and 2. Its working set is (1,0) (hit)
  // plus the two new ones; slot 0 is not in it, so its rows may go:
  // (1,1) takes the free row 4, (1,2) row 0 from (0,0) (LRU tie).
  const s = ref.step([tok(1, 1), tok(1, 2)], dense, -1);
  assertEquals(s.layers[0].reads, [
    { slot: 1, pos: 0, row: 3 },
    { slot: 1, pos: 1, row: 4 },
    { slot: 1, pos: 2, row: 0 },
  ]);
  assertEquals(s.layers[0].uploads, []);
  assertEquals(tiers(ref, 0, 0, 3), ["host", "gpu", "gpu"]);
  // The largest kvLen of a slot's tokens bounds its set: a token whose
  // kvLen is below its pos + 1 does not shrink it.
  const r2 = new TierReference({ nLayers: 1, slots: 1, ctx: 8, rows: 8 });
  r2.step([tok(0, 0), tok(0, 1), tok(0, 2)], dense, -1);
  const t = r2.step([tok(0, 3, 2), tok(0, 4)], dense, -1);
  assertEquals(t.layers[0].reads.map((p) => p.pos), [0, 1, 2, 3, 4]);
  // A slot restarting is the caller's clear: its rows become free.
  r2.clear(0);
  assertEquals(tiers(r2, 0, 0, 5), ["none", "none", "none", "none", "none"]);
  assertEquals(r2.length(0), 0);
  const u = r2.step([tok(0, 0)], dense, -1);
  assertEquals(u.layers[0].news, [{ slot: 0, pos: 0, row: 0 }]);
});

Deno.test("needed later: when every row is needed at this layer or later, the one needed last goes", () => {
  // 3 layers, 6 rows: a second prefill chunk at layer 0 finds every row
  // held by an entry some layer >= 0 reads this step.
  const ref = new TierReference({ nLayers: 3, slots: 1, ctx: 8, rows: 6 });
  ref.step([tok(0, 0), tok(0, 1)], dense, -1);
  // Layer 0 -> rows 0, 1; layer 1 -> 2, 3; layer 2 -> 4, 5.
  assertEquals(rows(ref, 2, 0, 2), [4, 5]);
  const s = ref.step([tok(0, 2)], dense, -1);
  // Layer 0: the new (L0, 2) takes a row of layer 2 (needed last), the
  // smaller of two tied at j=1: row 4, (L2, 0) goes to the host.
  assertEquals(s.layers[0].news, [{ slot: 0, pos: 2, row: 4 }]);
  // Layer 1: layer 0's rows are done with (j=2, tie): row 0 goes.
  assertEquals(s.layers[1].news, [{ slot: 0, pos: 2, row: 0 }]);
  // Layer 2: (L2, 0) is uploaded into row 0 (rows 0-4 tie at j=2; row 5
  // is (L2, 1), attended), then (L2, 2) takes row 1.
  assertEquals(s.layers[2].uploads, [{ slot: 0, pos: 0, row: 0 }]);
  assertEquals(s.layers[2].news, [{ slot: 0, pos: 2, row: 1 }]);
  assertEquals(s.evictions, 4);
  assertEquals(s.byRule, { lru: 3, neededLater: 1 });
  assertEquals(tiers(ref, 0, 0, 3), ["host", "host", "gpu"]);
  assertEquals(tiers(ref, 1, 0, 3), ["gpu", "gpu", "host"]);
  assertEquals(rows(ref, 2, 0, 3), [0, 5, 1]);
});

Deno.test("needed later: ties on the layer go to the least recently used, then the smallest row", () => {
  const ref = new TierReference({ nLayers: 2, slots: 1, ctx: 8, rows: 4 });
  ref.step([tok(0, 0), tok(0, 1)], dense, -1); // L0: rows 0, 1; L1: 2, 3
  // j=2: layer 0 attends only the new 2, layer 1 attends 1 and 2.
  ref.step([tok(0, 2)], (l) => (l === 0 ? [2] : [1, 2]), 0);
  // (L0,2) took row 0, (L1,2) row 1 (LRU j1, smaller than row 2).
  assertEquals(rows(ref, 0, 0, 3), [-1, -1, 0]);
  assertEquals(rows(ref, 1, 0, 3), [2, 3, 1]);
  assertEquals(ref.lastUse(1, 0, 0), 1); // row 2, older than rows 1 and 3
  // j=3, dense: every row holds an entry of W_0 or W_1. Layer 0's misses
  // take layer 1's rows: row 2 first (j1, not the smaller row 1), then
  // rows 1 and 3 (tied at j2: the smaller first).
  const s = ref.step([tok(0, 3)], dense, 1);
  assertEquals(s.layers[0].uploads, [
    { slot: 0, pos: 0, row: 2 },
    { slot: 0, pos: 1, row: 1 },
  ]);
  assertEquals(s.layers[0].news, [{ slot: 0, pos: 3, row: 3 }]);
  // Layer 1 then takes every row back from layer 0 (all used at j3).
  assertEquals(s.layers[1].uploads, [
    { slot: 0, pos: 0, row: 0 },
    { slot: 0, pos: 1, row: 1 },
    { slot: 0, pos: 2, row: 2 },
  ]);
  assertEquals(s.layers[1].news, [{ slot: 0, pos: 3, row: 3 }]);
  assertEquals(s.evictions, 7);
  assertEquals(s.byRule, { lru: 4, neededLater: 3 });
  assertEquals(tiers(ref, 0, 0, 4), ["host", "host", "host", "host"]);
  assertEquals(rows(ref, 1, 0, 4), [0, 1, 2, 3]);
});

Deno.test("phase III: from decode step p2, positions below floor(beta x length) lose their host K/V", () => {
  const ref = new TierReference({ nLayers: 1, slots: 1, ctx: 16, rows: 4 });
  ref.setPlan({ p1: 0, p2: 1, alpha: 0.5, beta: 0.5 });
  ref.step([tok(0, 0), tok(0, 1), tok(0, 2), tok(0, 3)], dense, -1);
  // Decode step 0 < p2: no drops; (0,0) spills to the host.
  let s = ref.step([tok(0, 4)], () => [3, 4], 0);
  assertEquals(s.drops, []);
  assertEquals(tiers(ref, 0, 0, 5), ["host", "gpu", "gpu", "gpu", "gpu"]);
  // Decode step 1: length 6 (the new token included), floor(3) -> 0..2
  // lose their host K/V: 0 (host) becomes recompute; 1 and 2 keep their
  // rows and become recompute when they lose them.
  s = ref.step([tok(0, 5)], () => [0, 4, 5], 1);
  assertEquals(s.drops, [
    { l: 0, slot: 0, pos: 0 },
    { l: 0, slot: 0, pos: 1 },
    { l: 0, slot: 0, pos: 2 },
  ]);
  assertEquals(s.layers[0].uploads, []);
  assertEquals(s.layers[0].recomputes, [{ slot: 0, pos: 0, row: 1 }]);
  assertEquals(s.layers[0].news, [{ slot: 0, pos: 5, row: 2 }]);
  assertEquals(tiers(ref, 0, 0, 6), [
    "gpu",
    "recompute",
    "recompute",
    "gpu",
    "gpu",
    "gpu",
  ]);
  assertEquals(ref.phase(), 3);
  assertEquals(ref.counts(), { gpu: 4, host: 0, recompute: 2 });
  // Decode step 2: length 7, floor(3.5) = 3: nothing new to drop; (0,4)
  // (not dropped) spills to the host.
  s = ref.step([tok(0, 6)], () => [3, 6], 2);
  assertEquals(s.drops, []);
  assertEquals(ref.tier(0, 0, 4), "host");
  // Decode step 3: length 8 -> 0..3: (0,3) is dropped though on the GPU.
  // (0,1) is rebuilt into row 1, evicting (0,0): recompute again.
  s = ref.step([tok(0, 7)], () => [1, 7], 3);
  assertEquals(s.drops, [{ l: 0, slot: 0, pos: 3 }]);
  assertEquals(s.layers[0].recomputes, [{ slot: 0, pos: 1, row: 1 }]);
  assertEquals(s.layers[0].news, [{ slot: 0, pos: 7, row: 2 }]);
  assertEquals(tiers(ref, 0, 0, 8), [
    "recompute",
    "gpu",
    "recompute",
    "gpu",
    "host",
    "host",
    "gpu",
    "gpu",
  ]);
  assertEquals(ref.hostHas(0, 0, 3), false);
  assertEquals(ref.hostHas(0, 0, 4), true);
});

Deno.test("phase III: never on prefill steps, before p2, or with beta 0; only the sequences in the step", () => {
  const mk = (plan: { p2: number; beta: number }) => {
    const ref = new TierReference({ nLayers: 2, slots: 2, ctx: 16, rows: 64 });
    ref.setPlan({ p1: 0, alpha: 0, ...plan });
    ref.step([tok(0, 0), tok(0, 1), tok(0, 2), tok(1, 0)], dense, -1);
    return ref;
  };
  assertEquals(mk({ p2: 0, beta: 0.5 }).step([tok(0, 3)], dense, -1).drops, []);
  assertEquals(mk({ p2: 1, beta: 0.5 }).step([tok(0, 3)], dense, 0).drops, []);
  assertEquals(mk({ p2: 0, beta: 0 }).step([tok(0, 3)], dense, 5).drops, []);
  // beta 1: every position of slot 0 but the new one (it does not exist
  // yet); slot 1 is not in the step and keeps its K/V.
  const ref = mk({ p2: 0, beta: 1 });
  const s = ref.step([tok(0, 3)], dense, 0);
  // In the order: slot, layer, position.
  assertEquals(s.drops.map((d) => `${d.l},${d.slot},${d.pos}`), [
    "0,0,0",
    "0,0,1",
    "0,0,2",
    "1,0,0",
    "1,0,1",
    "1,0,2",
  ]);
  assertEquals(ref.hostHas(0, 0, 3), true);
  assertEquals(ref.hostHas(0, 1, 0), true); // slot 1 was not in the step
  assertEquals(ref.tier(0, 0, 0), "gpu"); // dropped, still on the GPU
  // Once slot 1 decodes, its old positions go too.
  const s2 = ref.step([tok(0, 4), tok(1, 1)], dense, 1);
  assertEquals(
    s2.drops.filter((d) => d.slot === 1).map((d) => `${d.l},${d.pos}`),
    ["0,0", "1,0"],
  );
});

Deno.test("a working set larger than the pool is a RangeError naming the layer", () => {
  const ref = new TierReference({ nLayers: 2, slots: 1, ctx: 8, rows: 3 });
  ref.step([tok(0, 0), tok(0, 1), tok(0, 2)], dense, -1);
  // W_0 = 3 cached + 1 new > 3 rows.
  assertThrows(
    () => ref.step([tok(0, 3)], dense, 0),
    RangeError,
    "working set of layer 0",
  );
  // Exactly the pool is fine (layer 1 then takes every row back).
  const ok = new TierReference({ nLayers: 2, slots: 1, ctx: 8, rows: 3 });
  ok.step([tok(0, 0), tok(0, 1)], dense, -1);
  const s = ok.step([tok(0, 2)], dense, -1);
  assertEquals(s.layers[1].news.length, 1);
  // An attended position never written is an error too.
  assertThrows(
    () => ok.step([tok(0, 3)], () => [5, 3], 0),
    RangeError,
    "never written",
  );
  assertThrows(
    () => new TierReference({ nLayers: 1, slots: 1, ctx: 8, rows: 0 }),
    RangeError,
  );
});
