/**
 * Reports of a policy x sparsity evaluation (ALISA.md section 6):
 * Markdown tables, a self-contained SVG plot and JSON.
 *
 * Dense attention does not depend on the sparsity: its perplexity (at
 * sparsity 0 if there is such a row, else its first row) is the baseline
 * every cell is compared with.
 *
 * @example
 * ```ts
 * import { assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
 * import { markdownTable, resultsJson, svgPlot } from "./report.ts";
 * const results = [
 *   { policy: "dense", sparsity: 0, ppl: 10, top1_agree: 1, tokens: 100 },
 *   { policy: "swa", sparsity: 0.5, ppl: 10.5, top1_agree: 0.97, tokens: 100 },
 * ];
 * // swa's perplexity, and its change against dense (10 -> 10.5: +5.0%)
 * assertStringIncludes(markdownTable(results), "10.500 (+5.0%)");
 * assertMatch(svgPlot(results, { title: "Austen" }), /^<svg[^>]*>/);
 * assertEquals(JSON.parse(resultsJson(results)).results.length, 2);
 * ```
 *
 * @module
 */
import { POLICY_NAMES } from "../sparse/spec.ts";

/** One evaluated (policy, sparsity): `EvalResult` of `perplexity.ts` fits. */
export interface PolicyResult {
  policy: string;
  sparsity: number;
  /** Perplexity over the scored tokens. */
  ppl: number;
  /** Fraction (0..1) of scored positions whose argmax equals dense's. */
  top1_agree: number;
  /** Tokens scored. */
  tokens: number;
}

/** The dense perplexity: its sparsity-0 row, else its first row; undefined without dense. */
export function denseBaseline(results: PolicyResult[]): number | undefined {
  const dense = results.filter((r) => r.policy === "dense");
  return (dense.find((r) => r.sparsity === 0) ?? dense[0])?.ppl;
}

/** Policies in table order: those of POLICY_NAMES first, then others as they come. */
function policiesOf(results: PolicyResult[]): string[] {
  const seen = new Set(results.map((r) => r.policy));
  const known = (POLICY_NAMES as readonly string[]).filter((p) => seen.has(p));
  const rest = [...seen].filter((p) => !known.includes(p));
  return [...known, ...rest];
}

function sparsitiesOf(results: PolicyResult[]): number[] {
  return [...new Set(results.map((r) => r.sparsity))].sort((a, b) => a - b);
}

/** Perplexity as printed: 3 decimals below 1000, 1 above; "inf"/"nan". */
export function formatPpl(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  return Math.abs(x) < 1000 ? x.toFixed(3) : x.toFixed(1);
}

/** The change of `ppl` over `base` in percent, signed, one decimal: "+3.2%". */
export function formatChange(ppl: number, base: number): string {
  const d = (ppl / base - 1) * 100;
  if (Number.isNaN(d)) return "nan";
  if (!Number.isFinite(d)) return d > 0 ? "+inf%" : "-inf%";
  let s = d.toFixed(1);
  if (s === "-0.0") s = "0.0";
  return `${s.startsWith("-") ? "" : "+"}${s}%`;
}

function cellOf(
  results: PolicyResult[],
  policy: string,
  s: number,
): PolicyResult | undefined {
  const r = results.find((x) => x.policy === policy && x.sparsity === s);
  if (r || policy !== "dense") return r;
  // dense is sparsity-independent: show the baseline row in every column
  return results.find((x) => x.policy === "dense" && x.sparsity === 0) ??
    results.find((x) => x.policy === "dense");
}

function table(
  results: PolicyResult[],
  cell: (r: PolicyResult) => string,
): string {
  const sp = sparsitiesOf(results);
  const lines = [
    `| policy \\ sparsity | ${sp.map(String).join(" | ")} |`,
    `| --- | ${sp.map(() => "---:").join(" | ")} |`,
  ];
  for (const p of policiesOf(results)) {
    const cells = sp.map((s) => {
      const r = cellOf(results, p, s);
      return r ? cell(r) : "-";
    });
    lines.push(`| ${p} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** The perplexity table: policies x sparsities, "ppl (+x.x%)" vs dense. */
export function pplTable(results: PolicyResult[]): string {
  const base = denseBaseline(results);
  return table(
    results,
    (r) =>
      base === undefined
        ? formatPpl(r.ppl)
        : `${formatPpl(r.ppl)} (${formatChange(r.ppl, base)})`,
  );
}

/** The top-1 agreement with dense table, in percent. */
export function agreementTable(results: PolicyResult[]): string {
  return table(
    results,
    (r) =>
      Number.isFinite(r.top1_agree)
        ? `${(r.top1_agree * 100).toFixed(1)}%`
        : "-",
  );
}

/**
 * Both tables as Markdown: perplexity (change over dense in parentheses)
 * and top-1 agreement with dense, with headings.
 */
export function markdownTable(
  results: PolicyResult[],
  options: { title?: string } = {},
): string {
  const base = denseBaseline(results);
  const tokens = [...new Set(results.map((r) => r.tokens))];
  const out: string[] = [];
  if (options.title) out.push(`## ${options.title}`, "");
  out.push(
    base === undefined
      ? "### Perplexity (no dense run: no baseline)"
      : `### Perplexity (change over dense, ${formatPpl(base)})`,
    "",
    pplTable(results),
    "",
    "### Top-1 agreement with dense",
    "",
    agreementTable(results),
    "",
    tokens.length === 1
      ? `Tokens scored per cell: ${tokens[0]}.`
      : `Tokens scored per cell: ${Math.min(...tokens)} to ${
        Math.max(...tokens)
      }.`,
  );
  return out.join("\n") + "\n";
}

/** `{"results": [...]}`: each row's policy, sparsity, ppl, top1_agree, tokens (non-finite numbers as null). */
export function resultsJson(results: PolicyResult[]): string {
  return JSON.stringify(
    {
      results: results.map((r) => ({
        policy: r.policy,
        sparsity: r.sparsity,
        ppl: r.ppl,
        top1_agree: r.top1_agree,
        tokens: r.tokens,
      })),
    },
    null,
    2,
  );
}

// ------------------------------------------------------------------- SVG

/** Line colours by policy (others cycle through EXTRA_COLORS). */
export const POLICY_COLORS: Record<string, string> = {
  dense: "#444444",
  local: "#1f77b4",
  strided: "#2ca02c",
  sinks: "#9467bd",
  h2o: "#ff7f0e",
  swa: "#d62728",
};
const EXTRA_COLORS = ["#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

/** Options of {@linkcode svgPlot}. */
export interface SvgOptions {
  title?: string;
  width?: number;
  height?: number;
  /**
   * Values above `cap` x the dense perplexity are drawn at the top of the
   * plot (an upward triangle; the value in its tooltip). Default 3;
   * Infinity never clips. Without a dense row nothing is clipped.
   */
  cap?: number;
  /** Logarithmic y axis (default false). */
  logY?: boolean;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

const fx = (x: number) => (Math.round(x * 100) / 100).toString();

/** "Nice" ticks (steps of 1, 2 or 5 x 10^e) in [lo, hi], at most `count` intervals apart. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const e = Math.floor(Math.log10(raw));
  const f = raw / 10 ** e;
  // the smallest of 1, 2, 5, 10 (x 10^e) at least the raw step: <= count intervals
  const step =
    (f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10) * 10 ** e;
  const out: number[] = [];
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) {
    out.push(Number((i * step).toPrecision(12)));
  }
  return out;
}

function logTicks(lo: number, hi: number): number[] {
  const e0 = Math.floor(Math.log10(lo)), e1 = Math.ceil(Math.log10(hi));
  const decades = e1 - e0;
  // 1, 2, 5 per decade over a few decades; powers of ten (every `every`-th) beyond
  const mult = decades <= 3 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil(decades / 8));
  const out: number[] = [];
  for (let e = e0; e <= e1; e++) {
    if (mult.length === 1 && (e - e0) % every) continue;
    for (const m of mult) {
      const v = Number((m * 10 ** e).toPrecision(12));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  }
  if (out.length >= 3) return out;
  // a narrow range: linear-looking ticks inside it
  return niceTicks(lo, hi, 5).filter((v) => v > 0);
}

function fmtTick(v: number): string {
  if (Math.abs(v) >= 1e5) return v.toExponential().replace(/\.?0*e\+?/, "e");
  return Number(v.toPrecision(6)).toString();
}

/**
 * A self-contained SVG of perplexity against sparsity: one `<polyline>`
 * (with `data-policy`) and markers per policy, axes with ticks and labels,
 * grid lines and a legend. Dense, if evaluated at one sparsity only, is
 * drawn as a dashed horizontal line across the plot.
 */
export function svgPlot(
  results: PolicyResult[],
  options: SvgOptions = {},
): string {
  const W = options.width ?? 760, H = options.height ?? 460;
  const logY = options.logY ?? false;
  const capF = options.cap ?? 3;
  const left = 72, right = 150, top = options.title ? 48 : 24, bottom = 56;
  const x0 = left, x1 = W - right, y0 = top, y1 = H - bottom;
  const policies = policiesOf(results);
  const base = denseBaseline(results);
  const cap = base !== undefined && base > 0 ? base * capF : Infinity;

  // x domain
  const sp = sparsitiesOf(results);
  let sLo = Math.min(0, ...sp), sHi = Math.max(...sp, 0);
  if (!(sHi > sLo)) sHi = sLo + 1;
  const padX = (sHi - sLo) * 0.03;
  sLo -= padX;
  sHi += padX;
  const X = (s: number) => x0 + ((s - sLo) / (sHi - sLo)) * (x1 - x0);

  // y domain: finite values, clipped at the cap
  const ys = results.map((r) => r.ppl).filter((v) => !Number.isNaN(v));
  const shown = ys.filter((v) =>
    v <= cap && Number.isFinite(v) && (!logY || v > 0)
  );
  // drawn at the top edge: above the cap, or infinite
  const over = (v: number) => v > cap || v === Infinity;
  const clipped = ys.some(over);
  const capped = clipped && Number.isFinite(cap);
  let yLo = shown.length ? Math.min(...shown) : 1;
  let yHi = capped ? cap : shown.length ? Math.max(...shown) : yLo + 1;
  if (!(yHi > yLo)) {
    const d = Math.abs(yLo) * 0.05 || 1;
    yLo -= d;
    yHi += d;
  }
  let Y: (v: number) => number;
  let ticks: number[];
  if (logY) {
    yLo = Math.max(yLo, Number.MIN_VALUE);
    const lLo = Math.log10(yLo) - 0.02 * Math.log10(yHi / yLo);
    const lHi = Math.log10(yHi) + (capped ? 0 : 0.02 * Math.log10(yHi / yLo));
    Y = (v) => y1 - ((Math.log10(v) - lLo) / (lHi - lLo)) * (y1 - y0);
    ticks = logTicks(10 ** lLo, 10 ** lHi);
  } else {
    const pad = (yHi - yLo) * 0.05;
    const lo = yLo - pad, hi = capped ? yHi : yHi + pad;
    Y = (v) => y1 - ((v - lo) / (hi - lo)) * (y1 - y0);
    ticks = niceTicks(lo, hi, 6).filter((v) => v >= lo && v <= hi);
  }
  const yOf = (v: number) => (over(v) ? y0 : Y(v));

  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
  );
  if (options.title) {
    o.push(
      `<text x="${
        fx((x0 + x1) / 2)
      }" y="28" text-anchor="middle" font-size="15" font-weight="bold">${
        esc(options.title)
      }</text>`,
    );
  }
  // grid and ticks
  o.push(`<g class="grid" stroke="#e6e6e6" stroke-width="1">`);
  const xt = niceTicks(Math.max(sLo, 0), sHi, 10).filter((s) =>
    s >= sLo && s <= sHi
  );
  for (const s of xt) {
    o.push(`<line x1="${fx(X(s))}" y1="${y0}" x2="${fx(X(s))}" y2="${y1}"/>`);
  }
  for (const v of ticks) {
    o.push(`<line x1="${x0}" y1="${fx(Y(v))}" x2="${x1}" y2="${fx(Y(v))}"/>`);
  }
  o.push(`</g>`);
  o.push(
    `<g class="axes" stroke="#000000" stroke-width="1">`,
    `<line x1="${x0}" y1="${y1}" x2="${x1}" y2="${y1}"/>`,
    `<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}"/>`,
  );
  for (const s of xt) {
    o.push(
      `<line x1="${fx(X(s))}" y1="${y1}" x2="${fx(X(s))}" y2="${y1 + 5}"/>`,
    );
  }
  for (const v of ticks) {
    o.push(
      `<line x1="${x0 - 5}" y1="${fx(Y(v))}" x2="${x0}" y2="${fx(Y(v))}"/>`,
    );
  }
  o.push(`</g>`);
  o.push(`<g class="tick-labels" fill="#000000">`);
  for (const s of xt) {
    o.push(
      `<text x="${fx(X(s))}" y="${y1 + 19}" text-anchor="middle">${
        fmtTick(s)
      }</text>`,
    );
  }
  for (const v of ticks) {
    o.push(
      `<text x="${x0 - 8}" y="${fx(Y(v) + 4)}" text-anchor="end">${
        fmtTick(v)
      }</text>`,
    );
  }
  o.push(`</g>`);
  o.push(
    `<text x="${fx((x0 + x1) / 2)}" y="${
      H - 14
    }" text-anchor="middle">KV sparsity (1 - caching ratio)</text>`,
    `<text x="18" y="${
      fx((y0 + y1) / 2)
    }" text-anchor="middle" transform="rotate(-90 18 ${
      fx((y0 + y1) / 2)
    })">perplexity${logY ? " (log scale)" : ""}</text>`,
  );
  if (clipped) {
    const what = capped
      ? `above ${fmtTick(capF)}&#215; dense (${esc(formatPpl(cap))})`
      : "infinite";
    o.push(
      `<text x="${x1 - 4}" y="${
        y0 - 6
      }" text-anchor="end" font-size="10" fill="#555555">&#9650; ${what}, value in tooltip</text>`,
    );
  }

  // lines and markers
  policies.forEach((p, i) => {
    const color = POLICY_COLORS[p] ?? EXTRA_COLORS[i % EXTRA_COLORS.length];
    let pts = results.filter((r) =>
      r.policy === p && !Number.isNaN(r.ppl) && (!logY || r.ppl > 0)
    )
      .sort((a, b) => a.sparsity - b.sparsity);
    const flat = p === "dense" && new Set(pts.map((r) => r.sparsity)).size <= 1;
    const dash = p === "dense" ? ` stroke-dasharray="6 4"` : "";
    const line = flat && pts.length
      ? [[X(sLo + padX), yOf(pts[0].ppl)], [X(sHi - padX), yOf(pts[0].ppl)]]
      : pts.map((r) => [X(r.sparsity), yOf(r.ppl)]);
    o.push(
      `<polyline class="line" data-policy="${
        esc(p)
      }" fill="none" stroke="${color}" stroke-width="2"${dash} points="${
        line.map(([x, y]) => `${fx(x)},${fx(y)}`).join(" ")
      }"/>`,
    );
    if (flat) pts = pts.slice(0, 1);
    o.push(`<g class="markers" data-policy="${esc(p)}" fill="${color}">`);
    for (const r of pts) {
      const x = X(r.sparsity), y = yOf(r.ppl);
      const tip = `<title>${
        esc(`${p} @ ${r.sparsity}: ppl ${formatPpl(r.ppl)}`)
      }</title>`;
      if (over(r.ppl)) {
        o.push(
          `<polygon points="${fx(x - 5)},${fx(y + 4)} ${fx(x + 5)},${
            fx(y + 4)
          } ${fx(x)},${fx(y - 5)}">${tip}</polygon>`,
        );
      } else {
        o.push(`<circle cx="${fx(x)}" cy="${fx(y)}" r="3.5">${tip}</circle>`);
      }
    }
    o.push(`</g>`);
  });

  // legend
  const lx = x1 + 18;
  o.push(`<g class="legend">`);
  policies.forEach((p, i) => {
    const color = POLICY_COLORS[p] ?? EXTRA_COLORS[i % EXTRA_COLORS.length];
    const ly = y0 + 10 + i * 20;
    const dash = p === "dense" ? ` stroke-dasharray="6 4"` : "";
    o.push(
      `<line x1="${lx}" y1="${ly}" x2="${
        lx + 24
      }" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`,
      `<circle cx="${lx + 12}" cy="${ly}" r="3.5" fill="${color}"/>`,
      `<text x="${lx + 32}" y="${ly + 4}">${esc(p)}</text>`,
    );
  });
  o.push(`</g>`, `</svg>`);
  return o.join("\n") + "\n";
}
