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

const root = new URL("../", import.meta.url);
const rootPath = decodeURIComponent(root.pathname);

/** The files `deno publish --dry-run` lists, relative to the root. */
async function publishedFiles(): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const text = (dec.decode(out.stdout) + dec.decode(out.stderr))
    // deno-lint-ignore no-control-regex
    .replace(/\x1b\[[0-9;]*m/g, "");
  assert(out.success, text);
  return new Set(
    [...text.matchAll(/file:\/\/(\S+)/g)]
      .map((m) => decodeURIComponent(m[1]))
      .filter((p) => p.startsWith(rootPath))
      .map((p) => p.slice(rootPath.length)),
  );
}

Deno.test({
  name:
    "the README's From code example runs from the published files served over HTTP, imported through a jsr-style import map",
  ignore: !HAS_GPU,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const files = await publishedFiles();
    assert(files.has("mod.ts") && files.has("wasm/pkg/alisa_wasm_bg.wasm"));
    assert(![...files].some((f) => f.startsWith("tests/")));
    const ac = new AbortController();
    const served: string[] = [];
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
      onListen: () => {},
    }, async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname).slice(1);
      if (!files.has(path)) {
        return new Response("not in the package", { status: 404 });
      }
      served.push(path);
      const body = await Deno.readFile(new URL(path, root));
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.get("range") ?? "");
      if (range) {
        const a = Number(range[1]);
        const b = range[2]
          ? Math.min(Number(range[2]), body.length - 1)
          : body.length - 1;
        return new Response(body.subarray(a, b + 1), {
          status: 206,
          headers: { "content-range": `bytes ${a}-${b}/${body.length}` },
        });
      }
      const type = path.endsWith(".wasm")
        ? "application/wasm"
        : path.endsWith(".ts")
        ? "application/typescript"
        : "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    });
    const base = `http://127.0.0.1:${server.addr.port}/`;
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
      ac.abort();
      await server.finished;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
