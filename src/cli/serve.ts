/**
 * `alisa serve`: the OpenAI-compatible API (`src/api/server.ts`) on
 * `Deno.serve`, and the model options it shares with `alisa chat`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadModel, type Model } from "../api/model.ts";
import { defaultModelPath } from "../api/default_model.ts";
import { createServer, defaultModelId } from "../api/server.ts";
import { CHAT_TEMPLATES } from "../api/chat_template.ts";
import { openModelFile } from "../formats/model_file.ts";
import { intOption } from "./options.ts";
import { kvOptions } from "./kv_report.ts";
import { isArgError } from "./options.ts";
import { localModel } from "./cache.ts";

/** Usage of `alisa serve`. */
export const SERVE_USAGE = `usage: alisa serve [MODEL] [options]

An OpenAI-compatible server: POST /v1/chat/completions, POST /v1/completions
(streaming with "stream": true), GET /v1/models, GET /health. Concurrent
requests share decode steps, one KV slot each.

MODEL is a .gguf file, a URL or a Hugging Face directory (default: the
embedded Austen 5.8M model, which has no chat template: use
--chat-template plain for chat).

options:
  --port N             port (default 8080; 0 picks a free one)
  --host HOST          address to bind (default 127.0.0.1)
  --api-key KEY        require "Authorization: Bearer KEY"
  --max-batch B        requests decoded together, 1 to 256 (default 8)
  --max-queue N        requests waiting for a slot before new ones get 429
                       (default 64)
  --max-tokens N       tokens per reply when a request gives no max_tokens
                       (default: the rest of the context; set it with
                       --gpu-kv-budget, whose check uses it)
  --context N          positions per sequence (default: the model's)
  --chat-template T    a Jinja file, or "plain", instead of the model's own
  --alias NAME         the model id clients use (default: the file's name)
  --gpu-kv-budget SIZE GPU bytes for K/V, shared by every slot; beyond it
                       tokens spill to host memory (ALISA's tiers)
  --kv-int8 on|off     host tier in INT8 (default on)
  --recompute MODE     auto (default), on, off`;

/** Model options shared by `serve` and `chat`. */
export const MODEL_OPTIONS = {
  "max-batch": { type: "string" },
  context: { type: "string" },
  "chat-template": { type: "string" },
  "gpu-kv-budget": { type: "string" },
  "kv-int8": { type: "string" },
  recompute: { type: "string" },
} as const;

/** Loads the model for `serve` or `chat`, every option checked first. */
export async function loadServingModel(
  path: string,
  values: {
    "max-batch"?: string;
    context?: string;
    "chat-template"?: string;
    "gpu-kv-budget"?: string;
    "kv-int8"?: string;
    recompute?: string;
  },
  defaultBatch: number,
): Promise<{ model: Model; template: string | undefined }> {
  path = await localModel(path);
  const kv = kvOptions(values);
  const maxBatch = intOption(values["max-batch"], "max-batch", 1, 256) ??
    defaultBatch;
  const file = await openModelFile(path);
  const trained = file.config.contextLength;
  file.close();
  const contextLength = intOption(
    values.context,
    "context",
    2,
    trained,
    " (the model's trained context)",
  );
  let template = values["chat-template"];
  if (template !== undefined && !(template in CHAT_TEMPLATES)) {
    try {
      template = await Deno.readTextFile(template);
    } catch (e) {
      throw new TypeError(
        `--chat-template: ${JSON.stringify(template)} is neither a built-in (${
          Object.keys(CHAT_TEMPLATES).join(", ")
        }) nor a readable file (${(e as Error).message})`,
      );
    }
  }
  const model = await loadModel(path, { maxBatch, contextLength, kv });
  return { model, template };
}

/** `alisa serve ...`; returns the exit code when the server stops. */
export async function serveCommand(args: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        "api-key": { type: "string" },
        "max-queue": { type: "string" },
        "max-tokens": { type: "string" },
        alias: { type: "string" },
        ...MODEL_OPTIONS,
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    }));
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n\n${SERVE_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  if (positionals.length > 1) {
    console.error(SERVE_USAGE);
    return 2;
  }
  let port: number, maxQueue: number, maxTokens: number | undefined;
  let loaded;
  try {
    port = intOption(values.port, "port", 0, 65535) ?? 8080;
    maxQueue = intOption(values["max-queue"], "max-queue", 0, 1_000_000) ??
      64;
    maxTokens = intOption(values["max-tokens"], "max-tokens", 1, 2 ** 31);
    loaded = await loadServingModel(
      positionals[0] ?? defaultModelPath(),
      values,
      8,
    );
  } catch (e) {
    if (!isArgError(e)) throw e;
    console.error(`error: ${e.message}\n(alisa serve --help for usage)`);
    return 2;
  }
  const { model, template } = loaded;
  const handler = createServer(model, {
    modelId: values.alias,
    maxQueue,
    apiKey: values["api-key"],
    chatTemplate: template,
    defaultMaxTokens: maxTokens,
  });
  const hostname = values.host ?? "127.0.0.1";
  const ac = new AbortController();
  const stop = () => ac.abort();
  try {
    Deno.addSignalListener("SIGINT", stop);
  } catch { /* no signals here (Windows) */ }
  const server = Deno.serve({
    hostname,
    port,
    signal: ac.signal,
    onListen: ({ hostname, port }) => {
      console.error(
        `alisa serve: ${
          values.alias ?? defaultModelId(model.file.name)
        } on http://${hostname}:${port}/v1 (${model.engine.kv.slots} slots, queue ${maxQueue}${
          values["api-key"] ? ", API key required" : ""
        })`,
      );
    },
  }, handler);
  try {
    await server.finished;
    await model.batcher.drain(); // requests still running are cancelled
  } finally {
    try {
      Deno.removeSignalListener("SIGINT", stop);
    } catch { /* as above */ }
    model.dispose();
  }
  return 0;
}
