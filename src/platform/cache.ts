/**
 * A download cache for model URLs (Deno; a directory on disk), as users of
 * transformers.js and llama.cpp expect: the first load of a URL downloads it
 * once into the cache, later loads read the file from disk without touching
 * the network.
 *
 * - Where: `options.dir`, else `$ALISA_CACHE`, else `$XDG_CACHE_HOME/alisa`
 *   or `~/.cache/alisa`. One folder per URL (named by a hash of it) holds
 *   `meta.json` (`url`, `etag`, `size`, `sha256`, `complete`) and `data`
 *   (`data.part` while downloading).
 * - Resumable: an interrupted download (a dropped connection, a killed
 *   process) continues from the bytes already on disk with a range request
 *   (`If-Range` on the ETag, so a file that changed on the server starts
 *   over); a server without range support starts over from byte 0. Dropped
 *   connections are retried (`retries`, default 5).
 * - Checked: a complete entry is used only if its size and SHA-256 match
 *   what was recorded when it was downloaded; otherwise it is fetched again.
 * - `hf://owner/repo[@revision]/path/file.gguf` is a Hugging Face Hub file:
 *   `<endpoint>/owner/repo/resolve/<revision>/path/file.gguf`, with the
 *   endpoint from `options.hfEndpoint`, `$HF_ENDPOINT` or
 *   `https://huggingface.co` (a mirror or a local server works).
 *
 * In a browser there is no cache here yet: URLs are read with range
 * requests each time (`HttpSource`).
 *
 * @module
 */
/** node:crypto's SHA-256, loaded when first needed (Deno only; never in a page). */
async function sha256(): Promise<
  { update(b: Uint8Array | string): unknown; digest(enc: "hex"): string }
> {
  const { createHash } = await import("node:crypto");
  return createHash("sha256");
}

/** Deno, or a TypeError saying the cache needs it. */
function denoOrThrow(): typeof Deno {
  const d = (globalThis as { Deno?: typeof Deno }).Deno;
  if (!d?.open) {
    throw new TypeError(
      "the model cache needs Deno's file system: in a browser, load the URL without the cache option",
    );
  }
  return d;
}

/** An error while downloading (the network or the server, not the caller's arguments). */
export class DownloadError extends Error {
  override name = "DownloadError";
}

/** Options of {@linkcode cachedDownload}. */
export interface CacheOptions {
  /** The cache directory (default: `$ALISA_CACHE`, `$XDG_CACHE_HOME/alisa`, `~/.cache/alisa`). */
  dir?: string;
  /** Progress of a download: bytes so far, total (if known), bytes per second. */
  onDownload?: (
    p: { url: string; loaded: number; total: number | null; rate: number },
  ) => void;
  /** Attempts after a dropped connection (default 5). */
  retries?: number;
  /** The fetch to use (default: `fetch`). */
  fetch?: typeof fetch;
}

/** One cache entry as listed by {@linkcode listCache}. */
export interface CacheEntry {
  key: string;
  url: string;
  size: number;
  complete: boolean;
  etag: string | null;
  path: string;
}

interface Meta {
  url: string;
  /** The server's strong ETag, the validator of a resumed download. */
  etag: string | null;
  size: number | null;
  sha256: string | null;
  /** The data file's mtime (ms) when its hash was last checked. */
  mtime?: number | null;
  complete: boolean;
}

/** The cache directory for `options`. */
export function cacheDir(options: { dir?: string } = {}): string {
  if (options.dir) return options.dir;
  const d = denoOrThrow();
  const env = (k: string) => d.env.get(k);
  const explicit = env("ALISA_CACHE");
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/alisa`;
  const home = env("HOME") ?? env("USERPROFILE");
  if (!home) {
    throw new TypeError(
      "no cache directory: set ALISA_CACHE or pass a cache directory",
    );
  }
  return `${home}/.cache/alisa`;
}

/**
 * The download URL of `hf://owner/repo[@revision]/path`, or `url` itself
 * when it is not an `hf://` URL.
 */
export function resolveHfUrl(url: string, endpoint?: string): string {
  if (!url.startsWith("hf://")) return url;
  const m = /^hf:\/\/([^/@]+)\/([^/@]+)(?:@([^/]+))?\/(.+)$/.exec(url);
  if (!m) {
    throw new TypeError(
      `${url}: an hf:// URL is hf://owner/repo[@revision]/path/to/file`,
    );
  }
  const env = (globalThis as { Deno?: typeof Deno }).Deno?.env;
  const base = (endpoint ?? env?.get("HF_ENDPOINT") ??
    "https://huggingface.co").replace(/\/+$/, "");
  const [, owner, repo, rev = "main", path] = m;
  if (
    [owner, repo, rev, ...path.split("/")].some((p) =>
      p === "." || p === ".." || p === ""
    ) || /[?#\\]/.test(url)
  ) {
    throw new TypeError(
      `${url}: an hf:// URL names a file in a repository: no empty, . or .. parts, ? or #`,
    );
  }
  return `${base}/${owner}/${repo}/resolve/${encodeURIComponent(rev)}/${path}`;
}

/** The folder name of a URL's entry. */
export async function cacheKey(url: string): Promise<string> {
  const h = await sha256();
  h.update(url);
  return h.digest("hex").slice(0, 32);
}

/** SHA-256 of a file, streamed. */
async function fileSha256(path: string): Promise<string> {
  const h = await sha256();
  using f = await Deno.open(path, { read: true });
  for await (const chunk of f.readable) h.update(chunk);
  return h.digest("hex");
}

async function readMeta(dir: string): Promise<Meta | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
  } catch {
    return null;
  }
}

async function writeMeta(dir: string, m: Meta): Promise<void> {
  await Deno.writeTextFile(`${dir}/meta.json.tmp`, JSON.stringify(m));
  await Deno.rename(`${dir}/meta.json.tmp`, `${dir}/meta.json`);
}

async function size(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return null;
  }
}

/**
 * The local path of `url`'s content: from the cache when a checked complete
 * entry exists (no network), else downloaded into it first (resuming what
 * an earlier attempt left). Two processes loading the same URL take turns
 * (a lock file); the second finds the entry complete.
 */
export async function cachedDownload(
  url: string,
  options: CacheOptions = {},
): Promise<string> {
  denoOrThrow();
  const root = cacheDir(options);
  const dir = `${root}/${await cacheKey(url)}`;
  await Deno.mkdir(dir, { recursive: true });
  const unlock = await lock(`${dir}/lock`);
  try {
    return await download(url, dir, options);
  } finally {
    unlock();
  }
}

/** Takes `path` as a lock (waits while another live process holds it). */
async function lock(path: string): Promise<() => void> {
  for (let waited = 0;; waited += 250) {
    try {
      const f = await Deno.open(path, { write: true, createNew: true });
      // The holder touches it while it works; a lock untouched for 60 s
      // was left by a process that died.
      const beat = setInterval(() => {
        Deno.utime(path, new Date(), new Date()).catch(() => {});
      }, 5000);
      return () => {
        clearInterval(beat);
        f.close();
        Deno.removeSync(path);
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      const st = await Deno.stat(path).catch(() => null);
      if (st?.mtime && Date.now() - st.mtime.getTime() > 60_000) {
        await Deno.remove(path).catch(() => {});
        continue;
      }
      if (waited > 30 * 60_000) {
        throw new DownloadError(
          `${path}: another download has held the cache entry for 30 minutes`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function download(
  url: string,
  dir: string,
  options: CacheOptions,
): Promise<string> {
  const data = `${dir}/data`, part = `${dir}/data.part`;
  let meta = await readMeta(dir);
  if (meta?.url === url && meta.complete) {
    const st = await Deno.stat(data).catch(() => null);
    if (st && st.size === meta.size && meta.sha256) {
      // Unchanged since its hash was checked: trusted without rehashing.
      const mtime = st.mtime?.getTime() ?? null;
      if (mtime !== null && mtime === meta.mtime) return data;
      if ((await fileSha256(data)) === meta.sha256) {
        await writeMeta(dir, { ...meta, mtime });
        return data;
      }
    }
    // Truncated or corrupted: fetched again.
    await Deno.remove(data).catch(() => {});
    meta = null;
  }
  if (!meta || meta.url !== url) {
    await Deno.remove(part).catch(() => {});
    meta = { url, etag: null, size: null, sha256: null, complete: false };
    await writeMeta(dir, meta); // listed (incomplete) from now on
  }
  const doFetch = options.fetch ?? fetch;
  const retries = options.retries ?? 5;
  let lastError: unknown = null;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      await new Promise((r) =>
        setTimeout(r, Math.min(8000, 250 * 2 ** attempt))
      );
    }
    let have: number = (await size(part)) ?? 0;
    // Resume only against a strong ETag: without one, a file that changed
    // on the server could be stitched from two versions.
    const strong = meta.etag !== null && !meta.etag.startsWith("W/");
    if (have > 0 && !strong) {
      await Deno.remove(part).catch(() => {});
      have = 0;
    }
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (have > 0) {
      headers.range = `bytes=${have}-`;
      headers["if-range"] = meta.etag!;
    }
    let res: Response;
    try {
      res = await doFetch(url, { headers });
    } catch (e) {
      lastError = e;
      continue;
    }
    if (res.status === 416) {
      // The part is not a prefix of what the server has now: start over.
      await res.body?.cancel();
      await Deno.remove(part).catch(() => {});
      meta = { ...meta, etag: null, size: null };
      lastError = new DownloadError(`${url}: HTTP 416 for a resumed range`);
      continue;
    }
    if (res.status >= 500) {
      await res.body?.cancel();
      lastError = new DownloadError(
        `${url}: HTTP ${res.status} ${res.statusText}`,
      );
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel();
      if (!have) await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw new DownloadError(`${url}: HTTP ${res.status} ${res.statusText}`);
    }
    const cr = /^bytes (\d+)-\d+\/(\d+)$/.exec(
      res.headers.get("content-range") ?? "",
    );
    // A 206 must continue exactly where the part ends; anything else (a
    // 200, a wrong range) is the whole file from byte 0.
    const resumed: boolean = res.status === 206 && have > 0 && !!cr &&
      Number(cr[1]) === have && have < Number(cr[2]);
    if (res.status === 206 && !resumed) {
      await res.body?.cancel();
      await Deno.remove(part).catch(() => {});
      meta = { ...meta, etag: null, size: null };
      lastError = new DownloadError(
        `${url}: the server answered another range`,
      );
      continue;
    }
    const etag = res.headers.get("etag");
    let total: number | null = null;
    if (cr) total = Number(cr[2]);
    else if (res.headers.get("content-length") !== null) {
      total = Number(res.headers.get("content-length"));
    }
    meta = { ...meta, etag: resumed ? meta.etag : etag, size: total };
    await writeMeta(dir, meta);
    {
      // Written in its own scope: the file is closed before the rename.
      using f = await Deno.open(part, {
        write: true,
        create: true,
        append: resumed,
        truncate: !resumed,
      });
      let loaded = resumed ? have : 0;
      const t0 = performance.now(), start = loaded;
      try {
        for await (const chunk of res.body!) {
          await writeAll(f, chunk);
          loaded += chunk.length;
          options.onDownload?.({
            url,
            loaded,
            total: meta.size,
            rate: (loaded - start) /
              Math.max(1e-3, (performance.now() - t0) / 1000),
          });
        }
      } catch (e) {
        lastError = e; // dropped: resume from what is on disk
        continue;
      }
      if (meta.size !== null && loaded !== meta.size) {
        lastError = new DownloadError(
          `${url}: the body ended after ${loaded} of ${meta.size} bytes`,
        );
        continue;
      }
    }
    const got = (await size(part)) ?? 0;
    const sha256 = await fileSha256(part);
    await Deno.rename(part, data);
    const mtime = (await Deno.stat(data)).mtime?.getTime() ?? null;
    await writeMeta(dir, { ...meta, size: got, sha256, mtime, complete: true });
    return data;
  }
  const kept = (await size(part)) ?? 0;
  throw new DownloadError(
    `${url}: the download failed after ${retries + 1} attempts: ${
      (lastError as Error)?.message ?? lastError
    }${kept ? ` (${kept} bytes kept; the next load resumes them)` : ""}`,
  );
}

async function writeAll(f: Deno.FsFile, b: Uint8Array): Promise<void> {
  for (let off = 0; off < b.length;) off += await f.write(b.subarray(off));
}

/** The cache's entries. */
export async function listCache(
  options: { dir?: string } = {},
): Promise<CacheEntry[]> {
  const root = cacheDir(options);
  const out: CacheEntry[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      if (!e.isDirectory) continue;
      const dir = `${root}/${e.name}`;
      const m = await readMeta(dir);
      if (!m) continue;
      const path = m.complete ? `${dir}/data` : `${dir}/data.part`;
      out.push({
        key: e.name,
        url: m.url,
        size: (await size(path)) ?? 0,
        complete: m.complete,
        etag: m.etag,
        path,
      });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.url.localeCompare(b.url));
}

/** Removes the entries of `urls` (or every entry); returns how many. */
export async function removeFromCache(
  urls: string[] | "all",
  options: { dir?: string } = {},
): Promise<number> {
  const entries = await listCache(options);
  let n = 0;
  for (const e of entries) {
    if (urls === "all" || urls.includes(e.url) || urls.includes(e.key)) {
      await Deno.remove(`${cacheDir(options)}/${e.key}`, { recursive: true });
      n++;
    }
  }
  return n;
}
