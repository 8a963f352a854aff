/**
 * The scoring op (`shaders/eval/nll.wgsl`): per output row, the negative
 * log likelihood of a target token and the argmax, written at the run row
 * `out_offset + r` so teacher-forced decoding reads nothing back until the
 * end.
 *
 * @module
 */
import {
  bind,
  type Dispatch,
  type OpContext,
  pipe,
  u32s,
} from "../gpu/dispatch.ts";

/** NLL of each output row's target and its argmax, at row offset step.out_offset. */
export function nllDispatch(
  c: OpContext,
  o: {
    logits: GPUBuffer;
    targets: GPUBuffer;
    nll: GPUBuffer;
    top: GPUBuffer;
    vocab: number;
  },
): Dispatch {
  const pipeline = pipe(c.gpu, "nll", undefined, { WG: 256 });
  return {
    label: "nll",
    pipeline,
    bindGroup: bind(c.gpu, "nll", pipeline, {
      0: c.set.uniform("nll", u32s(o.vocab)),
      1: c.sb.step,
      2: o.logits,
      3: o.targets,
      4: o.nll,
      5: o.top,
    }),
    grid: (_n, nOut) => [nOut, 1, 1],
  };
}
