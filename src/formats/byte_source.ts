/**
 * Random-access byte sources for model files: a path, a `Deno.FsFile`, a
 * `Blob`/`File`, an in-memory `Uint8Array`, an HTTP(S) URL (range requests)
 * or a `ReadableStream` (forward-only). Loaders read headers and tensors
 * through this one interface, piece by piece, so a multi-GB model is never
 * held whole in memory.
 *
 * @module
 */
import { openFile, seekStart } from "../platform/fs.ts";

/** Where model bytes come from. */
export interface ByteSource {
  /** A name for error messages (a path, a URL, `"<bytes>"`). */
  readonly name: string;
  /** Total size in bytes, or `undefined` for a stream of unknown length. */
  readonly size: number | undefined;
  /**
   * Reads exactly `length` bytes at `offset`. Throws a `RangeError` naming
   * the source when the range ends past the end.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases the file handle or stream. */
  close(): void;
}

/** Anything {@linkcode openByteSource} accepts. */
export type ByteSourceInput =
  | string
  | URL
  | Uint8Array
  | ArrayBuffer
  | Blob
  | Deno.FsFile
  | ReadableStream<Uint8Array>
  | ByteSource;

function pastEnd(name: string, offset: number, length: number, size: number) {
  return new RangeError(
    `${name}: reading ${length} bytes at offset ${offset} runs past the end (the file has ${size} bytes)`,
  );
}

/** An in-memory source. */
export class BytesSource implements ByteSource {
  readonly size: number;
  constructor(readonly bytes: Uint8Array, readonly name = "<bytes>") {
    this.size = bytes.length;
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.size) {
      return Promise.reject(pastEnd(this.name, offset, length, this.size));
    }
    return Promise.resolve(this.bytes.subarray(offset, offset + length));
  }
  close() {}
}

/**
 * A `Deno.FsFile`, read with seek + read. Reads are queued one after the
 * other, since concurrent seeks on one handle would interleave.
 */
export class FileSource implements ByteSource {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly file: Deno.FsFile,
    readonly size: number,
    readonly name: string,
    private readonly owned: boolean,
  ) {}

  /** Opens `path` read-only. */
  static async open(path: string | URL): Promise<FileSource> {
    const { file, size } = await openFile(path);
    return new FileSource(file, size, String(path), true);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    const next = this.queue.then(() => this.readNow(offset, length));
    this.queue = next.catch(() => {});
    return next;
  }

  private async readNow(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.size) {
      throw pastEnd(this.name, offset, length, this.size);
    }
    const out = new Uint8Array(length);
    await seekStart(this.file, offset);
    let got = 0;
    while (got < length) {
      const n = await this.file.read(out.subarray(got));
      if (n === null) throw pastEnd(this.name, offset, length, offset + got);
      got += n;
    }
    return out;
  }

  close() {
    if (this.owned) this.file.close();
  }
}

/** A `Blob` or `File` (browsers' file inputs). */
export class BlobSource implements ByteSource {
  readonly size: number;
  constructor(readonly blob: Blob, readonly name = "<blob>") {
    this.size = blob.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.size) {
      throw pastEnd(this.name, offset, length, this.size);
    }
    const buf = await this.blob.slice(offset, offset + length).arrayBuffer();
    return new Uint8Array(buf);
  }
  close() {}
}

/** An HTTP(S) URL read with `Range` requests. */
export class HttpSource implements ByteSource {
  private constructor(readonly name: string, readonly size: number) {}

  /** Asks the server for the size (HEAD) and checks it accepts ranges. */
  static async open(url: string | URL): Promise<HttpSource> {
    const res = await fetch(url, { method: "HEAD" });
    if (!res.ok) {
      throw new TypeError(`${url}: HTTP ${res.status} ${res.statusText}`);
    }
    const len = Number(res.headers.get("content-length"));
    if (!Number.isSafeInteger(len)) {
      throw new TypeError(`${url}: the server did not report a Content-Length`);
    }
    return new HttpSource(String(url), len);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.size) {
      throw pastEnd(this.name, offset, length, this.size);
    }
    if (length === 0) return new Uint8Array(0);
    const res = await fetch(this.name, {
      headers: { Range: `bytes=${offset}-${offset + length - 1}` },
    });
    if (res.status !== 206) {
      await res.body?.cancel();
      throw new TypeError(
        `${this.name}: expected 206 Partial Content for a range request, got ${res.status}`,
      );
    }
    const buf = new Uint8Array(await res.arrayBuffer());
    if (buf.length !== length) {
      throw new RangeError(
        `${this.name}: asked for ${length} bytes at ${offset}, got ${buf.length}`,
      );
    }
    return buf;
  }
  close() {}
}

/**
 * A `ReadableStream`, read forward only. Reads must come at increasing
 * offsets (GGUF and safetensors loaders read tensors in file order); the
 * bytes skipped between reads are discarded, so memory stays bounded.
 */
export class StreamSource implements ByteSource {
  private reader: ReadableStreamDefaultReader<Uint8Array>;
  private pos = 0; // file offset of buf[0]
  private buf: Uint8Array = new Uint8Array(0);
  private done = false;

  constructor(
    stream: ReadableStream<Uint8Array>,
    readonly size: number | undefined = undefined,
    readonly name = "<stream>",
  ) {
    this.reader = stream.getReader();
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.size !== undefined && offset + length > this.size) {
      throw pastEnd(this.name, offset, length, this.size);
    }
    if (offset < this.pos) {
      throw new RangeError(
        `${this.name}: a stream reads forward only, but offset ${offset} comes before ${this.pos}`,
      );
    }
    // Drop what lies before `offset`: it can never be read again.
    const drop = Math.min(this.buf.length, offset - this.pos);
    this.buf = this.buf.subarray(drop);
    this.pos += drop;
    const end = offset + length;
    while (this.pos + this.buf.length < end && !this.done) {
      const { value, done } = await this.reader.read();
      if (done) {
        this.done = true;
        break;
      }
      // Bytes wholly before `offset` (skipped data) are not kept.
      const skip = Math.max(
        0,
        Math.min(value.length, offset - (this.pos + this.buf.length)),
      );
      if (this.buf.length === 0) {
        this.pos += skip;
        this.buf = value.subarray(skip);
        continue;
      }
      const next = new Uint8Array(this.buf.length + value.length);
      next.set(this.buf);
      next.set(value, this.buf.length);
      this.buf = next;
    }
    if (this.pos + this.buf.length < end) {
      throw pastEnd(this.name, offset, length, this.pos + this.buf.length);
    }
    return this.buf.slice(offset - this.pos, end - this.pos);
  }

  /** Like `read`, but returns fewer bytes where the stream ends first. */
  async readAtMost(offset: number, length: number): Promise<Uint8Array> {
    try {
      return await this.read(offset, length);
    } catch (e) {
      if (!this.done || offset < this.pos) throw e;
      return this.buf.slice(offset - this.pos);
    }
  }

  close() {
    this.reader.cancel().catch(() => {});
  }
}

function isByteSource(x: unknown): x is ByteSource {
  return typeof x === "object" && x !== null && "read" in x &&
    "close" in x && "name" in x && "size" in x &&
    !(x instanceof Blob) && !(x instanceof ReadableStream);
}

/** Opens any supported input as a {@linkcode ByteSource}. */
export async function openByteSource(
  input: ByteSourceInput,
): Promise<ByteSource> {
  if (typeof input === "string" || input instanceof URL) {
    const s = String(input);
    if (/^https?:\/\//.test(s)) return await HttpSource.open(s);
    return await FileSource.open(input);
  }
  if (input instanceof Uint8Array) return new BytesSource(input);
  if (input instanceof ArrayBuffer) {
    return new BytesSource(new Uint8Array(input));
  }
  if (input instanceof Blob) {
    return new BlobSource(input, (input as File).name ?? "<blob>");
  }
  if (input instanceof ReadableStream) return new StreamSource(input);
  if (isByteSource(input)) return input;
  const file = input as Deno.FsFile;
  const { size } = await file.stat();
  return new FileSource(file, size, "<file>", false);
}

/**
 * Reads up to `length` bytes at `offset`: fewer only where the source ends
 * first. Used for headers, whose length is not known before parsing.
 */
export async function readAtMost(
  src: ByteSource,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  if (src.size !== undefined) {
    return await src.read(
      offset,
      Math.max(0, Math.min(length, src.size - offset)),
    );
  }
  if (src instanceof StreamSource) return await src.readAtMost(offset, length);
  return await src.read(offset, length);
}
