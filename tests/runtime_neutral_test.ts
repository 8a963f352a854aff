/**
 * Library code runs on web APIs only: outside `src/cli/` (the command line)
 * and `src/platform/` (the Deno-only adapters: the file system for path
 * arguments, the download cache), no file under `src/` calls Deno or imports
 * a `node:` module. Type names (`Deno.FsFile`) and comments are allowed.
 */
import { assertEquals } from "@std/assert";

const src = new URL("../src/", import.meta.url);

async function* walk(dir: URL, rel = ""): AsyncGenerator<[string, URL]> {
  for await (const e of Deno.readDir(dir)) {
    const u = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* walk(u, `${rel}${e.name}/`);
    else if (e.name.endsWith(".ts")) yield [`${rel}${e.name}`, u];
  }
}

/** The code of `text` without comments and string contents (roughly). */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:])\/\/.*$/gm, "$1");
}

Deno.test("library code outside src/cli and src/platform uses no Deno or node: APIs", async () => {
  const offenders: string[] = [];
  let files = 0;
  for await (const [rel, url] of walk(src)) {
    if (rel.startsWith("cli/") || rel.startsWith("platform/")) continue;
    files++;
    const c = code(await Deno.readTextFile(url));
    // Deno.X used as a value (a call, a property read), not a type.
    for (const m of c.matchAll(/\bDeno\.([A-Za-z]+)/g)) {
      if (m[1] !== "FsFile") offenders.push(`${rel}: Deno.${m[1]}`);
    }
    for (const m of c.matchAll(/\bDeno\s*\?\.\s*([A-Za-z]+)/g)) {
      offenders.push(`${rel}: Deno?.${m[1]}`);
    }
    for (
      const m of c.matchAll(
        /(?:from\s*|import\s*\(\s*|import\s+)["'](node:[^"']+)["']/g,
      )
    ) offenders.push(`${rel}: ${m[1]}`);
    for (
      const m of c.matchAll(
        /globalThis\s*(?:\.\s*Deno|\[\s*["']Deno["']\s*\])/g,
      )
    ) {
      offenders.push(`${rel}: ${m[0]}`);
    }
    if (/[=(,]\s*Deno\s*[;),]/.test(c)) {
      offenders.push(`${rel}: Deno as a value`);
    }
    if (/\.\s*Deno\b/.test(c)) offenders.push(`${rel}: a .Deno property`);
  }
  assertEquals(offenders, []);
  assertEquals(files > 50, true, `${files} files scanned`);
});
