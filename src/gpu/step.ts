/**
 * The step table every op reads (`shaders/common.wgsl`): one step runs a
 * batch of tokens (prefill tokens of several sequences and/or one decode
 * token per sequence), each with its KV slot, position, id and the number
 * of cached positions it attends.
 *
 * @module
 */
import type { Gpu } from "./device.ts";

/** The buffers every dispatch of a model shares. */
export interface StepBuffers {
  /** Step header (4 u32) + (n_tokens,) TokInfo (4 u32 each). */
  step: GPUBuffer;
  /** (n_out,) row index of each output token. */
  outRows: GPUBuffer;
}

/** One step's token: its KV slot, position and id. */
export interface StepToken {
  slot: number;
  pos: number;
  id: number;
  /** Cached positions attended; default pos + 1 (dense causal). */
  kvLen?: number;
}

/** The step header's fields, as `common.wgsl`'s `Step` names them. */
export interface StepHeader {
  /** A decode step: the KV policy applies (else a dense prefill step). */
  decode: boolean;
  /** Scoring: the run row of output row 0 (`shaders/eval/nll.wgsl`). */
  outOffset?: number;
}

/** Bytes of a step table for `maxTokens` tokens. */
export function stepTableBytes(maxTokens: number): number {
  return 16 + maxTokens * 16;
}

/** The step table's words for `tokens`. */
export function stepTable(
  tokens: StepToken[],
  outRows: number,
  h: StepHeader,
): Uint32Array<ArrayBuffer> {
  const a = new Uint32Array(4 + tokens.length * 4);
  a[0] = tokens.length;
  a[1] = outRows;
  a[2] = h.decode ? 1 : 0;
  a[3] = h.outOffset ?? 0;
  tokens.forEach((t, i) =>
    a.set([t.slot, t.pos, t.id, t.kvLen ?? t.pos + 1], 4 + i * 4)
  );
  return a;
}

/** Writes the step table and output rows for a step. */
export function writeStep(
  gpu: Gpu,
  sb: StepBuffers,
  tokens: StepToken[],
  outRows: number[],
  h: StepHeader,
): void {
  gpu.device.queue.writeBuffer(
    sb.step,
    0,
    stepTable(tokens, outRows.length, h),
  );
  if (outRows.length) {
    gpu.device.queue.writeBuffer(sb.outRows, 0, new Uint32Array(outRows));
  }
}
