/**
 * The KV store the model reads and writes K/V through. The model asks it
 * for each layer's bindings and, per step, what to do before each layer;
 * where a token's K/V lives is the store's business:
 *
 * - `pool.ts`: the GPU tier (token rows under a byte budget, row tables);
 * - `host.ts`: the host tier (every token's K/V, INT8 or f16, and x);
 * - `scheduler.ts`: decides placements (three phases), `cost_model.ts`
 *   chooses the plan from a profile of this device.
 *
 * Without a budget (or with one that holds every position of every
 * sequence) the pool is static, nothing leaves the GPU and a step costs
 * what it did before the tiers existed. Under a smaller budget the store is
 * tiered: a step's layers run in segments (one command buffer each); before
 * a segment the store writes the changed table entries, uploads the host
 * tokens its layers need into their rows, and fills the recompute inputs;
 * the step's new K/V rows (and x) come back with its ids.
 *
 * Accounting: every GPU buffer the store creates is in one of two sets:
 * `budgetSet` (pool, table, layer uniforms, capture rows, selection masks,
 * recompute scratch), whose bytes never exceed the budget, and
 * `stagingSet` (mappable buffers for readback, host-visible), reported
 * apart.
 *
 * @module
 */
import type { BufferSet } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { type StepBuffers, stepTableBytes } from "../gpu/step.ts";
import type { KvBindings } from "../model/ops.ts";
import {
  type DeviceProfile,
  type PlanCost,
  planCost,
  type RecomputeMode,
  solvePlan,
  type Workload,
} from "./cost_model.ts";
import { HostTier } from "./host.ts";
import {
  type KvDims,
  KvPool,
  poolBytes,
  poolOverheadBytes,
  rowBytes,
  rowsPerPart,
  tableEntries,
} from "./pool.ts";
import { BLOCK_TOKENS, PagedAllocator } from "./paged.ts";
import {
  MAX_SCHEDULED_ROWS,
  NO_RECOMPUTE,
  type ScheduledToken,
  type StepDecision,
  TIER,
  type TierPlan,
  TierScheduler,
} from "./scheduler.ts";
import { budgetK, type PolicySpec } from "../sparse/spec.ts";

/** Options of the KV store (`loadModel(..., { kv })`). */
export interface KvOptions {
  /**
   * GPU bytes for K/V: the pool of token rows, its row tables and the
   * tiers' GPU scratch. Default: enough for every position of every
   * sequence (nothing leaves the GPU).
   */
  gpuBytes?: number;
  /** Host tier in INT8 (default true); false keeps exact f16 (and x in f32). */
  int8?: boolean;
  /** Whether dropped tokens may be recomputed: by the cost model (default), always when spilling (tests), never. */
  recompute?: RecomputeMode;
  /** Most host bytes for the host tier (default: unlimited). */
  hostBytes?: number;
  /**
   * Forces phase III instead of the cost model's choice: from decode step
   * `p2` on, the oldest fraction `beta` (in [0, 1]) of each decoding
   * sequence's positions are dropped for recompute (needs recompute not
   * "off"). p1 and alpha follow from the budget and cannot be set.
   */
  plan?: { beta: number; p2: number };
  /**
   * vLLM-style instead of tiers: the budget's rows are handed out in
   * blocks of 16 positions and nothing leaves the GPU; a step that needs
   * more blocks than are free throws `PoolFullError`, and the
   * continuous-batching driver (`src/api/continuous.ts`) preempts.
   */
  paged?: boolean;
}

/** The model sizes the store needs beyond its layout. */
export interface KvModelDims extends KvDims {
  headDim: number;
  /** Model width (elements of x). */
  dim: number;
  /** Most tokens in one step. */
  maxStepTokens: number;
}

/** One step's placement summary. */
export interface KvStepStats {
  /** Step counter of the store. */
  step: number;
  /** Observed phase: 1 all on the GPU, 2 some on the host, 3 some dropped for recompute. */
  phase: 1 | 2 | 3;
  /** Entries (token x layer) per tier after the step. */
  gpuTokens: number;
  hostTokens: number;
  recomputeTokens: number;
  /** Bytes uploaded host -> GPU before this step's layers. */
  uploadedBytes: number;
  /** Entries rebuilt from x in this step. */
  recomputedTokens: number;
  /** Rows taken from a token to make room. */
  evictions: number;
  /** Pool rows holding a token, and the pool's rows. */
  rowsUsed: number;
  rows: number;
  /** GPU bytes of the KV held now: rows in use plus the store's fixed parts. */
  gpuKvBytes: number;
  /** Host tier bytes. */
  hostBytes: number;
}

/** What a run of the store did (`generate --json`'s `kv_stats`). */
export interface KvStats {
  budget_bytes: number;
  /** GPU bytes the store allocated (its own accounting; never above the budget). */
  allocated_gpu_kv_bytes: number;
  /** Most GPU KV bytes held in a step (rows in use plus fixed parts). */
  peak_gpu_kv_bytes: number;
  /** Mappable readback buffers, outside the budget. */
  staging_bytes: number;
  phases_entered: number[];
  steps: number;
  uploaded_bytes: number;
  recomputed_tokens: number;
  /** Most entries (token x layer) off the GPU at once (host and recompute tiers). */
  host_tokens_peak: number;
  host_bytes_peak: number;
  evictions: number;
  /** Sequences preempted (paged KV under continuous batching; their prefix is recomputed). */
  preemptions: number;
  plan: { alpha: number; beta: number; p1: number | null; p2: number | null };
  /** Whether the store is tiered (a budget below what every position needs). */
  tiered: boolean;
  int8: boolean;
}

/** The recompute scratch: its own step table and buffers for R tokens. */
export interface RecomputeScratch {
  sb: StepBuffers;
  x: GPUBuffer; // (R, dim) layer inputs
  xn: GPUBuffer; // (R, dim) normalized
  k: GPUBuffer; // (R, kv_dim)
  v: GPUBuffer; // (R, kv_dim)
  tokens: number;
}

/** A run of layers encoded in one command buffer, and what precedes it. */
export interface Segment {
  /** Layers, in order (none: a round of recomputes only). */
  layers: number[];
  /** The layer whose recompute dispatches run before it (at most one). */
  rcLayer: number;
  /** Recompute tokens of that layer. */
  rcCount: number;
  /** Writes the segment's table entries, uploads and recompute inputs (before its submit). */
  apply(): void;
}

/** Fixed GPU parts of a tiered store, in bytes. */
interface TieredParts {
  capture: number;
  masks: number;
  rc: number;
  rcTokens: number;
}

/** Most tokens per step in a tiered store (bounds the capture rows). */
export const TIERED_STEP_TOKENS = 128;

function pad16(n: number): number {
  return Math.max(16, Math.ceil(n / 16) * 16);
}

function tieredParts(
  d: KvModelDims,
  recompute: RecomputeMode,
  rcTokens: number,
  T: number,
): TieredParts {
  const words = Math.ceil(d.ctx / 32);
  const rc = recompute === "off" ? 0 : pad16(stepTableBytes(rcTokens)) +
    16 + 2 * pad16(rcTokens * d.dim * 4) + 2 * pad16(rcTokens * d.kvDim * 4);
  return {
    capture: pad16(T * d.kvDim * 4),
    masks: pad16(d.nLayers * d.slots * words * 4),
    rc,
    rcTokens: recompute === "off" ? 0 : rcTokens,
  };
}

/** How a tiered store lays out a budget: its step size, scratch and pool rows. */
export interface TieredLayout {
  /** Most tokens per step (one capture row each). */
  stepTokens: number;
  /** Recompute scratch tokens (0: recompute off). */
  rcTokens: number;
  parts: TieredParts;
  /** Bytes of everything but the pool rows (row table and layer uniforms included). */
  fixed: number;
  /** Pool rows that fit the rest of the budget. */
  rows: number;
}

/**
 * The layout of a tiered store under `budget` bytes: capture rows for
 * about a tenth of the budget (at least one per sequence, at most
 * {@linkcode TIERED_STEP_TOKENS}), a recompute scratch for about 5% (4 to
 * 64 tokens, none when recompute is off), the row table and masks, and as
 * many pool rows as fit the rest (padded as allocated). Pure arithmetic:
 * nothing is allocated.
 */
export function tieredLayout(
  d: KvModelDims,
  partRows: number,
  recompute: RecomputeMode,
  budget: number,
): TieredLayout {
  const stepTokens = Math.min(
    d.maxStepTokens,
    TIERED_STEP_TOKENS,
    Math.max(d.slots, Math.floor(budget / 10 / rowBytes(d))),
  );
  const perRcToken = 2 * d.dim * 4 + 2 * d.kvDim * 4 + 16;
  const rcTokens = Math.max(
    4,
    Math.min(64, Math.floor(budget * 0.05 / perRcToken)),
  );
  const parts = tieredParts(d, recompute, rcTokens, stepTokens);
  const fixed = poolOverheadBytes(d) + parts.capture + parts.masks + parts.rc;
  let rows = Math.max(0, Math.floor((budget - fixed) / rowBytes(d)));
  // Buffers are padded to 16 bytes: drop rows until the padded total fits.
  while (
    rows > 0 &&
    poolBytes(d, rows, partRows) - poolOverheadBytes(d) + fixed > budget
  ) rows--;
  return { stepTokens, rcTokens: parts.rcTokens, parts, fixed, rows };
}

/**
 * The smallest budget whose tiered layout has at least `rows` pool rows
 * (the fixed parts grow with the budget, so this searches rather than
 * adds).
 */
export function budgetForRows(
  d: KvModelDims,
  partRows: number,
  recompute: RecomputeMode,
  rows: number,
): number {
  // An upper bound: every fixed part at its largest.
  let hi = poolBytes(d, rows, partRows) +
    tieredParts(d, recompute, 64, Math.min(d.maxStepTokens, TIERED_STEP_TOKENS))
      .capture +
    64 * (2 * d.dim * 4 + 2 * d.kvDim * 4 + 16) + 4096 +
    pad16(d.nLayers * d.slots * Math.ceil(d.ctx / 32) * 4);
  while (tieredLayout(d, partRows, recompute, hi).rows < rows) hi *= 2;
  let lo = 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (tieredLayout(d, partRows, recompute, mid).rows >= rows) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Parses a byte size: an integer, or a number with B, KiB, MiB, GiB (or KB, MB, GB). */
export function parseBytes(s: string, what = "size"): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$/.exec(
    s,
  );
  if (!m) {
    throw new RangeError(
      `${what}: ${
        JSON.stringify(s)
      } is not a byte size (e.g. 65536, 64KiB, 64MiB, 1GiB)`,
    );
  }
  const unit: Record<string, number> = {
    B: 1,
    KiB: 1024,
    MiB: 1024 ** 2,
    GiB: 1024 ** 3,
    KB: 1e3,
    MB: 1e6,
    GB: 1e9,
    k: 1024,
    K: 1024,
    M: 1024 ** 2,
    G: 1024 ** 3,
  };
  const n = Math.floor(Number(m[1]) * unit[m[2] ?? "B"]);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(
      `${what}: ${JSON.stringify(s)} must be at least 1 byte`,
    );
  }
  return n;
}

/** Checks the store options; TypeError / RangeError naming the problem. */
export function checkKvOptions(o: KvOptions | undefined): void {
  if (o === undefined) return;
  if (typeof o !== "object" || o === null) {
    throw new TypeError(`kv options must be an object, got ${o}`);
  }
  const known = [
    "gpuBytes",
    "int8",
    "recompute",
    "hostBytes",
    "plan",
    "paged",
  ];
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) {
      throw new TypeError(
        `kv has no option ${JSON.stringify(k)} (known: ${known.join(", ")})`,
      );
    }
  }
  if (o.plan !== undefined && (typeof o.plan !== "object" || o.plan === null)) {
    throw new TypeError(
      `kv.plan must be an object { beta, p2 }, got ${o.plan}`,
    );
  }
  if (
    o.gpuBytes !== undefined &&
    !(Number.isSafeInteger(o.gpuBytes) && o.gpuBytes > 0)
  ) {
    throw new RangeError(
      `kv.gpuBytes must be a positive integer (bytes), got ${o.gpuBytes}`,
    );
  }
  if (
    o.hostBytes !== undefined &&
    !(Number.isSafeInteger(o.hostBytes) && o.hostBytes > 0)
  ) {
    throw new RangeError(
      `kv.hostBytes must be a positive integer (bytes), got ${o.hostBytes}`,
    );
  }
  if (o.paged !== undefined && typeof o.paged !== "boolean") {
    throw new TypeError(`kv.paged must be true or false, got ${o.paged}`);
  }
  if (o.paged) {
    for (const k of ["int8", "recompute", "hostBytes", "plan"] as const) {
      if (o[k] !== undefined) {
        throw new TypeError(
          `kv.${k} does not apply to paged KV (it stays on the GPU; no host tier or recompute)`,
        );
      }
    }
  }
  if (o.int8 !== undefined && typeof o.int8 !== "boolean") {
    throw new TypeError(`kv.int8 must be true or false, got ${o.int8}`);
  }
  if (o.plan !== undefined) {
    const p = o.plan as Record<string, unknown>;
    for (const k of Object.keys(p)) {
      if (k === "alpha" || k === "p1") {
        throw new TypeError(
          `kv.plan.${k} follows from the GPU budget and cannot be set (set beta and p2)`,
        );
      }
      if (k !== "beta" && k !== "p2") {
        throw new TypeError(`kv.plan has no field ${JSON.stringify(k)}`);
      }
    }
    if (!(typeof p.beta === "number" && p.beta >= 0 && p.beta <= 1)) {
      throw new RangeError(`kv.plan.beta must be in [0, 1], got ${p.beta}`);
    }
    if (!(Number.isSafeInteger(p.p2) && (p.p2 as number) >= 0)) {
      throw new RangeError(
        `kv.plan.p2 must be a decode step (an integer >= 0), got ${p.p2}`,
      );
    }
    if (o.recompute === "off" && p.beta > 0) {
      throw new TypeError(
        `kv.plan.beta ${p.beta} drops tokens for recompute, but kv.recompute is "off"`,
      );
    }
  }
  if (
    o.recompute !== undefined && !["auto", "on", "off"].includes(o.recompute)
  ) {
    throw new TypeError(
      `kv.recompute must be "auto", "on" or "off", got ${
        JSON.stringify(o.recompute)
      }`,
    );
  }
}

/** The KV store of one model. */
export class KvStore {
  readonly pool: KvPool;
  /** Tokens stored so far, per slot. */
  readonly lengths: number[];
  /** A budget below what every position needs: host and recompute tiers in use. */
  readonly tiered: boolean;
  /** vLLM-style paged KV under the budget (no host tier): blocks and preemption. */
  readonly paged: boolean = false;
  /** Paged mode: the block tables. */
  readonly allocator: PagedAllocator | null = null;
  readonly budgetBytes: number;
  readonly int8: boolean;
  readonly recompute: RecomputeMode;
  /** Most tokens per step. */
  readonly stepTokens: number;
  readonly host: HostTier | null = null;
  readonly scheduler: TierScheduler | null = null;
  /** Buffers the budget covers. */
  readonly budgetSet: BufferSet;
  /** Mappable readback buffers (outside the budget). */
  readonly stagingSet: BufferSet;
  /** Tiered: the step's new K/V rows, (stepTokens, kvDim) words, per layer. */
  readonly capture: GPUBuffer | null = null;
  /** Tiered: bitmasks of the chosen sets, (layers, slots, ceil(ctx / 32)). */
  readonly masks: GPUBuffer | null = null;
  /** Tiered: the recompute scratch. */
  readonly rc: RecomputeScratch | null = null;
  /** Device profile (tiered, measured at load). */
  profile: DeviceProfile | null = null;
  /** Whether x is captured for the recompute tier. */
  keepX = false;
  /** The current plan and its modelled cost. */
  plan: TierPlan = NO_RECOMPUTE;
  planCost: PlanCost | null = null;
  /** Tiered: the row table as the GPU holds it (-1: no row). */
  private gpuTable: Int32Array | null = null;
  /** A plan forced by the options (beta, p2), or null. */
  private readonly forcedPlan: { beta: number; p2: number } | null;
  /** Chosen sets read back (tiered, ahead policies): per (layer, slot) bitmask words. */
  private selMasks: Uint32Array | null = null;
  /** Decode steps since the plan was made. */
  private decodeSteps = 0;
  private readonly history: KvStepStats[] = [];
  private totals = { uploaded: 0, recomputed: 0, evictions: 0 };
  private peak = { gpu: 0, hostTokens: 0, hostBytes: 0 };
  private phases = new Set<number>();
  private stepCount = 0;
  /** Sequences preempted since the last planRun (the continuous-batching driver counts them). */
  preemptions = 0;
  /** The step being run: what it moved. */
  private pending = { uploadedBytes: 0, recomputed: 0, evictions: 0 };
  /** Called after every step with its stats. */
  onStep: ((s: KvStepStats) => void) | null = null;
  /** Keep every step's stats in `steps` (tests, `--stats`); off by default. */
  recordSteps = false;

  constructor(
    gpu: Gpu,
    readonly set: BufferSet,
    readonly dims: KvModelDims,
    options: KvOptions = {},
  ) {
    checkKvOptions(options);
    this.int8 = options.int8 ?? true;
    this.recompute = options.recompute ?? "auto";
    this.forcedPlan = options.plan ?? null;
    this.budgetSet = set.child("budget");
    this.stagingSet = set.child("staging");
    const entries = tableEntries(dims);
    const partRows = rowsPerPart(gpu, dims);
    const full = poolBytes(dims, entries, partRows);
    this.lengths = new Array(dims.slots).fill(0);
    if (options.gpuBytes === undefined || options.gpuBytes >= full) {
      this.tiered = false;
      this.budgetBytes = options.gpuBytes ?? full;
      this.stepTokens = dims.maxStepTokens;
      this.pool = new KvPool(gpu, this.budgetSet, dims, entries);
      return;
    }
    if (options.paged) {
      this.tiered = false;
      this.paged = true;
      this.budgetBytes = options.gpuBytes;
      this.stepTokens = dims.maxStepTokens;
      const blockRows = BLOCK_TOKENS * dims.nLayers;
      let blocks = Math.floor(
        (this.budgetBytes - poolOverheadBytes(dims)) / rowBytes(dims) /
          blockRows,
      );
      while (
        blocks > 0 &&
        poolBytes(dims, blocks * blockRows, partRows) > this.budgetBytes
      ) blocks--;
      if (blocks < dims.slots) {
        throw new RangeError(
          `GPU KV budget of ${this.budgetBytes} bytes holds ${blocks} blocks of ${BLOCK_TOKENS} positions (${
            rowBytes(dims) * blockRows
          } bytes each, with the row table's ${
            poolOverheadBytes(dims)
          }); paged KV needs at least one block per sequence (${dims.slots})`,
        );
      }
      this.pool = new KvPool(gpu, this.budgetSet, dims, blocks * blockRows);
      this.allocator = new PagedAllocator(this.pool);
      this.gpuTable = new Int32Array(entries).fill(-1);
      return;
    }
    this.tiered = true;
    this.budgetBytes = options.gpuBytes;
    const lay = tieredLayout(dims, partRows, this.recompute, this.budgetBytes);
    this.stepTokens = lay.stepTokens;
    const parts = lay.parts, fixed = lay.fixed;
    const r = lay.rows;
    const minRows = dims.slots + 1;
    if (r < minRows) {
      const need = budgetForRows(dims, partRows, this.recompute, minRows);
      throw new RangeError(
        `GPU KV budget of ${this.budgetBytes} bytes is too small: its fixed parts take ${fixed} bytes (row tables ${
          poolOverheadBytes(dims)
        }, capture ${parts.capture}, selection masks ${parts.masks}, recompute scratch ${parts.rc}) and the pool needs at least ${minRows} rows of ${
          rowBytes(dims)
        } bytes (one token per sequence and one more): at least ${need} bytes`,
      );
    }
    if (r >= MAX_SCHEDULED_ROWS) {
      throw new RangeError(
        `a GPU KV budget of ${this.budgetBytes} bytes makes ${r} pool rows; the scheduler handles fewer than ${MAX_SCHEDULED_ROWS}: use a budget under ${
          budgetForRows(dims, partRows, this.recompute, MAX_SCHEDULED_ROWS - 1)
        } bytes, or none (everything on the GPU)`,
      );
    }
    this.pool = new KvPool(gpu, this.budgetSet, dims, r);
    const T = this.stepTokens;
    this.capture = this.budgetSet.buffer("capture", T * dims.kvDim * 4);
    this.masks = this.budgetSet.buffer(
      "masks",
      dims.nLayers * dims.slots * Math.ceil(dims.ctx / 32) * 4,
    );
    if (lay.rcTokens > 0) {
      const R = lay.rcTokens, b = this.budgetSet;
      this.rc = {
        sb: {
          step: b.buffer("rc.step", stepTableBytes(R)),
          outRows: b.buffer("rc.out_rows", 16),
        },
        x: b.buffer("rc.x", R * dims.dim * 4),
        xn: b.buffer("rc.xn", R * dims.dim * 4),
        k: b.buffer("rc.k", R * dims.kvDim * 4),
        v: b.buffer("rc.v", R * dims.kvDim * 4),
        tokens: R,
      };
    }
    this.host = new HostTier({ ...dims }, {
      int8: this.int8,
      maxBytes: options.hostBytes,
    });
    this.scheduler = new TierScheduler(this.pool);
    this.gpuTable = new Int32Array(entries).fill(-1);
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

  /** GPU bytes the store holds (its own accounting, staging included). */
  get bytes(): number {
    return this.set.bytes;
  }

  /** GPU bytes under the budget. */
  get budgetedBytes(): number {
    return this.budgetSet.bytes;
  }

  /** Bytes of one host K/V row as uploaded (f16), and of one x. */
  get transferSizes(): { row: number; x: number } {
    return {
      row: rowBytes(this.dims),
      x: this.int8 ? this.dims.dim + 8 : this.dims.dim * 4,
    };
  }

  /** Forgets slot `slot`'s tokens (every tier). */
  clear(slot: number): void {
    this.lengths[slot] = 0;
    this.scheduler?.clear(slot);
    this.host?.clear(slot);
    if (this.allocator) {
      this.releasedPaged.push(...this.allocator.release(slot));
    }
  }

  /** Paged mode: entries that lost their rows since the last step (NO_ROW before the next). */
  private releasedPaged: number[] = [];

  /** Tiered or paged: rows are placed step by step (the engine's segmented step path). */
  get dynamic(): boolean {
    return this.tiered || this.paged;
  }

  /** Rows one layer's working set can use at most (prefill chunking). */
  get maxWorkingRows(): number {
    return this.dynamic ? this.pool.rows : Infinity;
  }

  /**
   * Rows the decode steps of a run need at once, at the last step: one
   * layer's attended positions of every sequence (the policy's budget at
   * the final lengths), the new tokens included.
   */
  workingRows(policy: Required<PolicySpec>, finalLengths: number[]): number {
    let need = 0;
    for (const n of finalLengths) {
      need += policy.name === "dense"
        ? n
        : Math.min(n, 2 * budgetK(n, policy.sparsity, policy.minBudget));
    }
    return need;
  }

  /**
   * Plans a run (tiered stores): checks that one layer's working set fits
   * the pool (RangeError naming the smallest budget otherwise) and chooses
   * the three-phase plan with the cost model.
   */
  planRun(
    policy: Required<PolicySpec>,
    promptLens: number[],
    genLen: number,
    /** Paged: the caller admits and preempts (continuous batching); no fit check. */
    admission = false,
  ): void {
    this.decodeSteps = 0;
    this.stepCount = 0;
    this.history.length = 0;
    this.totals = { uploaded: 0, recomputed: 0, evictions: 0 };
    this.preemptions = 0;
    this.peak = { gpu: 0, hostTokens: 0, hostBytes: 0 };
    this.phases = new Set();
    // A run has the engine to itself: earlier runs' sequences go.
    for (let s = 0; s < this.slots; s++) this.clear(s);
    this.plan = NO_RECOMPUTE;
    this.planCost = null;
    if (this.paged && !admission) {
      // Without a driver to preempt, the whole run must fit its blocks.
      const blocks = promptLens.reduce(
        (a, p) => a + PagedAllocator.blocksFor(Math.min(this.ctx, p + genLen)),
        0,
      );
      if (blocks > this.allocator!.blocks) {
        throw new RangeError(
          `the paged KV pool holds ${
            this.allocator!.blocks
          } blocks of ${BLOCK_TOKENS} positions; this run needs ${blocks}: use generateContinuous (it preempts and recomputes), a larger budget, or fewer or shorter sequences`,
        );
      }
    }
    if (!this.tiered) return;
    this.scheduler!.plan = NO_RECOMPUTE;
    const finals = promptLens.map((p) => Math.min(this.ctx, p + genLen));
    // One layer's working set at once: a prompt's dense prefill (every
    // position of the longest prompt, however it is cut into steps), or
    // the decode steps' attended sets at the final lengths.
    const prefill = Math.max(0, ...promptLens);
    const decode = genLen > 0 ? this.workingRows(policy, finals) : 0;
    const need = Math.max(prefill, decode);
    if (need > this.pool.rows) {
      const bytes = budgetForRows(
        this.dims,
        this.pool.rowsPerPart,
        this.recompute,
        need,
      );
      const what = prefill >= decode
        ? `the prefill of a ${prefill}-token prompt attends all of it`
        : `one layer's attended tokens of ${promptLens.length} sequence(s) at their final lengths under ${policy.name}${
          policy.name === "dense" ? "" : ` at sparsity ${policy.sparsity}`
        }`;
      throw new RangeError(
        `GPU KV budget of ${this.budgetBytes} bytes holds ${this.pool.rows} token rows; this run needs ${need} at once (${what}): use a budget of at least ${bytes} bytes, fewer or shorter sequences, or more sparsity`,
      );
    }
    if (!this.profile) return;
    const sizes = this.transferSizes;
    const w: Workload = {
      batch: promptLens.length,
      promptLen: promptLens.reduce((a, b) => a + b, 0) / promptLens.length,
      genLen,
      policy,
      nLayers: this.dims.nLayers,
      rows: this.pool.rows,
      rowBytes: sizes.row,
      xBytes: sizes.x,
    };
    const mode = this.keepX ? this.recompute : "off";
    let { plan, cost } = solvePlan(this.profile, w, mode);
    if (this.forcedPlan && this.keepX) {
      plan = { ...plan, ...this.forcedPlan };
      cost = planCost(this.profile, w, plan);
    }
    this.plan = plan;
    this.planCost = cost;
    this.scheduler!.plan = plan;
  }

  /** The chosen set of (layer, slot) from the last readback, or null. */
  chosenSet(l: number, slot: number): Int32Array | null {
    if (!this.selMasks) return null;
    const words = Math.ceil(this.ctx / 32);
    const base = (l * this.slots + slot) * words;
    const out: number[] = [];
    for (let w = 0; w < words; w++) {
      let m = this.selMasks[base + w];
      while (m) {
        const b = 31 - Math.clz32(m & -m);
        out.push(w * 32 + b);
        m &= m - 1;
      }
    }
    return Int32Array.from(out);
  }

  /** Takes the chosen sets read back after a step (tiered, ahead policies). */
  absorbMasks(masks: Uint32Array): void {
    this.selMasks = masks.slice();
  }

  /**
   * Decides and prepares a tiered step: the scheduler places every entry
   * the step's layers touch, host drops are executed, and the layers are
   * cut into segments whose `apply` does the uploads and recompute inputs.
   * `sets(l, slot)`: the decode set of (layer, slot), or null (prefill:
   * every earlier position).
   */
  prepareStep(
    tokens: ScheduledToken[],
    sets: (l: number, slot: number) => ArrayLike<number> | null,
    decode: boolean,
  ): { segments: Segment[]; decision: StepDecision | null } {
    if (this.paged) return this.preparePaged(tokens);
    const sch = this.scheduler!, host = this.host!, pool = this.pool;
    for (const t of tokens) {
      if (t.pos === 0 && this.lengths[t.slot] > 0) this.clear(t.slot);
    }
    // Tokens that left the GPU before this step: NO_ROW in the table.
    pool.clearEntries(sch.released, this.gpuTable!);
    sch.released = [];
    const decision = sch.decide(
      tokens,
      sets,
      decode ? this.decodeSteps : -1,
    );
    if (decode) this.decodeSteps++;
    const { ctx, slots, kvDim } = this.dims;
    const split = (e: number) => {
      const p = e % ctx, ls = (e - p) / ctx;
      return { l: Math.floor(ls / slots), slot: ls % slots, pos: p };
    };
    for (const e of decision.drops) {
      const { l, slot, pos } = split(e);
      host.dropKv(l, slot, pos);
    }
    // Cut layers into segments: a new one before a layer whose uploads
    // would overwrite a row a layer of the open segment still reads (its
    // commands run only at the segment's submit), or whose recomputes need
    // the scratch another layer of the segment uses. A layer with more
    // recomputes than the scratch holds gets rounds of its own first.
    const segments: Segment[] = [];
    const R = this.rc?.tokens ?? 0;
    let cur: number[] = [];
    let used = new Set<number>();
    let rcLayer = -1;
    let rcPairs: number[] = [];
    const close = () => {
      if (!cur.length) return;
      const layers = cur, rcl = rcLayer, pairs = rcPairs;
      const work = layers.map((l) => decision.layers[l]);
      segments.push({
        layers,
        rcLayer: rcl,
        rcCount: pairs.length / 2,
        apply: () => {
          for (const w of work) pool.writeEntries(w.table, this.gpuTable!);
          for (const w of work) {
            for (let i = 0; i < w.uploads.length; i += 2) {
              const { l, slot, pos } = split(w.uploads[i]);
              const row = new Uint32Array(kvDim);
              host.getKv(l, slot, pos, row, 0);
              pool.writeRows(w.uploads[i + 1], row);
            }
          }
          if (rcl >= 0) this.writeRecompute(pairs);
        },
      });
      cur = [];
      used = new Set();
      rcLayer = -1;
      rcPairs = [];
    };
    for (let l = 0; l < this.dims.nLayers; l++) {
      const w = decision.layers[l];
      let clash = false;
      for (let i = 1; i < w.uploads.length && !clash; i += 2) {
        if (used.has(w.uploads[i])) clash = true;
      }
      let pairs = w.recomputes;
      if (pairs.length && (rcLayer >= 0 || pairs.length / 2 > R)) clash = true;
      if (clash) close();
      if (pairs.length / 2 > R) {
        // Whole rounds of R tokens, each its own submit, before the layer;
        // the rows they write are this layer's, used by nothing before it.
        const table = w.table;
        while (pairs.length / 2 > R) {
          const round = pairs.slice(0, 2 * R);
          pairs = pairs.slice(2 * R);
          segments.push({
            layers: [],
            rcLayer: l,
            rcCount: R,
            apply: () => {
              pool.writeEntries(table, this.gpuTable!);
              this.writeRecompute(round);
            },
          });
        }
      }
      cur.push(l);
      for (const r of w.rows) used.add(r);
      if (pairs.length) {
        rcLayer = l;
        rcPairs = pairs;
      }
    }
    close();
    let uploaded = 0, recomputed = 0;
    for (const w of decision.layers) {
      uploaded += w.uploads.length / 2;
      recomputed += w.recomputes.length / 2;
    }
    this.totals.uploaded += uploaded * rowBytes(this.dims);
    this.totals.recomputed += recomputed;
    this.totals.evictions += decision.evictions;
    this.pending = {
      uploadedBytes: uploaded * rowBytes(this.dims),
      recomputed,
      evictions: decision.evictions,
    };
    return { segments, decision };
  }

  /**
   * A paged step: the new positions get rows in their sequences' blocks
   * (PoolFullError, nothing taken, when the blocks are not free); every
   * layer runs in one segment after the table entries are written.
   */
  private preparePaged(
    tokens: ScheduledToken[],
  ): { segments: Segment[]; decision: null } {
    const pool = this.pool;
    for (const t of tokens) {
      if (t.pos === 0 && this.lengths[t.slot] > 0) this.clear(t.slot);
    }
    const pairs = this.allocator!.place(tokens);
    const released = this.releasedPaged;
    this.releasedPaged = [];
    this.pending = { uploadedBytes: 0, recomputed: 0, evictions: 0 };
    return {
      segments: [{
        layers: [...Array(this.dims.nLayers).keys()],
        rcLayer: -1,
        rcCount: 0,
        apply: () => {
          pool.clearEntries(released, this.gpuTable!);
          for (const p of pairs) pool.writeEntries(p, this.gpuTable!);
        },
      }],
      decision: null,
    };
  }

  private writeRecompute(pairs: number[]): void {
    const rc = this.rc!, host = this.host!;
    const { ctx, slots, dim } = this.dims;
    const n = pairs.length / 2;
    const table = new Uint32Array(4 + n * 4);
    table[0] = n;
    const x = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      const e = pairs[2 * i];
      const pos = e % ctx, ls = (e - pos) / ctx;
      const l = Math.floor(ls / slots), slot = ls % slots;
      table.set([slot, pos, 0, pos + 1], 4 + i * 4);
      host.getX(l, slot, pos, x, i * dim);
    }
    const q = this.pool.set.gpu.device.queue;
    q.writeBuffer(rc.sb.step, 0, table);
    q.writeBuffer(rc.x, 0, x);
  }

  /**
   * Takes a tiered step's readback: the new K/V rows per layer
   * (`kv`: (layers, tokens, kvDim) words) and x (`x`: (layers, tokens,
   * dim), when kept) into the host tier; records the step's stats.
   */
  finishStep(
    tokens: ScheduledToken[],
    kv: Uint32Array | null,
    x: Float32Array | null,
  ): void {
    const { nLayers, kvDim, dim } = this.dims;
    const T = tokens.length;
    for (const t of tokens) {
      this.lengths[t.slot] = Math.max(this.lengths[t.slot], t.pos + 1);
    }
    if (this.tiered && kv) {
      const host = this.host!;
      for (let l = 0; l < nLayers; l++) {
        tokens.forEach((t, i) => {
          const off = (l * T + i) * kvDim;
          host.putKv(l, t.slot, t.pos, kv.subarray(off, off + kvDim));
          if (x) {
            const xo = (l * T + i) * dim;
            host.putX(l, t.slot, t.pos, x.subarray(xo, xo + dim));
          }
        });
      }
    }
    this.record();
  }

  /** Records one step's stats (static stores: every cached token on the GPU). */
  private record(): void {
    const fixed = this.budgetSet.bytes -
      this.pool.parts.reduce((a, b) => a + b.size, 0);
    let s: KvStepStats;
    if (this.tiered) {
      const c = this.scheduler!.counts;
      const phase = c.recompute > 0 ? 3 : c.host > 0 ? 2 : 1;
      s = {
        step: this.scheduler!.step,
        phase,
        gpuTokens: c.gpu,
        hostTokens: c.host,
        recomputeTokens: c.recompute,
        uploadedBytes: this.pending.uploadedBytes,
        recomputedTokens: this.pending.recomputed,
        evictions: this.pending.evictions,
        rowsUsed: c.gpu,
        rows: this.pool.rows,
        gpuKvBytes: fixed + c.gpu * rowBytes(this.dims),
        hostBytes: this.host!.bytes,
      };
    } else {
      // Static and paged stores: every cached token on the GPU; paged rows
      // are held a block at a time.
      const tokens = this.lengths.reduce((a, b) => a + b, 0) *
        this.dims.nLayers;
      const a = this.allocator;
      const rows = a ? (a.blocks - a.freeBlocks) * a.blockRows : tokens;
      s = {
        step: this.stepCount + 1,
        phase: 1,
        gpuTokens: tokens,
        hostTokens: 0,
        recomputeTokens: 0,
        uploadedBytes: 0,
        recomputedTokens: 0,
        evictions: 0,
        rowsUsed: rows,
        rows: this.pool.rows,
        gpuKvBytes: fixed + rows * rowBytes(this.dims),
        hostBytes: 0,
      };
    }
    this.pending = { uploadedBytes: 0, recomputed: 0, evictions: 0 };
    this.stepCount++;
    if (this.recordSteps) this.history.push(s);
    this.phases.add(s.phase);
    this.peak.gpu = Math.max(this.peak.gpu, s.gpuKvBytes);
    this.peak.hostTokens = Math.max(
      this.peak.hostTokens,
      s.hostTokens + s.recomputeTokens,
    );
    this.peak.hostBytes = Math.max(this.peak.hostBytes, s.hostBytes);
    this.onStep?.(s);
  }

  /** The stats of every step since the last `planRun` (with `recordSteps`). */
  get steps(): readonly KvStepStats[] {
    return this.history;
  }

  /** The run's summary since the last `planRun`. */
  stats(): KvStats {
    const finite = (n: number) => (Number.isFinite(n) ? n : null);
    return {
      budget_bytes: this.budgetBytes,
      allocated_gpu_kv_bytes: this.budgetSet.bytes,
      peak_gpu_kv_bytes: this.peak.gpu,
      staging_bytes: this.stagingSet.bytes,
      phases_entered: [...this.phases].sort(),
      steps: this.stepCount,
      uploaded_bytes: this.totals.uploaded,
      recomputed_tokens: this.totals.recomputed,
      host_tokens_peak: this.peak.hostTokens,
      host_bytes_peak: this.peak.hostBytes,
      evictions: this.totals.evictions,
      preemptions: this.preemptions,
      plan: {
        alpha: this.plan.alpha,
        beta: this.plan.beta,
        p1: finite(this.plan.p1),
        p2: finite(this.plan.p2),
      },
      tiered: this.tiered,
      int8: this.int8,
    };
  }

  /** Tier of (layer, slot, pos) as the scheduler placed it (tests). */
  tierOf(l: number, slot: number, pos: number): keyof typeof TIER {
    if (!this.tiered) {
      return pos < this.lengths[slot] ? "gpu" : "none";
    }
    const t = this.scheduler!.tier[this.pool.entry(l, slot, pos)];
    return (Object.keys(TIER) as (keyof typeof TIER)[])[t];
  }
}
