/**
 * The subset of `@std/assert` this project's tests use, over `node:assert`.
 * JSR (where `@std/assert` lives) is unreachable on the build machines, so
 * `deno.json` maps the `@std/assert` import name here; the signatures match
 * `@std/assert`, so switching back is a one-line change in `deno.json`.
 *
 * @module
 */
import nodeAssert from "node:assert";

/** Thrown by every failed assertion. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

function fail(msg: string | undefined, fallback: string): never {
  throw new AssertionError(msg ? `${msg}: ${fallback}` : fallback);
}

/** Asserts that `expr` is truthy. */
export function assert(expr: unknown, msg?: string): asserts expr {
  if (!expr) fail(msg, "expected a truthy value");
}

/** Asserts deep equality (structural, strict). */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  try {
    nodeAssert.deepStrictEqual(actual, expected);
  } catch (e) {
    fail(msg, (e as Error).message);
  }
}

/** Asserts deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string) {
  try {
    nodeAssert.notDeepStrictEqual(actual, expected);
  } catch (e) {
    fail(msg, (e as Error).message);
  }
}

/** Asserts `Object.is` equality. */
export function assertStrictEquals<T>(actual: T, expected: T, msg?: string) {
  if (!Object.is(actual, expected)) {
    fail(msg, `expected ${String(expected)}, got ${String(actual)}`);
  }
}

/** Asserts `|actual - expected| <= tolerance`. */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance = 1e-7,
  msg?: string,
) {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    fail(msg, `expected ${expected} ± ${tolerance}, got ${actual}`);
  }
}

/** Asserts `actual < expected`. */
export function assertLess<T>(actual: T, expected: T, msg?: string) {
  if (!(actual < expected)) fail(msg, `expected ${actual} < ${expected}`);
}

/** Asserts `actual <= expected`. */
export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string) {
  if (!(actual <= expected)) fail(msg, `expected ${actual} <= ${expected}`);
}

/** Asserts `actual > expected`. */
export function assertGreater<T>(actual: T, expected: T, msg?: string) {
  if (!(actual > expected)) fail(msg, `expected ${actual} > ${expected}`);
}

/** Asserts that `actual` is neither null nor undefined. */
export function assertExists<T>(
  actual: T,
  msg?: string,
): asserts actual is NonNullable<T> {
  if (actual === null || actual === undefined) {
    fail(msg, "expected a value");
  }
}

/** Asserts that `actual` matches `expected`. */
export function assertMatch(actual: string, expected: RegExp, msg?: string) {
  if (!expected.test(actual)) {
    fail(msg, `${JSON.stringify(actual)} !~ ${expected}`);
  }
}

/** Asserts that `actual` contains `expected`. */
export function assertStringIncludes(
  actual: string,
  expected: string,
  msg?: string,
) {
  if (!actual.includes(expected)) {
    fail(
      msg,
      `${JSON.stringify(actual)} does not include ${JSON.stringify(expected)}`,
    );
  }
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = new (...args: any[]) => E;

function checkError<E extends Error>(
  e: unknown,
  ErrorClass?: ErrorClass<E>,
  includes?: string,
  msg?: string,
): E {
  if (!(e instanceof Error)) {
    fail(msg, `expected an Error to be thrown, got ${String(e)}`);
  }
  if (ErrorClass && !(e instanceof ErrorClass)) {
    fail(
      msg,
      `expected ${ErrorClass.name}, got ${e.constructor.name}: ${e.message}`,
    );
  }
  if (includes !== undefined && !e.message.includes(includes)) {
    fail(
      msg,
      `expected message including ${JSON.stringify(includes)}, got ${
        JSON.stringify(e.message)
      }`,
    );
  }
  return e as E;
}

/** Asserts that `fn` throws (optionally an `ErrorClass` whose message includes `includes`). */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  includes?: string,
  msg?: string,
): E {
  try {
    fn();
  } catch (e) {
    return checkError(e, ErrorClass, includes, msg);
  }
  fail(msg, "expected the function to throw");
}

/** Asserts that the promise returned by `fn` rejects. */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: ErrorClass<E>,
  includes?: string,
  msg?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    return checkError(e, ErrorClass, includes, msg);
  }
  fail(msg, "expected the promise to reject");
}

/** Asserts that `actual` is an instance of `expectedType`. */
export function assertInstanceOf<T>(
  // deno-lint-ignore no-explicit-any
  actual: any,
  // deno-lint-ignore no-explicit-any
  expectedType: new (...args: any[]) => T,
  msg?: string,
): asserts actual is T {
  if (!(actual instanceof expectedType)) {
    fail(msg, `expected an instance of ${expectedType.name}`);
  }
}

/** Asserts `actual >= expected`. */
export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string) {
  if (!(actual >= expected)) fail(msg, `expected ${actual} >= ${expected}`);
}
