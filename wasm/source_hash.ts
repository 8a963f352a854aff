/**
 * The hash that ties the committed Wasm output to the Rust sources it was
 * built from: SHA-256 over the crate's manifest, lockfile and every `.rs`
 * file (sorted paths, each as `path\0content\0`), plus the toolchain pins.
 * `build.ts` records it in the generated loader; `check.ts` recomputes it,
 * so CI notices a Rust change whose Wasm was not rebuilt, without Rust.
 *
 * @module
 */

/** Toolchain pins that also determine the output bytes. */
export const TOOLCHAIN = {
  rustc: "1.96.0 (Debian rustc-web)",
  wasmBindgen: "0.2.130",
  target: "wasm32-unknown-unknown",
};

/** The header line the build writes at the top of the generated JS. */
export const HASH_PREFIX = "// alisa-wasm source-hash: ";

async function listSources(root: URL): Promise<string[]> {
  const out = ["Cargo.toml", "Cargo.lock", "build.ts"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      const p = `${dir}${e.name}`;
      if (e.isDirectory) await walk(`${p}/`);
      else if (e.name.endsWith(".rs")) out.push(p);
    }
  };
  await walk("src/");
  return out.sort();
}

/** Computes the source hash of the crate at `root` (a directory URL). */
export async function sourceHash(
  root: URL = new URL("./", import.meta.url),
): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [enc.encode(JSON.stringify(TOOLCHAIN) + "\0")];
  for (const p of await listSources(root)) {
    const text = (await Deno.readTextFile(new URL(p, root))).replaceAll(
      "\r\n",
      "\n",
    );
    parts.push(enc.encode(`${p}\0${text}\0`));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  const digest = await crypto.subtle.digest("SHA-256", all);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}
