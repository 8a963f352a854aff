/**
 * Prints the WebGPU adapter this machine gives Deno (vendor, description,
 * the limits the engine sizes buffers by, timestamp queries) and which
 * Vulkan loader the process mapped; exits 3 where there is no adapter.
 * `bench/device/run.sh` runs it before the benchmarks.
 */
const a = await navigator.gpu?.requestAdapter({
  powerPreference: "high-performance",
});
if (!a) {
  console.error("no WebGPU adapter");
  Deno.exit(3);
}
const i = a.info;
console.log(JSON.stringify({
  vendor: i.vendor,
  architecture: i.architecture,
  device: i.device,
  description: i.description,
  maxBufferSize: a.limits.maxBufferSize,
  maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
  timestampQuery: a.features.has("timestamp-query"),
}));
const maps = Deno.readTextFileSync("/proc/self/maps").split("\n");
const loaders = new Set(
  maps.filter((l) => /libvulkan\.so/.test(l)).map((l) => l.split(/\s+/).pop()),
);
console.log("Vulkan loader:", [...loaders].join(", ") || "(none mapped)");
