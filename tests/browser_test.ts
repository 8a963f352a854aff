/**
 * The browser bundle in a real browser: `deno task bundle`, then
 * `examples/browser/index.html` served on loopback and driven in headless
 * Chromium (the DevTools protocol over a WebSocket, no npm driver). The page
 * loads the embedded model from a URL with its progress bar, streams a greedy
 * generation, and its token ids must equal the Deno run's, as must its
 * greedy ids for the 8 shared prompts of `fixtures/greedy-austen.json` (32
 * tokens each) and a tiered SWA run under a GPU KV budget. A screenshot of
 * the page is written to `examples/browser/dist/screenshot.png`.
 *
 * Chromium is Debian's `chromium` (or `$ALISA_CHROMIUM`); WebGPU comes from
 * SwiftShader there (`--enable-unsafe-webgpu`), without `shader-f16`. The
 * test is skipped, with a message, where there is no Chromium or no WebGPU
 * adapter in Deno.
 */
import { assert, assertEquals } from "@std/assert";
import { loadModel } from "../src/api/model.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";
import { hasShared, sharedPath } from "./_shared.ts";
import { serveFiles } from "./_file_server.ts";

const root = new URL("../", import.meta.url);
const page = new URL("examples/browser/", root);
const PROMPT = "It is a truth universally acknowledged";
const TOKENS = 24;
const BUDGET = 120_000; // bytes of GPU KV: fewer rows than the run needs

async function findChromium(): Promise<string | null> {
  const cands = [
    Deno.env.get("ALISA_CHROMIUM"),
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
  ].filter((x): x is string => !!x);
  for (const c of cands) {
    if (await Deno.stat(c).then((s) => s.isFile, () => false)) return c;
  }
  return null;
}

const chromium = await findChromium();
if (!chromium) {
  console.warn(
    "skipping the browser test: no Chromium (apt-get install chromium, or set ALISA_CHROMIUM)",
  );
}

/** A minimal DevTools-protocol client on one page session. */
class Cdp {
  private id = 0;
  private readonly waiting = new Map<
    number,
    { res: (v: Record<string, unknown>) => void; rej: (e: Error) => void }
  >();
  /** The page's uncaught exceptions and console errors, for failure messages. */
  readonly pageErrors: string[] = [];

  private constructor(private readonly ws: WebSocket) {
    ws.onclose = () => {
      for (const w of this.waiting.values()) {
        w.rej(new Error("Chromium closed the DevTools connection"));
      }
      this.waiting.clear();
    };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.method === "Runtime.exceptionThrown") {
        const d = m.params.exceptionDetails;
        this.pageErrors.push(d.exception?.description ?? d.text);
      } else if (
        m.method === "Runtime.consoleAPICalled" && m.params.type === "error"
      ) {
        this.pageErrors.push(
          m.params.args.map((a: { value?: unknown; description?: string }) =>
            a.value ?? a.description
          ).join(" "),
        );
      }
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.error) w.rej(new Error(`${m.error.message} (${m.error.code})`));
      else w.res(m.result);
    };
  }

  static async connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise((res, rej) => {
      ws.onopen = res;
      ws.onerror = () => rej(new Error(`cannot connect to ${url}`));
    });
    return new Cdp(ws);
  }

  /** A command; rejected after `ms` without an answer. */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
    ms = 300_000,
  ): Promise<Record<string, unknown>> {
    const id = ++this.id;
    this.ws.send(JSON.stringify({ id, method, params, sessionId }));
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        rej(new Error(`${method}: no answer from Chromium in ${ms / 1000} s`));
      }, ms);
      this.waiting.set(id, {
        res: (v) => (clearTimeout(timer), res(v)),
        rej: (e) => (clearTimeout(timer), rej(e)),
      });
    });
  }

  close() {
    this.ws.close();
  }
}

Deno.test({
  name:
    "browser: the esbuild bundle runs in headless Chromium; the page's greedy tokens (a streamed run, the 8 shared greedy prompts, tiered SWA under a GPU KV budget) equal the Deno engine's; a cached model is fetched once; a screenshot is written",
  ignore: !chromium || !HAS_GPU,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The bundle.
    const b = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "examples/browser/bundle.ts"],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert(b.success, dec.decode(b.stderr) + dec.decode(b.stdout));

    // The reference: the same generation in Deno.
    const m = await loadModel(undefined, { gpu: (await testGpu())! });
    const g = m.generate(PROMPT, { maxTokens: TOKENS, temperature: 0 });
    for await (const _ of g) { /* drain */ }
    const want = (await g.result).ids;
    // The shared greedy prompts (q8_0 fixture), 32 tokens each.
    const prompts: number[][] = hasShared("fixtures/greedy-austen.json")
      ? JSON.parse(
        await Deno.readTextFile(sharedPath("fixtures/greedy-austen.json")),
      ).variants.q8_0.map((v: { prompt_ids: number[] }) => v.prompt_ids)
      : [];
    const wantShared: number[][] = [];
    for (const ids of prompts) {
      const s = m.generate(ids, {
        maxTokens: 32,
        temperature: 0,
        stopAtEos: false,
      });
      for await (const _ of s) { /* drain */ }
      wantShared.push((await s.result).ids);
    }
    m.dispose();
    // And under a GPU KV budget with SWA: the tiered store spills to host.
    const tm = await loadModel(undefined, {
      gpu: (await testGpu())!,
      kv: { gpuBytes: BUDGET },
    });
    const tg = tm.generate(PROMPT, {
      maxTokens: TOKENS,
      temperature: 0,
      policy: { name: "swa", sparsity: 0.8 },
    });
    for await (const _ of tg) { /* drain */ }
    const tr = await tg.result;
    tm.dispose();
    assert(tr.kvStats.tiered && tr.kvStats.host_tokens_peak > 0);

    const files = serveFiles(page, { index: "index.html" });
    const profile = await Deno.makeTempDir();
    const proc = new Deno.Command(chromium!, {
      args: [
        "--headless=new",
        "--no-sandbox",
        "--no-first-run",
        "--disable-gpu-sandbox",
        "--enable-unsafe-webgpu",
        "--enable-features=Vulkan",
        "--use-angle=swiftshader",
        "--use-webgpu-adapter=swiftshader",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        "--window-size=1000,900",
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let cdp: Cdp | null = null;
    try {
      // "DevTools listening on ws://..." on stderr.
      const reader = proc.stderr.pipeThrough(new TextDecoderStream())
        .getReader();
      let log = "", ws = "";
      const t0 = Date.now();
      while (!ws) {
        const left = 60_000 - (Date.now() - t0);
        const { value, done } = await Promise.race([
          reader.read(),
          new Promise<{ value: undefined; done: true }>((r) =>
            setTimeout(() => r({ value: undefined, done: true }), left)
          ),
        ]);
        if (done) throw new Error(`Chromium did not start in 60 s:\n${log}`);
        log += value;
        ws = /DevTools listening on (ws:\/\/\S+)/.exec(log)?.[1] ?? "";
      }
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      cdp = await Cdp.connect(ws);
      const { targetId } = await cdp.send("Target.createTarget", {
        url: `${files.url}index.html`,
      });
      const { sessionId } = await cdp.send("Target.attachToTarget", {
        targetId,
        flatten: true,
      }) as { sessionId: string };
      await cdp.send("Runtime.enable", {}, sessionId);
      const evaluate = async (expression: string) => {
        const r = await cdp!.send("Runtime.evaluate", {
          expression,
          awaitPromise: true,
          returnByValue: true,
        }, sessionId) as {
          result: { value?: unknown };
          exceptionDetails?: { text: string };
        };
        if (r.exceptionDetails) {
          throw new Error(`page: ${JSON.stringify(r.exceptionDetails)}`);
        }
        return r.result.value;
      };
      const until = async (want: string[], ms: number) => {
        const t = Date.now();
        for (;;) {
          const s = await evaluate("window.alisa?.state ?? 'loading page'")
            .catch(() => "loading page");
          if (want.includes(s as string)) return s;
          if (s === "error") {
            throw new Error(
              `the page failed: ${await evaluate("window.alisa.error")}`,
            );
          }
          if (Date.now() - t > ms) {
            throw new Error(
              `the page is still ${s} after ${ms / 1000} s; its errors: ${
                cdp!.pageErrors.join(" | ") || "none"
              }`,
            );
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      };
      await until(["idle"], 60_000);
      const adapter = await evaluate(
        "navigator.gpu?.requestAdapter().then((a) => a ? (a.info?.description || a.info?.vendor || 'an adapter') : null)",
      );
      assert(adapter, "Chromium offers no WebGPU adapter");
      await evaluate(`document.getElementById("tokens").value = "${TOKENS}";
        document.getElementById("temp").value = "0";
        document.getElementById("load").click();`);
      await until(["ready"], 120_000);
      assertEquals(
        await evaluate("document.getElementById('progress').value"),
        1,
      );
      await evaluate(`document.getElementById("go").click()`);
      await until(["done"], 300_000);
      const ids = await evaluate("window.alisa.ids") as number[];
      const text = await evaluate("document.getElementById('out').textContent");
      console.log(
        `browser (${adapter}): ${ids.length} tokens; ${await evaluate(
          "document.getElementById('stats').textContent",
        )}`,
      );
      assertEquals(ids, want, "the page's greedy tokens");
      assert((text as string).startsWith(PROMPT));
      for (const [i, p] of prompts.entries()) {
        assertEquals(
          await evaluate(`window.alisa.generateIds(${JSON.stringify(p)}, 32)`),
          wantShared[i],
          `shared greedy prompt ${i}`,
        );
      }
      console.log(
        `browser: ${prompts.length} shared greedy prompts x 32 tokens equal the Deno engine's`,
      );
      // Tiered SWA in the page: reload under the budget, generate again.
      await evaluate(`document.getElementById("budget").value = "${BUDGET}";
        document.getElementById("policy").value = "swa";
        document.getElementById("sparsity").value = "0.8";
        document.getElementById("load").click();`);
      await until(["ready"], 120_000);
      await evaluate(`document.getElementById("go").click()`);
      await until(["done"], 300_000);
      const stats = await evaluate(
        "document.getElementById('stats').textContent",
      ) as string;
      console.log(`browser, tiered SWA: ${stats}`);
      assertEquals(
        await evaluate("window.alisa.ids"),
        tr.ids,
        "tiered SWA tokens",
      );
      assert(/in host memory/.test(stats), stats);
      // Cache Storage: the first load with the cache fetches the model once,
      // the second reads no bytes from the server, and it generates the same.
      const load = async () => {
        await evaluate(`document.getElementById("budget").value = "";
          document.getElementById("cache").checked = true;
          document.getElementById("load").click();`);
        await until(["ready"], 120_000);
      };
      const size = (await Deno.stat(new URL("dist/austen-5m-q8_0.gguf", page)))
        .size;
      let before = files.sent.gguf ?? 0;
      await load();
      assertEquals(
        (files.sent.gguf ?? 0) - before,
        size,
        "the first cached load",
      );
      before = files.sent.gguf ?? 0;
      await load();
      assertEquals(
        (files.sent.gguf ?? 0) - before,
        0,
        "the second cached load",
      );
      if (prompts.length) {
        assertEquals(
          await evaluate(
            `window.alisa.generateIds(${JSON.stringify(prompts[0])}, 8)`,
          ),
          wantShared[0].slice(0, 8),
        );
      }
      console.log(`browser, Cache Storage: ${size} bytes once, then 0`);
      const shot = await cdp.send("Page.captureScreenshot", {
        format: "png",
      }, sessionId) as { data: string };
      const png = Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0));
      await Deno.writeFile(new URL("dist/screenshot.png", page), png);
      assert(png.length > 1000);
    } finally {
      cdp?.close();
      proc.kill("SIGKILL");
      await proc.status;
      await files.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
