/**
 * An OpenAI-compatible HTTP API over a loaded {@linkcode Model}, as a fetch
 * handler (`(Request) => Promise<Response>`, web APIs only) that
 * `Deno.serve` or any other server can run:
 *
 * - `POST /v1/chat/completions`: `messages` rendered with the model's chat
 *   template; `POST /v1/completions`: a `prompt` string. Both stream
 *   server-sent events with `"stream": true`, and report `usage` in every
 *   response (when streaming, in a last chunk with no choices, as OpenAI
 *   sends it for `stream_options.include_usage`).
 * - `GET /v1/models`, `GET /health` (slots, running, waiting).
 *
 * Request fields that map onto the engine: `model` (must name the served
 * model), `max_tokens` (`max_completion_tokens`), `temperature`, `top_p`,
 * `seed`, `stop` (a string or up to 4), `n` (1 only), `stream`,
 * `stream_options.include_usage` (usage is always sent); alisa's own:
 * `kv_policy` (`dense`, `swa`, `local`, ...) and `sparsity`. `temperature`
 * defaults to 1, as OpenAI's does (0 is greedy). A field of the wrong type,
 * malformed JSON, a body over the limit, a prompt past the context, an
 * unknown model, or an option the engine does not implement (`n` > 1,
 * `logprobs`, `top_logprobs`, penalties, `logit_bias`, `tools`,
 * `response_format` other than text, `echo`, `best_of`, `suffix`) is a 4xx
 * with an OpenAI-style error body; a failure while a request runs is a 500.
 *
 * Concurrent requests are batched by the model's {@linkcode Batcher}: each
 * takes a KV slot, and those beyond the slots wait in its queue; past
 * `maxQueue` waiting requests the answer is 429 with `Retry-After`. A client
 * that disconnects (its request signal aborts, or it stops reading the
 * stream) frees its slot at the next step.
 *
 * @module
 */
import type {
  ChatOptions,
  FinishReason,
  GenerateOptions,
  Generation,
  GenerationResult,
  Model,
} from "./model.ts";
import type { PolicySpec } from "../sparse/spec.ts";

/** Options of {@linkcode createServer}. */
export interface ServerOptions {
  /** The model id clients name (default: the file or directory name, without `.gguf`). */
  modelId?: string;
  /** Requests waiting for a slot beyond which new ones get 429 (default 64). */
  maxQueue?: number;
  /** Require `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Chat template (source or built-in name) instead of the model's own. */
  chatTemplate?: string;
  /** `max_tokens` when a request gives none (default: the rest of the context). */
  defaultMaxTokens?: number;
  /** Largest request body in bytes (default 1 MiB). */
  maxBodyBytes?: number;
}

/** An OpenAI-style error. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The fetch handler of the API over `model` (see the module doc). */
export function createServer(
  model: Model,
  options: ServerOptions = {},
): (req: Request) => Promise<Response> {
  const modelId = options.modelId ?? defaultModelId(model.file.name);
  const maxQueue = options.maxQueue ?? 64;
  const maxBody = options.maxBodyBytes ?? 1 << 20;
  const created = Math.floor(Date.now() / 1000);
  let counter = 0;

  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "");
    if (options.apiKey !== undefined) {
      const auth = req.headers.get("authorization") ?? "";
      if (auth !== `Bearer ${options.apiKey}`) {
        throw new ApiError(
          401,
          "Invalid or missing API key (Authorization: Bearer KEY)",
          "authentication_error",
          null,
          "invalid_api_key",
        );
      }
    }
    const route = ROUTES[path];
    if (!route) {
      throw new ApiError(404, `Unknown path ${path}`, "not_found_error");
    }
    if (req.method !== route) {
      throw new ApiError(
        405,
        `${path} takes ${route}, not ${req.method}`,
        "invalid_request_error",
        null,
        null,
        { allow: route },
      );
    }
    if (path === "/health") {
      return json({ status: "ok", model: modelId, ...model.batcher.load });
    }
    if (path === "/v1/models") {
      return json({
        object: "list",
        data: [{ id: modelId, object: "model", created, owned_by: "alisa" }],
      });
    }
    const body = await readBody(req, maxBody);
    const chat = path === "/v1/chat/completions";
    const o = requestOptions(body, chat, modelId);
    const load = model.batcher.load;
    if (load.running + load.waiting >= load.slots + maxQueue) {
      throw new ApiError(
        429,
        `The server is busy: every slot is taken and ${maxQueue} requests are already waiting`,
        "rate_limit_error",
        null,
        "queue_full",
        { "retry-after": "1" },
      );
    }
    // A non-streaming client that disconnects aborts its request's signal
    // (below); a streaming one cancels the response stream instead.
    const abort = new AbortController();
    const gen: GenerateOptions = {
      ...o.gen,
      maxTokens: o.gen.maxTokens ?? options.defaultMaxTokens ??
        model.engine.kv.ctx,
      signal: abort.signal,
    };
    if (chat) {
      // A model without a chat template is the server's problem, not the
      // request's.
      try {
        await model.chatTemplate(options.chatTemplate);
      } catch (e) {
        throw new ApiError(
          500,
          `This server cannot render chat messages: ${
            (e as Error).message
          } (start it with --chat-template)`,
          "server_error",
        );
      }
    }
    let g: Generation;
    try {
      if (chat) {
        g = await model.chat(o.messages!, {
          ...gen,
          template: options.chatTemplate,
        } as ChatOptions);
      } else {
        g = model.generate(o.prompt!, gen);
      }
    } catch (e) {
      throw engineError(e);
    }
    const id = `${chat ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${
      (counter++).toString(36)
    }`;
    const head = {
      id,
      object: chat ? "chat.completion" : "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: modelId,
    };
    if (!o.stream) {
      let r: GenerationResult;
      const onAbort = () => abort.abort();
      req.signal?.addEventListener("abort", onAbort);
      try {
        for await (const _ of g) { /* drain */ }
        r = await g.result;
      } catch (e) {
        throw runError(e);
      } finally {
        req.signal?.removeEventListener("abort", onAbort);
      }
      return json({
        ...head,
        choices: [
          chat
            ? {
              index: 0,
              message: { role: "assistant", content: r.text },
              logprobs: null,
              finish_reason: finishReason(r.finishReason),
            }
            : {
              index: 0,
              text: r.text,
              logprobs: null,
              finish_reason: finishReason(r.finishReason),
            },
        ],
        usage: usage(r),
      });
    }
    return sse(g, head, chat);
  };

  return async (req: Request) => {
    try {
      return await handle(req);
    } catch (e) {
      const err = e instanceof ApiError
        ? e
        : new ApiError(500, (e as Error)?.message ?? String(e), "server_error");
      return json(
        {
          error: {
            message: err.message,
            type: err.type,
            param: err.param,
            code: err.code,
          },
        },
        err.status,
        err.headers,
      );
    }
  };
}

/** A model's id from its path or URL: the last part, without `.gguf`. */
export function defaultModelId(name: string): string {
  const base = name.replace(/[?#].*$/, "").replace(/[\\/]+$/, "")
    .split(/[\\/]/).pop() || name;
  return base.replace(/\.gguf$/i, "");
}

const ROUTES: Record<string, string> = {
  "/health": "GET",
  "/v1/models": "GET",
  "/v1/chat/completions": "POST",
  "/v1/completions": "POST",
};

function json(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

async function readBody(req: Request, maxBytes: number): Promise<unknown> {
  const len = Number(req.headers.get("content-length") ?? 0);
  if (len > maxBytes) {
    throw new ApiError(
      413,
      `The request body has ${len} bytes; the limit is ${maxBytes}`,
    );
  }
  // Read at most maxBytes, whatever Content-Length said (or without one).
  const parts: Uint8Array[] = [];
  let n = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new ApiError(
          413,
          `The request body has more than ${maxBytes} bytes, the limit`,
        );
      }
      parts.push(value);
    }
  }
  const bytes = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ApiError(
      400,
      `The request body is not valid JSON: ${(e as Error).message}`,
    );
  }
}

/** What a completion request asks for, every field checked. */
function requestOptions(body: unknown, chat: boolean, modelId: string): {
  messages?: { role: string; content: string }[];
  prompt?: string;
  stream: boolean;
  gen: GenerateOptions;
} {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError(400, "The request body must be a JSON object");
  }
  const b = body as Record<string, unknown>;
  const bad = (param: string, want: string): never => {
    throw new ApiError(
      400,
      `${param} must be ${want}, got ${JSON.stringify(b[param])}`,
      "invalid_request_error",
      param,
    );
  };
  const num = (k: string, min: number, max: number, int = false) => {
    const v = b[k];
    if (v === undefined || v === null) return undefined;
    if (
      typeof v !== "number" || !Number.isFinite(v) || v < min || v > max ||
      (int && !Number.isInteger(v))
    ) {
      bad(k, `${int ? "an integer" : "a number"} from ${min} to ${max}`);
    }
    return v as number;
  };
  if (b.model !== undefined && typeof b.model !== "string") {
    bad("model", "a string");
  }
  if (typeof b.model === "string" && b.model !== modelId) {
    throw new ApiError(
      404,
      `The model ${JSON.stringify(b.model)} is not loaded; this server serves ${
        JSON.stringify(modelId)
      }`,
      "invalid_request_error",
      "model",
      "model_not_found",
    );
  }
  let messages: { role: string; content: string }[] | undefined;
  let prompt: string | undefined;
  if (chat) {
    if (!Array.isArray(b.messages) || b.messages.length === 0) {
      bad("messages", "a non-empty array");
    }
    messages = (b.messages as unknown[]).map((m, i) => {
      const x = m as Record<string, unknown>;
      if (typeof x !== "object" || x === null || typeof x.role !== "string") {
        throw new ApiError(
          400,
          `messages[${i}] must be an object with a string role`,
          "invalid_request_error",
          "messages",
        );
      }
      let content = x.content;
      if (Array.isArray(content)) {
        // Content parts: only text parts can be rendered.
        content = content.map((p: Record<string, unknown>) => {
          if (p?.type !== "text" || typeof p.text !== "string") {
            throw new ApiError(
              400,
              `messages[${i}].content: only text parts are supported`,
              "invalid_request_error",
              "messages",
            );
          }
          return p.text;
        }).join("");
      }
      if (content === null || content === undefined) content = "";
      if (typeof content !== "string") {
        throw new ApiError(
          400,
          `messages[${i}].content must be a string or text parts`,
          "invalid_request_error",
          "messages",
        );
      }
      return { role: x.role as string, content: content as string };
    });
  } else {
    let p = b.prompt;
    if (Array.isArray(p) && p.length === 1 && typeof p[0] === "string") {
      p = p[0];
    }
    if (typeof p !== "string" || p === "") {
      bad("prompt", "a non-empty string");
    }
    prompt = p as string;
  }
  if (
    b.stream !== undefined && b.stream !== null && typeof b.stream !== "boolean"
  ) {
    bad("stream", "a boolean");
  }
  const n = num("n", 1, 1, true);
  void n;
  if (b.logprobs !== undefined && b.logprobs !== null && b.logprobs !== false) {
    throw new ApiError(
      400,
      "logprobs are not supported",
      "invalid_request_error",
      "logprobs",
    );
  }
  const unsupported = (k: string, why = "is not supported") => {
    throw new ApiError(400, `${k} ${why}`, "invalid_request_error", k);
  };
  const rf = b.response_format as { type?: unknown } | undefined | null;
  if (rf !== undefined && rf !== null && rf?.type !== "text") {
    unsupported("response_format", 'is not supported (only { type: "text" })');
  }
  for (const k of ["tools", "functions", "logit_bias"]) {
    const v = b[k];
    if (
      v !== undefined && v !== null &&
      !(Array.isArray(v) ? v.length === 0 : typeof v === "object" &&
        Object.keys(v).length === 0)
    ) unsupported(k);
  }
  for (const k of ["tool_choice", "function_call"]) {
    if (b[k] !== undefined && b[k] !== null && b[k] !== "none") {
      unsupported(k);
    }
  }
  if (b.top_logprobs !== undefined && b.top_logprobs !== null) {
    unsupported("top_logprobs");
  }
  if (b.echo !== undefined && b.echo !== null && b.echo !== false) {
    unsupported("echo");
  }
  if (b.best_of !== undefined && b.best_of !== null && b.best_of !== 1) {
    unsupported("best_of", "is not supported (only 1)");
  }
  if (b.suffix !== undefined && b.suffix !== null && b.suffix !== "") {
    unsupported("suffix");
  }
  for (const k of ["presence_penalty", "frequency_penalty"]) {
    if (num(k, -2, 2)) {
      throw new ApiError(
        400,
        `${k} is not supported (only 0)`,
        "invalid_request_error",
        k,
      );
    }
  }
  const maxTokens = num("max_completion_tokens", 1, 2 ** 31, true) ??
    num("max_tokens", 1, 2 ** 31, true);
  let stop = b.stop;
  if (typeof stop === "string") stop = [stop];
  if (
    stop !== undefined && stop !== null &&
    (!Array.isArray(stop) || stop.length > 4 ||
      stop.some((s) => typeof s !== "string"))
  ) {
    bad("stop", "a string or an array of up to 4 strings");
  }
  let policy: PolicySpec | undefined;
  if (b.kv_policy !== undefined && b.kv_policy !== null) {
    if (typeof b.kv_policy !== "string") bad("kv_policy", "a string");
    policy = {
      name: b.kv_policy as PolicySpec["name"],
      sparsity: num("sparsity", 0, 1) ?? 0,
    };
  } else if (b.sparsity !== undefined && b.sparsity !== null) {
    throw new ApiError(
      400,
      'sparsity applies to a kv_policy: add kv_policy (e.g. "swa")',
      "invalid_request_error",
      "sparsity",
    );
  }
  const seed = num("seed", -(2 ** 53), 2 ** 53, true);
  return {
    messages,
    prompt,
    stream: b.stream === true,
    gen: {
      maxTokens,
      // OpenAI's default is 1; 0 is greedy.
      temperature: num("temperature", 0, 2) ?? 1,
      topP: num("top_p", 0, 1),
      seed: seed === undefined ? undefined : seed >>> 0,
      stop: (stop as string[] | undefined) ?? undefined,
      policy,
    },
  };
}

/** An error while a request ran (the engine, the device): 500. */
function runError(e: unknown): ApiError {
  return new ApiError(
    500,
    (e as Error)?.message ?? String(e),
    "server_error",
  );
}

/**
 * An error from accepting a request (its prompt, options and budget
 * checked before it runs): bad input is 400, anything else 500.
 */
function engineError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const msg = (e as Error)?.message ?? String(e);
  if (e instanceof RangeError || e instanceof TypeError) {
    const context = /context holds|does not fit|needs|budget/.test(msg);
    return new ApiError(
      400,
      msg,
      "invalid_request_error",
      null,
      context ? "context_length_exceeded" : null,
    );
  }
  if (e instanceof SyntaxError) return new ApiError(400, msg);
  return new ApiError(500, msg, "server_error");
}

function finishReason(f: FinishReason): string {
  return f === "length" || f === "context" ? "length" : "stop";
}

function usage(r: GenerationResult) {
  return {
    prompt_tokens: r.promptIds.length,
    completion_tokens: r.ids.length,
    total_tokens: r.promptIds.length + r.ids.length,
  };
}

/** A server-sent-events response streaming `g`; cancelling it cancels `g`. */
function sse(
  g: Generation,
  head: Record<string, unknown>,
  chat: boolean,
): Response {
  const enc = new TextEncoder();
  const object = chat ? "chat.completion.chunk" : "text_completion";
  const chunk = (choice: Record<string, unknown>, extra = {}) =>
    enc.encode(
      `data: ${
        JSON.stringify({ ...head, object, choices: [choice], ...extra })
      }\n\n`,
    );
  const it = g[Symbol.asyncIterator]();
  let first = true;
  const stream = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      try {
        if (first && chat) {
          ctl.enqueue(chunk({
            index: 0,
            delta: { role: "assistant", content: "" },
            logprobs: null,
            finish_reason: null,
          }));
        }
        first = false;
        const n = await it.next();
        if (!n.done) {
          if (n.value.text) {
            ctl.enqueue(chunk(
              chat
                ? {
                  index: 0,
                  delta: { content: n.value.text },
                  logprobs: null,
                  finish_reason: null,
                }
                : {
                  index: 0,
                  text: n.value.text,
                  logprobs: null,
                  finish_reason: null,
                },
            ));
          }
          return;
        }
        const r = await g.result;
        const fin = finishReason(r.finishReason);
        ctl.enqueue(chunk(
          chat
            ? { index: 0, delta: {}, logprobs: null, finish_reason: fin }
            : { index: 0, text: "", logprobs: null, finish_reason: fin },
        ));
        // Usage in a last chunk without choices, as OpenAI sends it for
        // stream_options.include_usage (sent whether or not it was asked).
        ctl.enqueue(
          enc.encode(
            `data: ${
              JSON.stringify({ ...head, object, choices: [], usage: usage(r) })
            }\n\n`,
          ),
        );
        ctl.enqueue(enc.encode("data: [DONE]\n\n"));
        ctl.close();
      } catch (e) {
        const err = runError(e);
        ctl.enqueue(enc.encode(
          `data: ${
            JSON.stringify({
              error: { message: err.message, type: err.type, code: err.code },
            })
          }\n\n`,
        ));
        ctl.close();
      }
    },
    cancel() {
      // The client went away: the request leaves at the next step.
      it.return?.();
    },
  });
  return new Response(stream, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "connection": "keep-alive",
    },
  });
}
