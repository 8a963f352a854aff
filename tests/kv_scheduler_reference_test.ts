/**
 * The KV store's placements against the plain TypeScript reference of the
 * tiers (src/kv/reference.ts), step by step.
 *
 * - CPU: `TierScheduler` on a pool without a GPU, random workloads (batches,
 *   prefill chunks, sets, plans, restarts): after every step every entry's
 *   tier and row, and the step's uploads, recomputes, new entries, table
 *   entries, drops and evictions equal the reference's.
 * - GPU: the embedded model under small `kv.gpuBytes` budgets, batches of
 *   2-3 sequences through `generateBatch`. Before every step the reference
 *   gets the working sets the store sees, computed on its own (SWA: the
 *   chosen sets read back, `kv.chosenSet`, at the moment the store decides;
 *   static policies: `selectStatic`; prefill: every earlier position), and
 *   the sets the engine hands the store must equal them. After every step:
 *   every (layer, slot, pos)'s tier, pool row and host copy, the step's
 *   work list and stats equal the reference's, and the budget holds
 *   (`budgetedBytes` <= budget, and = the sizes of `budgetSet.all`). Every
 *   few steps the GPU's own state is read back: every row of the pool
 *   holds its entry's K/V (the host copy: bit-exact with INT8 off, within
 *   the INT8 error with it on; a recomputed entry: its K/V from before the
 *   drop, within f16 rounding), and the row table holds the row each
 *   entry of the step was read through.
 */
import { assert, assertEquals } from "@std/assert";
import { loadModel, type Model } from "../src/api/model.ts";
import { KvPool } from "../src/kv/pool.ts";
import {
  type RefPlacement,
  type RefStepResult,
  TierReference,
} from "../src/kv/reference.ts";
import { TierScheduler } from "../src/kv/scheduler.ts";
import type { KvOptions } from "../src/kv/store.ts";
import { selectStatic } from "../src/sparse/reference.ts";
import type { PolicySpec } from "../src/sparse/spec.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const TIERS = ["none", "gpu", "host", "recompute"];

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** (entry, row) pairs as placements of layer entries. */
function placements(
  pairs: number[],
  d: { slots: number; ctx: number },
): RefPlacement[] {
  const out: RefPlacement[] = [];
  for (let i = 0; i < pairs.length; i += 2) {
    const pos = pairs[i] % d.ctx;
    const slot = Math.floor(pairs[i] / d.ctx) % d.slots;
    out.push({ slot, pos, row: pairs[i + 1] });
  }
  return out;
}

/** The scheduler's decision equals the reference's, layer by layer. */
function assertSameDecision(
  got: ReturnType<TierScheduler["decide"]>,
  want: RefStepResult,
  d: { nLayers: number; slots: number; ctx: number },
  where: string,
) {
  for (let l = 0; l < d.nLayers; l++) {
    const g = got.layers[l], w = want.layers[l];
    assertEquals(placements(g.uploads, d), w.uploads, `${where} L${l} uploads`);
    assertEquals(
      placements(g.recomputes, d),
      w.recomputes,
      `${where} L${l} recomputes`,
    );
    assertEquals(placements(g.news, d), w.news, `${where} L${l} news`);
    assertEquals(placements(g.table, d), w.reads, `${where} L${l} table`);
  }
  const key = (l: number, slot: number, pos: number) =>
    (l * d.slots + slot) * d.ctx + pos;
  assertEquals(
    [...got.drops].sort((a, b) => a - b),
    want.drops.map((x) => key(x.l, x.slot, x.pos)).sort((a, b) => a - b),
    `${where} drops`,
  );
  assertEquals(got.evictions, want.evictions, `${where} evictions`);
}

/** A pool with no GPU behind it (the scheduler only uses its CPU mirror). */
function cpuPool(
  d: { nLayers: number; slots: number; ctx: number },
  rows: number,
) {
  const gpu = {
    limits: { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 1 << 30 },
    device: { queue: { writeBuffer() {} } },
  };
  const set = { buffer: () => ({}), uniform: () => ({}) };
  // deno-lint-ignore no-explicit-any
  return new KvPool(gpu as any, set as any, { ...d, kvDim: 2 }, rows);
}

Deno.test("TierScheduler equals the reference on random workloads (CPU, no GPU)", () => {
  let steps = 0, errors = 0, lru = 0, later = 0, drops = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const r = rng(seed);
    const d = {
      nLayers: 1 + Math.floor(r() * 4),
      slots: 1 + Math.floor(r() * 3),
      ctx: 48,
    };
    const rows = 3 + Math.floor(r() * 40);
    const pool = cpuPool(d, rows);
    const sch = new TierScheduler(pool);
    const ref = new TierReference({ ...d, rows });
    const plan = {
      p1: 0,
      p2: Math.floor(r() * 12),
      alpha: 0,
      beta: r() < 0.3 ? 0 : Math.ceil(r() * 10) / 10,
    };
    sch.plan = plan;
    ref.setPlan(plan);
    const len = new Array(d.slots).fill(0);
    let decodeIndex = 0;
    for (let step = 0; step < 50; step++) {
      const where = `seed ${seed} step ${step}`;
      const prefill = step < 2 || r() < 0.1;
      const slots = [...Array(d.slots).keys()].filter(() => r() < 0.75);
      // A sequence sometimes restarts (the store's clear).
      for (const s of slots) {
        if (prefill && len[s] > 0 && r() < 0.1) {
          sch.clear(s);
          ref.clear(s);
          len[s] = 0;
        }
      }
      const tokens = [];
      for (const s of slots) {
        const k = prefill ? 1 + Math.floor(r() * 4) : 1;
        for (let i = 0; i < k && len[s] < d.ctx; i++) {
          tokens.push({ slot: s, pos: len[s], kvLen: len[s] + 1 });
          len[s]++;
        }
      }
      if (!tokens.length) continue;
      if (r() < 0.3) tokens.reverse();
      const sets = new Map<string, number[] | null>();
      for (let l = 0; l < d.nLayers; l++) {
        for (const s of slots) {
          if (prefill) continue;
          const n = len[s], b = Math.min(n, 1 + Math.floor(r() * n * 0.4));
          const set = new Set<number>();
          for (let p = n - Math.ceil(b / 2); p < n; p++) set.add(p);
          while (set.size < b) set.add(Math.floor(r() * n));
          sets.set(`${l},${s}`, [...set].sort((a, b) => a - b));
        }
      }
      const setOf = (l: number, s: number) => sets.get(`${l},${s}`) ?? null;
      const index = prefill ? -1 : decodeIndex++;
      let got, want, eGot: unknown = null, eWant: unknown = null;
      try {
        got = sch.decide(tokens, setOf, index);
      } catch (e) {
        eGot = e;
      }
      try {
        want = ref.step(tokens, setOf, index);
      } catch (e) {
        eWant = e;
      }
      assertEquals(
        eGot instanceof RangeError,
        eWant instanceof RangeError,
        `${where}: ${eGot} / ${eWant}`,
      );
      if (eGot || eWant) {
        errors++;
        break;
      }
      assertSameDecision(got!, want!, d, where);
      steps++;
      lru += want!.byRule.lru;
      later += want!.byRule.neededLater;
      drops += want!.drops.length;
      for (let l = 0; l < d.nLayers; l++) {
        for (let s = 0; s < d.slots; s++) {
          for (let p = 0; p < d.ctx; p++) {
            const e = pool.entry(l, s, p);
            assertEquals(
              `${TIERS[sch.tier[e]]} ${pool.rowOf[e]}`,
              `${ref.tier(l, s, p)} ${ref.row(l, s, p)}`,
              `${where} (layer ${l}, slot ${s}, pos ${p})`,
            );
          }
        }
      }
      const c = ref.counts();
      assertEquals({ ...sch.counts }, c, `${where} counts`);
    }
  }
  // The workloads reach every rule.
  assert(steps > 3000 && errors > 0 && lru > 0 && later > 0 && drops > 0);
});

// ---------------------------------------------------------------- GPU ---

const CTX = 256;
const f16 = new Float32Array(1);
/** The value of an f16 bit pattern. */
function half(h: number): number {
  const e = (h >> 10) & 31, m = h & 1023, s = h >> 15 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  f16[0] = s * (1 + m / 1024) * 2 ** (e - 15);
  return f16[0];
}

interface Case {
  prompts: string[];
  maxTokens: number;
  policy: PolicySpec;
  kv: KvOptions & { gpuBytes: number };
  /** Read the GPU's pool and table back every this many steps. */
  checkEvery: number;
}

interface Summary {
  steps: number;
  decodeSteps: number;
  phases: number[];
  plan: { p1: number; p2: number; beta: number };
  uploads: number;
  uploadedBytes: number;
  recomputes: number;
  drops: number;
  evictions: { lru: number; neededLater: number };
  rows: number;
  gpuChecks: number;
  /** Pool rows compared with their host copy. */
  rowsChecked: number;
  /** Rows of dropped entries compared with their K/V from before the drop: still the GPU's own, or rebuilt from x. */
  droppedRowsChecked: number;
  rebuiltRowsChecked: number;
  maxRebuildDiff: number;
  maxInt8Diff: number;
}

/**
 * Runs `c` through `generateBatch` with the reference following the store
 * step by step; returns what happened.
 */
async function followStore(c: Case): Promise<Summary> {
  const m: Model = await loadModel(undefined, {
    gpu: (await testGpu())!,
    contextLength: CTX,
    maxBatch: c.prompts.length,
    kv: c.kv,
  });
  try {
    const e = m.engine, kv = e.kv, pool = kv.pool, host = kv.host!;
    assert(kv.tiered, "the budget must make the store tiered");
    const { nLayers, slots, ctx, kvDim } = kv.dims;
    const d = { nLayers, slots, ctx };
    const ref = new TierReference({ ...d, rows: pool.rows });
    const sum: Summary = {
      steps: 0,
      decodeSteps: 0,
      phases: [],
      plan: { p1: 0, p2: 0, beta: 0 },
      uploads: 0,
      uploadedBytes: 0,
      recomputes: 0,
      drops: 0,
      evictions: { lru: 0, neededLater: 0 },
      rows: pool.rows,
      gpuChecks: 0,
      rowsChecked: 0,
      droppedRowsChecked: 0,
      rebuiltRowsChecked: 0,
      maxRebuildDiff: 0,
      maxInt8Diff: 0,
    };
    const rowBytes = kvDim * 4;
    /** K/V of dropped entries as the host held them just before the drop. */
    const beforeDrop = new Map<number, Uint32Array>();
    /** Dropped entries rebuilt into a row at least once. */
    const rebuilt = new Set<number>();
    let last: RefStepResult | null = null;

    // The store's restarts are the reference's too.
    const clear = kv.clear.bind(kv);
    kv.clear = (slot: number) => {
      ref.clear(slot);
      clear(slot);
      for (let l = 0; l < nLayers; l++) {
        for (let pos = 0; pos < ctx; pos++) {
          beforeDrop.delete(pool.entry(l, slot, pos));
          rebuilt.delete(pool.entry(l, slot, pos));
        }
      }
    };

    const prepare = kv.prepareStep.bind(kv);
    kv.prepareStep = (tokens, sets, decode) => {
      ref.setPlan(kv.plan);
      sum.plan = { p1: kv.plan.p1, p2: kv.plan.p2, beta: kv.plan.beta };
      const where = `step ${sum.steps + 1} (${decode ? "decode" : "prefill"})`;
      // The working sets, on the test's own account.
      const spec = e.policy;
      const kvLen = new Map(tokens.map((t) => [t.slot, t.kvLen]));
      const mine = (l: number, slot: number): ArrayLike<number> | null => {
        if (!decode || spec.name === "dense") return null;
        if (spec.name === "swa") return kv.chosenSet(l, slot);
        return selectStatic(spec, kvLen.get(slot)!);
      };
      for (let l = 0; l < nLayers; l++) {
        for (const slot of kvLen.keys()) {
          const a = sets(l, slot), b = mine(l, slot);
          assertEquals(
            a && Array.from(a),
            b && Array.from(b),
            `${where}: the set the engine gives the store (layer ${l}, slot ${slot})`,
          );
        }
      }
      const want = ref.step(tokens, mine, decode ? sum.decodeSteps++ : -1);
      for (const x of want.drops) {
        if (!host.hasKv(x.l, x.slot, x.pos)) continue;
        const row = new Uint32Array(kvDim);
        host.getKv(x.l, x.slot, x.pos, row, 0);
        beforeDrop.set(pool.entry(x.l, x.slot, x.pos), row);
      }
      const got = prepare(tokens, sets, decode);
      assertSameDecision(got.decision!, want, d, where);
      want.layers.forEach((w, l) =>
        w.recomputes.forEach((p) => rebuilt.add(pool.entry(l, p.slot, p.pos)))
      );
      last = want;
      return got;
    };

    // After every step (KvStore.finishStep -> onStep): the placements.
    const onStep = (s: Parameters<NonNullable<typeof kv.onStep>>[0]) => {
      const want = last!;
      sum.steps++;
      const where = `step ${sum.steps}`;
      for (let l = 0; l < nLayers; l++) {
        for (let slot = 0; slot < slots; slot++) {
          for (let pos = 0; pos < ctx; pos++) {
            const en = pool.entry(l, slot, pos);
            const t = ref.tier(l, slot, pos);
            if (
              kv.tierOf(l, slot, pos) !== t ||
              pool.rowOf[en] !== ref.row(l, slot, pos) ||
              (t !== "none" && host.hasKv(l, slot, pos) !== ref.hostHas(
                    l,
                    slot,
                    pos,
                  ))
            ) {
              throw new Error(
                `${where} (layer ${l}, slot ${slot}, pos ${pos}): store ${
                  kv.tierOf(l, slot, pos)
                } row ${pool.rowOf[en]} host K/V ${
                  host.hasKv(l, slot, pos)
                }; reference ${t} row ${ref.row(l, slot, pos)} host K/V ${
                  ref.hostHas(l, slot, pos)
                }`,
              );
            }
          }
        }
      }
      for (let slot = 0; slot < slots; slot++) {
        assertEquals(kv.lengths[slot], ref.length(slot), `${where} length`);
      }
      const counts = ref.counts();
      const ups = want.layers.reduce((a, w) => a + w.uploads.length, 0);
      const rcs = want.layers.reduce((a, w) => a + w.recomputes.length, 0);
      assertEquals(
        {
          phase: s.phase,
          gpu: s.gpuTokens,
          host: s.hostTokens,
          recompute: s.recomputeTokens,
          uploadedBytes: s.uploadedBytes,
          recomputed: s.recomputedTokens,
          evictions: s.evictions,
          rowsUsed: s.rowsUsed,
        },
        {
          phase: ref.phase(),
          ...counts,
          uploadedBytes: ups * rowBytes,
          recomputed: rcs,
          evictions: want.evictions,
          rowsUsed: pool.used,
        },
        `${where} stats`,
      );
      // The budget.
      const all = kv.budgetSet.all.reduce((a, b) => a + b.size, 0);
      assertEquals(kv.budgetedBytes, all, `${where} budgeted bytes`);
      assert(
        kv.budgetedBytes <= c.kv.gpuBytes,
        `${where}: ${kv.budgetedBytes} > ${c.kv.gpuBytes}`,
      );
      if (!sum.phases.includes(s.phase)) sum.phases.push(s.phase);
      sum.uploads += ups;
      sum.uploadedBytes += s.uploadedBytes;
      sum.recomputes += rcs;
      sum.drops += want.drops.length;
      sum.evictions.lru += want.byRule.lru;
      sum.evictions.neededLater += want.byRule.neededLater;
    };

    // Every few steps: what the GPU holds.
    const el = (w: Uint32Array, i: number) =>
      half((w[i >> 1] >>> (16 * (i & 1))) & 0xffff);
    const gpuCheck = async () => {
      const where = `step ${sum.steps} (GPU)`;
      sum.gpuChecks++;
      const table = new Uint32Array(await e.gpu.read(pool.table));
      for (let l = 0; l < nLayers; l++) {
        for (const p of last!.layers[l].reads) {
          const at = table[pool.entry(l, p.slot, p.pos)];
          if (at !== p.row) {
            throw new Error(
              `${where}: the table sends (layer ${l}, slot ${p.slot}, pos ${p.pos}) to row ${at}, not ${p.row}`,
            );
          }
        }
      }
      const parts = [];
      for (const b of pool.parts) {
        parts.push(new Uint32Array(await e.gpu.read(b)));
      }
      const want = new Uint32Array(kvDim);
      const ranges = new Map<string, Float64Array>();
      for (let r = 0; r < pool.rows; r++) {
        const en = pool.entryOf[r];
        if (en < 0) continue;
        const pos = en % ctx, slot = Math.floor(en / ctx) % slots;
        const l = Math.floor(en / (ctx * slots));
        const part = Math.floor(r / pool.rowsPerPart);
        const off = (r - part * pool.rowsPerPart) * kvDim;
        const got = parts[part].subarray(off, off + kvDim);
        const what = () =>
          `${where}: row ${r} of (layer ${l}, slot ${slot}, pos ${pos})`;
        if (host.hasKv(l, slot, pos)) {
          host.getKv(l, slot, pos, want, 0);
          sum.rowsChecked++;
          if (!c.kv.int8) {
            for (let i = 0; i < kvDim; i++) {
              if (got[i] !== want[i]) {
                throw new Error(
                  `${what()}: word ${i} is ${got[i]} on the GPU, ${
                    want[i]
                  } on the host`,
                );
              }
            }
          } else {
            const key = `${l},${slot},${pos >> 5}`;
            let range = ranges.get(key);
            if (!range) ranges.set(key, range = keyRanges(l, slot, pos));
            sum.maxInt8Diff = Math.max(
              sum.maxInt8Diff,
              int8Check(got, want, range, what),
            );
          }
        } else if (beforeDrop.has(en)) {
          // Dropped (phase III): the K/V it had before the drop, bit-exact
          // if it never left the GPU or was rebuilt from an f32 x (the
          // forward pass's own kernels), to INT8 x's error otherwise.
          const old = beforeDrop.get(en)!;
          if (rebuilt.has(en)) sum.rebuiltRowsChecked++;
          else sum.droppedRowsChecked++;
          const tol = kv.int8 && rebuilt.has(en) ? 2 ** -6 : 0;
          for (let i = 0; i < kvDim * 2; i++) {
            const a = el(got, i), b = el(old, i);
            const diff = Math.abs(a - b);
            sum.maxRebuildDiff = Math.max(sum.maxRebuildDiff, diff);
            if (!(diff <= tol * Math.max(1, Math.abs(b)))) {
              throw new Error(
                `${what()}: ${
                  rebuilt.has(en) ? "rebuilt" : "dropped"
                } element ${i} is ${a}, was ${b}`,
              );
            }
          }
        } else {
          throw new Error(`${what()}: neither a host copy nor a dropped one`);
        }
      }
    };

    /** The range of each key channel over (l, slot)'s host chunk of `pos` (present positions). */
    const keyRanges = (l: number, slot: number, pos: number) => {
      const lo = new Float64Array(kvDim).fill(Infinity);
      const hi = new Float64Array(kvDim).fill(-Infinity);
      const tmp = new Uint32Array(kvDim);
      const base = pos - (pos % 32);
      for (let p = base; p < base + 32; p++) {
        if (!host.hasKv(l, slot, p)) continue;
        host.getKv(l, slot, p, tmp, 0);
        for (let i = 0; i < kvDim; i++) {
          lo[i] = Math.min(lo[i], el(tmp, i));
          hi[i] = Math.max(hi[i], el(tmp, i));
        }
      }
      return hi.map((h, i) => h - lo[i]);
    };

    /**
     * INT8 host copies: each element within the quantizer's step of its
     * group (keys: the channel over the host chunk; values: the token's
     * head), plus f16 rounding. Returns the largest difference.
     */
    const int8Check = (
      got: Uint32Array,
      want: Uint32Array,
      keyRange: Float64Array,
      what: () => string,
    ): number => {
      const hd = kv.dims.headDim;
      let worst = 0;
      for (let i = 0; i < kvDim * 2; i++) {
        const a = el(got, i), b = el(want, i);
        let range: number;
        if (i < kvDim) range = Math.max(keyRange[i], Math.abs(a - b));
        else {
          const h0 = kvDim + Math.floor((i - kvDim) / hd) * hd;
          let vlo = Infinity, vhi = -Infinity;
          for (let q = h0; q < h0 + hd; q++) {
            vlo = Math.min(vlo, el(want, q), el(got, q));
            vhi = Math.max(vhi, el(want, q), el(got, q));
          }
          range = vhi - vlo;
        }
        const diff = Math.abs(a - b);
        worst = Math.max(worst, diff);
        if (!(diff <= range / 255 + 2 ** -9 * Math.abs(b) + 1e-6)) {
          throw new Error(
            `${what()}: element ${i} is ${a} on the GPU, ${b} on the host (group range ${range})`,
          );
        }
      }
      return worst;
    };

    const stepArgmax = e.stepArgmax.bind(e);
    e.stepArgmax = async (tokens, outRows, decode) => {
      const ids = await stepArgmax(tokens, outRows, decode);
      if (sum.steps % c.checkEvery === 0) await gpuCheck();
      return ids;
    };

    const out = await m.generateBatch(c.prompts, {
      maxTokens: c.maxTokens,
      stopAtEos: false,
      policy: c.policy,
      onStep,
    });
    await gpuCheck();
    assertEquals(
      out.map((o) => o.ids.length),
      c.prompts.map(() => c.maxTokens),
    );
    const stats = kv.stats();
    assertEquals(stats.steps, sum.steps);
    assertEquals(stats.uploaded_bytes, sum.uploadedBytes);
    assertEquals(stats.recomputed_tokens, sum.recomputes);
    assertEquals(stats.phases_entered, [...sum.phases].sort());
    return sum;
  } finally {
    m.dispose();
  }
}

const PROMPTS = [
  "It is a truth universally acknowledged",
  "Mr. Darcy was",
  "Elizabeth walked into the drawing room and saw that her sister",
];

const ignore = !HAS_GPU;

function report(name: string, s: Summary) {
  console.log(`${name}: ${JSON.stringify(s)}`);
}

Deno.test({
  name:
    "GPU store = reference: SWA 0.8, 3 sequences, exact host, recompute on: phases I, II and III",
  ignore,
  async fn() {
    const s = await followStore({
      prompts: PROMPTS,
      maxTokens: 100,
      policy: { name: "swa", sparsity: 0.8 },
      kv: { gpuBytes: 230_000, int8: false, recompute: "on" },
      checkEvery: 2,
    });
    report("swa exact recompute-on", s);
    assertEquals(s.phases, [1, 2, 3]);
    assert(s.uploads > 0 && s.recomputes > 0 && s.drops > 0);
    assert(s.rebuiltRowsChecked > 0);
  },
});

Deno.test({
  name:
    "GPU store = reference: static policy (local 0.8), 2 sequences, exact host, recompute on",
  ignore,
  async fn() {
    const s = await followStore({
      prompts: PROMPTS.slice(0, 2),
      maxTokens: 100,
      policy: { name: "local", sparsity: 0.8 },
      kv: { gpuBytes: 180_000, int8: false, recompute: "on" },
      checkEvery: 4,
    });
    report("local exact recompute-on", s);
    assertEquals(s.phases, [1, 2, 3]);
  },
});

Deno.test({
  name:
    "GPU store = reference: static policy (strided 0.8), 2 sequences, exact host, recompute off",
  ignore,
  async fn() {
    const s = await followStore({
      prompts: PROMPTS.slice(1, 3),
      maxTokens: 100,
      policy: { name: "strided", sparsity: 0.8 },
      kv: { gpuBytes: 180_000, int8: false, recompute: "off" },
      checkEvery: 4,
    });
    report("strided exact recompute-off", s);
    assertEquals(s.phases, [1, 2]);
    assert(s.uploads > 0);
  },
});

Deno.test({
  name:
    "GPU store = reference: SWA 0.8, 3 sequences, INT8 host, recompute as the cost model chooses",
  ignore,
  async fn() {
    const s = await followStore({
      prompts: PROMPTS,
      maxTokens: 100,
      policy: { name: "swa", sparsity: 0.8 },
      kv: { gpuBytes: 230_000, int8: true, recompute: "auto" },
      checkEvery: 4,
    });
    report("swa int8 recompute-auto", s);
    assert(s.phases.includes(2) && s.uploads > 0);
  },
});

const LONG = "It is a truth universally acknowledged, that a single man in " +
  "possession of a good fortune, must be in want of a wife. However little " +
  "known the feelings or views of such a man may be on his first entering a " +
  "neighbourhood, this truth is so well fixed in the minds of the " +
  "surrounding families, that he is considered the rightful property of " +
  "some one or other of their daughters. My dear Mr. Bennet, said his lady " +
  "to him one day, have you heard that Netherfield Park is let at last? Mr. " +
  "Bennet replied that he had not. But it is, returned she; for Mrs. Long " +
  "has just been here, and she told me all about it.";

Deno.test({
  name:
    "GPU store = reference: a prompt prefilled in two chunks into a pool smaller than its KV (needed-later rows), SWA 0.8",
  ignore,
  async fn() {
    const s = await followStore({
      prompts: [LONG],
      maxTokens: 24,
      policy: { name: "swa", sparsity: 0.8 },
      kv: { gpuBytes: 240_000, int8: false, recompute: "on" },
      checkEvery: 3,
    });
    report("long prompt", s);
    assert(s.steps - s.decodeSteps >= 2, "two prefill chunks");
    assert(s.evictions.neededLater > 0);
  },
});
