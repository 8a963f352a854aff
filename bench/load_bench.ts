/**
 * Loading throughput: opening a model and reading every tensor dequantized
 * to f32 / f16, for the q8_0 GGUF and the HF directory. MB/s of stored bytes
 * is printed once per case after the benchmark (`deno bench` reports time
 * per iteration; divide the file size by it).
 */
import { openModelFile } from "../src/formats/model_file.ts";
import { hasShared, sharedPath } from "../tests/_shared.ts";
import type { FloatType } from "../src/formats/tensor.ts";

const CASES: [string, FloatType][] = [
  ["models/austen-5m-q8_0.gguf", "f32"],
  ["models/austen-5m-q8_0.gguf", "f16"],
  ["models/austen-5m-f32.gguf", "f32"],
  ["models/austen-5m-hf", "f32"],
  ["models/austen-5m-hf", "f16"],
];

async function loadAll(path: string, to: FloatType): Promise<number> {
  const m = await openModelFile(path);
  let bytes = 0;
  try {
    for (const t of m.tensors) {
      await m.read(t.name, to);
      bytes += t.nBytes;
    }
  } finally {
    m.close();
  }
  return bytes;
}

for (const [rel, to] of CASES) {
  if (!hasShared(rel)) continue;
  const path = sharedPath(rel);
  // One timed run outside the harness for the MB/s line.
  const t0 = performance.now();
  const bytes = await loadAll(path, to);
  const ms = performance.now() - t0;
  console.log(
    `load ${rel} -> ${to}: ${(bytes / 1e6).toFixed(1)} MB stored, ${
      (bytes / 1e3 / ms).toFixed(0)
    } MB/s (first run)`,
  );
  Deno.bench({
    name: `load ${rel} -> ${to}`,
    group: "load",
    n: 5,
    warmup: 1,
    async fn() {
      await loadAll(path, to);
    },
  });
}
