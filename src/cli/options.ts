/**
 * Numeric command-line options, checked where they are parsed: a value
 * that is not a number, not an integer where one is needed, or outside
 * its range is a RangeError naming the option and the allowed range, e.g.
 * `--top-p must be a number in (0, 1], got "1.5"`, before any model is
 * loaded.
 *
 * @example
 * ```ts
 * import { intOption, numberOption } from "./options.ts";
 * import { assertEquals, assertThrows } from "@std/assert";
 * assertEquals(intOption("16", "max-tokens", 1, 1024), 16);
 * assertEquals(intOption(undefined, "max-tokens", 1, 1024), undefined);
 * assertThrows(
 *   () => intOption("0", "max-tokens", 1, 1024),
 *   RangeError,
 *   `--max-tokens must be an integer from 1 to 1024, got "0"`,
 * );
 * assertThrows(
 *   () => numberOption("1.5", "top-p", { min: 0, minOpen: true, max: 1 }),
 *   RangeError,
 *   `--top-p must be a number in (0, 1], got "1.5"`,
 * );
 * ```
 *
 * @module
 */

/** The range of a number option. */
export interface NumberRange {
  min?: number;
  max?: number;
  /** The minimum itself is excluded. */
  minOpen?: boolean;
  /** The maximum itself is excluded. */
  maxOpen?: boolean;
  /** Said after the range, e.g. " (0 = greedy)". */
  why?: string;
}

function parse(v: string): number {
  // Number("") and Number(" ") are 0, Number("0x10") is 16: only decimals.
  return /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(v)
    ? Number(v)
    : NaN;
}

/**
 * Parses `--flag v` as an integer in [min, max] (`undefined` stays
 * undefined); RangeError naming the flag and the range otherwise.
 */
export function intOption(
  v: string | undefined,
  flag: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
  why = "",
): number | undefined {
  if (v === undefined) return undefined;
  const n = parse(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max >= Number.MAX_SAFE_INTEGER
      ? `an integer >= ${min}`
      : `an integer from ${min} to ${max}`;
    throw new RangeError(
      `--${flag} must be ${range}${why}, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** The range as text: "in (0, 1]", ">= 0", "in [0, 1)". */
export function rangeText(r: NumberRange): string {
  const lo = r.min !== undefined, hi = r.max !== undefined;
  if (lo && hi) {
    return `in ${r.minOpen ? "(" : "["}${r.min}, ${r.max}${
      r.maxOpen ? ")" : "]"
    }`;
  }
  if (lo) return `${r.minOpen ? ">" : ">="} ${r.min}`;
  if (hi) return `${r.maxOpen ? "<" : "<="} ${r.max}`;
  return "";
}

/**
 * Parses `--flag v` as a finite number in the range (`undefined` stays
 * undefined); RangeError naming the flag and the range otherwise.
 */
export function numberOption(
  v: string | undefined,
  flag: string,
  r: NumberRange,
): number | undefined {
  if (v === undefined) return undefined;
  const n = parse(v);
  const ok = Number.isFinite(n) &&
    (r.min === undefined || (r.minOpen ? n > r.min : n >= r.min)) &&
    (r.max === undefined || (r.maxOpen ? n < r.max : n <= r.max));
  if (!ok) {
    const range = rangeText(r);
    throw new RangeError(
      `--${flag} must be a ${range ? "number " + range : "finite number"}${
        r.why ?? ""
      }, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** Whether `e` is an argument error (exit code 2 with its message). */
export function isArgError(e: unknown): e is Error {
  return e instanceof TypeError || e instanceof RangeError;
}

/**
 * `["--seed", "-1"]` becomes `["--seed=-1"]` for the options in
 * `valueOptions`, so that a negative number reaches the range check
 * (node's parseArgs takes "-1" for an option and refuses it as ambiguous).
 */
export function joinNegativeValues(
  args: string[],
  valueOptions: readonly string[],
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i], next = args[i + 1];
    if (
      a.startsWith("--") && valueOptions.includes(a.slice(2)) &&
      next !== undefined && /^-(\d|\.\d|inf|nan)/i.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}
