/**
 * The file system, for path arguments only: the one place library code
 * reaches Deno's file APIs. Everything else under `src/` (except the CLI)
 * uses web APIs (`fetch`, `Blob`, streams, `navigator.gpu`,
 * `WebAssembly`), so the module runs in a browser, where a model comes as a
 * URL, a `Blob` (a file input), bytes or a stream, and a path is a clear
 * TypeError.
 *
 * @module
 */

/** The subset of Deno this module uses. */
interface DenoFs {
  open(
    path: string | URL,
    options: { read: true },
  ): Promise<Deno.FsFile>;
  stat(path: string | URL): Promise<{ isFile: boolean; isDirectory: boolean }>;
  readFile(path: string | URL): Promise<Uint8Array>;
  readTextFile(path: string | URL): Promise<string>;
  errors: { NotFound: new (...a: never[]) => Error };
  SeekMode: { Start: number };
}

/** Deno's file APIs, or a TypeError naming `path` where there are none. */
function fs(path: string | URL): DenoFs {
  const d = (globalThis as { Deno?: DenoFs }).Deno;
  if (!d?.open) {
    throw new TypeError(
      `${
        String(path)
      }: a file path needs Deno's file system; here pass a URL, a Blob (a file input), bytes or a stream`,
    );
  }
  return d;
}

/** Whether file system paths can be read here (Deno). */
export function hasFileSystem(): boolean {
  return typeof (globalThis as { Deno?: DenoFs }).Deno?.open === "function";
}

/** Opens `path` read-only; TypeError unless it is a file. */
export async function openFile(
  path: string | URL,
): Promise<{ file: Deno.FsFile; size: number }> {
  const file = await fs(path).open(path, { read: true });
  const { size, isFile } = await file.stat();
  if (!isFile) {
    file.close();
    throw new TypeError(`${String(path)} is not a file`);
  }
  return { file, size };
}

/** Seeks an open file to `offset` bytes from its start. */
export async function seekStart(
  file: Deno.FsFile,
  offset: number,
): Promise<void> {
  await file.seek(offset, fs("<file>").SeekMode.Start);
}

/** Whether `path` is a directory (false where it does not exist or there is no file system). */
export async function isDirectory(path: string | URL): Promise<boolean> {
  if (!hasFileSystem()) return false;
  try {
    return (await fs(path).stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** Whether `path` exists. */
export async function exists(path: string | URL): Promise<boolean> {
  try {
    await fs(path).stat(path);
    return true;
  } catch (e) {
    if (e instanceof TypeError && !hasFileSystem()) throw e;
    return false;
  }
}

/** The bytes of the file at `path`. */
export async function readFile(path: string | URL): Promise<Uint8Array> {
  return await fs(path).readFile(path);
}

/** The text of the file at `path`, or null when there is no such file. */
export async function readTextFileOrNull(
  path: string | URL,
): Promise<string | null> {
  const d = fs(path);
  try {
    return await d.readTextFile(path);
  } catch (e) {
    if (e instanceof d.errors.NotFound) return null;
    throw e;
  }
}

/** `dir` and `name` joined with "/" (which Deno accepts on every system). */
export function joinPath(dir: string, name: string): string {
  return `${dir.replace(/[\\/]+$/, "")}/${name}`;
}
