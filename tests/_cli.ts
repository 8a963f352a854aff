/**
 * Runs `deno run -A cli.ts ...` as a subprocess with a deadline, for the
 * CLI suites: bad input must end the process with an error, not hang.
 *
 * @module
 */

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** What a CLI run gave, and how long it took. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** The deadline killed it. */
  timedOut: boolean;
}

/** Runs the CLI with `args`, killing it (SIGTERM) after `timeoutMs`. */
export async function runCli(
  args: string[],
  timeoutMs = 30_000,
): Promise<CliRun> {
  const t0 = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    signal,
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    ms: performance.now() - t0,
    timedOut: signal.aborted,
  };
}

/** Runs `f` on every item, at most `n` at a time, results in order. */
export async function pool<T, R>(
  items: T[],
  n: number,
  f: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]);
      }
    }),
  );
  return out;
}

/** One bad-input case: the arguments and a piece of the expected message. */
export interface BadInput {
  args: string[];
  message: string;
}

/**
 * Runs every case (a few at a time) and requires each to exit 2 within
 * `limitMs` with `error: <message>` on stderr and nothing on stdout.
 * Returns the slowest run's time.
 */
export async function expectBadInputs(
  prefix: string[],
  cases: BadInput[],
  limitMs: number,
): Promise<number> {
  const runs = await pool(cases, 3, (c) => runCli([...prefix, ...c.args]));
  const problems: string[] = [];
  runs.forEach((r, i) => {
    const c = cases[i];
    const what = `${[...prefix, ...c.args].join(" ")}`;
    if (r.timedOut) problems.push(`${what}: still running, killed`);
    else if (r.code !== 2) {
      problems.push(`${what}: exit ${r.code}, stderr ${r.stderr}`);
    } else if (!r.stderr.includes(`error: ${c.message}`)) {
      problems.push(
        `${what}: stderr ${JSON.stringify(r.stderr)} lacks ${
          JSON.stringify(c.message)
        }`,
      );
    } else if (r.stdout !== "") {
      problems.push(`${what}: printed ${JSON.stringify(r.stdout)}`);
    } else if (r.ms > limitMs) {
      problems.push(`${what}: took ${r.ms.toFixed(0)} ms (limit ${limitMs})`);
    }
  });
  if (problems.length) throw new Error(problems.join("\n"));
  return Math.max(...runs.map((r) => r.ms));
}
