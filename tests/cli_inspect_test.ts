/**
 * `cli.ts inspect --json` on the four Austen files: the same config (dim 256,
 * 6 layers, 8 heads, 4 KV heads, FFN 768, vocab 4096, context 1024), every
 * tensor, the tokenizer summary; the GPU memory of K-quant files (kept
 * quantized); and clear errors for bad input.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { hasShared, sharedPath } from "./_shared.ts";
import { q4kmType, requantizedGguf } from "./_quant.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

async function cli(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

const MODELS = [
  "models/austen-5m-f32.gguf",
  "models/austen-5m-f16.gguf",
  "models/austen-5m-q8_0.gguf",
  "models/austen-5m-hf",
];

Deno.test({
  name: "inspect --json gives the same config for all four Austen files",
  ignore: !MODELS.every(hasShared),
  async fn() {
    const reports = [];
    for (const m of MODELS) {
      const { code, stdout, stderr } = await cli(
        "inspect",
        sharedPath(m),
        "--json",
      );
      assertEquals(code, 0, stderr);
      reports.push(JSON.parse(stdout));
    }
    for (const r of reports) {
      assertEquals(r.arch, "llama");
      const c = r.config;
      assertEquals(
        [
          c.dim,
          c.n_layers,
          c.n_heads,
          c.n_kv_heads,
          c.ffn_dim,
          c.vocab_size,
          c.context_length,
        ],
        [256, 6, 8, 4, 768, 4096, 1024],
      );
      assertEquals(c.rope_theta, 10000);
      assertEquals(c.norm_eps, 1e-5);
      assertEquals(r.config, reports[0].config);
      assertEquals(r.tokenizer, {
        model: "llama",
        vocab_size: 4096,
        bos_id: 1,
        eos_id: 2,
      });
      assertEquals(r.tensors.length, 56);
      for (const t of r.tensors) {
        assert(
          typeof t.name === "string" && Array.isArray(t.shape) &&
            typeof t.type === "string",
        );
      }
      assertEquals(
        r.tensors.map((t: { name: string; shape: number[] }) =>
          `${t.name}:${t.shape}`
        ).sort(),
        reports[0].tensors.map((t: { name: string; shape: number[] }) =>
          `${t.name}:${t.shape}`
        )
          .sort(),
      );
    }
    assertEquals(reports[2].tensors[0].type, "Q8_0");
    // The GPU keeps Q8_0 quantized: about 34/128 of the f32 weights.
    assert(reports[2].gpu.weight_bytes < reports[0].gpu.weight_bytes * 0.3);
    assertEquals(reports[0].gpu.kv_bytes_per_token, 2 * 6 * 4 * 32 * 2);
    assertEquals(reports[2].totals.parameters, reports[0].totals.parameters);
  },
});

Deno.test({
  name:
    "inspect --json: a Q4_K_M-style file's GPU weights are its tensor bytes; Q2_K counts as f16",
  ignore: !hasShared("models/austen-5m-f32.gguf"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const src = sharedPath("models/austen-5m-f32.gguf");
      const q4km = await requantizedGguf(src, q4kmType);
      await Deno.writeFile(`${dir}/q4km.gguf`, q4km.quant);
      // Every other FFN matrix Q2_K (dequantized to f16 at upload).
      const mixed = await requantizedGguf(
        src,
        (name, layer) => /ffn_/.test(name) && layer % 2 === 0 ? "Q2_K" : "Q4_K",
      );
      await Deno.writeFile(`${dir}/mixed.gguf`, mixed.quant);
      const report = async (f: string) => {
        const { code, stdout, stderr } = await cli(
          "inspect",
          `${dir}/${f}`,
          "--json",
        );
        assertEquals(code, 0, stderr);
        return JSON.parse(stdout);
      };
      const r = await report("q4km.gguf");
      assertEquals(
        new Set(r.tensors.map((t: { type: string }) => t.type)),
        new Set(["Q4_K", "Q6_K", "F32"]),
      );
      const ratio = r.gpu.weight_bytes / r.totals.bytes;
      assert(Math.abs(ratio - 1) <= 0.05, `GPU / file bytes ${ratio}`);
      // Dequantized to f16 it would be 2 bytes per parameter: 3.4x more.
      assert(r.gpu.weight_bytes < r.totals.parameters * 2 / 3);
      const m = await report("mixed.gguf");
      let want = 0;
      for (const t of m.tensors) {
        const n = t.shape.reduce((a: number, b: number) => a * b, 1);
        want += t.shape.length === 1
          ? n * 4
          : t.type === "Q2_K"
          ? n * 2
          : t.bytes;
      }
      assertEquals(m.gpu.weight_bytes, want);
      assert(m.gpu.weight_bytes > m.totals.bytes * 1.5);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "inspect prints a readable table",
  ignore: !hasShared("models/austen-5m-q8_0.gguf"),
  async fn() {
    const { code, stdout } = await cli(
      "inspect",
      sharedPath("models/austen-5m-q8_0.gguf"),
    );
    assertEquals(code, 0);
    assertStringIncludes(stdout, "GGUF v3, architecture llama");
    assertStringIncludes(stdout, "blk.5.ffn_down.weight");
    assertStringIncludes(stdout, "total: 56 tensors");
  },
});

Deno.test("inspect reports bad input as a one-line error and exit code 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/x.gguf`, "not a model at all");
    let r = await cli("inspect", `${dir}/x.gguf`);
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, "not a GGUF file");
    r = await cli("inspect", `${dir}/missing.gguf`);
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, "error:");
    r = await cli("inspect", dir); // a directory without config.json
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, "config.json is missing");
    r = await cli("frobnicate");
    assertEquals(r.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
