/**
 * `alisa cache ls|rm`: the download cache of model URLs
 * (`src/platform/cache.ts`), and the URL handling every CLI command shares:
 * an `http(s)://` or `hf://` MODEL is downloaded once into the cache, with a
 * progress line (bytes and rate), and read from disk afterwards.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  cachedDownload,
  cacheDir,
  listCache,
  removeFromCache,
  resolveHfUrl,
} from "../platform/cache.ts";

/** Usage of `alisa cache`. */
export const CACHE_USAGE = `usage: alisa cache ls [--cache-dir DIR] [--json]
       alisa cache rm URL... | --all [--cache-dir DIR]

The cache holds models downloaded from http(s):// and hf:// URLs (one copy
per URL, checked by size and SHA-256 on every use; an interrupted download
resumes). Directory: --cache-dir, else $ALISA_CACHE, else ~/.cache/alisa.`;

/**
 * The local path for a CLI MODEL argument: URLs (and `hf://`) are fetched
 * into the cache first; anything else is returned as it is.
 */
export async function localModel(arg: string): Promise<string> {
  if (!/^(https?|hf):\/\//.test(arg)) return arg;
  const enc = new TextEncoder();
  const tty = Deno.stderr.isTerminal();
  let shown = 0;
  const path = await cachedDownload(resolveHfUrl(arg), {
    onDownload: ({ loaded, total, rate }) => {
      const now = performance.now();
      if (!tty || (now - shown < 200 && loaded !== total)) return;
      shown = now;
      const mb = (n: number) => (n / 2 ** 20).toFixed(1);
      Deno.stderr.writeSync(
        enc.encode(
          `\rdownloading ${mb(loaded)}${
            total ? ` / ${mb(total)}` : ""
          } MiB at ${mb(rate)} MiB/s${loaded === total ? "\n" : ""}`,
        ),
      );
    },
  });
  return path;
}

/** `alisa cache ...`; returns the exit code. */
export async function cacheCommand(args: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: {
        "cache-dir": { type: "string" },
        all: { type: "boolean" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    }));
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n\n${CACHE_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(CACHE_USAGE);
    return 0;
  }
  const dir = { dir: values["cache-dir"] };
  const [sub, ...rest] = positionals;
  if (sub === "ls" && rest.length === 0) {
    const entries = await listCache(dir);
    if (values.json) console.log(JSON.stringify(entries));
    else {
      console.log(`${cacheDir(dir)}: ${entries.length} entries`);
      for (const e of entries) {
        console.log(
          `${e.complete ? "  " : "… "}${String(e.size).padStart(12)}  ${e.url}`,
        );
      }
    }
    return 0;
  }
  if (sub === "rm" && (rest.length > 0) !== (values.all ?? false)) {
    const n = await removeFromCache(
      values.all ? "all" : rest.map((u) => resolveHfUrl(u)),
      dir,
    );
    console.log(`removed ${n} ${n === 1 ? "entry" : "entries"}`);
    return 0;
  }
  console.error(
    `error: expected "ls" or "rm URL... | --all"\n\n${CACHE_USAGE}`,
  );
  return 2;
}
