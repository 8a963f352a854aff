/**
 * A loopback static file server for tests: files under a directory (or
 * only those `allow` accepts), with range requests as the model loader
 * makes them, and the body bytes sent per file extension counted.
 *
 * @module
 */

const TYPES: Record<string, string> = {
  html: "text/html",
  js: "text/javascript",
  ts: "application/typescript",
  wgsl: "text/plain",
  wasm: "application/wasm",
  gguf: "application/octet-stream",
  png: "image/png",
};

/** A running server: its base URL, what it served, and how to stop it. */
export interface FileServer {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  /** Body bytes sent, by file extension. */
  sent: Record<string, number>;
  /** Paths requested (relative to the directory), in order. */
  served: string[];
  close(): Promise<void>;
}

/** Serves `dir` on 127.0.0.1 (a free port); `index` answers `/`. */
export function serveFiles(
  dir: URL,
  options: { allow?: (path: string) => boolean; index?: string } = {},
): FileServer {
  const ac = new AbortController();
  const sent: Record<string, number> = {};
  const served: string[] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: () => {},
  }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname).replace(
      /^\/+/,
      "",
    ) || options.index || "";
    if (path.split("/").includes("..")) {
      return new Response("no", { status: 403 });
    }
    if (options.allow && !options.allow(path)) {
      return new Response("not served", { status: 404 });
    }
    let body: Uint8Array<ArrayBuffer>;
    try {
      body = await Deno.readFile(new URL(path, dir));
    } catch {
      return new Response("not found", { status: 404 });
    }
    served.push(path);
    const ext = path.split(".").pop()!;
    const count = (n: number) => (sent[ext] = (sent[ext] ?? 0) + n);
    const headers: Record<string, string> = {
      "content-type": TYPES[ext] ?? "application/octet-stream",
      "accept-ranges": "bytes",
    };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.get("range") ?? "");
    if (range) {
      const start = Number(range[1]);
      const end = range[2]
        ? Math.min(Number(range[2]), body.length - 1)
        : body.length - 1;
      if (start >= body.length || end < start) {
        return new Response(null, {
          status: 416,
          headers: { "content-range": `bytes */${body.length}` },
        });
      }
      count(end + 1 - start);
      return new Response(body.subarray(start, end + 1), {
        status: 206,
        headers: {
          ...headers,
          "content-range": `bytes ${start}-${end}/${body.length}`,
        },
      });
    }
    count(body.length);
    return new Response(body, { headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    sent,
    served,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}
