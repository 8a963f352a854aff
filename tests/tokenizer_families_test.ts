/**
 * The tokenizers of the model families people run, on small fixtures that
 * keep each family's exact pipeline (normalizer, pre-tokenizer, decoder,
 * post-processor, added tokens and their flags) with a small vocabulary
 * (`fixtures/tokenizer/families/`, made by `make.py` there, which also
 * checks that each fixture pre-tokenizes and normalizes the hostile texts
 * as the real tokenizer does):
 *
 * - Llama 3.2, Qwen2.5, Qwen3, SmolLM2 (byte-level BPE), from their
 *   `tokenizer.json` and from GGUF metadata as llama.cpp's converter writes
 *   it (`tokenizer.ggml.pre` `llama-bpe`, `qwen2`, `smollm`);
 * - Gemma 2, Gemma 3, Phi-3 (SentencePiece BPE with byte fallback), from
 *   `tokenizer.json` alone, from `tokenizer.model` (with
 *   `tokenizer_config.json`), and from GGUF metadata (`llama` model).
 *
 * For every hostile text (scripts, emoji, numbers, contractions, whitespace
 * runs, special tokens inside text, lone combining marks) the ids equal
 * Hugging Face `tokenizers`' with and without BOS, with special tokens
 * parsed and not; decoding and streaming decoding equal its decode; the
 * chat templates, rendered by the project, tokenize to what `transformers`'
 * `apply_chat_template(..., tokenize=True)` gives. Pipelines the project does
 * not implement are refused at load, naming the config key.
 */
import {
  assert,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { hasShared, sharedPath } from "./_shared.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { parseSentencePieceModel } from "../src/tokenizer/sentencepiece.ts";
import { TokenType } from "../src/tokenizer/vocab.ts";
import type { GgufValue } from "../src/formats/gguf.ts";
import { openModelFile } from "../src/formats/model_file.ts";
import { ChatTemplate } from "../src/api/chat_template.ts";
import { ggufOf, hfDirWith, tinyGguf } from "./_tokenizer_sources.ts";

const DIR = decodeURIComponent(
  new URL("./fixtures/tokenizer/families/", import.meta.url).pathname,
);
const HF_WEIGHTS = "models/austen-5m-hf";

/** What llama.cpp's converter writes as `tokenizer.ggml.pre` (byte-level BPE) or null (SentencePiece). */
const FAMILIES: Record<string, string | null> = {
  llama3: "llama-bpe",
  "qwen2.5": "qwen2",
  qwen3: "qwen2",
  smollm2: "smollm",
  gemma2: null,
  gemma3: null,
  phi3: null,
};

interface Case {
  text: string;
  ids: number[];
  ids_special: number[];
  ids_plain: number[];
  decoded: string;
  decoded_plain: string;
  spm_ids_plain?: number[];
}

interface Chat {
  template: string;
  conversation: number;
  rendered?: string;
  ids?: number[];
  error?: string;
}

interface Reference {
  templates: Record<string, string>;
  cases: Case[];
  chats: Chat[];
  specials: string[];
  extra: Record<string, unknown>;
  conversations: {
    messages: { role: string; content: string }[];
    add_generation_prompt: boolean;
  }[];
}

type Json = Record<string, unknown>;

function readJson(path: string): Json {
  return JSON.parse(Deno.readTextFileSync(path));
}

function reference(family: string): Reference {
  return readJson(`${DIR}${family}/reference.json`) as unknown as Reference;
}

/** A directory with only `files` of the family's fixture (symlinks); remove it after. */
async function dirWith(family: string, files: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "alisa-fam-" });
  for (const f of files) {
    await Deno.symlink(`${DIR}${family}/${f}`, `${dir}/${f}`);
  }
  return dir;
}

/**
 * GGUF `tokenizer.ggml.*` metadata of a SentencePiece fixture, as llama.cpp's
 * converter writes it from `tokenizer.model` and `tokenizer_config.json`.
 */
function spmGguf(family: string, name: string): Map<string, GgufValue> {
  const m = parseSentencePieceModel(
    Deno.readFileSync(`${DIR}${family}/tokenizer.model`),
  );
  const cfg = readJson(`${DIR}${family}/tokenizer_config.json`);
  const id = (k: string) => m.pieces.indexOf(cfg[k] as string);
  return new Map<string, GgufValue>([
    ["general.name", name],
    ["tokenizer.ggml.model", "llama"],
    ["tokenizer.ggml.pre", "default"],
    ["tokenizer.ggml.tokens", m.pieces],
    ["tokenizer.ggml.scores", m.scores],
    ["tokenizer.ggml.token_type", m.types],
    ["tokenizer.ggml.bos_token_id", id("bos_token")],
    ["tokenizer.ggml.eos_token_id", id("eos_token")],
    ["tokenizer.ggml.unknown_token_id", id("unk_token")],
    ["tokenizer.ggml.add_bos_token", cfg.add_bos_token as boolean],
    ["tokenizer.ggml.add_eos_token", cfg.add_eos_token as boolean],
    ["tokenizer.ggml.add_space_prefix", m.addDummyPrefix],
  ]);
}

/** GGUF metadata of a byte-level fixture, as llama.cpp's converter writes it. */
function bpeGguf(family: string, pre: string): Map<string, GgufValue> {
  const tj = readJson(`${DIR}${family}/tokenizer.json`);
  const cfg = readJson(`${DIR}${family}/tokenizer_config.json`);
  const vocab = (tj.model as Json).vocab as Record<string, number>;
  const added = tj.added_tokens as { id: number; content: string }[];
  const idOf = (k: string) => {
    const t = cfg[k];
    if (typeof t !== "string") return undefined;
    return added.find((a) => a.content === t)?.id ?? vocab[t];
  };
  return ggufOf(tj, pre, { bos: idOf("bos_token"), eos: idOf("eos_token") });
}

/** The tokenizer of a whole GGUF file (a tiny Llama) with the metadata `md`. */
async function viaGgufFile(md: Map<string, GgufValue>): Promise<Tokenizer> {
  const file = await openModelFile(tinyGguf(md), { skipTensorCheck: true });
  try {
    return await Tokenizer.fromModelFile(file);
  } finally {
    file.close();
  }
}

/** Every way the project loads the family's fixture, by name. */
async function sources(family: string): Promise<Map<string, Tokenizer>> {
  const out = new Map<string, Tokenizer>();
  const json = await dirWith(family, [
    "tokenizer.json",
    "tokenizer_config.json",
  ]);
  try {
    out.set("tokenizer.json", await Tokenizer.fromHfDir(json));
  } finally {
    await Deno.remove(json, { recursive: true });
  }
  const pre = FAMILIES[family];
  if (pre === null) {
    const spm = await dirWith(family, [
      "tokenizer.model",
      "tokenizer_config.json",
    ]);
    try {
      out.set("tokenizer.model", await Tokenizer.fromHfDir(spm));
    } finally {
      await Deno.remove(spm, { recursive: true });
    }
    out.set("GGUF", await viaGgufFile(spmGguf(family, family)));
  } else {
    out.set("GGUF", await viaGgufFile(bpeGguf(family, pre)));
  }
  return out;
}

/** Decodes one id at a time; no piece may split a character. */
function streamed(tok: Tokenizer, ids: number[]): string {
  const d = tok.decoder();
  const parts = ids.map((id) => d.push(id));
  parts.push(d.flush());
  for (const p of parts) {
    assert(p.isWellFormed(), `a lone surrogate in ${JSON.stringify(p)}`);
  }
  return parts.join("");
}

for (const family of Object.keys(FAMILIES)) {
  Deno.test(`${family}: every hostile text from every source equals Hugging Face tokenizers`, async () => {
    const ref = reference(family);
    assert(ref.cases.length >= 30);
    for (const [source, tok] of await sources(family)) {
      const at = (c: Case, what: string) =>
        `${family} ${source} ${what} of ${JSON.stringify(c.text)}`;
      for (const c of ref.cases) {
        assertEquals(
          tok.encode(c.text, { addSpecial: false, parseSpecial: true }),
          c.ids,
          at(c, "ids"),
        );
        assertEquals(
          tok.encode(c.text, { parseSpecial: true }),
          c.ids_special,
          at(c, "ids with BOS/EOS"),
        );
        // sentencepiece itself where it differs from tokenizers (none now).
        const plain = source === "tokenizer.json"
          ? c.ids_plain
          : c.spm_ids_plain ?? c.ids_plain;
        assertEquals(
          tok.encode(c.text, { addSpecial: false }),
          plain,
          at(c, "ids, specials not parsed"),
        );
        assertEquals(tok.decode(c.ids), c.decoded, at(c, "decode"));
        assertEquals(
          streamed(tok, c.ids),
          c.decoded,
          at(c, "streaming decode"),
        );
        assertEquals(
          tok.decode(c.ids_plain),
          c.decoded_plain,
          at(c, "decode (plain)"),
        );
        assertEquals(
          streamed(tok, c.ids_plain),
          c.decoded_plain,
          at(c, "streaming decode (plain)"),
        );
      }
    }
  });

  Deno.test(`${family}: chat template special tokens are single ids only when parsed`, async () => {
    const ref = reference(family);
    for (const [source, tok] of await sources(family)) {
      for (const s of ref.specials) {
        const ids = tok.encode(s, { addSpecial: false, parseSpecial: true });
        assertEquals(ids.length, 1, `${family} ${source}: ${s} is ${ids}`);
        const [id] = ids;
        assertEquals(tok.pieces([id]), [s]);
        const plain = tok.encode(`a ${s}b${s}`, { addSpecial: false });
        if (tok.isControl(id)) {
          assert(
            !plain.includes(id),
            `${family} ${source}: ${s} made from text`,
          );
          assertEquals(tok.decode([id]), "");
        } else {
          // Non-special added tokens (Qwen3's <think>, Phi-3's </s>) match always.
          assertEquals(tok.tokenType(id), TokenType.USER_DEFINED);
          assert(plain.includes(id));
        }
      }
    }
  });

  Deno.test({
    name:
      `${family}: the chat template renders and tokenizes as transformers' apply_chat_template`,
    ignore: !hasShared(HF_WEIGHTS),
    async fn() {
      const ref = reference(family);
      const own = Object.keys(ref.templates)[0];
      const dir = await hfDirWith(sharedPath(HF_WEIGHTS), {
        link: Object.fromEntries(
          ["tokenizer.json", "tokenizer_config.json"].map((
            f,
          ) => [f, `${DIR}${family}/${f}`]),
        ),
      });
      const file = await openModelFile(dir);
      try {
        const tok = await Tokenizer.fromModelFile(file);
        let n = 0;
        for (const c of ref.chats) {
          if (c.error !== undefined) continue;
          const conv = ref.conversations[c.conversation];
          const t = await ChatTemplate.forModel(
            file,
            tok,
            c.template === own ? undefined : ref.templates[c.template],
          );
          const text = t.render(
            conv.messages,
            conv.add_generation_prompt,
            ref.extra,
          );
          assertEquals(
            text,
            c.rendered,
            `${family} ${c.template} ${c.conversation}`,
          );
          assertEquals(
            tok.encode(text, { addSpecial: false, parseSpecial: true }),
            c.ids,
          );
          n++;
        }
        assert(n >= 2, `${family}: ${n} conversations`);
      } finally {
        file.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test("pipelines the project does not implement are refused, naming the key", async () => {
  const load = (family: string, edit: (tj: Json, cfg: Json) => void) => {
    const tj = readJson(`${DIR}${family}/tokenizer.json`);
    const cfg = readJson(`${DIR}${family}/tokenizer_config.json`);
    edit(tj, cfg);
    return () => Tokenizer.fromTokenizerJson(tj, cfg);
  };
  const refused = (
    family: string,
    edit: (tj: Json, cfg: Json) => void,
    key: string,
  ) => {
    // Unedited, it loads.
    load(family, () => {})();
    assertThrows(load(family, edit), TypeError, key);
  };
  const model = (tj: Json) => tj.model as Json;
  const addedAt = (tj: Json, content: string) => {
    const a = tj.added_tokens as Json[];
    const i = a.findIndex((x) => x.content === content);
    return [i, a[i]] as const;
  };
  // Normalizers.
  refused(
    "gemma3",
    (tj) => tj.normalizer = { type: "NFKC" },
    "tokenizer.json normalizer",
  );
  refused(
    "llama3",
    (tj) => tj.normalizer = { type: "Lowercase" },
    "tokenizer.json normalizer",
  );
  refused(
    "phi3",
    (tj) => ((tj.normalizer as Json).normalizers as Json[]).reverse(),
    "tokenizer.json normalizer",
  );
  // Pre-tokenizers: Metaspace's prepend_scheme "first" puts no ▁ after a special token.
  refused(
    "gemma2",
    (tj) =>
      tj.pre_tokenizer = {
        type: "Metaspace",
        replacement: "\u2581",
        prepend_scheme: "first",
        split: false,
      },
    "tokenizer.json pre_tokenizer",
  );
  refused(
    "qwen3",
    (tj) =>
      (((tj.pre_tokenizer as Json).pretokenizers as Json[])[0].pattern as Json)
        .Regex = "\\p{N}{1,2}",
    "pre_tokenizer.pretokenizers[0].pattern",
  );
  refused(
    "smollm2",
    (tj) =>
      ((tj.pre_tokenizer as Json).pretokenizers as Json[])[0]
        .individual_digits = false,
    "pre_tokenizer",
  );
  // Decoders: Strip exactly when the normalizer prepends.
  refused(
    "phi3",
    (tj) => ((tj.decoder as Json).decoders as Json[]).pop(),
    "tokenizer.json decoder",
  );
  refused(
    "gemma2",
    (tj) =>
      ((tj.decoder as Json).decoders as Json[]).push({
        type: "Strip",
        content: " ",
        start: 1,
        stop: 0,
      }),
    "tokenizer.json decoder",
  );
  refused(
    "llama3",
    (tj) => tj.decoder = { type: "Metaspace" },
    "tokenizer.json decoder",
  );
  // Post-processors.
  refused(
    "llama3",
    (tj) => tj.post_processor = { type: "RobertaProcessing" },
    "tokenizer.json post_processor",
  );
  refused("llama3", (tj) => {
    const t = ((tj.post_processor as Json).processors as Json[])[1];
    (t.single as unknown[]).push({ Sequence: { id: "A", type_id: 0 } });
  }, "tokenizer.json post_processor.processors[1].single");
  // The model and added tokens.
  refused(
    "gemma3",
    (tj) => model(tj).ignore_merges = true,
    "model.ignore_merges",
  );
  refused("qwen2.5", (tj) => model(tj).dropout = 0.1, "model.dropout");
  refused(
    "phi3",
    (tj) => {
      const [, a] = addedAt(tj, "<|user|>");
      a.single_word = true;
    },
    `added_tokens[${
      addedAt(readJson(`${DIR}phi3/tokenizer.json`), "<|user|>")[0]
    }].single_word`,
  );
  refused(
    "gemma2",
    (tj) => addedAt(tj, "<start_of_turn>")[1].normalized = true,
    "].normalized",
  );
  // tokenizer_config.json next to tokenizer.model.
  const dir = await dirWith("phi3", ["tokenizer.model"]);
  try {
    const cfg = readJson(`${DIR}phi3/tokenizer_config.json`);
    const decoder = cfg.added_tokens_decoder as Record<string, Json>;
    const id = Object.keys(decoder).find((k) =>
      decoder[k].content === "<|end|>"
    )!;
    decoder[id].single_word = true;
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify(cfg),
    );
    await assertRejects(
      () => Tokenizer.fromHfDir(dir),
      TypeError,
      `added_tokens_decoder[${id}].single_word`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // GGUF: "metaspace" is no llama.cpp pre-tokenizer.
  const md = bpeGguf("qwen3", "metaspace");
  assertThrows(
    () => Tokenizer.fromGguf({ metadata: md }),
    TypeError,
    'tokenizer.ggml.pre: unknown pre-tokenizer "metaspace"',
  );
  md.set("tokenizer.ggml.pre", "gemma4");
  assertThrows(
    () => Tokenizer.fromGguf({ metadata: md }),
    TypeError,
    'tokenizer.ggml.pre: unknown pre-tokenizer "gemma4"',
  );
});

Deno.test("Phi-3's rstrip: the whitespace after its chat tokens is dropped, from every source", async () => {
  for (const [source, tok] of await sources("phi3")) {
    const user =
      tok.encode("<|user|>", { addSpecial: false, parseSpecial: true })[0];
    assertEquals(
      tok.encode("<|user|> \n\t Hi", { addSpecial: false, parseSpecial: true }),
      tok.encode("<|user|>Hi", { addSpecial: false, parseSpecial: true }),
      source,
    );
    // <s> does not strip; text is not a special token unless parsed.
    assert(
      tok.encode("<s> Hi", { addSpecial: false, parseSpecial: true }).length >
        2,
      source,
    );
    assert(
      !tok.encode("<|user|> Hi", { addSpecial: false }).includes(user),
      source,
    );
  }
  // A GGUF named otherwise gets no rstrip, as in llama.cpp.
  const g = Tokenizer.fromGguf({ metadata: spmGguf("phi3", "Llama") });
  assertNotEquals(
    g.encode("<|user|> \n Hi", { addSpecial: false, parseSpecial: true }),
    g.encode("<|user|>Hi", { addSpecial: false, parseSpecial: true }),
  );
});
