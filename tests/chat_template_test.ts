/**
 * Chat templates render exactly what `transformers`' `apply_chat_template`
 * renders (Llama 3.2, Qwen2.5, Qwen3, Gemma 2, Gemma 3, Phi-3.5; fixture made
 * by `tests/fixtures/chat_templates/make.py`), refuse what they refuse, are
 * found in a model's files, and `Model.chat` generates from them, stopping
 * at the end of the turn.
 */
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  ChatTemplate,
  endOfTurnIds,
  modelChatTemplate,
} from "../src/api/chat_template.ts";
import { type ModelFile, openModelFile } from "../src/formats/model_file.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { loadModel } from "../src/api/model.ts";
import { HAS_GPU, testGpu } from "./_gpu.ts";
import { hasShared, modelFixture, sharedPath } from "./_shared.ts";

const dir = new URL("./fixtures/chat_templates/", import.meta.url);
const templates: Record<
  string,
  { template: string; bos_token: string | null; eos_token: string | null }
> = JSON.parse(await Deno.readTextFile(new URL("templates.json", dir)));
const fixture: {
  extra: Record<string, unknown>;
  cases: {
    template: string;
    conversation: number;
    messages: { role: string; content: string }[];
    add_generation_prompt: boolean;
    rendered?: string;
    error?: string;
  }[];
} = JSON.parse(await Deno.readTextFile(new URL("rendered.json", dir)));

Deno.test("every template renders as transformers' apply_chat_template does (24 cases, 6 families)", async () => {
  assertEquals(fixture.cases.length, 24);
  for (const name of Object.keys(templates)) {
    const t = templates[name];
    const vars: Record<string, unknown> = {};
    if (t.bos_token !== null) vars.bos_token = t.bos_token;
    if (t.eos_token !== null) vars.eos_token = t.eos_token;
    const tpl = await ChatTemplate.compile(t.template, vars);
    for (const c of fixture.cases.filter((c) => c.template === name)) {
      const what = `${name}, conversation ${c.conversation}`;
      if (c.error !== undefined) {
        assertThrows(
          () => tpl.render(c.messages, c.add_generation_prompt, fixture.extra),
          TypeError,
          c.error,
          what,
        );
      } else {
        assertEquals(
          tpl.render(c.messages, c.add_generation_prompt, fixture.extra),
          c.rendered,
          what,
        );
      }
    }
  }
});

Deno.test("bad templates and messages are clear errors", async () => {
  await assertRejects(
    () => ChatTemplate.compile("{% for m in messages %}"),
    SyntaxError,
    "Cannot parse the chat template",
  );
  await assertRejects(() => ChatTemplate.compile(""), TypeError, "non-empty");
  const t = await ChatTemplate.compile("plain", { bos_token: "<s>" });
  assertEquals(
    t.render([{ role: "user", content: "Hi" }]),
    "<s>user: Hi\nassistant:",
  );
  assertThrows(() => t.render([]), TypeError, "non-empty array");
  // strip/lstrip/rstrip with an argument strip those characters, as in
  // Python (the library alone trims all whitespace).
  const strip = await ChatTemplate.compile(
    "{{ '\n\n  a \n'.lstrip('\n') }}|{{ 'xxaxx'.strip('x') }}|" +
      "{{ 'a \n\n'.rstrip('\n') }}|{{ '  b  '.strip() }}",
  );
  assertEquals(strip.render([{ role: "u", content: "" }]), "  a \n|a|a |b");
  assertThrows(
    () => t.render([{ role: "user" } as never]),
    TypeError,
    "messages[0] must be",
  );
});

Deno.test("a GGUF's tokenizer.chat_template is the model's template", async () => {
  const file = {
    gguf: { metadata: new Map([["tokenizer.chat_template", "{{ x }}"]]) },
  } as unknown as ModelFile;
  assertEquals(await modelChatTemplate(file), "{{ x }}");
  const none = { gguf: { metadata: new Map() } } as unknown as ModelFile;
  assertEquals(await modelChatTemplate(none), null);
});

Deno.test({
  name:
    "Model.chat: no template is a clear error; an HF directory's chat_template is found; replies stop at the end of the turn",
  ignore: !HAS_GPU || !hasShared("models/austen-5m-hf/config.json"),
  async fn() {
    const gpu = (await testGpu())!;
    const m = await loadModel(undefined, { gpu, contextLength: 256 });
    try {
      const msgs = [{ role: "user", content: "Who is Mr. Darcy?" }];
      await assertRejects(() => m.chat(msgs), TypeError, "no chat template");
      // The explicit "plain" template: the reply is the continuation of
      // the rendered prompt, encoded with its special tokens.
      const g = await m.chat(msgs, { template: "plain", maxTokens: 12 });
      let text = "";
      for await (const p of g) text += p.text;
      const r = await g.result;
      assertEquals(text, r.text);
      assertEquals(r.promptIds[0], m.tokenizer.bos);
      assertEquals(
        m.tokenizer.decode(r.promptIds),
        "user: Who is Mr. Darcy?\nassistant:",
      );
      // The same as generate() on those ids with EOS as end of turn.
      const same = m.generate(r.promptIds, { maxTokens: 12 });
      for await (const _ of same) { /* drain */ }
      assertEquals((await same.result).ids, r.ids);
      assertEquals(endOfTurnIds(m.file, m.tokenizer), [m.tokenizer.eos!]);
      // End-of-turn ids stop the reply before them.
      const eot = r.ids[3];
      const cut = await m.chat(msgs, {
        template: "plain",
        maxTokens: 12,
        stopIds: [eot],
      });
      for await (const _ of cut) { /* drain */ }
      const c = await cut.result;
      assertEquals(c.finishReason, "eos");
      assertEquals(c.ids, r.ids.slice(0, r.ids.indexOf(eot)));
    } finally {
      m.dispose();
    }
    // An HF directory with a chat_template in tokenizer_config.json.
    const tmp = await Deno.makeTempDir();
    try {
      const src = sharedPath("models/austen-5m-hf");
      for await (const e of Deno.readDir(src)) {
        await Deno.copyFile(`${src}/${e.name}`, `${tmp}/${e.name}`);
      }
      const cfg = JSON.parse(
        await Deno.readTextFile(`${tmp}/tokenizer_config.json`),
      );
      cfg.chat_template =
        "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}";
      await Deno.writeTextFile(
        `${tmp}/tokenizer_config.json`,
        JSON.stringify(cfg),
      );
      const h = await loadModel(tmp, { gpu, contextLength: 128 });
      try {
        const g = await h.chat([{ role: "user", content: "Emma" }], {
          maxTokens: 4,
        });
        for await (const _ of g) { /* drain */ }
        const r = await g.result;
        assertStringIncludes(h.tokenizer.decode(r.promptIds), "[user] Emma");
        assert(r.ids.length <= 4);
      } finally {
        h.dispose();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("end-of-turn ids include every config.json eos_token_id (Llama 3 Instruct lists three)", async () => {
  const src = modelFixture("llama/hf");
  const dir = await Deno.makeTempDir();
  try {
    for await (const e of Deno.readDir(src)) {
      await Deno.copyFile(`${src}/${e.name}`, `${dir}/${e.name}`);
    }
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    cfg.eos_token_id = [2, 7, 99999];
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
    const file = await openModelFile(dir);
    try {
      const tok = await Tokenizer.fromModelFile(file);
      // 99999 is outside the vocabulary: ignored.
      assertEquals(endOfTurnIds(file, tok).sort((a, b) => a - b), [2, 7]);
    } finally {
      file.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
