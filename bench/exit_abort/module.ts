/**
 * One test module that opens WebGPU and runs a small compute pass. `run.sh`
 * runs four copies of it in one `deno test` process (four runtimes), which
 * is what made the test suite abort at exit on Linux with the default wgpu
 * backends (see `run.sh` and the README's Tests section).
 *
 * @module
 */
const adapter = await navigator.gpu?.requestAdapter();
Deno.test({
  name: "a compute pass runs",
  ignore: !adapter,
  fn: async () => {
    const device = await adapter!.requestDevice();
    const code = `@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) { a[g.x] = a[g.x] * 2.0 + 1.0; }`;
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: {
        module: device.createShaderModule({ code }),
        entryPoint: "main",
      },
    });
    const buffer = device.createBuffer({
      size: 1 << 20,
      usage: GPUBufferUsage.STORAGE,
    });
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer } }],
    });
    for (let i = 0; i < 20; i++) {
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(4096);
      pass.end();
      device.queue.submit([enc.finish()]);
    }
    await device.queue.onSubmittedWorkDone();
  },
});
