/**
 * The engine's scheduler for concurrent callers: every `generate` and
 * `chat` of a {@linkcode Model} comes here, and requests that run at the
 * same time share decode steps, one KV slot each (continuous batching, as
 * llama.cpp's server and vLLM do it).
 *
 * - A request waits in a FIFO queue; at the next step boundary it is
 *   admitted into a free slot (its prompt prefilled there) and from then on
 *   every decode step produces one token of every running request.
 * - A request leaves when it is done (length, end of sequence or turn, a
 *   stop string, the context) or cancelled (its `signal` aborts, or its
 *   consumer stops iterating), and its slot goes to the next in the queue.
 * - The engine runs one KV policy at a time: a request with another policy
 *   waits until the running ones have left (the queue stays FIFO).
 * - A request that starts on an idle engine is planned for alone, as a
 *   single `generate` always was (its KV budget is checked before it is
 *   accepted, and the tiered store's phases are solved for it); later ones
 *   join that run. With paged KV a request is admitted only when the blocks
 *   of its full length fit beside those the running ones will reach, so
 *   nothing is ever preempted here (`generateContinuous` does preemption).
 *
 * Greedy requests take the GPU's argmax; when any running request samples,
 * the step reads logits back and each request picks from its own row with
 * its own seeded generator, so a request's tokens do not depend on what
 * else runs beside it (greedy ones are compared against solo runs in the
 * tests).
 *
 * @module
 */
import type { LlamaModel } from "../model/llama.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { StepToken } from "../gpu/step.ts";
import type { PolicySpec } from "../sparse/spec.ts";
import type { KvStepStats } from "../kv/store.ts";
import { PagedAllocator } from "../kv/paged.ts";
import { argmax, sample, seededRandom } from "./sampling.ts";
import { prefill } from "./prefill.ts";
import type {
  FinishReason,
  GeneratedPiece,
  GenerateOptions,
  Generation,
  GenerationResult,
} from "./model.ts";

/** A request as the batcher holds it. */
interface Request {
  promptIds: number[];
  maxTokens: number;
  /** Its length when done at the latest: min(context, prompt + maxTokens). */
  finalLen: number;
  o: GenerateOptions;
  policy: Required<PolicySpec>;
  /** Planned on an idle engine at submission (the run starts with it). */
  planned: boolean;
  greedy: boolean;
  random: () => number;
  stopIds: Set<number>;
  text: TextStream;
  slot: number;
  ids: number[];
  /** performance.now() at submission, admission, first token. */
  tSubmit: number;
  tAdmit: number;
  tFirst: number;
  cancelled: boolean;
  /** An error its own callback (onStep) threw: it fails alone, after the step. */
  error: { e: unknown } | null;
  /** Removes the abort listener from the caller's signal. */
  unlisten: () => void;
  finish: FinishReason | null;
  channel: Channel<GeneratedPiece>;
  settle: (r: GenerationResult) => void;
  fail: (e: unknown) => void;
}

/** Runs concurrent requests on one engine (see the module doc). */
export class Batcher {
  private readonly waiting: Request[] = [];
  /** Running requests by slot. */
  private readonly running = new Map<number, Request>();
  private loop: Promise<void> | null = null;
  /** Blocks the running requests reach at their full length (paged KV). */
  private reservedBlocks = 0;

  constructor(
    private readonly engine: LlamaModel,
    private readonly tokenizer: Tokenizer,
    /** Whether an exclusive caller (scoring, logits) holds the engine. */
    private readonly locked: () => boolean,
  ) {}

  /**
   * Requests running or waiting. (The loop may still be winding down for
   * a moment after the last one left; it touches nothing then.)
   */
  get busy(): boolean {
    return this.running.size > 0 || this.waiting.length > 0;
  }

  /** Running and waiting requests. */
  get load(): { running: number; waiting: number; slots: number } {
    return {
      running: this.running.size,
      waiting: this.waiting.length,
      slots: this.engine.kv.slots,
    };
  }

  /**
   * Queues a request (ids already checked against the context) and returns
   * its stream. Throws synchronously for a bad policy and, on an idle
   * engine, for a run the KV budget cannot hold.
   */
  submit(
    promptIds: number[],
    maxTokens: number,
    o: GenerateOptions,
  ): Generation {
    const engine = this.engine, kv = engine.kv;
    const policy = engine.checkPolicy(
      o.policy ?? { name: "dense", sparsity: 0 },
    );
    const finalLen = Math.min(kv.ctx, promptIds.length + maxTokens);
    if (kv.allocator) {
      const need = PagedAllocator.blocksFor(finalLen);
      if (need > kv.allocator.blocks) {
        throw new RangeError(
          `the paged KV pool holds ${kv.allocator.blocks} blocks of 16 positions; this request needs ${need}: use a larger budget or a shorter request`,
        );
      }
    }
    // An idle engine: the run is planned for this request now, so a
    // budget that cannot hold it is refused here, before anything runs.
    const planned = !this.busy && !this.locked();
    if (planned) this.planRun(policy, promptIds.length, finalLen);
    let settle!: (r: GenerationResult) => void, fail!: (e: unknown) => void;
    const result = new Promise<GenerationResult>((res, rej) => {
      settle = res;
      fail = rej;
    });
    result.catch(() => {}); // reported through the iterator too
    const stops = (o.stop ?? []).filter((s) => s.length > 0);
    const req: Request = {
      promptIds,
      maxTokens,
      finalLen,
      o,
      policy,
      planned,
      greedy: (o.temperature ?? 0) === 0,
      random: seededRandom(o.seed ?? Math.floor(Math.random() * 2 ** 32)),
      stopIds: new Set(
        [
          ...((o.stopAtEos ?? true) && this.tokenizer.eos !== null
            ? [this.tokenizer.eos]
            : []),
          ...(o.stopIds ?? []),
        ],
      ),
      text: new TextStream(this.tokenizer, stops),
      slot: -1,
      ids: [],
      tSubmit: performance.now(),
      tAdmit: 0,
      tFirst: 0,
      cancelled: false,
      error: null,
      unlisten: () => {},
      finish: null,
      channel: new Channel(() => this.cancel(req)),
      settle,
      fail,
    };
    this.waiting.push(req);
    if (o.signal?.aborted) this.cancel(req);
    else if (o.signal) {
      const onAbort = () => this.cancel(req);
      o.signal.addEventListener("abort", onAbort, { once: true });
      req.unlisten = () => o.signal!.removeEventListener("abort", onAbort);
    }
    this.kick();
    const channel = req.channel;
    return { result, [Symbol.asyncIterator]: () => channel };
  }

  /** Cancels every request and waits until the loop has stopped. */
  async drain(): Promise<void> {
    for (const r of [...this.waiting, ...this.running.values()]) {
      this.cancel(r);
    }
    while (this.loop) await this.loop;
  }

  /** Starts the loop if it is not running (e.g. after an exclusive caller). */
  kick(): void {
    if (this.loop || !this.waiting.length || this.locked()) return;
    // Started on the next microtask: requests submitted in the same tick
    // are admitted, and prefilled, together.
    this.loop = Promise.resolve().then(() => this.run()).catch((e) => {
      // Not expected (steps catch their own errors); never left unhandled.
      for (const r of [...this.running.values(), ...this.waiting]) {
        this.fail(r, e);
      }
      this.waiting.length = 0;
    }).finally(() => {
      this.loop = null;
      this.kick();
    });
  }

  private cancel(r: Request): void {
    if (r.finish) return;
    r.cancelled = true;
    const i = this.waiting.indexOf(r);
    if (i >= 0) {
      // Not admitted yet: it leaves the queue now.
      this.waiting.splice(i, 1);
      this.done(r, "cancelled");
    }
  }

  private async run(): Promise<void> {
    const engine = this.engine, kv = engine.kv;
    const dispatch = (s: KvStepStats) => {
      for (const r of this.running.values()) {
        if (!r.o.onStep || r.error) continue;
        try {
          r.o.onStep(s);
        } catch (e) {
          r.error = { e }; // fails that request alone, after the step
        }
      }
    };
    kv.onStep = dispatch;
    try {
      while (this.waiting.length || this.running.size) {
        // An exclusive caller took the engine after the last request left:
        // the waiting ones start when it releases it (kick).
        if (!this.running.size && this.locked()) break;
        await this.admit();
        if (!this.running.size) continue;
        await this.decodeStep();
      }
    } finally {
      // An exclusive caller may have set its own since the last request left.
      if (kv.onStep === dispatch) kv.onStep = null;
    }
  }

  /**
   * Admits waiting requests into free slots while they are compatible, and
   * prefills them together.
   */
  private async admit(): Promise<void> {
    const engine = this.engine, kv = engine.kv;
    const admitted: Request[] = [];
    while (this.waiting.length && this.running.size < kv.slots) {
      const r = this.waiting[0];
      if (this.running.size === 0 && !r.planned) {
        // A new run: this request's policy, planned for it alone.
        try {
          this.planRun(r.policy, r.promptIds.length, r.finalLen);
        } catch (e) {
          this.waiting.shift();
          this.fail(r, e);
          continue;
        }
        this.reservedBlocks = 0;
      } else if (this.running.size > 0 && !samePolicy(r.policy, engine)) {
        break; // FIFO: it waits for the running ones to leave
      }
      const full = PagedAllocator.blocksFor(r.finalLen);
      if (
        kv.allocator && this.running.size > 0 &&
        this.reservedBlocks + full > kv.allocator.blocks
      ) break; // its blocks are not free yet
      if (kv.tiered && this.running.size > 0 && !this.fits(r)) {
        break; // the pool cannot hold one more working set yet
      }
      this.waiting.shift();
      r.planned = true;
      r.slot = [...Array(kv.slots).keys()].find((s) => !this.running.has(s))!;
      r.tAdmit = performance.now();
      this.running.set(r.slot, r);
      if (kv.allocator) this.reservedBlocks += full;
      admitted.push(r);
    }
    if (!admitted.length) return;
    try {
      // Each request's first token streams as soon as its prompt's last
      // step is done.
      await prefill(
        this.engine,
        admitted.map((r) => ({ slot: r.slot, ids: r.promptIds })),
        admitted.every((r) => r.greedy),
        (i, x) => {
          admitted[i].tFirst = performance.now();
          this.accept(admitted[i], x);
        },
        // Requests that already ended (one token, a stop) left their slots.
        (i) => !admitted[i].finish,
      );
    } catch (e) {
      for (const r of admitted) this.fail(r, e);
    }
  }

  /** Switches to `policy` and plans a run for one request (engine idle). */
  private planRun(
    policy: Required<PolicySpec>,
    promptLen: number,
    finalLen: number,
  ): void {
    this.engine.setPolicy(policy);
    this.engine.kv.planRun(
      this.engine.policy,
      [promptLen],
      finalLen - promptLen,
    );
  }

  /**
   * Whether a tiered store's pool holds `r` beside the running requests:
   * one layer's working set at everyone's final lengths (what `planRun`
   * checks for a run's first request), and `r`'s prompt for its prefill.
   */
  private fits(r: Request): boolean {
    const kv = this.engine.kv;
    const finals = [...this.running.values(), r].map((x) => x.finalLen);
    return r.promptIds.length <= kv.maxWorkingRows &&
      kv.workingRows(this.engine.policy, finals) <= kv.maxWorkingRows;
  }

  /** One decode step of every running request. */
  private async decodeStep(): Promise<void> {
    const engine = this.engine;
    // Cancelled requests leave before the step.
    for (const r of [...this.running.values()]) {
      if (r.cancelled) this.done(r, "cancelled");
    }
    const reqs = [...this.running.values()];
    if (!reqs.length) return;
    const toks: StepToken[] = reqs.map((r) => ({
      slot: r.slot,
      pos: r.promptIds.length + r.ids.length - 1,
      id: r.ids[r.ids.length - 1],
    }));
    const rows = toks.map((_, i) => i);
    try {
      if (reqs.every((r) => r.greedy)) {
        const next = await engine.stepArgmax(toks, rows, true);
        reqs.forEach((r, i) => this.accept(r, next[i]));
      } else {
        const V = engine.config.vocabSize;
        const l = await engine.stepLogits(toks, rows, true);
        reqs.forEach((r, i) => this.accept(r, l.subarray(i * V, (i + 1) * V)));
      }
    } catch (e) {
      // The engine's state is unknown after a failed step: every running
      // request fails with the error.
      for (const r of reqs) this.fail(r, e);
    }
  }

  /** Takes a request's next token (an id, or logits to pick from). */
  private accept(r: Request, x: number | Float32Array): void {
    if (r.finish) return;
    if (r.error) return this.fail(r, r.error.e);
    const id = typeof x === "number"
      ? x
      : r.greedy
      ? argmax(x)
      : sample(x, r.o, r.random);
    if (r.stopIds.has(id)) return this.done(r, "eos");
    r.ids.push(id);
    const { piece, stopped } = r.text.push(id);
    if (piece || !stopped) {
      r.channel.push({ text: piece, id, index: r.ids.length - 1 });
    }
    if (stopped) return this.done(r, "stop");
    if (r.cancelled) return this.done(r, "cancelled");
    if (r.ids.length >= r.maxTokens) return this.done(r, "length");
    if (r.promptIds.length + r.ids.length - 1 >= this.engine.kv.ctx) {
      return this.done(r, "context");
    }
  }

  /** Ends a request: frees its slot and settles its result. */
  private done(r: Request, finish: FinishReason): void {
    if (r.finish) return;
    r.finish = finish;
    r.unlisten();
    this.release(r);
    if (finish !== "stop") {
      const tail = r.text.flush();
      if (tail) {
        r.channel.push({
          text: tail,
          id: r.ids[r.ids.length - 1] ?? -1,
          index: r.ids.length - 1,
        });
      }
    }
    const t2 = performance.now();
    const t0 = r.tAdmit || t2, t1 = r.tFirst || t2;
    r.settle({
      promptIds: r.promptIds,
      ids: r.ids,
      text: r.text.text,
      finishReason: finish,
      prefillTokS: r.promptIds.length / ((t1 - t0) / 1000),
      decodeTokS: r.ids.length > 1
        ? (r.ids.length - 1) / ((t2 - t1) / 1000)
        : 0,
      prefillMs: t1 - t0,
      decodeMs: t2 - t1,
      queuedMs: t0 - r.tSubmit,
      kvStats: this.engine.kv.stats(),
    });
    r.channel.close();
  }

  private fail(r: Request, e: unknown): void {
    if (r.finish) return;
    r.finish = "cancelled";
    r.unlisten();
    this.release(r);
    r.fail(e);
    r.channel.error(e);
  }

  private release(r: Request): void {
    if (r.slot >= 0 && this.running.get(r.slot) === r) {
      this.running.delete(r.slot);
      this.engine.kv.clear(r.slot);
      if (this.engine.kv.allocator) {
        this.reservedBlocks -= PagedAllocator.blocksFor(r.finalLen);
      }
    }
  }
}

function samePolicy(p: Required<PolicySpec>, engine: LlamaModel): boolean {
  const c = engine.policy;
  return p.name === c.name && p.sparsity === c.sparsity &&
    p.minBudget === c.minBudget;
}

/**
 * Generated text as it streams: decodes ids (characters split across
 * byte tokens wait for their last byte), cuts at the first stop string,
 * and holds back a tail that could still become one.
 */
export class TextStream {
  /** All text so far (cut at a stop string once one is seen). */
  text = "";
  /** Characters of `text` already handed out. */
  private emitted = 0;
  private readonly decoder;

  constructor(tokenizer: Tokenizer, private readonly stops: string[]) {
    this.decoder = tokenizer.decoder({ stripLeadingSpace: false, lossy: true });
  }

  /** Adds a token: the new text that is safe to show, and whether a stop string ended it. */
  push(id: number): { piece: string; stopped: boolean } {
    this.text += this.decoder.push(id);
    const hit = this.stops.map((s) =>
      this.text.indexOf(s, Math.max(0, this.emitted - s.length))
    ).filter((i) => i >= 0);
    if (hit.length) {
      this.text = this.text.slice(0, Math.min(...hit));
      const piece = this.text.slice(this.emitted);
      this.emitted = this.text.length;
      return { piece, stopped: true };
    }
    let safe = this.text.length;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.text.length); k > 0; k--) {
        if (this.text.endsWith(s.slice(0, k))) {
          safe = Math.min(safe, this.text.length - k);
          break;
        }
      }
    }
    const piece = this.text.slice(this.emitted, Math.max(this.emitted, safe));
    this.emitted = Math.max(this.emitted, safe);
    return { piece, stopped: false };
  }

  /** The rest: bytes the decoder held and a tail held back for stop strings. */
  flush(): string {
    this.text += this.decoder.flush();
    const piece = this.text.slice(this.emitted);
    this.emitted = this.text.length;
    return piece;
  }
}

/**
 * An async iterator fed by the batcher: pieces are buffered until the
 * consumer takes them; `return()` (a `break` out of `for await`) cancels
 * the request.
 */
class Channel<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private closed = false;
  private err: { e: unknown } | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly onReturn: () => void) {}

  push(x: T): void {
    this.items.push(x);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  error(e: unknown): void {
    this.err = { e };
    this.closed = true;
    this.wake?.();
  }

  async next(): Promise<IteratorResult<T>> {
    while (!this.items.length && !this.closed) {
      await new Promise<void>((res) => (this.wake = res));
      this.wake = null;
    }
    if (this.items.length) return { value: this.items.shift()!, done: false };
    if (this.err) {
      const { e } = this.err;
      this.err = null;
      throw e;
    }
    return { value: undefined, done: true };
  }

  return(): Promise<IteratorResult<T>> {
    if (!this.closed) this.onReturn();
    this.items.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
