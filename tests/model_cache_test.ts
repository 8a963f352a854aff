/**
 * The download cache for model URLs (`src/platform/cache.ts`) against a
 * loopback file server that counts the body bytes it sends and can drop a
 * connection mid-body or ignore range requests: a second load reads from
 * the cache (zero bytes sent); a dropped download resumes where it stopped;
 * a server without range support starts over; a corrupted or truncated
 * entry is detected and fetched again; `hf://` URLs resolve against a
 * configurable endpoint; `alisa cache ls/rm` list and remove entries.
 */
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import {
  cachedDownload,
  listCache,
  removeFromCache,
  resolveHfUrl,
} from "../src/platform/cache.ts";
import { loadModel } from "../src/api/model.ts";
import { defaultModelPath } from "../src/api/default_model.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";
import { runCli } from "./_cli.ts";

const MODEL = await Deno.readFile(defaultModelPath());

/** A file server for MODEL at /m.gguf and /owner/repo/resolve/main/m.gguf. */
function server(
  opts: { dropAfter?: number; noRange?: boolean; noEtag?: boolean } = {},
) {
  const state = { bytes: 0, requests: 0, ranges: 0, drops: 0 };
  let dropAfter = opts.dropAfter;
  const ac = new AbortController();
  const s = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: () => {},
  }, (req) => {
    const path = new URL(req.url).pathname;
    if (path !== "/m.gguf" && path !== "/owner/repo/resolve/main/m.gguf") {
      return new Response("no", { status: 404 });
    }
    state.requests++;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const headers: Record<string, string> = opts.noEtag ? {} : { etag: '"v1"' };
    let status = 200;
    if (range && !opts.noRange) {
      start = Number(range[1]);
      if (start >= MODEL.length) {
        return new Response(null, {
          status: 416,
          headers: { "content-range": `bytes */${MODEL.length}` },
        });
      }
      status = 206;
      state.ranges++;
      headers["content-range"] = `bytes ${start}-${
        MODEL.length - 1
      }/${MODEL.length}`;
    }
    const body = MODEL.subarray(start);
    headers["content-length"] = String(body.length);
    const limit = dropAfter;
    dropAfter = undefined; // only the first response is cut
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= body.length) return c.close();
        const n = Math.min(65536, body.length - sent);
        if (limit !== undefined && sent + n > limit) {
          state.drops++;
          c.error(new Error("connection dropped"));
          return;
        }
        c.enqueue(body.slice(sent, sent + n));
        sent += n;
        state.bytes += n;
      },
    });
    return new Response(stream, { status, headers });
  });
  return {
    state,
    base: `http://127.0.0.1:${s.addr.port}`,
    close: async () => {
      ac.abort();
      await s.finished;
    },
  };
}

async function sha(b: Uint8Array<ArrayBuffer>): Promise<string> {
  return Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", b)),
    (x) => x.toString(16).padStart(2, "0"),
  ).join("");
}

Deno.test("cache: download once, then zero bytes; a dropped connection resumes; a server without ranges starts over; corruption is fetched again", async () => {
  const dir = await Deno.makeTempDir();
  const want = await sha(MODEL);
  try {
    const a = server({ dropAfter: 2_000_000 });
    const url = `${a.base}/m.gguf`;
    let last = { loaded: 0, total: 0 as number | null, rate: 0 };
    const path = await cachedDownload(url, {
      dir,
      onDownload: (p) => (last = p),
    });
    assertEquals(await sha(await Deno.readFile(path)), want);
    // The drop cost nothing twice: the second request was a range request
    // from where the first stopped.
    assertEquals(a.state.drops, 1);
    assertEquals(a.state.ranges, 1);
    assertEquals(a.state.bytes, MODEL.length);
    assertEquals([last.loaded, last.total], [MODEL.length, MODEL.length]);
    assert(last.rate > 0);
    // Again: from the cache, no request at all.
    const before = a.state.requests;
    assertEquals(await cachedDownload(url, { dir }), path);
    assertEquals(a.state.requests, before);
    assertEquals(a.state.bytes, MODEL.length);
    // A flipped byte is detected (SHA-256) and the file fetched again.
    const f = await Deno.open(path, { write: true });
    await f.seek(1000, Deno.SeekMode.Start);
    await f.write(new Uint8Array([0xff ^ MODEL[1000]]));
    f.close();
    await Deno.utime(path, new Date(), new Date(Date.now() - 5000));
    await cachedDownload(url, { dir });
    assertEquals(a.state.bytes, 2 * MODEL.length);
    assertEquals(await sha(await Deno.readFile(path)), want);
    // A truncated entry too.
    await Deno.truncate(path, 1000);
    await cachedDownload(url, { dir });
    assertEquals(a.state.bytes, 3 * MODEL.length);
    await a.close();

    // No range support: a dropped download starts over from byte 0.
    const b = server({ dropAfter: 3_000_000, noRange: true });
    const url2 = `${b.base}/m.gguf`;
    const p2 = await cachedDownload(url2, { dir });
    assertEquals(await sha(await Deno.readFile(p2)), want);
    assertEquals(b.state.drops, 1);
    assert(b.state.bytes >= MODEL.length + 2_900_000, `${b.state.bytes}`);
    await b.close();

    // No ETag: nothing to validate a resumed range against, so a dropped
    // download starts over rather than stitching two versions.
    const c = server({ dropAfter: 2_000_000, noEtag: true });
    const p3 = await cachedDownload(`${c.base}/m.gguf`, { dir });
    assertEquals(await sha(await Deno.readFile(p3)), want);
    assertEquals(c.state.ranges, 0);
    await c.close();

    // Two loads of one URL at once: one downloads, the other waits and
    // reads the finished entry.
    const d = server();
    const both = await Promise.all([
      cachedDownload(`${d.base}/m.gguf`, { dir }),
      cachedDownload(`${d.base}/m.gguf`, { dir }),
    ]);
    assertEquals(both[0], both[1]);
    assertEquals(d.state.bytes, MODEL.length);
    assertEquals(await sha(await Deno.readFile(both[0])), want);

    // A partial file longer than the server's (416 to its range): the
    // entry starts over instead of failing for good.
    const long = `${d.base}/owner/repo/resolve/main/m.gguf`;
    const key = (await listCache({ dir })).length;
    await cachedDownload(long, { dir });
    const entry = (await listCache({ dir })).find((e) => e.url === long)!;
    const meta = JSON.parse(
      await Deno.readTextFile(entry.path.replace(/data$/, "meta.json")),
    );
    await Deno.rename(entry.path, `${entry.path}.part`);
    await Deno.writeFile(`${entry.path}.part`, new Uint8Array(10), {
      append: true,
    });
    await Deno.writeTextFile(
      entry.path.replace(/data$/, "meta.json"),
      JSON.stringify({ ...meta, complete: false }),
    );
    const sent = d.state.bytes;
    await cachedDownload(long, { dir });
    assertEquals(d.state.bytes, sent + MODEL.length);
    assert(key > 0);
    await d.close();

    // A dead server: a clear error naming the URL.
    await assertRejects(
      () => cachedDownload("http://127.0.0.1:9/m.gguf", { dir, retries: 1 }),
      Error,
      "the download failed after 2 attempts",
    );
    const entries = await listCache({ dir });
    assertEquals(entries.filter((e) => e.complete).length, 5);
    assertEquals(await removeFromCache([url], { dir }), 1);
    assertEquals((await listCache({ dir })).some((e) => e.url === url), false);
    assertEquals(await removeFromCache("all", { dir }), 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hf:// URLs: owner/repo[@revision]/path against the endpoint", () => {
  assertEquals(
    resolveHfUrl("hf://owner/repo/sub/m.gguf", "http://mirror/"),
    "http://mirror/owner/repo/resolve/main/sub/m.gguf",
  );
  assertEquals(
    resolveHfUrl("hf://o/r@v1.0/m.gguf", "https://huggingface.co"),
    "https://huggingface.co/o/r/resolve/v1.0/m.gguf",
  );
  assertEquals(resolveHfUrl("https://x/y.gguf"), "https://x/y.gguf");
  let err = "";
  try {
    resolveHfUrl("hf://just-a-name");
  } catch (e) {
    err = (e as Error).message;
  }
  assertStringIncludes(err, "hf://owner/repo[@revision]/path/to/file");
  for (
    const bad of [
      "hf://o/r/../../x/m.gguf",
      "hf://o/r/m.gguf?x=1",
      "hf://o/r//m.gguf",
    ]
  ) {
    let msg = "";
    try {
      resolveHfUrl(bad, "http://mirror");
    } catch (e) {
      msg = (e as Error).message;
    }
    assertStringIncludes(msg, "no empty, . or .. parts", bad);
  }
});

Deno.test({
  name:
    "loadModel(hf://..., { cache }) downloads once; the second load sends zero body bytes and generates the same tokens",
  ignore: !HAS_GPU,
  async fn() {
    const dir = await Deno.makeTempDir();
    const s = server();
    try {
      const gpu = (await testGpu())!;
      const run = async () => {
        const m = await loadModel("hf://owner/repo/m.gguf", {
          gpu,
          contextLength: 64,
          cache: { dir },
          hfEndpoint: s.base,
        });
        try {
          const g = m.generate("Emma", { maxTokens: 6, stopAtEos: false });
          for await (const _ of g) { /* drain */ }
          return (await g.result).ids;
        } finally {
          m.dispose();
        }
      };
      const first = await run();
      assertEquals(s.state.bytes, MODEL.length);
      const second = await run();
      assertEquals(s.state.bytes, MODEL.length, "zero bytes the second time");
      assertEquals(second, first);
    } finally {
      await s.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("cli: alisa cache ls and rm", async () => {
  const dir = await Deno.makeTempDir();
  const s = server();
  try {
    await cachedDownload(`${s.base}/m.gguf`, { dir });
    const ls = await runCli(["cache", "ls", "--cache-dir", dir]);
    assertEquals(ls.code, 0, ls.stderr);
    assertStringIncludes(ls.stdout, `${s.base}/m.gguf`);
    assertStringIncludes(ls.stdout, String(MODEL.length));
    const rm = await runCli([
      "cache",
      "rm",
      `${s.base}/m.gguf`,
      "--cache-dir",
      dir,
    ]);
    assertEquals(rm.code, 0, rm.stderr);
    assertStringIncludes(rm.stdout, "removed 1");
    const bad = await runCli(["cache", "nope", "--cache-dir", dir]);
    assertEquals(bad.code, 2);
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});
