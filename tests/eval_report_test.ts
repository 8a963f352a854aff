/**
 * Evaluation plumbing without a GPU: token windows (natural text and
 * documents, with the Austen tokenizer on the shared texts), the Markdown
 * tables, the SVG plot, the JSON, and `alisa eval`'s argument errors.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { GgufFile } from "../src/formats/gguf.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import {
  docWindows,
  minFinalWindow,
  splitDocuments,
  textWindows,
  type WindowTokenizer,
} from "../src/eval/windows.ts";
import {
  agreementTable,
  denseBaseline,
  formatChange,
  markdownTable,
  niceTicks,
  type PolicyResult,
  pplTable,
  resultsJson,
  svgPlot,
} from "../src/eval/report.ts";
import {
  evalCommand,
  parseEvalArgs,
  parseSparsities,
} from "../src/cli/eval.ts";
import { hasShared, sharedPath } from "./_shared.ts";

const MODEL = "models/austen-5m-q8_0.gguf";
const ABBEY = "data/northanger-abbey.txt";
const RECALL = "data/northanger-recall.txt";

/** One token per character (code + 10), BOS 1. */
const charTok: WindowTokenizer = {
  bos: 1,
  encode: (text, o) => [
    ...(o?.addSpecial ?? true ? [1] : []),
    ...[...text].map((c) => c.codePointAt(0)! + 10),
  ],
};
const ids = (s: string) => [...s].map((c) => c.codePointAt(0)! + 10);

async function austenTokenizer(): Promise<Tokenizer> {
  const g = await GgufFile.open(sharedPath(MODEL));
  try {
    return Tokenizer.fromGguf(g);
  } finally {
    g.close();
  }
}

// ------------------------------------------------------------------ windows

Deno.test("textWindows: consecutive windows from BOS, short tail dropped", () => {
  const t = "abcdefghij";
  assertEquals(textWindows(charTok, t, 4), [
    [1, ...ids("abc")],
    [1, ...ids("def")],
    [1, ...ids("ghi")],
    [1, ...ids("j")], // 2 >= minFinalWindow(4) = 2
  ]);
  assertEquals(textWindows(charTok, t, 8), [[1, ...ids("abcdefg")], [
    1,
    ...ids("hij"),
  ]]);
  assertEquals(textWindows(charTok, t, 20), [[1, ...ids(t)]]); // 11 >= 5
  assertEquals(minFinalWindow(16), 4);
  // 17 chars, window 16: [BOS + 15], then [BOS + 2] = 3 < 4: dropped
  const t17 = "abcdefghijklmnopq";
  assertEquals(textWindows(charTok, t17, 16), [[1, ...ids("abcdefghijklmno")]]);
  // 18 chars: the tail [BOS + 3] = 4 is kept
  assertEquals(textWindows(charTok, t17 + "r", 16).length, 2);
  assertEquals(textWindows(charTok, t, 4, { maxWindows: 2 }).length, 2);
  assertThrows(() => textWindows(charTok, "abc", 40), RangeError, "too few");
  assertThrows(
    () => textWindows(charTok, t, 1),
    RangeError,
    "window must be an integer >= 2",
  );
  assertThrows(() => textWindows(charTok, t, 2.5), RangeError, ">= 2");
  assertThrows(
    () => textWindows(charTok, t, 2048, { contextLength: 1024 }),
    RangeError,
    "longer than the model's context (1024",
  );
  assertThrows(() => textWindows(charTok, "  \n ", 4), RangeError, "empty");
  assertThrows(
    () => textWindows(charTok, t, 4, { maxWindows: 0 }),
    RangeError,
    "maxWindows",
  );
  assertThrows(
    () => textWindows({ ...charTok, bos: null }, t, 4),
    TypeError,
    "BOS",
  );
});

Deno.test("docWindows: blank-line separated documents, each from BOS, cut", () => {
  const text = "ab\ncd\n\nefg\n\n\n\nhi\n  \t\nj\n\n";
  assertEquals(splitDocuments(text), ["ab\ncd", "efg", "hi", "j"]);
  assertEquals(splitDocuments("a\r\n\r\nb"), ["a", "b"]);
  assertEquals(docWindows(charTok, text, 4), [
    [1, ...ids("ab\n")], // cut to 4
    [1, ...ids("efg")],
    [1, ...ids("hi")],
    [1, ...ids("j")],
  ]);
  assertEquals(docWindows(charTok, text, 4, { maxWindows: 3 }).length, 3);
  assertThrows(() => docWindows(charTok, "\n\n\n", 4), RangeError, "empty");
  assertThrows(() => docWindows(charTok, text, 1), RangeError, ">= 2");
  assertThrows(
    () => docWindows(charTok, text, 9, { contextLength: 8 }),
    RangeError,
    "context",
  );
});

Deno.test("textWindows on Northanger Abbey with the Austen tokenizer", async () => {
  if (!hasShared(MODEL) || !hasShared(ABBEY)) return;
  const tok = await austenTokenizer();
  const text = await Deno.readTextFile(sharedPath(ABBEY));
  const all = tok.encode(text, { addSpecial: false });
  const w = textWindows(tok, text, 1024, { contextLength: 1024 });
  assertEquals(tok.bos, 1);
  const full = Math.floor(all.length / 1023);
  const tail = all.length - full * 1023;
  assertEquals(w.length, full + (tail + 1 >= 256 ? 1 : 0));
  for (let i = 0; i < w.length; i++) {
    assertEquals(w[i][0], tok.bos);
    if (i < full) assertEquals(w[i].length, 1024);
    // BOS appears only at the start (the text has none)
    assert(!w[i].slice(1).includes(tok.bos!));
  }
  // the windows cover the encoding of the whole text, in order, once
  assertEquals(
    w.flatMap((x) => x.slice(1)),
    all.slice(0, w.flatMap((x) => x.slice(1)).length),
  );
  assertEquals(textWindows(tok, text, 1024, { maxWindows: 3 }).length, 3);
  assertThrows(
    () => textWindows(tok, text, 2048, { contextLength: 1024 }),
    RangeError,
    "context",
  );
});

Deno.test("docWindows on the recall documents with the Austen tokenizer", async () => {
  if (!hasShared(MODEL) || !hasShared(RECALL)) return;
  const tok = await austenTokenizer();
  const text = await Deno.readTextFile(sharedPath(RECALL));
  const docs = splitDocuments(text);
  assertEquals(docs.length, text.trim().split(/\n\s*\n/).length);
  assert(docs.length >= 10, `${docs.length} documents`);
  const w = docWindows(tok, text, 1024, { contextLength: 1024 });
  assertEquals(w.length, docs.length);
  let cut = 0;
  w.forEach((x, i) => {
    assertEquals(x[0], tok.bos);
    const body = tok.encode(docs[i], { addSpecial: false });
    assertEquals(x.slice(1), body.slice(0, 1023));
    if (body.length > 1023) cut++;
    // "about 900 tokens" each (ALISA.md section 6)
    assert(body.length > 500, `document ${i}: ${body.length} tokens`);
  });
  console.log(`${w.length} documents, ${cut} cut to the 1024-token window`);
  // a shorter window cuts every document
  assert(docWindows(tok, text, 256).every((x) => x.length === 256));
});

// ----------------------------------------------------------------- report

const R = (
  policy: string,
  sparsity: number,
  ppl: number,
  top1_agree: number,
  tokens = 100,
): PolicyResult => ({
  policy,
  sparsity,
  ppl,
  top1_agree,
  tokens,
});

const RESULTS: PolicyResult[] = [
  R("dense", 0, 10, 1),
  R("dense", 0.5, 10, 1),
  R("swa", 0, 10, 1),
  R("swa", 0.5, 10.5, 0.97),
  R("local", 0, 10, 1),
  R("local", 0.5, 25, 0.5),
  R("h2o", 0.5, 9.99, 0.9912),
];

Deno.test("markdown tables: ppl (+x.x%) vs dense, agreement, policy order", () => {
  assertEquals(denseBaseline(RESULTS), 10);
  assertEquals(
    pplTable(RESULTS),
    [
      "| policy \\ sparsity | 0 | 0.5 |",
      "| --- | ---: | ---: |",
      "| dense | 10.000 (+0.0%) | 10.000 (+0.0%) |",
      "| local | 10.000 (+0.0%) | 25.000 (+150.0%) |",
      "| h2o | - | 9.990 (-0.1%) |",
      "| swa | 10.000 (+0.0%) | 10.500 (+5.0%) |",
    ].join("\n"),
  );
  assertEquals(
    agreementTable(RESULTS),
    [
      "| policy \\ sparsity | 0 | 0.5 |",
      "| --- | ---: | ---: |",
      "| dense | 100.0% | 100.0% |",
      "| local | 100.0% | 50.0% |",
      "| h2o | - | 99.1% |",
      "| swa | 100.0% | 97.0% |",
    ].join("\n"),
  );
  const md = markdownTable(RESULTS, { title: "t" });
  assertStringIncludes(md, "## t");
  assertStringIncludes(md, "### Perplexity (change over dense, 10.000)");
  assertStringIncludes(md, "### Top-1 agreement with dense");
  assertStringIncludes(md, "Tokens scored per cell: 100.");
  // dense reported once (sparsity-independent): shown in every column
  assertStringIncludes(
    pplTable([R("dense", 0, 8, 1), R("swa", 0.9, 9, 0.9)]),
    "| dense | 8.000 (+0.0%) | 8.000 (+0.0%) |",
  );
  // no dense: plain perplexities
  assertStringIncludes(
    markdownTable([R("swa", 0.5, 9, 0.9)]),
    "| swa | 9.000 |",
  );
  assertEquals(formatChange(10, 10), "+0.0%");
  assertEquals(formatChange(9.999, 10), "+0.0%"); // -0.01% rounds to 0.0
  assertEquals(formatChange(Infinity, 10), "+inf%");
  assertStringIncludes(
    pplTable([R("dense", 0, 10, 1), R("local", 0.9, Infinity, 0.1)]),
    "inf (+inf%)",
  );
});

Deno.test("resultsJson: {results: [{policy, sparsity, ppl, top1_agree, tokens}]}", () => {
  const j = JSON.parse(
    resultsJson([...RESULTS, R("local", 0.9, Infinity, 0.1)]),
  );
  assertEquals(Object.keys(j), ["results"]);
  assertEquals(j.results.length, RESULTS.length + 1);
  assertEquals(j.results[3], {
    policy: "swa",
    sparsity: 0.5,
    ppl: 10.5,
    top1_agree: 0.97,
    tokens: 100,
  });
  assertEquals(j.results[RESULTS.length].ppl, null); // non-finite -> null
  for (const r of j.results) {
    assertEquals(Object.keys(r), [
      "policy",
      "sparsity",
      "ppl",
      "top1_agree",
      "tokens",
    ]);
  }
  // extra fields of the input are not copied
  const extra = JSON.parse(
    resultsJson([{ ...R("swa", 0, 1, 1), extra: 1 } as PolicyResult]),
  );
  assertEquals(Object.keys(extra.results[0]).length, 5);
});

/** Minimal XML well-formedness check; returns every element (name, attributes). */
function parseXml(
  xml: string,
): { name: string; attrs: Record<string, string> }[] {
  const els: { name: string; attrs: Record<string, string> }[] = [];
  const stack: string[] = [];
  let i = 0, roots = 0;
  const checkText = (t: string, where: string) => {
    assert(!t.includes("<"), `stray < in ${where}`);
    const amp = t.match(/&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/);
    assert(!amp, `bare & in ${where}: ${t.slice(0, 40)}`);
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = lt < 0 ? xml.slice(i) : xml.slice(i, lt);
    checkText(text, "text");
    if (stack.length === 0) {
      assertEquals(text.trim(), "", "text outside the root");
    }
    if (lt < 0) break;
    if (xml.startsWith("<!--", lt)) {
      i = xml.indexOf("-->", lt) + 3;
      assert(i > 2, "unclosed comment");
      continue;
    }
    const gt = xml.indexOf(">", lt);
    assert(gt > 0, "unclosed tag");
    const tag = xml.slice(lt + 1, gt);
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      assertEquals(stack.pop(), name, `mismatched </${name}>`);
    } else {
      const m = tag.match(
        /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*\s*=\s*"[^"]*")*)\s*(\/?)$/,
      );
      assert(m, `malformed tag <${tag}>`);
      const attrs: Record<string, string> = {};
      for (const a of m[2].matchAll(/([A-Za-z_][\w:.-]*)\s*=\s*"([^"]*)"/g)) {
        assert(!(a[1] in attrs), `duplicate attribute ${a[1]} in <${m[1]}>`);
        checkText(a[2], `attribute ${a[1]}`);
        attrs[a[1]] = a[2];
      }
      els.push({ name: m[1], attrs });
      if (stack.length === 0) roots++;
      if (!m[3]) stack.push(m[1]);
    }
    i = gt + 1;
  }
  assertEquals(stack, [], "unclosed elements");
  assertEquals(roots, 1, "one root element");
  return els;
}

Deno.test("svgPlot: well-formed, one polyline per policy, axes, legend", () => {
  const svg = svgPlot(RESULTS, { title: `Austen <window> & "docs"` });
  const els = parseXml(svg);
  assertEquals(els[0].name, "svg");
  assertEquals(els[0].attrs.xmlns, "http://www.w3.org/2000/svg");
  const lines = els.filter((e) => e.name === "polyline");
  assertEquals(lines.map((e) => e.attrs["data-policy"]), [
    "dense",
    "local",
    "h2o",
    "swa",
  ]);
  for (const l of lines) {
    for (const pt of l.attrs.points.split(" ")) {
      assertMatch(pt, /^-?[\d.]+,-?[\d.]+$/);
    }
  }
  // swa: two points; dense (two sparsities) two points
  assertEquals(lines[3].attrs.points.split(" ").length, 2);
  assertStringIncludes(svg, "Austen &lt;window&gt; &amp; &quot;docs&quot;");
  assertStringIncludes(svg, "KV sparsity (1 - caching ratio)");
  assertStringIncludes(svg, ">perplexity<");
  // legend: one label per policy
  const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) =>
    m[1]
  );
  for (const p of ["dense", "local", "h2o", "swa"]) {
    assert(texts.includes(p), `legend ${p}`);
  }
  // x ticks 0 .. 0.5
  for (const t of ["0", "0.1", "0.5"]) assert(texts.includes(t), `x tick ${t}`);
  // local's 25 > 2 x dense: clipped with cap 2 (a triangle at the top)
  const capped = svgPlot(RESULTS, { cap: 2 });
  parseXml(capped);
  assertEquals([...capped.matchAll(/<polygon /g)].length, 1);
  assertStringIncludes(capped, "above 2&#215; dense");
  assertEquals([...svg.matchAll(/<polygon /g)].length, 0); // 25 < 3 x 10
  // an exploding policy (and an infinite one) stays on the plot
  const boom = svgPlot([
    ...RESULTS,
    R("sinks", 0.5, 1e6, 0),
    R("strided", 0.5, Infinity, 0),
  ]);
  parseXml(boom);
  assertEquals([...boom.matchAll(/<polygon /g)].length, 2);
  for (const m of boom.matchAll(/ (?:cx|cy|x1|y1|x2|y2|x|y)="([^"]+)"/g)) {
    assert(Number.isFinite(Number(m[1])), `coordinate ${m[0]}`);
  }
  const maxTick = Math.max(
    ...[...boom.matchAll(/text-anchor="end">([\d.]+)</g)].map((m) =>
      Number(m[1])
    ),
  );
  assert(maxTick <= 30, `y axis capped near 3 x dense, top tick ${maxTick}`);
  // log scale
  const log = svgPlot([...RESULTS, R("sinks", 0.5, 1e3, 0)], {
    logY: true,
    cap: Infinity,
  });
  parseXml(log);
  assertStringIncludes(log, "perplexity (log scale)");
  assertStringIncludes(log, ">1000<");
  // dense evaluated once: a dashed horizontal line across the plot
  const once = svgPlot([
    R("dense", 0, 10, 1),
    R("swa", 0.5, 11, 0.9),
    R("swa", 0.9, 12, 0.8),
  ]);
  const d = parseXml(once).find((e) =>
    e.name === "polyline" && e.attrs["data-policy"] === "dense"
  )!;
  const ys = d.attrs.points.split(" ").map((p) => p.split(",")[1]);
  assertEquals(ys.length, 2);
  assertEquals(ys[0], ys[1]);
  assert(d.attrs["stroke-dasharray"]);
  assertEquals(niceTicks(0, 0.9, 10), [
    0,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
  ]);
  assertEquals(niceTicks(9.5, 26, 6), [10, 15, 20, 25]);
  assertEquals(niceTicks(0, 0.9, 8), [0, 0.2, 0.4, 0.6, 0.8]);
});

// -------------------------------------------------------------- alisa eval

async function run(
  args: string[],
): Promise<{ code: number; err: string; out: string }> {
  const err: string[] = [], out: string[] = [];
  const e = console.error, l = console.log;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  try {
    const code = await evalCommand(args);
    return { code, err: err.join("\n"), out: out.join("\n") };
  } finally {
    console.error = e;
    console.log = l;
  }
}

Deno.test("parseEvalArgs: defaults and checks", () => {
  const a = parseEvalArgs(["m.gguf", "--text", "t.txt"]);
  assert(a !== "help");
  assertEquals(a.model, "m.gguf");
  assertEquals(a.window, 1024);
  assertEquals(a.policies, [
    "dense",
    "local",
    "strided",
    "sinks",
    "h2o",
    "swa",
  ]);
  assertEquals(a.sparsities, [0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
  assertEquals([a.batch, a.minBudget, a.docs, a.json, a.maxWindows, a.svg], [
    1,
    0,
    false,
    false,
    undefined,
    undefined,
  ]);
  const b = parseEvalArgs([
    "m",
    "--text=t",
    "--docs",
    "--window",
    "512",
    "--policies",
    "swa, dense,swa",
    "--sparsity",
    "0.5,0,0.5",
    "--max-windows",
    "3",
    "--batch",
    "8",
    "--min-budget",
    "16",
    "--json",
    "--svg",
    "p.svg",
  ]);
  assert(b !== "help");
  assertEquals(b.policies, ["swa", "dense"]);
  assertEquals(b.sparsities, [0.5, 0]);
  assertEquals([
    b.docs,
    b.window,
    b.maxWindows,
    b.batch,
    b.minBudget,
    b.json,
    b.svg,
  ], [
    true,
    512,
    3,
    8,
    16,
    true,
    "p.svg",
  ]);
  assertEquals(parseEvalArgs(["--help"]), "help");
  assertThrows(
    () => parseEvalArgs(["m", "--text", "t", "--policies", "swa,bogus"]),
    TypeError,
    "known: dense, local, strided, sinks, h2o, swa",
  );
  assertThrows(
    () => parseEvalArgs(["m", "--text", "t", "--sparsity", "0,1"]),
    RangeError,
    "sparsity must be in [0, 1), got 1",
  );
  assertThrows(
    () => parseEvalArgs(["m", "--text", "t", "--sparsity=-0.1"]),
    RangeError,
    "[0, 1)",
  );
  assertThrows(
    () => parseSparsities("0.5,x"),
    RangeError,
    `"x" is not a number`,
  );
  assertThrows(
    () => parseEvalArgs(["m", "--text", "t", "--window", "1"]),
    RangeError,
    "--window must be an integer >= 2",
  );
  assertThrows(
    () => parseEvalArgs(["m", "--text", "t", "--window", "1e9.5"]),
    RangeError,
    `--window must be an integer >= 2 (at most the model's context), got "1e9.5"`,
  );
  assertThrows(
    () => parseEvalArgs(["m", "--text", "t", "--batch", "0"]),
    RangeError,
    "--batch",
  );
  assertThrows(
    () => parseEvalArgs(["m", "--text", "t", "--max-windows", "0"]),
    RangeError,
    "--max-windows",
  );
  assertThrows(
    () => parseEvalArgs(["m", "--text", "t", "--min-budget", "2000"]),
    RangeError,
    `--min-budget must be an integer from 0 to 1024 (--window), got "2000"`,
  );
  assertThrows(
    () => parseEvalArgs(["m"]),
    TypeError,
    "--text FILE is required",
  );
  assertThrows(
    () => parseEvalArgs(["m", "n", "--text", "t"]),
    TypeError,
    "one MODEL",
  );
  assertThrows(() => parseEvalArgs(["m", "--text", "t", "--bogus"]), TypeError);
});

Deno.test("alisa eval: argument errors exit 2 with a message, before any GPU work", async () => {
  let r = await run(["m.gguf", "--text", "t.txt", "--policies", "dense,nope"]);
  assertEquals(r.code, 2);
  assertStringIncludes(
    r.err,
    `error: unknown policy "nope" (known: dense, local, strided, sinks, h2o, swa)`,
  );
  r = await run(["m.gguf", "--text", "t.txt", "--sparsity", "0.5,1"]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.err, "sparsity must be in [0, 1), got 1");
  r = await run(["m.gguf", "--text", "t.txt", "--window", "1"]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.err, "--window must be an integer >= 2");
  r = await run(["m.gguf"]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.err, "--text FILE is required");
  r = await run(["m.gguf", "--text", "t", "--frobnicate"]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.err, "frobnicate");
  r = await run(["--help"]);
  assertEquals(r.code, 0);
  assertStringIncludes(r.out, "usage: alisa eval");
  // a missing text file: an error, not a usage problem
  await assertRejects(
    () => run(["m.gguf", "--text", "/nonexistent/alisa-eval.txt"]),
    Error,
    "Cannot read --text /nonexistent/alisa-eval.txt",
  );
});

Deno.test("alisa eval: a window longer than the model's context exits 2 (no GPU)", async () => {
  if (!hasShared(MODEL) || !hasShared(ABBEY)) return;
  const r = await run([
    sharedPath(MODEL),
    "--text",
    sharedPath(ABBEY),
    "--window",
    "2048",
  ]);
  assertEquals(r.code, 2);
  assertStringIncludes(
    r.err,
    "--window must be an integer from 2 to 1024 (the model's context), got 2048",
  );
  // a text too short for one window is an argument error as well
  const tmp = await Deno.makeTempFile({ suffix: ".txt" });
  try {
    await Deno.writeTextFile(tmp, "Hi.");
    const s = await run([sharedPath(MODEL), "--text", tmp, "--window", "1024"]);
    assertEquals(s.code, 2);
    assertStringIncludes(s.err, "too few for one window");
  } finally {
    await Deno.remove(tmp);
  }
});
