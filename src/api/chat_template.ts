/**
 * Chat templates: the model's own Jinja template (GGUF
 * `tokenizer.chat_template`, or a Hugging Face directory's
 * `chat_template.jinja` / `tokenizer_config.json` `chat_template`),
 * rendered with `@huggingface/jinja` (the implementation transformers.js
 * uses) with the variables `transformers`' `apply_chat_template` passes:
 * `messages`, `add_generation_prompt`, `bos_token`, `eos_token` (and
 * `unk_token`, `pad_token` where the vocabulary has them), plus any extra
 * ones the caller gives (e.g. `date_string`, `tools`).
 *
 * A model without a template is refused with an error naming the way out
 * (a `template` option); `CHAT_TEMPLATES.plain` is a built-in one to pass
 * explicitly for base models such as the embedded Austen model.
 *
 * @example Render messages with an explicit template
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { ChatTemplate } from "./chat_template.ts";
 * const t = await ChatTemplate.compile(
 *   "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}" +
 *     "{% if add_generation_prompt %}<|assistant|>{% endif %}",
 *   { bos_token: "<s>", eos_token: "</s>" },
 * );
 * assertEquals(
 *   t.render([{ role: "user", content: "Hello" }]),
 *   "<|user|>Hello<|end|><|assistant|>",
 * );
 * ```
 *
 * @module
 */
import type { ModelFile } from "../formats/model_file.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { joinPath, readTextFileOrNull } from "../platform/fs.ts";
import { readOptionalJson } from "../formats/json.ts";

/** One chat message. */
export interface ChatMessage {
  /** `system`, `user`, `assistant` (or `tool`, where the template has it). */
  role: string;
  /** The text. */
  content: string;
}

/** Built-in templates, used only when named explicitly. */
export const CHAT_TEMPLATES: Readonly<Record<string, string>> = {
  /**
   * For base models without a chat format: "role: content" lines, then
   * "assistant:" (the Austen model continues it as prose).
   */
  plain:
    "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n" +
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
};

/** Control tokens that end a turn in the common templates. */
const END_OF_TURN = [
  "<|eot_id|>", // Llama 3
  "<|eom_id|>", // Llama 3.1 tool calls
  "<|im_end|>", // Qwen, SmolLM (ChatML)
  "<end_of_turn>", // Gemma
  "<|end|>", // Phi-3
  "<|endoftext|>", // Phi-3, Qwen base
  "<|end_of_text|>", // Llama 3 base
];

/** A compiled template and the special-token variables it is rendered with. */
export class ChatTemplate {
  private constructor(
    private readonly template: { render(v: Record<string, unknown>): string },
    /** The template source. */
    readonly source: string,
    private readonly variables: Record<string, unknown>,
  ) {}

  /**
   * Compiles `source` (a Jinja chat template, or the name of a built-in one
   * in {@linkcode CHAT_TEMPLATES}); `variables` are passed to every render
   * (the special tokens). A SyntaxError names what the parser refused.
   */
  static async compile(
    source: string,
    variables: Record<string, unknown> = {},
  ): Promise<ChatTemplate> {
    if (typeof source !== "string" || !source) {
      throw new TypeError("a chat template must be a non-empty string");
    }
    const src = CHAT_TEMPLATES[source] ?? source;
    const { Template } = await import("@huggingface/jinja");
    let t;
    try {
      t = new Template(src);
    } catch (e) {
      throw new SyntaxError(
        `Cannot parse the chat template: ${(e as Error).message}`,
      );
    }
    rewriteStripCalls(t.parsed);
    return new ChatTemplate(t, src, { ...STRIP_FUNCTIONS, ...variables });
  }

  /**
   * The template of `file` with its tokenizer's special tokens, or
   * `template` (source or built-in name) when given. A model without one
   * is a TypeError naming the `template` option.
   */
  static async forModel(
    file: ModelFile,
    tokenizer: Tokenizer,
    template?: string,
  ): Promise<ChatTemplate> {
    const source = template ?? (await modelChatTemplate(file));
    if (source === null) {
      throw new TypeError(
        `${file.name} has no chat template (GGUF tokenizer.chat_template, or chat_template in tokenizer_config.json): pass one as the template option (a Jinja string, or "plain" for a base model)`,
      );
    }
    const piece = (id: number | null) =>
      id === null ? undefined : tokenizer.pieces([id])[0];
    const vars: Record<string, unknown> = {
      bos_token: piece(tokenizer.bos) ?? "",
      eos_token: piece(tokenizer.eos) ?? "",
    };
    if (tokenizer.unk !== null) vars.unk_token = piece(tokenizer.unk);
    return await ChatTemplate.compile(source, vars);
  }

  /**
   * The prompt text for `messages`; `addGenerationPrompt` (default true)
   * opens the assistant's turn. `extra` adds template variables.
   */
  render(
    messages: ChatMessage[],
    addGenerationPrompt = true,
    extra: Record<string, unknown> = {},
  ): string {
    checkMessages(messages);
    try {
      return this.template.render({
        ...this.variables,
        ...extra,
        messages,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (e) {
      throw new TypeError(
        `The chat template refused these messages: ${(e as Error).message}`,
      );
    }
  }
}

/**
 * `@huggingface/jinja` 0.5.11 ignores the argument of `strip`, `lstrip` and
 * `rstrip` (it always trims whitespace), where Python strips the given
 * characters: Qwen3's `content.lstrip('\n')` then drops leading spaces that
 * `transformers` keeps (caught by the fixture test). Calls with an argument
 * are rewritten in the parsed template into calls of these functions.
 */
const STRIP_FUNCTIONS: Record<string, (s: unknown, chars: unknown) => string> =
  {
    __alisa_strip: (s, c) => pyStrip(s, c, true, true),
    __alisa_lstrip: (s, c) => pyStrip(s, c, true, false),
    __alisa_rstrip: (s, c) => pyStrip(s, c, false, true),
  };

function pyStrip(s: unknown, chars: unknown, left: boolean, right: boolean) {
  if (typeof s !== "string") throw new TypeError("strip() of a non-string");
  if (chars === null || chars === undefined) {
    return left && right ? s.trim() : left ? s.trimStart() : s.trimEnd();
  }
  if (typeof chars !== "string") {
    throw new TypeError("strip() argument must be a string or none");
  }
  const set = new Set(chars);
  let a = 0, b = s.length;
  if (left) { while (a < b && set.has(s[a])) a++; }
  if (right) { while (b > a && set.has(s[b - 1])) b--; }
  return s.slice(a, b);
}

interface AstNode {
  type?: string;
  [k: string]: unknown;
}

/** Rewrites `x.strip(c)` (and lstrip, rstrip) into `__alisa_strip(x, c)`. */
function rewriteStripCalls(node: unknown, seen = new Set<unknown>()): void {
  if (typeof node !== "object" || node === null || seen.has(node)) return;
  seen.add(node);
  if (Array.isArray(node)) {
    for (const x of node) rewriteStripCalls(x, seen);
    return;
  }
  const n = node as AstNode;
  for (const v of Object.values(n)) rewriteStripCalls(v, seen);
  if (n.type !== "CallExpression") return;
  const callee = n.callee as AstNode, args = n.args as unknown[];
  const prop = callee?.property as AstNode | undefined;
  if (
    callee?.type !== "MemberExpression" || callee.computed ||
    prop?.type !== "Identifier" ||
    !["strip", "lstrip", "rstrip"].includes(prop.value as string) ||
    args?.length !== 1
  ) return;
  // An Identifier node like the property, naming the function.
  const id = Object.assign(Object.create(Object.getPrototypeOf(prop)), prop, {
    value: `__alisa_${prop.value}`,
  });
  n.callee = id;
  n.args = [callee.object, args[0]];
}

/** TypeError unless `messages` is a non-empty array of { role, content } strings. */
export function checkMessages(
  messages: unknown,
): asserts messages is ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new TypeError("messages must be a non-empty array");
  }
  messages.forEach((m, i) => {
    if (
      typeof m !== "object" || m === null ||
      typeof (m as ChatMessage).role !== "string" ||
      typeof (m as ChatMessage).content !== "string"
    ) {
      throw new TypeError(
        `messages[${i}] must be { role: string, content: string }`,
      );
    }
  });
}

/** The chat template stored with `file`, or null. */
export async function modelChatTemplate(
  file: ModelFile,
): Promise<string | null> {
  if (file.gguf) {
    const t = file.gguf.metadata.get("tokenizer.chat_template");
    return typeof t === "string" && t ? t : null;
  }
  if (file.hf) {
    const dir = file.hf.dir;
    const jinja = await readTextFileOrNull(
      joinPath(dir, "chat_template.jinja"),
    );
    if (jinja) return jinja;
    const cfg = await readOptionalJson(joinPath(dir, "tokenizer_config.json"));
    const t = cfg?.chat_template;
    if (typeof t === "string") return t || null;
    if (Array.isArray(t)) {
      // Named templates: [{ name: "default", template }, ...].
      const d = t.find((x) => x?.name === "default") ?? t[0];
      return typeof d?.template === "string" ? d.template : null;
    }
    return null;
  }
  return null;
}

/**
 * Token ids that end an assistant turn: EOS, GGUF's
 * `tokenizer.ggml.eot_token_id` / `eom_token_id`, a `config.json`'s
 * `eos_token_id` (one id or a list: Llama 3 Instruct lists three), and the
 * common end-of-turn control tokens the vocabulary has.
 */
export function endOfTurnIds(file: ModelFile, tokenizer: Tokenizer): number[] {
  const ids = new Set<number>();
  if (tokenizer.eos !== null) ids.add(tokenizer.eos);
  const eos = file.hf?.configJson.eos_token_id;
  for (const v of Array.isArray(eos) ? eos : [eos]) {
    if (Number.isInteger(v) && v >= 0 && v < tokenizer.vocabSize) ids.add(v);
  }
  for (
    const key of ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
  ) {
    const v = file.gguf?.metadata.get(key);
    if (typeof v === "number" && v >= 0 && v < tokenizer.vocabSize) ids.add(v);
  }
  for (const text of END_OF_TURN) {
    const enc = tokenizer.encode(text, {
      addSpecial: false,
      parseSpecial: true,
    });
    if (enc.length === 1 && tokenizer.isControl(enc[0])) ids.add(enc[0]);
  }
  return [...ids];
}
