/**
 * `alisa chat`: an interactive chat in the terminal, in the model's chat
 * format. The conversation is kept and sent whole each turn; `/reset`
 * clears it, `/stats` shows the last reply's speed and where its KV lived,
 * `/quit` (or end of input) leaves. Ctrl-C stops the current reply and keeps
 * the session; at the prompt it leaves.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { ChatMessage } from "../api/chat_template.ts";
import type { GenerationResult } from "../api/model.ts";
import { defaultModelPath } from "../api/default_model.ts";
import { intOption, isArgError, numberOption } from "./options.ts";
import { loadServingModel, MODEL_OPTIONS } from "./serve.ts";
import { formatKvStats } from "./kv_report.ts";
import type { KvStepStats } from "../kv/store.ts";
import { parsePolicies } from "../sparse/spec.ts";

/** Usage of `alisa chat`. */
export const CHAT_USAGE = `usage: alisa chat [MODEL] [options]

Chat with a model in its own chat format. Type a message and Enter;
/reset clears the conversation, /stats shows the last reply's speed and KV
tiers, /quit leaves. Ctrl-C stops a reply.

options:
  --system TEXT        a system message to start the conversation with
  --max-tokens N       most tokens per reply (default 512)
  --temperature T      >= 0; 0 = greedy (default 0.7)
  --top-p P            in (0, 1] (default 0.95)
  --seed S             seed for sampling
  --policy NAME        KV policy (dense, swa, ...); --sparsity S
  --context N          positions per sequence (default: the model's)
  --chat-template T    a Jinja file, or "plain" (for base models)
  --gpu-kv-budget SIZE GPU bytes for K/V; beyond it tokens spill to host
  --kv-int8 on|off, --recompute auto|on|off   (with --gpu-kv-budget)`;

/** `alisa chat ...`: reads messages from `input` (default stdin). */
export async function chatCommand(
  args: string[],
  input: ReadableStream<Uint8Array> = Deno.stdin.readable,
): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: {
        system: { type: "string" },
        "max-tokens": { type: "string" },
        temperature: { type: "string" },
        "top-p": { type: "string" },
        seed: { type: "string" },
        policy: { type: "string" },
        sparsity: { type: "string" },
        ...MODEL_OPTIONS,
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    }));
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n\n${CHAT_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(CHAT_USAGE);
    return 0;
  }
  if (positionals.length > 1) {
    console.error(CHAT_USAGE);
    return 2;
  }
  let opts, loaded;
  try {
    opts = {
      maxTokens: intOption(values["max-tokens"], "max-tokens", 1) ?? 512,
      temperature: numberOption(values.temperature, "temperature", {
        min: 0,
      }) ?? 0.7,
      topP: numberOption(values["top-p"], "top-p", {
        min: 0,
        minOpen: true,
        max: 1,
      }) ?? 0.95,
      seed: intOption(values.seed, "seed", 0, 2 ** 32 - 1),
      policy: values.policy === undefined ? undefined : {
        name: parsePolicies(values.policy)[0],
        sparsity: numberOption(values.sparsity, "sparsity", {
          min: 0,
          max: 1,
          maxOpen: true,
        }) ?? 0,
      },
    };
    loaded = await loadServingModel(
      positionals[0] ?? defaultModelPath(),
      values,
      1,
    );
  } catch (e) {
    if (!isArgError(e)) throw e;
    console.error(`error: ${e.message}\n(alisa chat --help for usage)`);
    return 2;
  }
  const { model, template } = loaded;
  const enc = new TextEncoder();
  const out = (s: string) => Deno.stdout.writeSync(enc.encode(s));
  const start: ChatMessage[] = values.system === undefined
    ? []
    : [{ role: "system", content: values.system }];
  let history: ChatMessage[] = [...start];
  let last: { r: GenerationResult; steps: KvStepStats[] } | null = null;
  let current: AbortController | null = null;
  let quit = false;
  let wake: (() => void) | null = null;
  const onInterrupt = () => {
    if (current) current.abort();
    else {
      quit = true;
      wake?.();
    }
  };
  try {
    Deno.addSignalListener("SIGINT", onInterrupt);
  } catch { /* no signals here */ }
  console.error(
    `alisa chat: ${model.file.name} (${model.engine.kv.ctx} positions). /reset, /stats, /quit; Ctrl-C stops a reply.`,
  );
  const lines = readLines(input);
  try {
    while (!quit) {
      out("> ");
      const next = await Promise.race([
        lines.next(),
        new Promise<IteratorResult<string>>((res) =>
          wake = () => res({ done: true, value: undefined })
        ),
      ]);
      wake = null;
      if (next.done || quit) break;
      const line = next.value.trim();
      if (!line) continue;
      if (line === "/quit" || line === "/exit") break;
      if (line === "/reset") {
        history = [...start];
        console.log("(conversation cleared)");
        continue;
      }
      if (line === "/stats") {
        if (!last) console.log("(no reply yet)");
        else {
          const { r } = last;
          console.log(
            `last reply: ${r.ids.length} tokens, prefill ${r.promptIds.length} tokens at ${
              r.prefillTokS.toFixed(1)
            } tok/s, decode ${
              r.decodeTokS.toFixed(1)
            } tok/s (${r.finishReason})`,
          );
          console.log(formatKvStats(r.kvStats, last.steps));
        }
        continue;
      }
      if (line.startsWith("/")) {
        console.log(`unknown command ${line}: /reset, /stats, /quit`);
        continue;
      }
      history.push({ role: "user", content: line });
      current = new AbortController();
      const steps: KvStepStats[] = [];
      try {
        const g = await model.chat(history, {
          ...opts,
          template,
          signal: current.signal,
          onStep: (s) => steps.push(s),
        });
        for await (const p of g) out(p.text);
        const r = await g.result;
        out(r.finishReason === "cancelled" ? " (stopped)\n" : "\n");
        history.push({ role: "assistant", content: r.text });
        last = { r, steps };
      } catch (e) {
        history.pop();
        console.log(`\nerror: ${(e as Error).message}`);
      } finally {
        current = null;
      }
    }
  } finally {
    try {
      Deno.removeSignalListener("SIGINT", onInterrupt);
    } catch { /* as above */ }
    model.dispose();
  }
  return 0;
}

/** Lines of a byte stream. */
async function* readLines(
  input: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let buf = "";
  for await (const s of input.pipeThrough(new TextDecoderStream())) {
    buf += s;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i).replace(/\r$/, "");
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}
