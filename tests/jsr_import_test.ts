/**
 * The package as a JSR user gets it: only the files `deno publish` would
 * ship (its dry-run list) are served over HTTP on loopback, and a script in
 * a fresh directory imports `@alisa/alisa` through an import map pointed at
 * them (as `jsr:` resolution would), then runs the README's "From code"
 * example on the embedded model, which it loads over HTTP with range
 * requests.
 */
import { assert, assertStringIncludes } from "@std/assert";
import { HAS_GPU } from "./_gpu.ts";
import { serveFiles } from "./_file_server.ts";
import { publishedFiles, ROOT as root } from "./_publish.ts";

Deno.test({
  name:
    "the README's From code example runs from the published files served over HTTP, imported through a jsr-style import map",
  ignore: !HAS_GPU,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const files = new Set(await publishedFiles());
    assert(files.has("mod.ts") && files.has("wasm/pkg/alisa_wasm_bg.wasm"));
    assert(![...files].some((f) => f.startsWith("tests/")));
    // Only what the package holds is served.
    const server = serveFiles(root, { allow: (p) => files.has(p) });
    const base = server.url;
    const served = server.served;
    const dir = await Deno.makeTempDir();
    try {
      // The package's own import map entries, as JSR applies them.
      const pkg = JSON.parse(
        await Deno.readTextFile(new URL("deno.json", root)),
      );
      await Deno.writeTextFile(
        `${dir}/deno.json`,
        JSON.stringify({
          imports: {
            "@alisa/alisa": `${base}mod.ts`,
            "@huggingface/jinja": pkg.imports["@huggingface/jinja"],
          },
        }),
      );
      await Deno.writeTextFile(
        `${dir}/main.ts`,
        `import { loadModel } from "@alisa/alisa";

const model = await loadModel(undefined, {
  onProgress: ({ loaded, total }) => loaded === total && console.error(\`\${loaded}/\${total}\`),
  kv: { gpuBytes: 120_000 }, // K/V under a GPU budget
}); // no argument: the embedded model
const gen = model.generate("It is a truth universally acknowledged", {
  maxTokens: 24,
  temperature: 0.7,
  topK: 40,
  topP: 0.95,
  seed: 1,
  stop: ["\\n\\n"],
  policy: { name: "swa", sparsity: 0.8 },
  onStep: (s) => {},
});
for await (const piece of gen) {
  await Deno.stdout.write(new TextEncoder().encode(piece.text));
}
const { decodeTokS, kvStats } = await gen.result;
const logits = await model.logits([1, 597, 366]);
console.log(\`\\nOK \${decodeTokS > 0} \${kvStats.tiered} \${logits.length === 3 * model.config.vocabSize}\`);
model.dispose();
`,
      );
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `--reload=${base}`,
          `--config=${dir}/deno.json`,
          `${dir}/main.ts`,
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
        env: { DENO_NO_UPDATE_CHECK: "1" },
      }).output();
      const dec = new TextDecoder();
      const out = dec.decode(run.stdout), err = dec.decode(run.stderr);
      assert(run.success, `${out}\n${err}`);
      assertStringIncludes(out, "OK true true true");
      // It came from the server: the module, shaders, Wasm and model.
      assert(served.includes("mod.ts"));
      assert(served.includes("wasm/pkg/alisa_wasm_bg.wasm"));
      assert(served.some((p) => p.endsWith(".wgsl")));
      assert(served.includes("src/assets/austen-5m-q8_0.gguf"));
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
