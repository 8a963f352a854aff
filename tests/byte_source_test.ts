/**
 * Every byte source (path, bytes, Blob, forward-only stream, HTTP range
 * requests from a local server) reads the same header and tensors.
 */
import { assertEquals, assertRejects } from "@std/assert";
import { GgufFile } from "../src/formats/gguf.ts";
import { BytesSource, StreamSource } from "../src/formats/byte_source.ts";
import { FIXTURES_DIR } from "./_shared.ts";

const PATH = `${FIXTURES_DIR}/quant/quant-types.gguf`;

async function snapshot(g: GgufFile) {
  const out: Record<string, number[]> = {};
  for (const t of g.tensors) out[t.name] = Array.from(await g.read(t.name));
  g.close();
  return out;
}

Deno.test("path, bytes, Blob, stream and HTTP give identical tensors", async () => {
  const bytes = await Deno.readFile(PATH);
  const want = await snapshot(await GgufFile.open(PATH));
  assertEquals(await snapshot(await GgufFile.open(bytes)), want);
  assertEquals(await snapshot(await GgufFile.open(new Blob([bytes]))), want);
  // A stream of unknown size, delivered in odd-sized chunks.
  const chunked = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 777) {
        c.enqueue(bytes.slice(i, i + 777));
      }
      c.close();
    },
  });
  assertEquals(
    await snapshot(await GgufFile.open(new StreamSource(chunked))),
    want,
  );

  const ac = new AbortController();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: ac.signal,
    onListen() {},
  }, (req) => {
    const headers = {
      "content-length": String(bytes.length),
      "accept-ranges": "bytes",
    };
    if (req.method === "HEAD") return new Response(null, { headers });
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.get("range") ?? "");
    if (!m) return new Response(bytes, { headers });
    const part = bytes.slice(Number(m[1]), Number(m[2]) + 1);
    return new Response(part, {
      status: 206,
      headers: { "content-length": String(part.length) },
    });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}/quant-types.gguf`;
    assertEquals(await snapshot(await GgufFile.open(url)), want);
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("a stream refuses to read backwards, a bytes source past its end", async () => {
  const s = new StreamSource(new Blob([new Uint8Array(100)]).stream());
  await s.read(50, 10);
  await assertRejects(() => s.read(0, 10), RangeError, "forward only");
  await assertRejects(() => s.read(90, 20), RangeError, "past the end");
  await assertRejects(
    () => new BytesSource(new Uint8Array(4)).read(2, 4),
    RangeError,
    "past the end",
  );
});

Deno.test("concurrent reads of one file return the right bytes", async () => {
  const bytes = await Deno.readFile(PATH);
  const g = await GgufFile.open(PATH);
  try {
    const all = await Promise.all(g.tensors.map((t) => g.readRaw(t.name)));
    g.tensors.forEach((t, i) => {
      assertEquals(
        all[i],
        bytes.subarray(t.fileOffset, t.fileOffset + t.nBytes),
      );
    });
  } finally {
    g.close();
  }
});
