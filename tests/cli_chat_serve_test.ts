/**
 * `alisa chat` and `alisa serve` as subprocesses: chat keeps the
 * conversation, answers /stats and /reset, and Ctrl-C (SIGINT) stops a reply
 * without ending the session; serve listens, answers a completion, and stops
 * on SIGINT; bad options are refused before the model loads.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { expectBadInputs } from "./_cli.ts";
import { HAS_GPU } from "./_gpu.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const ignore = !HAS_GPU;

/** Starts the CLI with piped stdin/stdout/stderr. */
function spawn(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Reads `stream` into `into.text` as it arrives. */
function collect(stream: ReadableStream<Uint8Array>, into: { text: string }) {
  return (async () => {
    for await (const s of stream.pipeThrough(new TextDecoderStream())) {
      into.text += s;
    }
  })();
}

/**
 * `alisa chat` (plain template, greedy, context 512) replying at most
 * `maxTokens`: its output as it arrives, a way to type a line, and how many
 * "> " prompts it has shown.
 */
function chatSession(maxTokens: number) {
  const proc = spawn([
    "chat",
    "--chat-template",
    "plain",
    "--temperature",
    "0",
    "--max-tokens",
    String(maxTokens),
    "--context",
    "512",
  ]);
  const out = { text: "" }, err = { text: "" };
  const done = Promise.all([
    collect(proc.stdout, out),
    collect(proc.stderr, err),
  ]);
  const w = proc.stdin.getWriter();
  const enc = new TextEncoder();
  return {
    proc,
    out,
    err,
    done,
    w,
    say: (s: string) => w.write(enc.encode(s + "\n")),
    prompts: () => out.text.split("> ").length - 1,
  };
}

async function until(f: () => boolean, ms = 60_000) {
  const t0 = Date.now();
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name:
    "chat: a conversation, /stats, /reset, Ctrl-C stops a reply and the session goes on, /quit",
  ignore,
  async fn() {
    const { proc: p, out, err, done, w, say, prompts } = chatSession(6);
    await until(() => prompts() >= 1);
    await say("Who is Emma?");
    await until(() => prompts() >= 2);
    await say("/stats");
    await until(() => prompts() >= 3);
    assertStringIncludes(out.text, "last reply: 6 tokens");
    assertStringIncludes(out.text, "KV store:");
    await say("/reset");
    await until(() => prompts() >= 4);
    assertStringIncludes(out.text, "(conversation cleared)");
    await say("/nope");
    await until(() => prompts() >= 5);
    assertStringIncludes(out.text, "unknown command /nope");
    await w.close();
    assertEquals((await p.status).code, 0);
    await done;
    assertStringIncludes(err.text, "alisa chat:");

    // Ctrl-C during a long reply stops it; the next message is answered.
    const {
      proc: q,
      out: out2,
      done: done2,
      w: w2,
      say: say2,
      prompts: count,
    } = chatSession(400);
    await until(() => count() >= 1);
    await say2("Tell me about the ball.");
    await until(() => out2.text.length > 40); // it is replying
    q.kill("SIGINT");
    await until(() => out2.text.includes("(stopped)"));
    await until(() => count() >= 2);
    await say2("/stats");
    await until(() => count() >= 3);
    assertStringIncludes(out2.text, "(cancelled)");
    await say2("/quit");
    assertEquals((await q.status).code, 0);
    await w2.close().catch(() => {});
    await done2;
  },
});

Deno.test({
  name: "serve: listens, answers, stops on SIGINT; bad options exit 2",
  ignore,
  async fn() {
    await expectBadInputs(["serve"], [
      { args: ["--port", "70000"], message: "--port" },
      { args: ["--max-batch", "0"], message: "--max-batch" },
      {
        args: ["--chat-template", "/nonexistent.jinja"],
        message: "--chat-template",
      },
      { args: ["--kv-int8", "on"], message: "--kv-int8 applies" },
    ], 20_000);
    const p = spawn(["serve", "--port", "0", "--chat-template", "plain"]);
    const out = { text: "" }, err = { text: "" };
    const done = Promise.all([collect(p.stdout, out), collect(p.stderr, err)]);
    await until(() => /http:\/\/127\.0\.0\.1:(\d+)/.test(err.text));
    const port = /http:\/\/127\.0\.0\.1:(\d+)/.exec(err.text)![1];
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({
        messages: [{ role: "user", content: "Hello" }],
        max_tokens: 4,
      }),
    });
    const b = await r.json();
    assertEquals(r.status, 200, JSON.stringify(b));
    assertEquals(b.usage.completion_tokens <= 4, true);
    assert(typeof b.choices[0].message.content === "string");
    p.kill("SIGINT");
    assertEquals((await p.status).code, 0);
    await p.stdin.close();
    await done;
  },
});
