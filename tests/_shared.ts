/**
 * Where tests and benchmarks find the shared, read-only material (models,
 * data, reference fixtures): `$ALISA_SHARED`, default `../shared` from the
 * project root. Tests that need a file that is absent are skipped with a
 * message naming it.
 *
 * @module
 */

/** The shared directory (a relative `$ALISA_SHARED` is taken from the project root). */
export const SHARED_DIR: string = (() => {
  const dir = Deno.env.get("ALISA_SHARED") ?? "../shared";
  const root = new URL("../", import.meta.url);
  return decodeURIComponent(new URL(dir.replace(/\/?$/, "/"), root).pathname)
    .replace(/\/$/, "");
})();

/** Path of a file under the shared directory. */
export function sharedPath(rel: string): string {
  return `${SHARED_DIR}/${rel}`;
}

/** Whether a shared file exists; logs a skip message naming it if not. */
export function hasShared(rel: string): boolean {
  try {
    Deno.statSync(sharedPath(rel));
    return true;
  } catch {
    console.warn(
      `skipping: ${
        sharedPath(rel)
      } is absent (set ALISA_SHARED to the shared/ directory)`,
    );
    return false;
  }
}

/** A shared file's bytes, or undefined (with the skip message) when absent. */
export function readShared(rel: string): Uint8Array | undefined {
  return hasShared(rel) ? Deno.readFileSync(sharedPath(rel)) : undefined;
}

/** The project's own fixture directory. */
export const FIXTURES_DIR: string = decodeURIComponent(
  new URL("./fixtures", import.meta.url).pathname,
);

/** A path under `tests/fixtures/models/` (the tiny converted models). */
export function modelFixture(rel: string): string {
  return `${FIXTURES_DIR}/models/${rel}`;
}

/** Whether `tests/fixtures/models/<rel>` exists (a test skips otherwise). */
export function hasModelFixture(rel: string): boolean {
  try {
    Deno.statSync(modelFixture(rel));
    return true;
  } catch {
    return false;
  }
}

/** Max |a - b| and NMSE = sum((a-b)^2) / sum(b^2) of two arrays. */
export function compare(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
): { maxAbs: number; nmse: number } {
  let maxAbs = 0, num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
    num += d * d;
    den += b[i] * b[i];
  }
  return { maxAbs, nmse: den === 0 ? (num === 0 ? 0 : Infinity) : num / den };
}

/** f16 bit pattern to number. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The error classes the loaders throw. */
export type LoaderErrorClass = typeof TypeError | typeof RangeError;

/**
 * Runs `run` and requires it to reject with an error of class `cls` whose
 * message includes `pattern` (or matches it); returns the error.
 */
export async function expectRejection(
  run: () => Promise<unknown>,
  cls: LoaderErrorClass,
  pattern: string | RegExp,
  label = "",
): Promise<Error> {
  let err: unknown;
  try {
    await run();
  } catch (e) {
    err = e;
  }
  const where = label ? `${label}: ` : "";
  if (err === undefined) {
    throw new Error(`${where}expected a ${cls.name}, but it parsed`);
  }
  if (!(err instanceof cls)) {
    throw new Error(
      `${where}expected a ${cls.name}, got ${
        (err as Error)?.constructor?.name
      }: ${(err as Error)?.message}`,
    );
  }
  const ok = typeof pattern === "string"
    ? err.message.includes(pattern)
    : pattern.test(err.message);
  if (!ok) {
    throw new Error(
      `${where}expected a message matching ${String(pattern)}, got ${
        JSON.stringify(err.message)
      }`,
    );
  }
  return err;
}

/** A seeded PRNG (mulberry32) and a normal sampler. */
export function rng(seed: number) {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () =>
    Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  return {
    u,
    normal,
    floats: (n: number, scale = 1) =>
      Float32Array.from({ length: n }, () => normal() * scale),
  };
}
