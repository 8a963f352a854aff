/**
 * SentencePiece BPE tokenization: the shared Austen fixture (llama.cpp and
 * SentencePiece ids) from the GGUF and the Hugging Face copy, an independent
 * SentencePiece fixture of 300 varied strings
 * (`fixtures/tokenizer/make_spm_fixtures.py`), round trips over Northanger
 * Abbey, the streaming decoder, the CLI, and clear errors for bad input.
 */
import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { FIXTURES_DIR, hasShared, sharedPath } from "./_shared.ts";
import { GgufFile, type GgufValue } from "../src/formats/gguf.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { type SpmVocab, TokenType } from "../src/tokenizer/vocab.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import { main } from "../cli.ts";

const GGUF = "models/austen-5m-q8_0.gguf";
const HF = "models/austen-5m-hf";
const FIXTURE = "fixtures/tokenizer-austen.json";
const NORTHANGER = "data/northanger-abbey.txt";

interface Case {
  text: string;
  ids: number[];
  ids_sentencepiece?: number[];
  decoded?: string;
}

let cache: Promise<Tokenizer[]> | undefined;
/** The Austen tokenizer from the GGUF and from the HF directory. */
function austen(): Promise<Tokenizer[]> {
  cache ??= (async () => {
    const g = await GgufFile.open(sharedPath(GGUF));
    try {
      return [
        Tokenizer.fromGguf(g),
        await Tokenizer.fromHfDir(sharedPath(HF)),
      ];
    } finally {
      g.close();
    }
  })();
  return cache;
}

/** Decodes one id at a time; checks every piece is whole characters. */
function streamed(tok: Tokenizer, ids: number[]): string {
  const d = tok.decoder();
  const parts = ids.map((id) => d.push(id));
  parts.push(d.flush());
  for (const p of parts) {
    assert(!p.includes("\uFFFD"), `a replacement character in ${p}`);
    assert(p.isWellFormed(), `a lone surrogate in ${JSON.stringify(p)}`);
  }
  return parts.join("");
}

const haveAusten = hasShared(GGUF) && hasShared(HF);

Deno.test({
  name: "shared Austen fixture: GGUF and HF give llama.cpp's ids",
  ignore: !haveAusten || !hasShared(FIXTURE),
  async fn() {
    const cases: Case[] = JSON.parse(
      await Deno.readTextFile(sharedPath(FIXTURE)),
    );
    assertGreater(cases.length, 10);
    for (const tok of await austen()) {
      for (const c of cases) {
        const ids = tok.encode(c.text, { addSpecial: false });
        assertEquals(ids, c.ids, `${tok.name}: ${JSON.stringify(c.text)}`);
        assertEquals(ids, c.ids_sentencepiece);
        const withBos = tok.encode(c.text);
        assertEquals(withBos, [1, ...c.ids]);
        assertEquals(tok.decode(withBos), c.text);
        assertEquals(tok.decode(ids), c.text);
        assertEquals(streamed(tok, withBos), c.text);
      }
    }
  },
});

Deno.test({
  name: "GGUF and HF copies give the same vocabulary and settings",
  ignore: !haveAusten,
  async fn() {
    const [g, h] = await austen();
    for (const t of [g, h]) {
      assertEquals(
        [t.vocabSize, t.bos, t.eos, t.unk, t.addBos, t.addEos],
        [4096, 1, 2, 0, true, false],
      );
      assertEquals(t.addSpacePrefix, true);
      assertEquals(t.model, "llama");
    }
    const all = [...Array(4096).keys()];
    assertEquals(g.pieces(all), h.pieces(all));
    assertEquals(
      all.map((i) => g.tokenType(i)),
      all.map((i) => h.tokenType(i)),
    );
    assertEquals(g.pieces([0, 1, 2, 3, 258]), [
      "<unk>",
      "<s>",
      "</s>",
      "<0x00>",
      "<0xFF>",
    ]);
    assert(g.isControl(1) && g.isControl(2) && !g.isControl(300));
  },
});

Deno.test({
  name: "fromModelFile opens both formats",
  ignore: !haveAusten,
  async fn() {
    for (const rel of [GGUF, HF]) {
      const m = await openModelFile(sharedPath(rel));
      try {
        const t = await Tokenizer.fromModelFile(m);
        assertEquals(t.encode("It is a truth"), [1, 597, 366, 261, 1818]);
        assertEquals(t.vocabSize, m.tokenizer.vocabSize);
      } finally {
        m.close();
      }
    }
  },
});

const EXTRA = `${FIXTURES_DIR}/tokenizer/spm-austen-extra.json`;

Deno.test({
  name:
    "independent SentencePiece fixture: 300 varied strings, ids and decoded text",
  ignore: !haveAusten,
  async fn() {
    const cases: Case[] = JSON.parse(await Deno.readTextFile(EXTRA));
    assertEquals(cases.length, 300);
    let roundTrips = 0;
    for (const tok of await austen()) {
      for (const c of cases) {
        const label = `${tok.name}: ${JSON.stringify(c.text)}`;
        const ids = tok.encode(c.text, { addSpecial: false });
        assertEquals(ids, c.ids, label);
        // SentencePiece's own decode of the ids.
        assertEquals(tok.decode(ids), c.decoded, label);
        assertEquals(streamed(tok, [1, ...ids]), c.decoded, label);
        // A literal U+2581 in the text reads as a space: the only texts that
        // do not round-trip (in llama.cpp and SentencePiece alike).
        if (!c.text.includes("\u2581")) {
          assertEquals(tok.decode(tok.encode(c.text)), c.text, label);
          roundTrips++;
        }
      }
    }
    assertEquals(roundTrips, 2 * 296);
  },
});

Deno.test({
  name: "streaming splits no character: CJK, emoji, accents as byte pieces",
  ignore: !haveAusten,
  async fn() {
    const [tok] = await austen();
    const texts = [
      "日本語のテキスト",
      "emoji 🙂🚀👨‍👩‍👧 and 🇬🇧",
      "Dvořák, Łódź, İstanbul, ẞ",
      "naïve café — “quoted” …",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 𝟘𝟙𝟚",
      "mixed 日本 and English\nand Ελληνικά\ttoo",
    ];
    let byteTokens = 0, held = 0;
    for (const text of texts) {
      const ids = tok.encode(text);
      byteTokens += tok.pieces(ids).filter((p) => /^<0x..>$/.test(p)).length;
      const d = tok.decoder();
      const parts = ids.map((id) => d.push(id));
      held += parts.filter((p) => p === "").length;
      assertEquals(d.flush(), "");
      assertEquals(parts.join(""), text);
      assertEquals(streamed(tok, ids), tok.decode(ids));
    }
    assertGreater(byteTokens, 100);
    assertGreater(held, 50);
  },
});

Deno.test({
  name: "Northanger Abbey: every paragraph and the whole text round-trip",
  ignore: !haveAusten || !hasShared(NORTHANGER),
  async fn() {
    const text = await Deno.readTextFile(sharedPath(NORTHANGER));
    const paragraphs = text.split("\n").filter((p) => p !== "");
    assertGreater(paragraphs.length, 500);
    const [g, h] = await austen();
    let tokens = 0;
    for (const p of paragraphs) {
      const ids = g.encode(p);
      tokens += ids.length;
      assertEquals(g.decode(ids), p);
    }
    const all = g.encode(text);
    assertEquals(h.encode(text), all);
    assertEquals(g.decode(all), text);
    assertEquals(streamed(g, all), text);
    // Paragraphs encode as the whole text does, less BOS and the newlines.
    assertGreater(tokens, 90_000);
    assert(Math.abs(all.length - tokens) < paragraphs.length * 2);
  },
});

// --- Synthetic vocabularies: no shared files needed ---

const BYTES = [...Array(256).keys()].map((b) =>
  `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`
);

/** unk, bos, eos, the 256 byte pieces, then `extra` (score: minus index). */
function toyVocab(
  extra: [string, number][],
  over: Partial<SpmVocab> = {},
): SpmVocab {
  const pieces = ["<unk>", "<s>", "</s>", ...BYTES, ...extra.map((e) => e[0])];
  const types = [
    TokenType.UNKNOWN,
    TokenType.CONTROL,
    TokenType.CONTROL,
    ...BYTES.map(() => TokenType.BYTE),
    ...extra.map((e) => e[1]),
  ];
  return {
    pieces,
    scores: pieces.map((_, i) => (i < 259 ? 0 : -i)),
    types,
    unk: 0,
    bos: 1,
    eos: 2,
    addBos: true,
    addEos: false,
    addSpacePrefix: true,
    ...over,
  };
}

const N = TokenType.NORMAL;
const LETTERS: [string, number][] = [
  ["▁", N],
  ...[..."abcdefghijklmnopqrstuvwxyz"].map((c): [string, number] => [c, N]),
];

/** GGUF-style metadata for the toy vocabulary. */
function toyMetadata(): Map<string, GgufValue> {
  const v = toyVocab(LETTERS);
  return new Map<string, GgufValue>([
    ["tokenizer.ggml.model", "llama"],
    ["tokenizer.ggml.tokens", v.pieces],
    ["tokenizer.ggml.scores", Float32Array.from(v.scores)],
    ["tokenizer.ggml.token_type", Int32Array.from(v.types)],
    ["tokenizer.ggml.bos_token_id", 1],
    ["tokenizer.ggml.eos_token_id", 2],
  ]);
}

Deno.test("toy vocabulary: merges, byte fallback, specials", () => {
  const t = Tokenizer.fromVocab(
    toyVocab([...LETTERS, ["ab", N], ["▁ab", N], ["<tag>", 4]]),
  );
  const ids = t.encode("ab abé<tag>x");
  assertEquals(t.pieces(ids), [
    "<s>",
    "▁ab",
    "▁ab",
    "<0xC3>",
    "<0xA9>",
    "<tag>",
    "▁",
    "x",
  ]);
  // llama.cpp puts a dummy prefix after a special piece: one more space.
  assertEquals(t.decode(ids), "ab abé<tag> x");
  // Control pieces written in the text are text unless parseSpecial.
  assertEquals(
    t.pieces(t.encode("<s>", { addSpecial: false })),
    ["▁", "<0x3C>", "s", "<0x3E>"],
  );
  // After a special piece, llama.cpp adds the dummy prefix again.
  assertEquals(t.encode("<s>a", { addSpecial: false, parseSpecial: true }), [
    1,
    ...t.encode("a", { addSpecial: false }),
  ]);
  assertEquals(t.encode(""), [1]);
  assertEquals(t.encode("", { addSpecial: false }), []);
  // EOS when the model says so; control ids decode to nothing.
  const e = Tokenizer.fromVocab(toyVocab(LETTERS, { addEos: true }));
  const ab = e.encode("ab");
  assertEquals([ab[0], ab.at(-1)], [1, 2]);
  assertEquals(e.decode(ab), "ab");
  // Without byte pieces, unknown characters become <unk>.
  const noBytes = Tokenizer.fromVocab({
    ...toyVocab(LETTERS),
    pieces: ["<unk>", "<s>", "</s>", "▁", "a"],
    scores: [0, 0, 0, -1, -2],
    types: [2, 3, 3, 1, 1],
  });
  assertEquals(noBytes.encode("aé a", { addSpecial: false }), [3, 4, 0, 3, 4]);
  // Continuations keep their first space.
  assertEquals(t.decode(t.encode("x y", { addSpecial: false })), "x y");
  assertEquals(
    t.decode(t.encode(" y", { addSpecial: false }).slice(1), {
      stripLeadingSpace: false,
    }),
    " y",
  );
});

Deno.test("decode errors: ids out of range, invalid UTF-8", () => {
  const t = Tokenizer.fromVocab(toyVocab(LETTERS));
  const n = t.vocabSize;
  assertThrows(
    () => t.decode([1, n]),
    RangeError,
    `token id ${n} at position 1`,
  );
  assertThrows(() => t.decode([-1]), RangeError, "out of range");
  assertThrows(() => t.decode([1.5]), RangeError, "out of range");
  assertThrows(() => t.pieces([n + 5]), RangeError, "out of range");
  assertThrows(() => t.decoder().push(n), RangeError, "out of range");
  const byte = (b: number) => 3 + b;
  // A lone continuation byte; a lead byte followed by a letter.
  assertThrows(() => t.decode([byte(0x80)]), TypeError, "not valid UTF-8");
  assertThrows(
    () => t.decode([byte(0xE6), 260]),
    TypeError,
    "not valid UTF-8 at token 1",
  );
  // Ending inside a character.
  assertThrows(
    () => t.decode([byte(0xE6), byte(0x97)]),
    TypeError,
    "end inside a UTF-8 character",
  );
  const d = t.decoder();
  assertEquals(d.push(byte(0xE6)), "");
  assertThrows(() => d.flush(), TypeError, "end inside a UTF-8 character");
  // Lossy: U+FFFD like TextDecoder, streamed or not.
  const bad = [byte(0xE6), byte(0x97), 260, byte(0xFF), byte(0xF0)];
  const want = new TextDecoder().decode(
    new Uint8Array([0xE6, 0x97, 0x61, 0xFF, 0xF0]),
  );
  assertEquals(t.decode(bad, { lossy: true }), want);
  const l = t.decoder({ lossy: true });
  assertEquals(bad.map((id) => l.push(id)).join("") + l.flush(), want);
  assertThrows(
    () => t.encode(42 as unknown as string),
    TypeError,
    "expects a string",
  );
});

Deno.test("bad GGUF metadata gives clear errors", () => {
  const ok = Tokenizer.fromGguf({ metadata: toyMetadata() });
  assertEquals(ok.vocabSize, 259 + LETTERS.length);
  const bad = (
    edit: (m: Map<string, GgufValue>) => void,
    cls: typeof TypeError | typeof RangeError,
    msg: string,
  ) => {
    const m = toyMetadata();
    edit(m);
    const e = assertThrows(
      () => Tokenizer.fromGguf({ metadata: m, source: { name: "x.gguf" } }),
      cls,
      msg,
    );
    assertMatch(e.message, /^Cannot load tokenizer of x\.gguf: /);
  };
  bad((m) => m.delete("tokenizer.ggml.model"), TypeError, "has no tokenizer");
  bad(
    (m) => m.set("tokenizer.ggml.model", "gpt2"),
    TypeError,
    "tokenizer.ggml.merges is absent",
  );
  bad((m) => m.set("tokenizer.ggml.model", "bert"), TypeError, '"bert"');
  bad(
    (m) => m.delete("tokenizer.ggml.tokens"),
    TypeError,
    "tokenizer.ggml.tokens is absent",
  );
  bad(
    (m) => m.set("tokenizer.ggml.tokens", [1, 2]),
    TypeError,
    "array of strings",
  );
  bad(
    (m) => m.delete("tokenizer.ggml.scores"),
    TypeError,
    "tokenizer.ggml.scores is absent",
  );
  bad(
    (m) => m.set("tokenizer.ggml.scores", new Float32Array(10)),
    RangeError,
    "tokenizer.ggml.scores has 10 entries but tokenizer.ggml.tokens has 286",
  );
  bad(
    (m) => m.set("tokenizer.ggml.token_type", new Int32Array(3)),
    RangeError,
    "tokenizer.ggml.token_type has 3 entries",
  );
  bad(
    (m) => m.set("tokenizer.ggml.bos_token_id", 5000),
    RangeError,
    "tokenizer.ggml.bos_token_id 5000 is out of range (the vocabulary has 286 tokens)",
  );
  bad(
    (m) => m.set("tokenizer.ggml.eos_token_id", 2n ** 40n),
    RangeError,
    "tokenizer.ggml.eos_token_id",
  );
  bad(
    (m) => m.set("tokenizer.ggml.add_bos_token", "yes"),
    TypeError,
    "must be a boolean",
  );
  bad(
    (m) => (m.get("tokenizer.ggml.token_type") as Int32Array)[300 - 20] = 9,
    TypeError,
    "has unknown type 9",
  );
  bad(
    (m) => (m.get("tokenizer.ggml.tokens") as string[])[3] = "<0xZZ>",
    TypeError,
    "byte token 3",
  );
  bad(
    (m) => (m.get("tokenizer.ggml.scores") as Float32Array)[5] = NaN,
    TypeError,
    "NaN score",
  );
  // No BOS id at all while the model adds BOS.
  const small = toyMetadata();
  small.set("tokenizer.ggml.bos_token_id", -1);
  assertThrows(
    () => Tokenizer.fromGguf({ metadata: small }),
    TypeError,
    "adds BOS but has no BOS id",
  );
});

Deno.test("bad Hugging Face directories give clear errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(
      () => Tokenizer.fromHfDir(dir),
      TypeError,
      "has no tokenizer.model",
    );
    await Deno.writeTextFile(`${dir}/tokenizer.json`, "{}");
    await assertRejects(
      () => Tokenizer.fromHfDir(dir),
      TypeError,
      "tokenizer.json has no model",
    );
    await Deno.writeFile(`${dir}/tokenizer.model`, new Uint8Array([0x0f]));
    await assertRejects(
      () => Tokenizer.fromHfDir(dir),
      TypeError,
      "tokenizer.model",
    );
    if (hasShared(HF)) {
      await Deno.copyFile(
        sharedPath(`${HF}/tokenizer.model`),
        `${dir}/tokenizer.model`,
      );
      await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "{ nope");
      await assertRejects(
        () => Tokenizer.fromHfDir(dir),
        TypeError,
        "not valid JSON",
      );
      const cfg = (c: unknown) =>
        Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(c));
      await cfg({ bos_token: "<nope>" });
      await assertRejects(
        () => Tokenizer.fromHfDir(dir),
        TypeError,
        '"<nope>" is not in the vocabulary',
      );
      await cfg({ add_bos_token: false, add_eos_token: true });
      const t = await Tokenizer.fromHfDir(dir);
      assertEquals(t.encode("It is"), [597, 366, 2]);
      // Added tokens past the end of tokenizer.model.
      await cfg({
        added_tokens_decoder: {
          "4096": { content: "<pad>", special: true },
          "4097": { content: "<|user|>", special: false },
        },
      });
      const a = await Tokenizer.fromHfDir(dir);
      assertEquals(a.vocabSize, 4098);
      const ids = a.encode("<pad><|user|>It", { addSpecial: false });
      // User-defined pieces match literally; control ones only with parseSpecial.
      assert(ids.includes(4097) && !ids.includes(4096));
      assertEquals(a.decode(ids), "<pad><|user|> It");
      assertEquals(
        a.encode("<pad>", { addSpecial: false, parseSpecial: true }),
        [4096],
      );
      await cfg({ added_tokens_decoder: { "5000": { content: "<x>" } } });
      await assertRejects(
        () => Tokenizer.fromHfDir(dir),
        RangeError,
        "leaves a gap",
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs `cli.ts` in-process, capturing console output. */
async function cli(...args: string[]) {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await main(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test({
  name: "cli tokenize: pieces and ids, --json, --bos, --ids",
  ignore: !haveAusten,
  async fn() {
    for (const model of [sharedPath(GGUF), sharedPath(HF)]) {
      let r = await cli("tokenize", model, "It is a truth", "--json");
      assertEquals(r.code, 0, r.stderr);
      assertEquals(JSON.parse(r.stdout), {
        ids: [597, 366, 261, 1818],
        pieces: ["▁It", "▁is", "▁a", "▁truth"],
      });
      r = await cli("tokenize", model, "It", "--json", "--bos");
      assertEquals(JSON.parse(r.stdout).ids, [1, 597]);
      r = await cli("tokenize", model, "It is");
      assertEquals(r.stdout, '597  "▁It"\n366  "▁is"\n2 tokens');
      r = await cli("tokenize", model, "--ids", "1,597,366,261,1818");
      assertEquals(r.stdout, "It is a truth");
      r = await cli("tokenize", model, "--ids", "597, 366", "--json");
      assertEquals(JSON.parse(r.stdout), {
        ids: [597, 366],
        pieces: ["▁It", "▁is"],
        text: "It is",
      });
    }
    let r = await cli("tokenize", sharedPath(GGUF), "--ids", "1,99999");
    assertEquals(r.code, 1);
    assertMatch(r.stderr, /token id 99999 at position 1 is out of range/);
    r = await cli("tokenize", sharedPath(GGUF), "--ids", "1,x");
    assertEquals(r.code, 1);
    assertMatch(r.stderr, /"x" is not a token id/);
    r = await cli("tokenize", sharedPath(GGUF));
    assertEquals(r.code, 2);
  },
});
