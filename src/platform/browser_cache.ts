/**
 * The model cache in a browser: Cache Storage (`caches`, cache
 * "alisa-models"), keyed by URL. The first load with `cache` fetches the
 * whole file (with progress) and stores it with its size; later loads read
 * it from the cache without the network, and an entry whose size no longer
 * matches is dropped and fetched again. Downloads do not resume here (the
 * Deno cache, `cache.ts`, does).
 *
 * @module
 */

/** Options of {@linkcode cachedBlob}. */
export interface BrowserCacheOptions {
  /** Progress of a download: bytes so far, total (if known), bytes per second. */
  onDownload?: (
    p: { url: string; loaded: number; total: number | null; rate: number },
  ) => void;
}

const NAME = "alisa-models";
const SIZE = "x-alisa-size";

/** The file at `url`, from Cache Storage when it holds a complete copy. */
export async function cachedBlob(
  url: string,
  options: BrowserCacheOptions = {},
): Promise<Blob> {
  if (typeof caches === "undefined") {
    throw new TypeError(
      `${url}: this page has no Cache Storage (it needs a secure context: https or localhost)`,
    );
  }
  const cache = await caches.open(NAME);
  const hit = await cache.match(url);
  if (hit) {
    const blob = await hit.blob();
    if (blob.size === Number(hit.headers.get(SIZE))) return blob;
    await cache.delete(url); // truncated or replaced: fetched again
  }
  const res = await fetch(url);
  if (!res.ok || !res.body) {
    throw new TypeError(`${url}: HTTP ${res.status} ${res.statusText}`);
  }
  const total = res.headers.get("content-length") === null
    ? null
    : Number(res.headers.get("content-length"));
  const parts: Uint8Array[] = [];
  let loaded = 0;
  const t0 = performance.now();
  for await (const chunk of res.body) {
    parts.push(chunk);
    loaded += chunk.length;
    options.onDownload?.({
      url,
      loaded,
      total,
      rate: loaded / Math.max(1e-3, (performance.now() - t0) / 1000),
    });
  }
  if (total !== null && loaded !== total) {
    throw new TypeError(
      `${url}: the body ended after ${loaded} of ${total} bytes`,
    );
  }
  const blob = new Blob(parts as BlobPart[]);
  await cache.put(
    url,
    new Response(blob, {
      headers: {
        "content-type": "application/octet-stream",
        [SIZE]: String(blob.size),
      },
    }),
  );
  return blob;
}
