/**
 * alisa's command line.
 *
 * ```sh
 * deno run -A cli.ts inspect MODEL [--json]
 * deno run -A cli.ts tokenize MODEL TEXT [--json] [--bos]
 * deno run -A cli.ts tokenize MODEL --ids 1,2,3 [--json]
 * deno run -A cli.ts generate [MODEL] --prompt TEXT [--max-tokens N] [--json]
 * deno run -A cli.ts demo
 * deno run -A cli.ts eval [MODEL] --text FILE [--docs] [--policies ...] [--sparsity ...]
 * deno run -A cli.ts chat [MODEL] [--chat-template plain]
 * deno run -A cli.ts serve [MODEL] [--port 8080] [--max-batch 8]
 * ```
 *
 * MODEL is a `.gguf` file (path, URL or `hf://owner/repo/file.gguf`; URLs
 * are downloaded once into the cache) or a Hugging Face directory.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { openModelFile } from "./src/formats/model_file.ts";
import { formatReport, inspectReport } from "./src/formats/inspect.ts";
import { GgufFile } from "./src/formats/gguf.ts";
import { Tokenizer } from "./src/tokenizer/tokenizer.ts";
import { demoCommand, generateCommand } from "./src/cli/generate.ts";
import { evalCommand } from "./src/cli/eval.ts";
import { serveCommand } from "./src/cli/serve.ts";
import { chatCommand } from "./src/cli/chat.ts";
import { cacheCommand, localModel } from "./src/cli/cache.ts";

const USAGE = `usage: alisa <command> [options]

commands:
  inspect MODEL [--json]   print the config, tokenizer and tensors of a model
                           (a .gguf file or a Hugging Face directory)
  tokenize MODEL TEXT      print the pieces and ids of TEXT ("-": stdin);
    [--json] [--bos]       --json: {"ids", "pieces"}; --bos: add BOS/EOS
  tokenize MODEL --ids 1,2,3 [--json]
                           decode ids to text
  generate [MODEL] --prompt TEXT [--max-tokens N] [--temperature T]
    [--top-k K] [--top-p P] [--seed S] [--stop TEXT] [--context N]
    [--policy NAME --sparsity S [--min-budget M]]
    [--gpu-kv-budget SIZE] [--kv-int8 on|off] [--recompute auto|on|off]
    [--stats] [--scheduler-profile] [--json]
                           stream a continuation, then prefill/decode tok/s
                           (MODEL defaults to the embedded Austen model);
                           --policy swa --sparsity 0.8: ALISA's sparse
                           attention; --gpu-kv-budget: K/V beyond it spill to
                           host memory (generate --help for every option)
  demo                     generate from the embedded model, offline
  eval [MODEL] --text FILE [--docs] [--window N] [--policies LIST]
    [--sparsity LIST] [--max-windows N] [--batch B] [--json] [--svg FILE]
                           perplexity and top-1 agreement of KV policies by
                           exact decode simulation
  chat [MODEL] [--system TEXT] [--chat-template T]
                           chat in the terminal in the model's chat format
                           (/reset, /stats, /quit; Ctrl-C stops a reply)
  serve [MODEL] [--port N] [--host H] [--max-batch B] [--max-queue N]
    [--api-key KEY] [--chat-template T] [--gpu-kv-budget SIZE]
                           an OpenAI-compatible server (/v1/chat/completions,
                           /v1/completions, /v1/models, /health); concurrent
                           requests share decode steps (serve --help)
  cache ls | rm URL... | --all [--cache-dir DIR]
                           the download cache of model URLs (http(s)://,
                           hf://owner/repo/file.gguf)

options:
  -h, --help               show this help`;

async function inspect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log("usage: alisa inspect MODEL [--json]");
    return 0;
  }
  if (positionals.length !== 1) {
    console.error("usage: alisa inspect MODEL [--json]");
    return 2;
  }
  const model = await openModelFile(await localModel(positionals[0]));
  try {
    const report = inspectReport(model);
    console.log(
      values.json
        ? JSON.stringify(report)
        : formatReport(positionals[0], report),
    );
  } finally {
    model.close();
  }
  return 0;
}

const TOKENIZE_USAGE =
  "usage: alisa tokenize MODEL TEXT [--json] [--bos]\n       alisa tokenize MODEL --ids 1,2,3 [--json]";

async function tokenize(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      json: { type: "boolean" },
      bos: { type: "boolean" },
      ids: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(TOKENIZE_USAGE);
    return 0;
  }
  const want = values.ids === undefined ? 2 : 1;
  if (positionals.length !== want) {
    console.error(TOKENIZE_USAGE);
    return 2;
  }
  const path = positionals[0];
  let tok: Tokenizer;
  if ((await Deno.stat(path).catch(() => null))?.isDirectory) {
    tok = await Tokenizer.fromHfDir(path);
  } else {
    const gguf = await GgufFile.open(path);
    try {
      tok = Tokenizer.fromGguf(gguf);
    } finally {
      gguf.close();
    }
  }
  if (values.ids !== undefined) {
    const ids = values.ids.split(/[\s,]+/).filter((s) => s !== "").map((s) => {
      const n = Number(s);
      if (!/^\d+$/.test(s) || !Number.isSafeInteger(n)) {
        throw new RangeError(`--ids: ${JSON.stringify(s)} is not a token id`);
      }
      return n;
    });
    const text = tok.decode(ids, { lossy: true });
    if (values.json) {
      console.log(JSON.stringify({ ids, pieces: tok.pieces(ids), text }));
    } else {
      console.log(text);
    }
    return 0;
  }
  let text = positionals[1];
  if (text === "-") {
    text = await new Response(Deno.stdin.readable).text();
  }
  const ids = tok.encode(text, { addSpecial: values.bos ?? false });
  const pieces = tok.pieces(ids);
  if (values.json) {
    console.log(JSON.stringify({ ids, pieces }));
  } else {
    const w = ids.reduce((m, id) => Math.max(m, String(id).length), 1);
    for (let i = 0; i < ids.length; i++) {
      console.log(
        `${String(ids[i]).padStart(w)}  ${JSON.stringify(pieces[i])}`,
      );
    }
    console.log(`${ids.length} tokens`);
  }
  return 0;
}

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "inspect":
        return await inspect(rest);
      case "tokenize":
        return await tokenize(rest);
      case "generate":
        return await generateCommand(rest);
      case "demo":
        return await demoCommand();
      case "eval":
        return await evalCommand(rest);
      case "serve":
        return await serveCommand(rest);
      case "chat":
        return await chatCommand(rest);
      case "cache":
        return await cacheCommand(rest);
      case undefined:
      case "-h":
      case "--help":
      case "help":
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        console.error(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
