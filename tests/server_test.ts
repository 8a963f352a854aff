/**
 * The OpenAI-compatible server (`src/api/server.ts`) on a real socket:
 * the official `openai` npm client (chat and completions, streaming and
 * not, models) gets the text the model gives alone; concurrent streams are
 * batched and each equals its solo run; plain `fetch` checks the errors
 * (malformed JSON, wrong types, unknown model, prompt past the context,
 * unsupported options, auth, 404/405, a full queue's 429 with Retry-After)
 * and that a client that disconnects frees its slot.
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
// deno-lint-ignore no-import-prefix
import OpenAI from "npm:openai@7.59.0";
import { loadModel, type Model } from "../src/api/model.ts";
import { createServer, defaultModelId } from "../src/api/server.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";

const ignore = !HAS_GPU;
const KEY = "test-key";

async function withServer(
  load: Parameters<typeof loadModel>[1],
  opts: Parameters<typeof createServer>[1],
  fn: (base: string, m: Model) => Promise<void>,
) {
  const m = await loadModel(undefined, { gpu: (await testGpu())!, ...load });
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: () => {},
  }, createServer(m, opts));
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, m);
  } finally {
    ac.abort();
    await server.finished;
    m.dispose();
  }
}

async function alone(m: Model, content: string, maxTokens: number) {
  const g = await m.chat([{ role: "user", content }], {
    template: "plain",
    maxTokens,
  });
  for await (const _ of g) { /* drain */ }
  return (await g.result).text;
}

async function waitIdle(m: Model) {
  for (let i = 0; i < 200 && m.batcher.busy; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assertEquals(m.batcher.busy, false, "the request left");
}

Deno.test({
  name:
    "the openai client: chat and completions, streaming and not, models; concurrent streams equal their solo runs",
  ignore,
  async fn() {
    await withServer(
      { maxBatch: 4, contextLength: 256 },
      { chatTemplate: "plain", apiKey: KEY },
      async (base, m) => {
        const id = defaultModelId(m.file.name);
        assertEquals(id, "austen-5m-q8_0");
        const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY });
        const models = await client.models.list();
        assertEquals(models.data.map((x) => x.id), [id]);

        const ref = await alone(m, "Who is Mr. Darcy?", 16);
        const c = await client.chat.completions.create({
          model: id,
          messages: [{ role: "user", content: "Who is Mr. Darcy?" }],
          max_tokens: 16,
          temperature: 0,
        });
        assertEquals(c.choices[0].message.content, ref);
        assertEquals(c.choices[0].message.role, "assistant");
        assert(["stop", "length"].includes(c.choices[0].finish_reason));
        assertEquals(
          c.usage!.total_tokens,
          c.usage!.prompt_tokens + c.usage!.completion_tokens,
        );
        assert(c.usage!.completion_tokens > 0);

        const s = await client.chat.completions.create({
          model: id,
          messages: [{ role: "user", content: "Who is Mr. Darcy?" }],
          max_tokens: 16,
          temperature: 0,
          stream: true,
        });
        let text = "", finish = null, usage = null;
        for await (const ch of s) {
          text += ch.choices[0]?.delta?.content ?? "";
          finish = ch.choices[0]?.finish_reason ?? finish;
          usage = ch.usage ?? usage;
        }
        assertEquals(text, ref);
        assertEquals(finish, c.choices[0].finish_reason);
        assertEquals(usage, c.usage);

        const p = await client.completions.create({
          model: id,
          prompt: "It is a truth universally acknowledged",
          max_tokens: 10,
          temperature: 0,
        });
        const g = m.generate("It is a truth universally acknowledged", {
          maxTokens: 10,
        });
        for await (const _ of g) { /* drain */ }
        assertEquals(p.choices[0].text, (await g.result).text);
        const ps = await client.completions.create({
          model: id,
          prompt: "It is a truth universally acknowledged",
          max_tokens: 10,
          temperature: 0,
          stream: true,
        });
        let ptext = "";
        for await (const ch of ps) ptext += ch.choices[0]?.text ?? "";
        assertEquals(ptext, p.choices[0].text);

        // Six concurrent streams on four slots: each equals its solo run.
        const qs = [
          "Emma",
          "Mr. Knightley",
          "Bath",
          "Marianne",
          "a ball",
          "Lydia",
        ];
        const solo = [];
        for (const q of qs) solo.push(await alone(m, q, 12));
        let peak = 0;
        const poll = setInterval(
          () => (peak = Math.max(peak, m.batcher.load.running)),
          5,
        );
        const got = await Promise.all(qs.map(async (q) => {
          const st = await client.chat.completions.create({
            model: id,
            messages: [{ role: "user", content: q }],
            max_tokens: 12,
            temperature: 0,
            stream: true,
          });
          let t = "";
          for await (const ch of st) t += ch.choices[0]?.delta?.content ?? "";
          return t;
        }));
        clearInterval(poll);
        assertEquals(got, solo);
        assert(peak > 1, `requests were batched (peak ${peak} running)`);

        // A wrong key is the client's AuthenticationError.
        const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: "nope" });
        await assertRejects(
          () => bad.models.list(),
          OpenAI.AuthenticationError,
        );
      },
    );
  },
});

Deno.test({
  name:
    "errors by fetch: malformed JSON, wrong types, unknown model, prompt past the context, unsupported options, 404/405, full queue 429; a disconnected client frees its slot",
  ignore,
  async fn() {
    await withServer(
      { maxBatch: 1, contextLength: 64 },
      { chatTemplate: "plain", maxQueue: 1 },
      async (base, m) => {
        const post = (path: string, body: string) =>
          fetch(`${base}${path}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body,
          });
        const expect = async (
          r: Response,
          status: number,
          has: string,
          param?: string,
        ) => {
          const b = await r.json();
          assertEquals(r.status, status, JSON.stringify(b));
          assert(b.error.message.includes(has), b.error.message);
          assert(typeof b.error.type === "string");
          if (param) assertEquals(b.error.param, param);
          return b;
        };
        await expect(
          await post("/v1/completions", "{bad"),
          400,
          "not valid JSON",
        );
        await expect(await post("/v1/completions", "[1]"), 400, "JSON object");
        await expect(
          await post("/v1/completions", '{"prompt":"x","max_tokens":"5"}'),
          400,
          "max_tokens must be an integer",
          "max_tokens",
        );
        await expect(
          await post("/v1/completions", '{"prompt":"x","temperature":-1}'),
          400,
          "temperature",
          "temperature",
        );
        await expect(
          await post("/v1/chat/completions", '{"messages":"hi"}'),
          400,
          "messages must be a non-empty array",
          "messages",
        );
        await expect(
          await post(
            "/v1/chat/completions",
            '{"messages":[{"role":"user","content":5}]}',
          ),
          400,
          "content must be",
        );
        const nm = await expect(
          await post("/v1/completions", '{"model":"gpt-4","prompt":"x"}'),
          404,
          "not loaded",
          "model",
        );
        assertEquals(nm.error.code, "model_not_found");
        const long = "Emma ".repeat(100);
        const ctx = await expect(
          await post("/v1/completions", JSON.stringify({ prompt: long })),
          400,
          "context holds 64",
        );
        assertEquals(ctx.error.code, "context_length_exceeded");
        await expect(
          await post("/v1/completions", '{"prompt":"x","n":2}'),
          400,
          "n must be",
          "n",
        );
        await expect(
          await post("/v1/completions", '{"prompt":"x","logprobs":true}'),
          400,
          "logprobs",
        );
        for (
          const [field, value] of [
            ["response_format", { type: "json_object" }],
            ["tools", [{ type: "function", function: { name: "f" } }]],
            ["tool_choice", "auto"],
            ["logit_bias", { "5": 10 }],
            ["top_logprobs", 2],
            ["echo", true],
            ["best_of", 2],
            ["suffix", "end"],
            ["presence_penalty", 0.5],
          ] as const
        ) {
          await expect(
            await post(
              "/v1/completions",
              JSON.stringify({ prompt: "x", [field]: value }),
            ),
            400,
            "not supported",
            field,
          );
        }
        // What is harmless passes: text format, no tools, zero penalties.
        const harmless = await post(
          "/v1/completions",
          JSON.stringify({
            prompt: "x",
            max_tokens: 1,
            response_format: { type: "text" },
            tools: [],
            presence_penalty: 0,
            user: "someone",
          }),
        );
        assertEquals(harmless.status, 200);
        await harmless.body?.cancel();
        // A body past the limit is refused without reading it all, with or
        // without Content-Length.
        const big = new Uint8Array(2 << 20).fill(32);
        await expect(
          await post("/v1/completions", new TextDecoder().decode(big)),
          413,
          "limit",
        );
        const chunked = new ReadableStream<Uint8Array>({
          start(c) {
            for (let i = 0; i < 4; i++) c.enqueue(big.subarray(0, 1 << 20));
            c.close();
          },
        });
        await expect(
          await fetch(`${base}/v1/completions`, {
            method: "POST",
            body: chunked,
          }),
          413,
          "limit",
        );
        await expect(
          await post("/v1/completions", '{"prompt":"x","kv_policy":"nope"}'),
          400,
          "unknown KV policy",
        );
        await expect(
          await post("/v1/completions", '{"prompt":"x","sparsity":0.5}'),
          400,
          "add kv_policy",
          "sparsity",
        );
        await expect(await fetch(`${base}/v2/nothing`), 404, "Unknown path");
        const r405 = await fetch(`${base}/v1/completions`);
        await expect(r405, 405, "takes POST");
        // The alisa extensions run: SWA at sparsity 0.5.
        const ok = await post(
          "/v1/completions",
          '{"prompt":"Emma","max_tokens":3,"kv_policy":"swa","sparsity":0.5}',
        );
        assertEquals(ok.status, 200);
        assertEquals((await ok.json()).usage.completion_tokens, 3);

        // Decode steps counted on the engine, to see requests stop early.
        let steps = 0;
        const argmax = m.engine.stepArgmax.bind(m.engine);
        const logits = m.engine.stepLogits.bind(m.engine);
        m.engine.stepArgmax = (...a) => (steps++, argmax(...a));
        m.engine.stepLogits = (...a) => (steps++, logits(...a));

        // One slot, a queue of one: the third request is 429.
        const ac1 = new AbortController(), ac2 = new AbortController();
        const body = JSON.stringify({
          prompt: "It is",
          max_tokens: 60,
          stream: true,
        });
        const r1 = await fetch(`${base}/v1/completions`, {
          method: "POST",
          body,
          signal: ac1.signal,
        });
        const reader = r1.body!.getReader();
        await reader.read(); // it is running
        const p2 = fetch(`${base}/v1/completions`, {
          method: "POST",
          body,
          signal: ac2.signal,
        }).catch(() => null);
        for (let i = 0; i < 100 && m.batcher.load.waiting < 1; i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        assertEquals(m.batcher.load.waiting, 1);
        const r3 = await post("/v1/completions", body);
        const b3 = await expect(r3, 429, "busy");
        assertEquals(b3.error.code, "queue_full");
        assertEquals(r3.headers.get("retry-after"), "1");
        // Both clients go away: their requests leave (the streaming one
        // long before its 60 tokens; the queued one never runs).
        await reader.cancel();
        ac2.abort();
        await p2;
        await waitIdle(m);
        assert(steps < 40, `the streams stopped early (${steps} steps)`);
        assertEquals(m.batcher.load, { running: 0, waiting: 0, slots: 1 });
        // A non-streaming client that goes away: the same.
        steps = 0;
        const ac4 = new AbortController();
        const p4 = fetch(`${base}/v1/completions`, {
          method: "POST",
          body: JSON.stringify({ prompt: "It is", max_tokens: 60 }),
          signal: ac4.signal,
        }).catch(() => null);
        for (let i = 0; i < 500 && steps < 5; i++) {
          await new Promise((r) => setTimeout(r, 5));
        }
        ac4.abort();
        await p4;
        await waitIdle(m);
        assert(steps < 40, `it stopped early (${steps} steps)`);
        const h = await (await fetch(`${base}/health`)).json();
        assertEquals(h.status, "ok");
      },
    );
  },
});

Deno.test({
  name:
    "--max-queue 0 refuses only when every slot is taken; a model without a chat template is a server error, not the client's",
  ignore,
  async fn() {
    await withServer(
      { maxBatch: 2, contextLength: 64 },
      { maxQueue: 0 },
      async (base, m) => {
        const post = (path: string, body: unknown, signal?: AbortSignal) =>
          fetch(`${base}${path}`, {
            method: "POST",
            body: JSON.stringify(body),
            signal,
          });
        const chat = await post("/v1/chat/completions", {
          messages: [{ role: "user", content: "hi" }],
        });
        assertEquals(chat.status, 500);
        const b = await chat.json();
        assertEquals(b.error.type, "server_error");
        assert(b.error.message.includes("--chat-template"), b.error.message);
        // Idle: accepted.
        const one = await post("/v1/completions", {
          prompt: "Emma",
          max_tokens: 2,
        });
        assertEquals(one.status, 200);
        await one.json();
        // Two streams take both slots: the next is 429.
        const ac = new AbortController();
        const streams = await Promise.all(
          [0, 1].map(() =>
            post("/v1/completions", {
              prompt: "It is",
              max_tokens: 50,
              stream: true,
            }, ac.signal)
          ),
        );
        for (let i = 0; i < 200 && m.batcher.load.running < 2; i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        const third = await post("/v1/completions", { prompt: "x" });
        assertEquals(third.status, 429);
        await third.body?.cancel();
        for (const s of streams) await s.body?.cancel();
        ac.abort();
        await waitIdle(m);
      },
    );
  },
});
