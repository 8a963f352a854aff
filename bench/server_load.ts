/**
 * Load test of the OpenAI-compatible server, on loopback only: N streaming
 * chat requests (default 64) against the embedded model, first one at a
 * time, then all at once; every concurrent request must end with the text
 * it got alone (greedy) and none may be lost. Prints a Markdown table
 * (requests/s, generated tokens/s, p50/p99 time to first token, wall time)
 * and writes JSON and Markdown.
 *
 *     deno run -A bench/server_load.ts [--requests 64] [--max-tokens 32]
 *       [--max-batch 64] [--timeout 900] [--json FILE] [--md FILE]
 *
 * The server runs in this process (`createServer` on `Deno.serve`,
 * 127.0.0.1, a free port); requests are plain `fetch` with the
 * server-sent-event stream parsed as it arrives. `--timeout` bounds the
 * whole run: past it every open request is aborted and the run fails.
 */
import { parseArgs } from "node:util";
import { loadModel } from "../src/api/model.ts";
import { createServer } from "../src/api/server.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "64" },
    "max-tokens": { type: "string", default: "32" },
    "max-batch": { type: "string", default: "64" },
    timeout: { type: "string", default: "900" },
    json: { type: "string" },
    md: { type: "string" },
  },
});
const N = Number(args.values.requests);
const MAX_TOKENS = Number(args.values["max-tokens"]);
const BATCH = Number(args.values["max-batch"]);
const TIMEOUT_S = Number(args.values.timeout);
for (
  const [k, v, lo, hi] of [
    ["requests", N, 1, 1024],
    ["max-tokens", MAX_TOKENS, 1, 400],
    ["max-batch", BATCH, 1, 256],
    ["timeout", TIMEOUT_S, 1, 86400],
  ] as const
) {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    console.error(`--${k} must be an integer from ${lo} to ${hi}`);
    Deno.exit(2);
  }
}
if (!(await navigator.gpu?.requestAdapter())) {
  console.error("skipped: no WebGPU adapter");
  Deno.exit(0);
}

const SUBJECTS = [
  "Emma",
  "Mr. Knightley",
  "Harriet",
  "Mr. Darcy",
  "Elizabeth",
  "Jane",
  "Mr. Bingley",
  "Lydia",
  "Marianne",
  "Elinor",
  "Colonel Brandon",
  "Willoughby",
  "Anne",
  "Captain Wentworth",
  "Catherine",
  "Henry Tilney",
];
const ASKS = [
  "Who is",
  "Tell me about",
  "What do you think of",
  "Describe",
];
const questions = Array.from(
  { length: N },
  (_, i) =>
    `${ASKS[Math.floor(i / SUBJECTS.length) % ASKS.length]} ${
      SUBJECTS[i % SUBJECTS.length]
    }${i >= SUBJECTS.length * ASKS.length ? ` (${i})` : ""}?`,
);

const model = await loadModel(undefined, {
  maxBatch: BATCH,
  contextLength: 256,
});
const ac = new AbortController();
const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  signal: ac.signal,
  onListen: () => {},
}, createServer(model, { chatTemplate: "plain", maxQueue: N }));
const base = `http://127.0.0.1:${server.addr.port}`;
const deadline = AbortSignal.timeout(TIMEOUT_S * 1000);

interface Outcome {
  text: string;
  tokens: number;
  ttftMs: number;
  totalMs: number;
}

/** One streaming chat request: its text, usage and timings. */
async function ask(q: string): Promise<Outcome> {
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      messages: [{ role: "user", content: q }],
      max_tokens: MAX_TOKENS,
      temperature: 0,
      stream: true,
    }),
    signal: deadline,
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let text = "", tokens = -1, ttft = -1, buf = "", done = false;
  for await (const s of r.body!.pipeThrough(new TextDecoderStream())) {
    buf += s;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i).replace(/^data: /, "");
      buf = buf.slice(i + 2);
      if (ev === "[DONE]") {
        done = true;
        continue;
      }
      const c = JSON.parse(ev);
      if (c.error) throw new Error(c.error.message);
      const piece = c.choices?.[0]?.delta?.content;
      if (piece) {
        if (ttft < 0) ttft = performance.now() - t0;
        text += piece;
      }
      if (c.usage) tokens = c.usage.completion_tokens;
    }
  }
  if (!done || tokens < 0) throw new Error("the stream ended early");
  const total = performance.now() - t0;
  return { text, tokens, ttftMs: ttft < 0 ? total : ttft, totalMs: total };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

interface Row {
  mode: string;
  requests: number;
  completed: number;
  wall_s: number;
  requests_per_s: number;
  tokens_per_s: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  same_text_as_alone: number;
}

function row(mode: string, outs: Outcome[], wallMs: number, same: number): Row {
  const tokens = outs.reduce((a, o) => a + o.tokens, 0);
  const ttft = outs.map((o) => o.ttftMs);
  return {
    mode,
    requests: N,
    completed: outs.length,
    wall_s: wallMs / 1000,
    requests_per_s: outs.length / (wallMs / 1000),
    tokens_per_s: tokens / (wallMs / 1000),
    ttft_p50_ms: pct(ttft, 50),
    ttft_p99_ms: pct(ttft, 99),
    same_text_as_alone: same,
  };
}

const bar = (label: string, done: number) => {
  if (!Deno.stderr.isTerminal()) return;
  const w = 30, f = Math.round((done / N) * w);
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      `\r${label} [${"#".repeat(f)}${" ".repeat(w - f)}] ${done}/${N}`,
    ),
  );
};

let exit = 0;
try {
  // Warm-up: pipelines compiled, the first step's costs paid.
  await ask("Hello");
  // One at a time.
  const alone: Outcome[] = [];
  let t0 = performance.now();
  for (const q of questions) {
    alone.push(await ask(q));
    bar("one at a time", alone.length);
  }
  const aloneMs = performance.now() - t0;
  if (Deno.stderr.isTerminal()) console.error();
  // All at once.
  let finished = 0;
  t0 = performance.now();
  const settled = await Promise.allSettled(questions.map(async (q) => {
    const o = await ask(q);
    bar("all at once", ++finished);
    return o;
  }));
  const allMs = performance.now() - t0;
  if (Deno.stderr.isTerminal()) console.error();
  const ok = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  const lost = settled.length - ok.length;
  const same = settled.filter((s, i) =>
    s.status === "fulfilled" && s.value.text === alone[i].text
  ).length;
  const rows = [
    row("one at a time", alone, aloneMs, N),
    row(`all at once (${BATCH} slots)`, ok, allMs, same),
  ];
  const md = [
    `Server load test: ${N} streaming chat requests, ${MAX_TOKENS} tokens max each, greedy, embedded model, ${
      model.engine.gpu.adapterInfo.description || "WebGPU"
    }`,
    "",
    "| mode | completed | wall s | requests/s | tokens/s | TTFT p50 ms | TTFT p99 ms | same text as alone |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map((r) =>
      `| ${r.mode} | ${r.completed}/${r.requests} | ${r.wall_s.toFixed(1)} | ${
        r.requests_per_s.toFixed(2)
      } | ${r.tokens_per_s.toFixed(1)} | ${r.ttft_p50_ms.toFixed(0)} | ${
        r.ttft_p99_ms.toFixed(0)
      } | ${r.same_text_as_alone}/${r.requests} |`
    ),
    "",
    `Concurrent / one at a time: ${
      (rows[1].tokens_per_s / rows[0].tokens_per_s).toFixed(2)
    }x tokens/s.`,
  ].join("\n");
  console.log(md);
  if (args.values.md) {
    await Deno.writeTextFile(args.values.md, md + "\n");
  }
  if (args.values.json) {
    await Deno.writeTextFile(
      args.values.json,
      JSON.stringify(
        {
          requests: N,
          max_tokens: MAX_TOKENS,
          max_batch: BATCH,
          adapter: model.engine.gpu.adapterInfo.description,
          rows,
          lost,
        },
        null,
        1,
      ) + "\n",
    );
  }
  if (lost || same !== N) {
    console.error(
      `FAILED: ${lost} requests lost, ${N - same} differ from their solo run`,
    );
    for (const [i, s] of settled.entries()) {
      if (s.status === "rejected") {
        console.error(`  ${i}: ${s.reason}`);
      }
    }
    exit = 1;
  }
} finally {
  ac.abort();
  await server.finished;
  model.dispose();
}
Deno.exit(exit);
