/**
 * `cli.ts eval` with bad numeric options: each exits 2 within seconds with
 * a message naming the option and its allowed range, before the model is
 * loaded; a batch no GPU can hold is refused from the adapter's limits,
 * before any allocation. Uses the embedded model (context 1024) and a
 * short text of its own.
 */
import { assert, assertEquals } from "@std/assert";
import { type BadInput, expectBadInputs, runCli } from "./_cli.ts";
import { HAS_GPU } from "./_gpu.ts";
import { defaultModelPath } from "../src/api/default_model.ts";

/** A bad option fails in ~0.3 s; 10 s leaves room for a loaded machine. */
const LIMIT_MS = 10_000;

const TEXT = await Deno.makeTempFile({ prefix: "alisa-eval-", suffix: ".txt" });
await Deno.writeTextFile(
  TEXT,
  "Catherine Morland had been reading all morning, and was quite unwilling to stop. "
    .repeat(40),
);
addEventListener("unload", () => Deno.removeSync(TEXT));

const PREFIX = ["eval", defaultModelPath(), "--text", TEXT];

const CASES: BadInput[] = [
  ...["1", "-5", "2.5", "abc"].map((v) => ({
    args: ["--window", v],
    message:
      `--window must be an integer >= 2 (at most the model's context), got "${v}"`,
  })),
  {
    args: ["--window", "99999999"],
    message:
      "--window must be an integer from 2 to 1024 (the model's context), got 99999999",
  },
  ...["0", "-1", "1.5"].map((v) => ({
    args: ["--max-windows", v],
    message: `--max-windows must be an integer >= 1, got "${v}"`,
  })),
  ...["0", "-2", "two"].map((v) => ({
    args: ["--batch", v],
    message: `--batch must be an integer >= 1, got "${v}"`,
  })),
  ...["-1", "65"].map((v) => ({
    args: ["--window", "64", "--min-budget", v],
    message:
      `--min-budget must be an integer from 0 to 64 (--window), got "${v}"`,
  })),
  {
    args: ["--sparsity", "0.5,1"],
    message: "--sparsity: sparsity must be in [0, 1), got 1",
  },
  {
    args: ["--sparsity", "-0.1"],
    message: "--sparsity: sparsity must be in [0, 1), got -0.1",
  },
  { args: ["--sparsity", "0.5,x"], message: `--sparsity: "x" is not a number` },
  { args: ["--sparsity", ","], message: "--sparsity: no value given" },
  {
    args: ["--policies", "dense,bogus"],
    message:
      `unknown policy "bogus" (known: dense, local, strided, sinks, h2o, swa)`,
  },
];

Deno.test("eval: bad numeric options exit 2 at once, naming the option and its range", async () => {
  const slowest = await expectBadInputs(PREFIX, CASES, LIMIT_MS);
  console.log(`${CASES.length} cases, slowest ${slowest.toFixed(0)} ms`);
});

Deno.test({
  name:
    "eval: a --batch no GPU can hold is refused before loading, naming --batch and the device limit",
  ignore: !HAS_GPU,
  async fn() {
    const slowest = await expectBadInputs(PREFIX, [{
      args: ["--window", "64", "--batch", "1000000000"],
      message: "--batch must be an integer from 1 to ",
    }], LIMIT_MS);
    const r = await runCli([...PREFIX, "--window", "64", "--batch", "1e9"]);
    assertEquals(r.code, 2, r.stderr);
    assert(
      /with --window 64 on this GPU, got 1000000000: the KV of every position .* over 8 x this GPU's (maxStorageBufferBindingSize|maxBufferSize)/
        .test(r.stderr),
      r.stderr,
    );
    console.log(`slowest ${slowest.toFixed(0)} ms`);
  },
});
