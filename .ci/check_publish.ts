/**
 * Checks what `deno publish` would ship (a dry run, no network): the
 * module, its Wasm and loader, every shader and the embedded model; no
 * tests, fixtures, benchmarks, CI files or Rust sources.
 *
 *     deno task check:publish
 *
 * Exits 1 naming each file that should not ship or is missing.
 *
 * @module
 */
import { publishedFiles, ROOT as root } from "../tests/_publish.ts";

const files = await publishedFiles().catch((e) => {
  console.error((e as Error).message);
  Deno.exit(1);
});
const shipped = new Set(files);
const problems: string[] = [];
const forbidden = [
  /^tests\//,
  /^bench\//,
  /^examples\//,
  /^\.ci\//,
  /^\.device\//,
  /^wasm\/src\//,
  /^wasm\/target\//,
  /^wasm\/Cargo\./,
  /\.rs$/,
  /_test\.ts$/,
];
for (const f of files) {
  if (forbidden.some((r) => r.test(f))) problems.push(`ships ${f}`);
}
const required = [
  "mod.ts",
  "cli.ts",
  "README.md",
  "wasm/pkg/alisa_wasm.js",
  "wasm/pkg/alisa_wasm_bg.wasm",
  "src/assets/austen-5m-q8_0.gguf",
];
for await (const f of walk("shaders")) required.push(f);
for (const f of required) {
  if (!shipped.has(f)) problems.push(`does not ship ${f}`);
}
if (problems.length) {
  console.error(`deno publish would be wrong:\n  ${problems.join("\n  ")}`);
  Deno.exit(1);
}
console.log(
  `deno publish --dry-run: ${files.length} files, ${
    required.length - 6
  } shaders, the Wasm and the embedded model; no tests, benchmarks or Rust sources`,
);

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(new URL(dir + "/", root))) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(p);
    else if (e.name.endsWith(".wgsl")) yield p;
  }
}
