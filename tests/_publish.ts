/**
 * The files `deno publish --dry-run` lists, relative to the project root
 * (no network): shared by `.ci/check_publish.ts` and the JSR import test.
 *
 * @module
 */

/** The project root. */
export const ROOT: URL = new URL("../", import.meta.url);

/** The dry run's file list; an Error with its output when it fails. */
export async function publishedFiles(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const raw = dec.decode(out.stdout) + dec.decode(out.stderr);
  // deno-lint-ignore no-control-regex
  const text = raw.replace(/\x1b\[[0-9;]*m/g, "");
  if (!out.success) {
    throw new Error(`deno publish --dry-run failed:\n${text}`);
  }
  const rootPath = decodeURIComponent(ROOT.pathname);
  return [...text.matchAll(/file:\/\/(\S+)/g)]
    .map((m) => decodeURIComponent(m[1]))
    .filter((p) => p.startsWith(rootPath))
    .map((p) => p.slice(rootPath.length));
}
