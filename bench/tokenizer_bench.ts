/**
 * Tokenizer throughput on Northanger Abbey (~0.44 MB of prose) with the
 * Austen SentencePiece BPE vocabulary: `deno bench -A bench/tokenizer_bench.ts`.
 * MB/s = text bytes / time per iteration (printed once at startup too).
 * "cold" builds a fresh tokenizer each iteration (empty word cache; the
 * construction is not timed); "warm" reuses one.
 */
import { hasShared, sharedPath } from "../tests/_shared.ts";
import { GgufFile } from "../src/gguf.ts";
import { Tokenizer } from "../src/tokenizer.ts";

const GGUF = "models/austen-5m-q8_0.gguf";
const TEXT = "data/northanger-abbey.txt";

if (hasShared(GGUF) && hasShared(TEXT)) {
  const gguf = await GgufFile.open(sharedPath(GGUF));
  const fresh = () => Tokenizer.fromGguf(gguf);
  const tok = fresh();
  const text = await Deno.readTextFile(sharedPath(TEXT));
  const paragraphs = text.split("\n");
  const mb = new TextEncoder().encode(text).length / 1e6;
  const ids = tok.encode(text);

  // One quick MB/s figure per case, so the numbers read directly.
  const rate = (f: () => void, setup = () => {}) => {
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      setup();
      const t0 = performance.now();
      f();
      best = Math.min(best, performance.now() - t0);
    }
    return `${(mb / (best / 1000)).toFixed(1)} MB/s`;
  };
  let cold = tok;
  console.log(
    `tokenizer on ${mb.toFixed(2)} MB, ${ids.length} tokens: ` +
      `encode whole cold ${
        rate(() => cold.encode(text), () => cold = fresh())
      }, ` +
      `whole warm ${rate(() => tok.encode(text))}, ` +
      `paragraphs warm ${
        rate(() => paragraphs.forEach((p) => tok.encode(p)))
      }, ` +
      `decode ${rate(() => tok.decode(ids))}`,
  );

  Deno.bench({
    name: `encode whole text, cold (${mb.toFixed(2)} MB)`,
    group: "encode",
    baseline: true,
    fn(b) {
      const t = fresh();
      b.start();
      t.encode(text);
      b.end();
    },
  });
  Deno.bench({
    name: "encode whole text, warm",
    group: "encode",
    fn() {
      tok.encode(text);
    },
  });
  Deno.bench({
    name: `encode ${paragraphs.length} paragraphs, warm`,
    group: "encode",
    fn() {
      for (const p of paragraphs) tok.encode(p);
    },
  });
  Deno.bench({
    name: `decode ${ids.length} ids`,
    group: "decode",
    baseline: true,
    fn() {
      tok.decode(ids);
    },
  });
  Deno.bench({
    name: `stream-decode ${ids.length} ids`,
    group: "decode",
    fn() {
      const d = tok.decoder();
      for (const id of ids) d.push(id);
      d.flush();
    },
  });
}
