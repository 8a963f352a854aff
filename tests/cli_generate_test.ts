/**
 * `cli.ts generate` with bad numeric options: each exits 2 within seconds
 * with a message naming the option and its allowed range, before the
 * model is loaded (`--context 99999999` used to compute a RoPE table of
 * 10^8 positions and never finish). The embedded model's context is 1024
 * and its vocabulary 4096.
 */
import { assert } from "@std/assert";
import { type BadInput, expectBadInputs, runCli } from "./_cli.ts";
import { HAS_GPU } from "./_gpu.ts";

/** A bad option fails in ~0.3 s (model header + adapter); 10 s leaves room for a loaded machine. */
const LIMIT_MS = 10_000;

const CASES: BadInput[] = [
  // The KV store's options
  ...["12XB", "0", "-1", "abc"].map((v) => ({
    args: ["--gpu-kv-budget", v],
    message: `--gpu-kv-budget: "${v}"`,
  })),
  {
    args: ["--gpu-kv-budget", "1MiB", "--kv-int8", "maybe"],
    message: `--kv-int8: "maybe" is not on or off`,
  },
  {
    args: ["--gpu-kv-budget", "1MiB", "--recompute", "sometimes"],
    message: `--recompute: "sometimes" is not auto, on or off`,
  },
  {
    args: ["--kv-int8", "off"],
    message:
      `--kv-int8 applies to a KV budget (tokens that spill): add --gpu-kv-budget SIZE`,
  },
  {
    args: ["--recompute", "on"],
    message:
      `--recompute applies to a KV budget (tokens that spill): add --gpu-kv-budget SIZE`,
  },
  // --context: 2 to the model's trained context
  ...["99999999", "1", "-5", "1.5", "abc"].map((v) => ({
    args: ["--context", v],
    message:
      `--context must be an integer from 2 to 1024 (the model's trained context), got "${v}"`,
  })),
  // --max-tokens: 1 to the context
  ...["99999999", "0", "-3", "2.5"].map((v) => ({
    args: ["--max-tokens", v],
    message:
      `--max-tokens must be an integer from 1 to 1024 (the model's context), got "${v}"`,
  })),
  {
    args: ["--context", "64", "--max-tokens", "100"],
    message:
      `--max-tokens must be an integer from 1 to 64 (--context), got "100"`,
  },
  ...["-1", "nan"].map((v) => ({
    args: ["--temperature", v],
    message: `--temperature must be a number >= 0 (0 = greedy), got "${v}"`,
  })),
  ...["-1", "4097"].map((v) => ({
    args: ["--top-k", v],
    message:
      `--top-k must be an integer from 0 to 4096 (the vocabulary; 0 = all tokens), got "${v}"`,
  })),
  ...["0", "1.5"].map((v) => ({
    args: ["--top-p", v],
    message: `--top-p must be a number in (0, 1], got "${v}"`,
  })),
  ...["-1", "4294967296", "0.5"].map((v) => ({
    args: ["--seed", v],
    message: `--seed must be an integer from 0 to 4294967295, got "${v}"`,
  })),
  ...["1", "-0.5"].map((v) => ({
    args: ["--policy", "swa", "--sparsity", v],
    message: `--sparsity must be a number in [0, 1), got "${v}"`,
  })),
  ...["-1", "5000"].map((v) => ({
    args: ["--policy", "swa", "--min-budget", v],
    message:
      `--min-budget must be an integer from 0 to 1024 (the model's context), got "${v}"`,
  })),
  {
    args: ["--sparsity", "0.5"],
    message: "--sparsity applies to a KV policy: add --policy NAME",
  },
  {
    args: ["--policy", "bogus"],
    message:
      `unknown policy "bogus" (known: dense, local, strided, sinks, h2o, swa)`,
  },
];

Deno.test("generate: bad numeric options exit 2 at once, naming the option and its range", async () => {
  const slowest = await expectBadInputs(
    ["generate", "--prompt", "hi"],
    CASES,
    LIMIT_MS,
  );
  console.log(`${CASES.length} cases, slowest ${slowest.toFixed(0)} ms`);
});

Deno.test({
  name:
    "generate: good options still generate (greedy, 4 tokens, --context 64)",
  ignore: !HAS_GPU,
  async fn() {
    const r = await runCli([
      "generate",
      "--prompt",
      "It is a truth",
      "--max-tokens",
      "4",
      "--context",
      "64",
      "--json",
    ]);
    assert(r.code === 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert(j.ids.length >= 1 && j.ids.length <= 4, r.stdout);
  },
});
