/**
 * `deno task check:wasm`: fails when the committed `wasm/pkg/` was not
 * rebuilt after a change to the Rust sources (see `source_hash.ts`).
 *
 * @module
 */
import { HASH_PREFIX, sourceHash } from "./source_hash.ts";

const root = new URL("./", import.meta.url);
const first = (await Deno.readTextFile(new URL("pkg/alisa_wasm.js", root)))
  .split("\n", 1)[0];
const recorded = first.startsWith(HASH_PREFIX)
  ? first.slice(HASH_PREFIX.length).trim()
  : "(none)";
const actual = await sourceHash(root);
if (recorded !== actual) {
  console.error(
    `wasm/pkg is stale: built from sources with hash ${recorded}, the sources now hash to ${actual}.\nRun \`deno task build:wasm\` and commit wasm/pkg.`,
  );
  Deno.exit(1);
}
console.log(`wasm/pkg matches the Rust sources (${actual})`);
