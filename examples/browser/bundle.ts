/**
 * The browser bundle: `mod.ts` as one ES module built by esbuild
 * (`npm:esbuild@0.28.2`, pinned in deno.json), with the WGSL shaders inlined; the Wasm and the embedded model
 * are copied beside it (the Wasm loader fetches `alisa_wasm_bg.wasm` next
 * to the module).
 *
 *     deno task bundle        # writes examples/browser/dist/
 *
 * `@huggingface/jinja` (an npm package, named in deno.json's import map) is
 * resolved to Deno's npm cache, so the build needs no node_modules.
 *
 * @module
 */
import * as esbuild from "esbuild";

const here = new URL("./", import.meta.url);
const root = new URL("../../", import.meta.url);
const dist = new URL("dist/", here);
const path = (u: URL) => decodeURIComponent(u.pathname);

/** Deno's npm cache folder of a package (cached by `deno cache` first). */
async function npmPackageDir(name: string, version: string): Promise<string> {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
  }).output();
  const { npmCache } = JSON.parse(new TextDecoder().decode(info.stdout));
  const dir = `${npmCache}/registry.npmjs.org/${name}/${version}`;
  await Deno.stat(dir).catch(() => {
    throw new Error(
      `${dir} is missing: run \`deno cache mod.ts\` first (it fetches npm:${name}@${version})`,
    );
  });
  return dir;
}

const jinja = await npmPackageDir("@huggingface/jinja", "0.5.11");
await Deno.mkdir(dist, { recursive: true });
const result = await esbuild.build({
  entryPoints: [path(new URL("mod.ts", root))],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  outfile: path(new URL("alisa.js", dist)),
  // deno.json's import map entry and the text imports of the shaders.
  plugins: [{
    name: "alisa-resolve",
    setup(build) {
      build.onResolve({ filter: /^@huggingface\/jinja$/ }, () => ({
        path: `${jinja}/dist/index.js`,
      }));
    },
  }],
  loader: { ".wgsl": "text" },
  // The Deno-only download cache (src/platform/cache.ts) is imported
  // dynamically, only when a `cache` option is given; never in a page.
  external: ["node:*"],
  // The Wasm loader's `new URL("alisa_wasm_bg.wasm", import.meta.url)`
  // stays relative to the bundle; the file is copied beside it.
  metafile: true,
  logLevel: "warning",
});
await esbuild.stop();
// A page cannot load a module with a static node: import (the Deno-only
// download cache must stay behind its dynamic import).
const out = await Deno.readTextFile(new URL("alisa.js", dist));
const nodeImport = /^\s*import[^;]*from\s*["']node:[^"']+["']/m.exec(out);
if (nodeImport) {
  console.error(
    `the bundle imports a node: module statically: ${nodeImport[0]}`,
  );
  Deno.exit(1);
}
await Deno.copyFile(
  new URL("wasm/pkg/alisa_wasm_bg.wasm", root),
  new URL("alisa_wasm_bg.wasm", dist),
);
await Deno.copyFile(
  new URL("src/assets/austen-5m-q8_0.gguf", root),
  new URL("austen-5m-q8_0.gguf", dist),
);
const bytes = (await Deno.stat(new URL("alisa.js", dist))).size;
console.log(
  `examples/browser/dist/alisa.js: ${(bytes / 1024).toFixed(0)} KiB from ${
    Object.keys(result.metafile!.inputs).length
  } inputs; alisa_wasm_bg.wasm and austen-5m-q8_0.gguf beside it`,
);
